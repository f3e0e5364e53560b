"""Delivers alerts to the operator's webhook: signed JSON, in the background, with bounded
retries.

The body is signed with HMAC-SHA256 under STREAMZY_ALERT_WEBHOOK_SECRET over
``"<timestamp>." + body``; the receiver recomputes it, compares in constant time, and
refuses a timestamp too far from its own clock (a captured request cannot be replayed
later). Headers::

    X-Streamzy-Timestamp: 1893456000
    X-Streamzy-Signature: sha256=<hex>

Sending never blocks what raised the alert: alerts wait in a bounded queue for one worker
task; each attempt has a timeout; a failed attempt (network error, timeout, 408, 429 or
5xx) is retried after backoff, 2x backoff, 4x backoff ... up to the configured number of
retries; other answers are final. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

log = logging.getLogger("streamzy.alerts")
QUEUE_SIZE = 100
RETRYABLE = frozenset({408, 429})
Sleep = Callable[[float], Awaitable[None]]
SIGNATURE_HEADER = "X-Streamzy-Signature"
TIMESTAMP_HEADER = "X-Streamzy-Timestamp"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (and the tests): recompute and compare in constant time."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class AlertWebhook:
    def __init__(self, url: str, secret: str, *, timeout: float, retries: int,
                 backoff: float, sleep: Sleep = asyncio.sleep,
                 on_gave_up: Callable[[dict[str, Any], str], Awaitable[None]] | None = None
                 ) -> None:
        self.url = url
        self._secret = secret.encode()
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep
        self._on_gave_up = on_gave_up
        self._queue: asyncio.Queue[tuple[dict[str, Any], int]] = asyncio.Queue(QUEUE_SIZE)
        self._worker: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    def send(self, payload: dict[str, Any], timestamp: int) -> None:
        """Queue ``payload`` for delivery and return at once (dropped when the queue is
        full: a receiver that is down must not make the server hold unbounded alerts)."""
        try:
            self._queue.put_nowait((payload, timestamp))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("alert webhook queue full: alert %s dropped", payload.get("kind"))
            return
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(),
                                                                  name="alert-webhook")

    async def settled(self) -> None:
        """Wait until every queued alert was delivered or given up (tests, shutdown)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            payload, timestamp = await self._queue.get()
            try:
                await self._deliver(payload, timestamp)
            except Exception:  # a bug here must not stop later deliveries
                log.exception("alert webhook delivery failed")
            finally:
                self._queue.task_done()

    async def _deliver(self, payload: dict[str, Any], timestamp: int) -> None:
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        stamp = str(timestamp)
        headers = {"Content-Type": "application/json", "User-Agent": "streamzy-alerts",
                   TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(self._secret, stamp, body)}
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False,
                                             trust_env=False)
        problem = ""
        for attempt in range(self._retries + 1):
            if attempt:
                await self._sleep(self._backoff * 2 ** (attempt - 1))
            try:
                async with asyncio.timeout(self._timeout * 2):  # connect + answer, whole
                    response = await self._client.post(self.url, content=body, headers=headers)
            except Exception as exc:
                problem = type(exc).__name__
                continue
            if 200 <= response.status_code < 300:
                self.delivered += 1
                return
            problem = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code not in RETRYABLE:
                break  # the receiver refused this alert: repeating it changes nothing
        self.failed += 1
        log.warning("alert webhook: %s alert not delivered (%s)", payload.get("kind"), problem)
        if self._on_gave_up is not None:
            with contextlib.suppress(Exception):
                await self._on_gave_up(payload, problem)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
