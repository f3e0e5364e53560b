"""Operational metrics: the one seam every part of Streamzy counts through.

``build_services`` makes one ``Metrics`` per app and hands it to the parts that count. With
metrics off (no ``STREAMZY_METRICS_BIND`` and no ``STREAMZY_METRICS_TOKEN``) it is the base
class here, whose methods do nothing; with metrics on it is ``PrometheusMetrics``, which
keeps its own ``CollectorRegistry`` (never the library's global one: tests build many apps
in one process, and each app must report only itself).

The send path calls ``ack``, ``messages_stored``, ``commit`` and ``message_delivered``:
each is one counter increment or one histogram observation on a child bound at start, never
a label lookup. Values that already live elsewhere (live sockets, pooled connections in use,
circuit breakers, audit write failures) are read only when Prometheus scrapes.

This module imports nothing of Streamzy, so services/ and storage/ may use it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

log = logging.getLogger("streamzy.metrics")
PREFIX = "streamzy_"
# Label values come from code (error codes, limit names, outcomes), never from input; the
# cap is a second guard against a bug turning them into an unbounded series count.
MAX_LABEL_VALUES = 64
OTHER = "other"

SIGN_IN_OUTCOMES = ("ok", "bad_credentials", "locked", "disabled",
                    "expired_one_time_password")
CONNECT_REFUSALS = ("not_authenticated", "session_expired", "invalid_token", "csrf_failed",
                    "password_change_required", "too_many_connections", "rate_limited",
                    "unavailable", "too_many_unauthenticated", "internal_error")
# The limits' names (settings rate_<name>, and the ones services keep themselves).
RATE_RULES = ("login", "apply", "apply_status", "messages", "bot_messages", "api", "pages",
              "static", "data_lifecycle", "socket_events", "exports", "audit_verify",
              "metrics", "slow_mode", "reports", "second_factor", "health_check", "search",
              "uploads", "files")
MESSAGE_REFUSALS = ("invalid_input", "invalid_payload", "rate_limited", "not_member", "blocked", "too_long",
                    "store_failed", "unavailable", "conflict", "session_ended")

ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
BCRYPT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Reading = Callable[[], float]
# Counters' *_created series double what a scrape carries and nothing here reads them.
disable_created_metrics()


class Metrics:
    """Metrics off: every event is accepted and forgotten (the cost of a method call)."""

    enabled = False
    registry: CollectorRegistry | None = None

    # -- messages (the send path) ----------------------------------------------------------
    def ack(self, seconds: float) -> None:
        """A stored message was acknowledged ``seconds`` after its event arrived."""

    def messages_stored(self, count: int) -> None:
        """``count`` new rows committed (retries answered from earlier rows excluded)."""

    def commit(self, batch_size: int, seconds: float) -> None:
        """One group-commit transaction of ``batch_size`` messages took ``seconds``."""

    def message_delivered(self) -> None:
        """One stored message was emitted to its room."""

    def message_refused(self, code: str) -> None:
        """A send was answered with an error ``code`` (on the socket or the API)."""

    # -- sockets -----------------------------------------------------------------------------
    def socket_connected(self) -> None:
        """A Socket.IO connect was authenticated and accepted."""

    def socket_refused(self, code: str) -> None:
        """A connect (or an Engine.IO handshake) was refused with ``code``."""

    # -- sign-in and limits ------------------------------------------------------------------
    def sign_in(self, outcome: str) -> None:
        """A password sign-in ended with ``outcome`` (ok, bad_credentials, locked, ...)."""

    def lockout(self) -> None:
        """An account was locked after too many wrong passwords."""

    def rate_limited(self, rule: str) -> None:
        """The rate limit named ``rule`` refused an event."""

    def bcrypt_wait(self, seconds: float) -> None:
        """A password hash waited ``seconds`` in the bcrypt pool's queue before starting."""

    # -- read at scrape time -----------------------------------------------------------------
    def watch_sockets(self, reading: Reading) -> None:
        """How many sockets this process holds, read at each scrape."""

    def watch_pool(self, in_use: Reading, size: Reading) -> None:
        """Database connections checked out of the pool, and the pool's capacity."""

    def watch_circuit(self, name: str, is_open: Callable[[], bool]) -> None:
        """A Redis circuit breaker: 1 while it fails fast, 0 while calls go through."""

    def watch_audit_failures(self, reading: Reading) -> None:
        """Audit rows that could not be stored (the count /readyz shows), since start."""


def _labelled(family: Counter, known: Iterable[str]) -> dict[str, Counter]:
    return {value: family.labels(value) for value in known}


