"""``/metrics`` on the chat port, for Prometheus with the metrics token (never without it).

The access hook (``@metrics_token``) answers 404 unless ``Authorization: Bearer`` carries
STREAMZY_METRICS_TOKEN, so without a token set this route does not exist for anyone. The
separate listener (STREAMZY_METRICS_BIND, streamzy/metrics_listener.py) needs no token:
it should be bound where only Prometheus reaches it.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from quart import Blueprint, Response
from werkzeug.exceptions import NotFound

from streamzy.web.policy import limited, metrics_token


def blueprint(*, registry: CollectorRegistry | None) -> Blueprint:
    bp = Blueprint("metrics", __name__)

    @bp.get("/metrics")
    @metrics_token
    @limited("metrics")
    async def metrics() -> Response:
        if registry is None:  # metrics off: nothing to show (the hook already said 404)
            raise NotFound()
        # A few dozen series, and the scrape-time readings are len()s and attributes:
        # small enough to render on the event loop.
        response = Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
        response.headers["Cache-Control"] = "no-store"
        return response

    return bp
