"""deploy/grafana/streamzy-dashboard.json: valid dashboard JSON whose every query names
series the running app exports, and which charts every metric the app exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, LiveServer
from tests.observability.scrape import TOKEN, Exposition, scrape

DASHBOARD = ROOT / "deploy" / "grafana" / "streamzy-dashboard.json"
METRIC = re.compile(r"\bstreamzy_[a-z0-9_]+\b")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
# Labels Prometheus adds when it scrapes (not in the exposition itself).
TARGET_LABELS = {"instance", "job"}


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"metrics_token": TOKEN, "redis_url": ""}


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text("utf-8"))
    return loaded


def _queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return exprs


def _labels(scraped: Exposition) -> set[str]:
    return {name for _, labels in scraped.samples for name, _ in labels}


def test_the_dashboard_is_a_grafana_dashboard_with_a_datasource_variable() -> None:
    dashboard = _dashboard()
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 30
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    charts = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(charts) >= 12
    for panel in charts:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24


async def test_every_query_names_series_the_app_exports(server: LiveServer) -> None:
    scraped = await scrape(server)
    exported, labels = scraped.names(), _labels(scraped) | TARGET_LABELS
    # The circuit gauge has samples only with Redis; its family is always described.
    labels |= {"circuit"}
    unknown, unknown_labels = set(), set()
    for expr in _queries(_dashboard()):
        unknown |= set(METRIC.findall(expr)) - exported
        for group in GROUPING.findall(expr):
            unknown_labels |= {g.strip() for g in group.split(",") if g.strip()} - labels
    assert unknown == set()
    assert unknown_labels == set()


async def test_every_exported_metric_has_a_panel(server: LiveServer) -> None:
    scraped = await scrape(server)
    charted = {m for expr in _queries(_dashboard()) for m in METRIC.findall(expr)}
    families = {name for name in scraped.families if name.startswith("streamzy_")}
    # A family counts as charted when any of its series is (a histogram through _bucket).
    missing = {f for f in families if not any(c == f or c.startswith(f + "_") for c in charted)}
    assert missing == set()


def test_the_dashboard_file_is_where_the_guide_says() -> None:
    guide = (ROOT / "deploy" / "README.md").read_text("utf-8")
    assert str(DASHBOARD.relative_to(ROOT)) in guide
    assert Path(DASHBOARD).is_file() and Path(DASHBOARD).stat().st_size > 0
