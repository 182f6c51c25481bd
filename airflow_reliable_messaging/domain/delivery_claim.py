"""A report delivery's claim: the small JSON object a delivering task creates beside the delivery
marker before it delivers (pure: no I/O; ``runs/report_delivery.py`` writes and reads it).

The claim names the DAG run that holds it and when it expires (``CLAIM_EXPIRY`` after it was
taken): a holder that crashed and was not retried is taken over after that."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_reliable_messaging.domain.manifest import isoformat, parse_isoformat

CLAIM_EXPIRY = timedelta(hours=1)


def claim_key(marker_key: str) -> str:
    """The claim's key: ``<marker>.claim.json`` beside the delivery marker ``<marker>.json``."""
    return marker_key.removesuffix(".json") + ".claim.json"


def claim_document(run_id: str, now: datetime) -> bytes:
    """The claim ``run_id`` takes at ``now``."""
    return json.dumps({"run_id": run_id, "claimed_at": isoformat(now), "expires_at": isoformat(now + CLAIM_EXPIRY)}).encode()


def parse_claim(body: bytes) -> dict[str, Any]:
    """A claim found in S3 (empty when unreadable)."""
    try:
        held = json.loads(body)
    except ValueError:
        return {}
    return held if isinstance(held, dict) else {}


def claim_expires_at(held: dict[str, Any]) -> datetime:
    """When a claim expires; never for an unreadable one (only ``force=True`` passes it)."""
    try:
        return parse_isoformat(str(held["expires_at"]))
    except (KeyError, ValueError):
        return datetime.max.replace(tzinfo=UTC)