class PrometheusMetrics(Metrics):
    """Metrics on: counters and histograms in this app's own registry."""

    enabled = True

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(PREFIX + name, doc, labels, registry=registry)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(PREFIX + name, doc, registry=registry, buckets=buckets)

        self._stored = counter("messages_stored", "Messages durably stored (new rows).")
        self._delivered = counter("messages_delivered",
                                  "Stored messages emitted to their room by this process.")
        self._refused_family = counter("messages_refused",
                                       "Sends answered with an error, by code.", "code")
        self._connects = counter("socket_connects", "Socket.IO connects accepted.")
        self._connect_refusals_family = counter(
            "socket_refusals", "Socket connects refused, by code.", "code")
        self._sign_ins_family = counter("sign_ins", "Password sign-ins, by outcome.",
                                        "outcome")
        self._lockouts = counter("lockouts", "Accounts locked after wrong passwords.")
        self._limited_family = counter("rate_limit_refusals",
                                       "Events refused by a rate limit, by rule.", "rule")
        self._ack = histogram("ack_latency_seconds",
                              "From a message event's arrival to its ack (stored).",
                              ACK_BUCKETS)
        self._batch = histogram("commit_batch_size", "Messages per group commit.",
                                BATCH_BUCKETS)
        self._commit = histogram("commit_latency_seconds",
                                 "Wall time of one group-commit transaction.", COMMIT_BUCKETS)
        self._bcrypt = histogram("bcrypt_queue_wait_seconds",
                                 "Wait in the bcrypt pool's queue before hashing starts.",
                                 BCRYPT_BUCKETS)
        # Children bound now: the hot path never looks a label up.
        self._refused = _labelled(self._refused_family, MESSAGE_REFUSALS)
        self._connect_refusals = _labelled(self._connect_refusals_family, CONNECT_REFUSALS)
        self._sign_ins = _labelled(self._sign_ins_family, SIGN_IN_OUTCOMES)
        self._limited = _labelled(self._limited_family, RATE_RULES)
        self._readings = _Readings()
        registry.register(self._readings)
        # Bound methods, looked up once (these run for every message).
        self._ack_observe = self._ack.observe
        self._stored_inc = self._stored.inc
        self._delivered_inc = self._delivered.inc

    @staticmethod
    def _child(children: dict[str, Counter], family: Counter, value: str) -> Counter:
        child = children.get(value)
        if child is None:
            if len(children) >= MAX_LABEL_VALUES:
                value = OTHER
            child = children.get(value)
            if child is None:
                child = children[value] = family.labels(value)
        return child

    def ack(self, seconds: float) -> None:
        self._ack_observe(seconds)

    def messages_stored(self, count: int) -> None:
        self._stored_inc(count)

    def commit(self, batch_size: int, seconds: float) -> None:
        self._batch.observe(batch_size)
        self._commit.observe(seconds)

    def message_delivered(self) -> None:
        self._delivered_inc()

    def message_refused(self, code: str) -> None:
        self._child(self._refused, self._refused_family, code).inc()

    def socket_connected(self) -> None:
        self._connects.inc()

    def socket_refused(self, code: str) -> None:
        self._child(self._connect_refusals, self._connect_refusals_family, code).inc()

    def sign_in(self, outcome: str) -> None:
        self._child(self._sign_ins, self._sign_ins_family, outcome).inc()

    def lockout(self) -> None:
        self._lockouts.inc()

    def rate_limited(self, rule: str) -> None:
        self._child(self._limited, self._limited_family, rule).inc()

    def bcrypt_wait(self, seconds: float) -> None:
        self._bcrypt.observe(seconds)

    def watch_sockets(self, reading: Reading) -> None:
        self._readings.sockets = reading

    def watch_pool(self, in_use: Reading, size: Reading) -> None:
        self._readings.pool = (in_use, size)

    def watch_circuit(self, name: str, is_open: Callable[[], bool]) -> None:
        self._readings.circuits[name] = is_open

    def watch_audit_failures(self, reading: Reading) -> None:
        self._readings.audit_failures = reading


def _read(reading: Reading | None) -> float | None:
    """One scrape-time value; a failing reading leaves its sample out, not the scrape."""
    if reading is None:
        return None
    try:
        return float(reading())
    except Exception:
        log.debug("a metrics reading failed", exc_info=True)
        return None


class _Readings:
    """Values kept by other parts, read when Prometheus scrapes (nothing on any hot path)."""

    def __init__(self) -> None:
        self.sockets: Reading | None = None
        self.pool: tuple[Reading, Reading] | None = None
        self.circuits: dict[str, Callable[[], bool]] = {}
        self.audit_failures: Reading | None = None

    def describe(self) -> Iterator[Metric]:
        """The families this collector yields (for the registry's duplicate check)."""
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        return iter(self._families(read=True))

    def _families(self, read: bool = False) -> list[Metric]:
        sockets = GaugeMetricFamily(PREFIX + "sockets_connected",
                                    "Authenticated sockets held by this process.")
        in_use = GaugeMetricFamily(PREFIX + "db_pool_checked_out",
                                   "Database connections checked out of the pool.")
        size = GaugeMetricFamily(PREFIX + "db_pool_capacity",
                                 "Connections the pool may hold (size + overflow).")
        circuits = GaugeMetricFamily(PREFIX + "redis_circuit_open",
                                     "1 while a Redis circuit breaker fails fast.",
                                     labels=["circuit"])
        failures = CounterMetricFamily(PREFIX + "audit_write_failures",
                                       "Audit rows that could not be stored.")
        if read:
            self._fill(sockets, _read(self.sockets))
            if self.pool is not None:
                self._fill(in_use, _read(self.pool[0]))
                self._fill(size, _read(self.pool[1]))
            for name, is_open in list(self.circuits.items()):
                value = _read(is_open)
                if value is not None:
                    circuits.add_metric([name], value)
            self._fill(failures, _read(self.audit_failures))
        return [sockets, in_use, size, circuits, failures]

    @staticmethod
    def _fill(family: Any, value: float | None) -> None:
        if value is not None:
            family.add_metric([], value)


def build_metrics(enabled: bool) -> Metrics:
    """Counting when something can read the counts (a metrics bind or token is set)."""
    return PrometheusMetrics() if enabled else Metrics()
