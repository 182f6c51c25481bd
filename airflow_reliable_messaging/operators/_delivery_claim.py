"""Deliver a report once, by construction: claim the delivery with an atomic S3 write first.

Two publish (or email) tasks for one report started together would each find no delivery marker
and both deliver (the marker is written after delivering). So before delivering, a task creates
``<marker>.claim.json`` with ``If-None-Match: *``: S3 lets exactly one of concurrent writers
create it (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html), and
only that one delivers. The others report the delivery as taken, naming the run that holds it.

Who may deliver despite an existing claim:

- a retry of the same DAG run (same ``run_id``): it is that delivery's own retry (a try that
  crashed midway may have sent part of it: SNS FIFO topics drop the repeats by deduplication id;
  standard topics and email may repeat what the crashed try had sent);
- anyone, once the claim has expired (``CLAIM_EXPIRY`` after it was taken, with no delivery marker
  written): its holder crashed and was not retried. The expired claim is replaced with
  ``If-Match`` on its ETag, so of several runs finding it expired exactly one takes it over;
- ``force=True``, which ignores markers and claims alike.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging.domain.manifest import isoformat, parse_isoformat

if TYPE_CHECKING:
    from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook

CLAIM_EXPIRY = timedelta(hours=1)


def claim_delivery(op: Any, s3: S3ArchiveHook, report: dict[str, Any], context: Any) -> dict[str, Any] | None:
    """None when this task delivers the report; else why not: ``{"claimed_by": run id or None
    (delivered, claim unknown), "claimed_at": ...}``. ``op`` is the delivering operator."""
    if op.force:
        return None
    marker = op.marker_key(report)
    if s3.head_object_info(op.marker_bucket, marker) is not None:
        return {"claimed_by": None, "claimed_at": None, "delivered": True}
    run_id = str((context.get("run_id") if hasattr(context, "get") else None) or "unknown run")
    now = datetime.now(UTC)
    key = marker.removesuffix(".json") + ".claim.json"
    mine = json.dumps({"run_id": run_id, "claimed_at": isoformat(now), "expires_at": isoformat(now + CLAIM_EXPIRY)}).encode()
    existing = s3.put_marker_if_absent(op.marker_bucket, key, mine, kms_key_id=getattr(op, "kms_key_id", None) or None)
    if existing is None:
        return None
    held = _parse(existing)
    if held.get("run_id") == run_id:
        op.log.info("Delivery of report %s was claimed by this DAG run's earlier try: resuming it", report["report_id"])
        return None
    expired = _expires_at(held) <= now
    if expired:
        info = s3.head_object_info(op.marker_bucket, key)
        if info is not None and s3.replace_marker_if_unchanged(op.marker_bucket, key, mine, info.etag):
            op.log.warning("Took over the expired delivery claim of run %r on report %s", held.get("run_id"), report["report_id"])
            return None
    op.log.info("Report %s is being (or was) delivered by run %r (claimed %s): not delivering twice.",
                report["report_id"], held.get("run_id"), held.get("claimed_at"))  # fmt: skip
    return {"claimed_by": held.get("run_id"), "claimed_at": held.get("claimed_at"), "delivered": False}


def _parse(body: bytes) -> dict[str, Any]:
    try:
        held = json.loads(body)
    except ValueError:
        return {}
    return held if isinstance(held, dict) else {}


def _expires_at(held: dict[str, Any]) -> datetime:
    try:
        return parse_isoformat(str(held["expires_at"]))
    except (KeyError, ValueError):
        return datetime.max.replace(tzinfo=UTC)  # unreadable: never taken over by itself (force=True does)
