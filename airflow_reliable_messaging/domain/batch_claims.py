"""A manifest batch's summary is published once: the claim that decides who publishes it (pure).

The archive publishes one ``batch_archived`` summary per manifest batch (``notifications=
"per_batch"``). Without a claim a standard topic gets it twice when two runs flush the same
batch: a crash after ``PublishBatch`` and before the SQS delete (the retry receives the same
messages, finds them archived and publishes again), a lost delete, or two workers holding the
same messages (a standard queue delivers at least once).

**The batch.** Its id, ``batch_id`` (``domain/archive_events.py``): the SHA-256 of its sorted
lines' identities (message id, object key, transaction status: ``line_identity``) — the same set
of records gives the same id in any run, worker or retry (the
manifest key is built from it too, but also from the earliest ``archived_at``, which a duplicate
takes from the clock: the id alone is stable). A retry that groups the returned messages
differently flushes another batch (other records, other id): its summary is that batch's own,
its records counted ``already_archived``, not a repeat of the first summary.

**The claim** is ``<prefix>/_notified/<batch id>.json`` (``archive_layout.notification_claim_key``),
created with ``PutObject`` ``If-None-Match: *`` before publishing: S3 lets exactly one of concurrent
writers create it (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
Only the writer that created it publishes; then it replaces it (``If-Match`` its ETag) with state
``published``. A run that finds the claim (:func:`judge`):

- ``published``: the summary went out — not published again (``summaries_already_published``),
  the records are deleted;
- ``claimed`` and not expired: another run is publishing it (or crashed doing so) — not published
  (``summaries_held_elsewhere``, the holder named in the log); the records stay in the queue and
  come back after the visibility timeout, when the claim is published or expired;
- ``released`` (its holder's ``PublishBatch`` failed) or ``claimed`` and expired: taken over with
  ``If-Match`` on the ETag read, so of several runs finding it exactly one takes it.

**Expiry rule.** A claim expires ``CLAIM_EXPIRY`` (15 minutes) after it was taken, written into it
(``expires_at``) by its holder. A live holder spends between its claim and ``published`` one
``PublishBatch`` (botocore's retries included: seconds; minutes at worst) — far less. So an expired
``claimed`` claim is one whose holder died between the claim and the ``published`` write. If it died
before publishing, the taker publishes the summary (late, never lost); if it died in the one window
after ``PublishBatch`` succeeded and before the ``published`` write, the summary goes out twice —
the only repeat left, and on a FIFO topic SNS drops it when within its 5-minute deduplication window
(the summary's deduplication id is its batch id, unchanged).

**How long a claim is kept.** It matters while a copy of its batch's messages can still be received:
at most 14 days in the queue (``MessageRetentionPeriod``), 28 if a FIFO queue's message went through
its dead-letter queue (whose retention counts again from the move,
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/setting-up-dead-letter-queue-retention.html).
The shipped lifecycle example (``docs/operators/archive_lifecycle.json``) expires ``_notified/``
after 30 days: claims are control markers, not archive objects.

An unreadable claim (not this JSON) is never taken over by itself: the records stay in the queue
and the log names the object (delete it to let the batch publish).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

CLAIM_EXPIRY = timedelta(minutes=15)
CLAIMED, PUBLISHED, RELEASED = "claimed", "published", "released"
# what judge() says about a claim found
SKIP_PUBLISHED, SKIP_HELD, TAKE_OVER = "published", "held", "take_over"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def claim_body(batch: str, manifest_uri: str, holder: str, now: datetime, state: str = CLAIMED) -> bytes:
    """The claim a holder writes (``state`` ``claimed``, then ``published`` or ``released``)."""
    doc = {
        "batch_id": batch,
        "manifest": manifest_uri,
        "holder": holder,
        "state": state,
        "claimed_at": _iso(now),
        "expires_at": _iso(now + CLAIM_EXPIRY),
    }
    return json.dumps(doc, sort_keys=True).encode()


def settled(claim: dict[str, Any], state: str, now: datetime) -> bytes:
    """The holder's claim with its outcome (``published`` / ``released``) and when."""
    return json.dumps({**claim, "state": state, f"{state}_at": _iso(now)}, sort_keys=True).encode()


def parse(body: bytes) -> dict[str, Any] | None:
    """A claim read back; None when it is not one (never taken over by itself)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("state") not in (CLAIMED, PUBLISHED, RELEASED):
        return None
    try:
        datetime.fromisoformat(str(doc["expires_at"]))
    except (KeyError, ValueError):
        return None
    return doc


def judge(claim: dict[str, Any] | None, now: datetime) -> str:
    """What a run that found ``claim`` (parsed; None: unreadable) does: ``published`` (skip, the
    records may go), ``held`` (skip, the records stay), ``take_over`` (replace it with If-Match)."""
    if claim is None:
        return SKIP_HELD
    if claim["state"] == PUBLISHED:
        return SKIP_PUBLISHED
    if claim["state"] == RELEASED:
        return TAKE_OVER
    expires = datetime.fromisoformat(str(claim["expires_at"]))
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return TAKE_OVER if expires <= now else SKIP_HELD
