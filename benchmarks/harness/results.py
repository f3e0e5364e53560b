"""Judging and printing results: the knee criterion, the noise test, and the Markdown tables
every scenario prints, so that all scenarios read (and are judged) the same way."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness.config import P99_LIMIT_MS


def passes(r: dict[str, Any]) -> bool:
    """The knee criterion: p99 <= 100 ms, nothing lost or duplicated, no errors."""
    e = r.get("errors", {})
    p99 = (r.get("latency_ms") or {}).get("p99")
    return (not r.get("failed") and p99 is not None and p99 <= P99_LIMIT_MS
            and r["lost"] == 0 and r["duplicates"] == 0 and r.get("disconnects", 0) == 0
            and e.get("ackErrors", 0) == 0 and e.get("ackTimeouts", 0) == 0
            and e.get("sendErrors", 0) == 0 and r["sent_rate"] >= 0.95 * r["offered_rate"])


def noisy(r: dict[str, Any]) -> bool:
    """Something else took a real share of the server's or the generator's core."""
    return ((r.get("server_core_foreign") or 0) > 0.10 or (r.get("server_core_steal") or 0) > 0.05
            or (r.get("load_core_foreign") or 0) > 0.30)


def p99_of(r: dict[str, Any]) -> float | None:
    return (r.get("latency_ms") or {}).get("p99")


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: Any, spec: str = ".0f") -> str:
    if value is None:
        return "-"
    return format(value, spec)


CHAT_COLUMNS = ("server", "app", "offered/s", "sent/s", "deliv/s", "p50 ms", "p95 ms", "p99 ms",
                "max ms", "lost", "dup", "err", "srv CPU", "us/deliv", "RSS MB", "gen CPU",
                "noise", "ok")


def chat_row(server: str, app: str, r: dict[str, Any]) -> list[str]:
    """One measured chat phase as a row under CHAT_COLUMNS."""
    lat = r.get("latency_ms") or {}
    e = r.get("errors", {})
    errs = (e.get("ackErrors", 0) + e.get("ackTimeouts", 0) + e.get("sendErrors", 0)
            + r.get("disconnects", 0))
    noise = (f"{(r.get('server_core_foreign') or 0) * 100:.0f}/"
             f"{(r.get('server_core_steal') or 0) * 100:.0f}/"
             f"{(r.get('load_core_foreign') or 0) * 100:.0f}%")
    return [server, app, fmt(r.get("offered_rate"), "g"), fmt(r.get("sent_rate"), ".1f"),
            fmt(r.get("delivered_per_s")), fmt(lat.get("p50"), ".1f"), fmt(lat.get("p95"), ".1f"),
            fmt(lat.get("p99"), ".1f"), fmt(lat.get("max"), ".0f"), str(r.get("lost", "-")),
            str(r.get("duplicates", "-")), str(errs), fmt(r.get("server_cpu"), ".2f"),
            fmt(r.get("server_cpu_us_per_delivery"), ".0f"),
            fmt((r.get("server_rss") or 0) / 2 ** 20, ".0f"), fmt(r.get("loadgen_cpu"), ".2f"),
            noise + ("!" if noisy(r) else ""), "yes" if passes(r) else "no"]


def table(columns: Sequence[str], rows: list[list[str]]) -> str:
    """A Markdown table, columns padded to their widest cell."""
    widths = [max(len(str(c)), *(len(row[i]) for row in rows)) if rows else len(c)
              for i, c in enumerate(columns)]
    line = "| " + " | ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |"
            for row in rows]
    return "\n".join([line, sep, *body])


def chat_report(rows: list[list[str]], note: str, summary_columns: Sequence[str],
                summary: list[list[str]]) -> str:
    """The chat scenarios' report: every phase (CHAT_COLUMNS + a note), how to read it, and
    one summary line per server against the scenario's target."""
    return "\n\n".join([table([*CHAT_COLUMNS, "note"], rows), *([note] if note else []),
                        table(summary_columns, summary)])


@dataclass
class Report:
    """Sections as printed (for --markdown) and the raw results by scenario (for --json)."""

    sections: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, title: str, text: str) -> None:
        block = f"### {title}\n\n{text}\n"
        self.sections.append(block)
        print("\n" + block, flush=True)
