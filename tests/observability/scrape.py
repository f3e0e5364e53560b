"""Reading a live server's metrics the way Prometheus does: GET, then the official parser."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LiveServer

TOKEN = "metrics-token-" + "abcdefghijklmnopqrstuvwxyz0123"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@dataclass(frozen=True)
class Exposition:
    """One scrape: every family's name, and every sample's value by name and labels."""

    families: dict[str, str]  # family name -> type
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def value(self, name: str, **labels: str) -> float:
        """A sample's value; 0 for a labelled child not created yet (as Prometheus reads
        an absent series in ``increase``)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def names(self) -> set[str]:
        """Every series name a query may use (families and their samples)."""
        return set(self.families) | {name for name, _ in self.samples}


def parse(text: str) -> Exposition:
    families: dict[str, str] = {}
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Exposition(families, samples)


async def scrape(server: LiveServer) -> Exposition:
    """The chat port's /metrics with the token."""
    async with server.client() as client:
        response = await client.get("/metrics", headers=BEARER)
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


async def scrape_url(url: str) -> Exposition:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url)
    assert response.status_code == 200
    return parse(response.text)
