"""The S3-archive replay run (S3ArchiveReplayOperator's work): select the window's records, read and
verify each one, send them in batches, checkpoint after each batch, report. It takes
``ArchiveReplaySettings`` (built by the operator from its validated, rendered parameters) and the
hooks; it never sees the operator."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from airflow_reliable_messaging.domain import archive_layout, identifiers, workers
from airflow_reliable_messaging.domain import replay as rp
from airflow_reliable_messaging.domain.claim_check import MESSAGE_SIZE_LIMIT
from airflow_reliable_messaging.domain.manifest import MAX_MANIFEST_BYTES, bytes_mismatch, decode_manifest
from airflow_reliable_messaging.domain.masking import NotDeidentifiable, SensitiveDataDenied, deidentify_payload
from airflow_reliable_messaging.domain.outgoing import OutgoingMessage
from airflow_reliable_messaging.exceptions import ConfigurationError, ObjectUnreadable, ReplayError
from airflow_reliable_messaging.hooks.errors import error_code, is_missing_object

if TYPE_CHECKING:
    from airflow_reliable_messaging.domain.masking import DataProtectionPolicy
    from airflow_reliable_messaging.hooks._batch import BatchResult
    from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook
    from airflow_reliable_messaging.hooks.sns import SnsMessagingHook
    from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

DISCOVERY = ("auto", "manifests", "listing")
GROUP_BY = ("source_system", "message_type")
BATCH = 10
SAMPLE = 20


@dataclass(frozen=True)
class ArchiveReplaySettings:
    """One replay: the archive, the window (``open_end``: it ends at the first attempt's "now"),
    the filters, exactly one of ``topic_arn`` / ``target_queue``, and how to send."""

    bucket: str
    prefix: str
    window: rp.Window
    open_end: bool
    filters: rp.ReplayFilter
    replay_id: str
    topic_arn: str | None
    target_queue: str | None
    discovery: str
    archive_delay_hours: int
    group_by: str
    dry_run: bool
    max_messages_per_second: float
    policy: DataProtectionPolicy | None
    now: datetime
    workers: int = 1  # batches sent at once (threads); a FIFO target's message groups split between them


@dataclass
class ReplayPlan:
    """What the select step decided: the window (a retry's may be the first attempt's), the
    selected records, those still to send (refused ones first), the checkpoint and the report so far."""

    window: rp.Window
    found: Found
    selected: list[rp.ReplayItem]
    todo: list[rp.ReplayItem]
    checkpoint: rp.Checkpoint
    summary: dict[str, Any] = field(default_factory=dict)


class ArchiveReplayRun:
    """One replay of a window of the S3 archive to a topic (``sns``) or a queue (``sqs``)."""

    def __init__(self, settings: ArchiveReplaySettings, s3: S3ArchiveHook, sns: SnsMessagingHook | None,
                 sqs: SqsMessagingHook | None, log: Any) -> None:  # fmt: skip
        self.s, self.s3, self.log = settings, s3, log
        self.target = Target(settings, sns, sqs)
        self.checkpoint_key = rp.checkpoint_key(settings.prefix, settings.replay_id)
        self.bundles = BundleCache()

    # -- select ---------------------------------------------------------------------------------------
    def plan(self) -> ReplayPlan:
        """Discover and select the window's records, resume from the checkpoint; log the warnings.
        Nothing selected fails the run (unless a dry run): a replay of nothing is a mistaken request."""
        s = self.s
        found = self.discover()
        plan = self.resume(found, self.read_checkpoint())
        win = plan.window.to_dict()
        self.log.info(
            "Replay %s of s3://%s/%s %s..%s (found by %s): %d selected, %d already handled, %d to send to %s",
            s.replay_id, s.bucket, s.prefix, win["start"], win["end"], found.how, len(plan.selected),
            len(plan.selected) - len(plan.todo), len(plan.todo), self.target.name,
        )  # fmt: skip
        plan.summary = {
            "replay_id": s.replay_id, "target": self.target.name, "window": win, "filters": s.filters.to_dict(),
            "discovery": found.how, "selected": len(plan.selected), "dry_run": bool(s.dry_run),
            "checkpoint": archive_layout.s3_uri(s.bucket, self.checkpoint_key), **found.report(),
        }  # fmt: skip
        if not plan.selected:
            plan.summary["warnings"].append(
                f"Replay {s.replay_id}: nothing to replay in s3://{s.bucket}/{s.prefix} {win['start']}..{win['end']} with "
                f"filters {s.filters.to_dict() or 'none'} (searched {found.how}; {len(found.items)} record(s) found, "
                "none in the window and filters)"
            )
        for warning in plan.summary["warnings"]:  # bad manifests and stray keys are logged before any failure
            self.log.warning("%s", warning)
        if not plan.selected and not s.dry_run:
            raise ReplayError(plan.summary["warnings"][-1] + ". Check the window, archive_prefix and filters.")
        return plan

    def resume(self, found: Found, previous: rp.Checkpoint | None) -> ReplayPlan:
        """The selection and what is left of it after ``previous`` (a retry's or rerun's checkpoint)."""
        s = self.s
        win = s.window
        if previous is not None and s.open_end and previous.window.get("start") == win.to_dict()["start"]:
            # "until now" means until the first attempt's now: a retry resumes the same window
            win = rp.Window(win.start, rp.parse_instant(previous.window["end"], "end"))
        selected = rp.select(found.items, win, s.now, s.filters)
        checkpoint = rp.Checkpoint(s.replay_id, self.target.name, win.to_dict(), s.filters.to_dict())
        if previous is not None:
            if not previous.same_replay(checkpoint):
                raise ConfigurationError("replay_id", f"{s.replay_id!r} already names another replay (target, window or filters differ)")
            try:
                previous.check_progress(selected)
            except ValueError as exc:
                raise _bad_checkpoint(s.bucket, self.checkpoint_key, exc) from None
            checkpoint = previous
        retry_ids = {f["message_id"] for f in checkpoint.failed}
        todo = [i for i in selected if i.message_id in retry_ids] + [
            i for i in checkpoint.remaining(selected) if i.message_id not in retry_ids
        ]
        return ReplayPlan(win, found, selected, todo, checkpoint)

    def discover(self) -> Found:
        """The window's records: from its manifests, else (and also, in ``auto``, when a manifest is
        bad: the records only it names are still found) from listing its data keys. Bad manifests
        and keys outside the archive layout are reported, never skipped silently."""
        s = self.s
        found = Found(s.bucket, s.discovery == "manifests")
        manifests = 0
        if s.discovery in ("auto", "manifests"):
            manifests = self.read_manifests(found)
            found.how = f"{manifests} manifests"
            if s.discovery == "manifests" or (manifests and not found.bad_manifests):
                return found
        found.items.extend(self.list_window(found))
        found.how = f"{found.how} ({len(found.bad_manifests)} bad) and listed" if manifests else "listing"
        return found

    def read_manifests(self, found: Found) -> int:
        """Add the records of the window's manifests to ``found``; how many manifests there were."""
        s, manifests = self.s, 0
        for key_range in rp.manifest_ranges(s.prefix, s.window, s.now, timedelta(hours=s.archive_delay_hours)):
            for obj in self.s3.iter_objects_in_range(s.bucket, key_range):
                if not obj["Key"].endswith(".jsonl"):
                    found.not_in_layout.append(obj["Key"])
                    continue
                manifests += 1
                try:  # (bounded: whatever is at a manifest key is held in memory)
                    body = self.s3.read_archived(s.bucket, obj["Key"], MAX_MANIFEST_BYTES)
                    if len(body) > MAX_MANIFEST_BYTES:
                        raise ValueError(f"larger than {MAX_MANIFEST_BYTES} bytes")
                    records = decode_manifest(body, bucket=s.bucket, prefix=s.prefix)
                except (ObjectUnreadable, ValueError) as exc:  # one bad manifest: reported; the others are still replayed
                    found.bad_manifests.append({"key": obj["Key"], "reason": str(exc)[:500]})
                    continue
                # a duplicate has no object of its own: its first copy is replayed (as listing finds it)
                found.items.extend(rp.ReplayItem.from_record(r) for r in records if r.transaction_status != "duplicate")
        return manifests

    def list_window(self, found: Found) -> list[rp.ReplayItem]:
        """The records of the window's data keys (keys outside the layout go to ``found``)."""
        s = self.s
        data = rp.data_range(s.prefix, s.window, s.now)
        listed = []
        for obj in self.s3.iter_objects_in_range(s.bucket, data) if data else ():
            item = rp.item_from_key(s.prefix, s.bucket, obj["Key"], obj.get("Size"))
            if item is None:
                found.not_in_layout.append(obj["Key"])
            else:
                listed.append(item)
        if s.filters.needs_metadata:  # source system / message type live in the objects' metadata
            listed = [self.with_metadata(i) if s.window.start <= i.event_time else i for i in listed]
        return listed

    def with_metadata(self, item: rp.ReplayItem) -> rp.ReplayItem:
        info = self.s3.head_object_info(item.bucket, item.key)
        if info is None:
            return item
        meta = info.metadata or {}
        return rp.ReplayItem(
            item.message_id, item.bucket, item.key, item.event_time, info.size, meta.get("source-system"),
            meta.get("message-type"), info.content_type,
        )  # fmt: skip

    # -- report (dry run) -----------------------------------------------------------------------------
    def dry_run(self, plan: ReplayPlan) -> dict[str, Any]:
        """What would be sent; nothing is sent or written."""
        big = sum(1 for i in plan.todo if (i.size or 0) > MESSAGE_SIZE_LIMIT)
        self.log.info("Dry run: would send %d messages (%d as claim-check pointers); nothing sent", len(plan.todo), big)
        return {**plan.summary, "would_send": len(plan.todo), "would_send_pointers": big, "already_sent": plan.checkpoint.sent,
                "sample_message_ids": [i.message_id for i in plan.todo[:SAMPLE]], "sent": 0}  # fmt: skip

    # -- send -----------------------------------------------------------------------------------------
    def send(self, plan: ReplayPlan) -> dict[str, Any]:
        """Send what is left in batches, checkpointing after each; the report. Refused messages
        fail the run once the others are sent (a rerun retries only them)."""
        s, checkpoint = self.s, plan.checkpoint
        if checkpoint.completed and not plan.todo:
            self.log.info("Replay %s already completed (%d sent): nothing to do", s.replay_id, checkpoint.sent)
            plan.found.raise_if_incomplete(s.replay_id)
            return {**plan.summary, "sent": checkpoint.sent, "sent_this_run": 0, "pointers": checkpoint.pointers,
                    "failed": 0}  # fmt: skip
        refused_before = checkpoint.failed  # (retried first: todo begins with them)
        checkpoint.failed, checkpoint.completed = [], False
        sent_before, started = checkpoint.sent, time.monotonic()
        if s.workers > 1:
            plan.summary["workers"] = s.workers
        self.send_batches(plan.todo, checkpoint, started, refused_before)
        checkpoint.completed = not checkpoint.failed
        self.write_checkpoint(checkpoint)
        sent_now = checkpoint.sent - sent_before
        self.log.info("Replay %s: sent %d now, %d in all (%d pointers) to %s", s.replay_id, sent_now, checkpoint.sent,
                      checkpoint.pointers, self.target.name)  # fmt: skip
        if checkpoint.failed:
            ids = ", ".join(f"{f['message_id']} ({f['code']})" for f in checkpoint.failed[:SAMPLE])
            raise ReplayError(
                f"Replay {s.replay_id}: {len(checkpoint.failed)} message(s) refused by {self.target.name}: {ids}. The "
                "others were sent; rerun with the same replay_id to retry only the refused ones."
            )
        plan.found.raise_if_incomplete(s.replay_id)
        return {**plan.summary, "sent": checkpoint.sent, "sent_this_run": sent_now, "pointers": checkpoint.pointers, "failed": 0}

    def send_batches(self, todo: list[rp.ReplayItem], checkpoint: rp.Checkpoint, started: float,
                     refused_before: list[dict[str, str]]) -> None:  # fmt: skip
        """``workers`` threads (one: the batches one after the other) send the batches of ``todo``,
        checkpointing after each through a ``Watermark`` — with one worker too, so a previous run's
        refusals not retried yet stay in every checkpoint written. To a standard target each takes
        the next batch of 10 in event-time order; to a FIFO target each sends whole message groups
        (``group_by``; groups dealt out by size), in order, so no group is ever sent by two workers
        or out of order. The checkpoint moves only over what is done without a gap (``Watermark``):
        a retry resends the batches sent beyond it (to a FIFO target, deduplicated by SNS/SQS within
        5 minutes, as a retried batch always was). The first error (an unreadable object) stops the
        workers after their current batch; what is done up to the gap is checkpointed, then it is raised."""
        s = self.s
        for conn in (self.s3, self.target.hook):
            conn.get_conn()  # one client per service, built before the workers share it
        positions = list(range(len(todo)))
        if self.target.fifo:
            lane_of = workers.lanes([rp.group_id(i, s.group_by) for i in todo], s.workers)
            units = [[chunk for chunk in _chunks([p for p in positions if lane_of[p] == lane])] for lane in range(s.workers)]
            units = [u for u in units if u]
            if s.workers > 1:
                self.log.info("FIFO target: %d message group(s) split between %d worker(s), each group sent in order by one",
                              len(set(rp.group_id(i, s.group_by) for i in todo)), len(units))  # fmt: skip
        else:
            units = [[chunk] for chunk in _chunks(positions)]
        lock = threading.Lock()
        mark = Watermark(checkpoint, todo, refused_before)
        queue = list(reversed(units))
        errors: list[BaseException] = []
        sent = [0]

        def work() -> None:
            while True:
                with lock:
                    if errors or not queue:
                        return
                    unit = queue.pop()
                for chunk in unit:
                    with lock:
                        if errors:
                            return
                    try:
                        outcomes = self.outcomes([todo[p] for p in chunk])
                    except BaseException as exc:  # noqa: BLE001 - raised by the run once the others stopped
                        with lock:
                            errors.append(exc)
                        return
                    with lock:  # checkpoints written one at a time, each past the one before
                        mark.record(chunk, outcomes)
                        self.write_checkpoint(mark.checkpoint_now())
                        sent[0] += sum(1 for o in outcomes if o[0])
                        so_far = sent[0]
                    self.pace(so_far, started)

        threads = [threading.Thread(target=work, name=f"replay-worker-{n}") for n in range(min(s.workers, len(units)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        mark.checkpoint_now()
        if errors:
            raise errors[0]

    def outcomes(self, chunk: list[rp.ReplayItem]) -> list[tuple[bool, bool, dict[str, str] | None]]:
        """One PublishBatch / SendMessageBatch; each item's outcome: (sent, as a pointer, refusal)."""
        messages, pointers, refused = self.messages(chunk)
        result = self.target.send(messages)
        result.failed.update(refused)
        out: list[tuple[bool, bool, dict[str, str] | None]] = []
        for n, item in enumerate(chunk):
            error = result.failed.get(str(n))
            if error is not None:
                out.append((False, False, {"message_id": item.message_id, "code": str(error.get("Code")),
                                           "message": str(error.get("Message", ""))[:300]}))  # fmt: skip
            else:
                out.append((str(n) in result.successful, str(n) in pointers and str(n) in result.successful, None))
        return out

    def messages(self, chunk: list[rp.ReplayItem]) -> tuple[dict[str, OutgoingMessage], set[str], dict[str, dict]]:
        """The messages by entry id (the item's place in ``chunk``), which of them are pointers,
        and the items refused before sending."""
        s = self.s
        messages: dict[str, OutgoingMessage] = {}
        pointers: set[str] = set()
        refused: dict[str, dict] = {}
        for n, item in enumerate(chunk):
            body, source = self.read(item)
            if s.policy is not None and body is not None:  # (with a policy every record is read)
                try:
                    masked = deidentify_payload(body, s.policy)
                except (NotDeidentifiable, SensitiveDataDenied) as exc:  # names identifiers, never values
                    refused[str(n)] = {"Code": type(exc).__name__, "Message": str(exc)}
                    continue
                if masked != body:  # sent as a pointer, it must name a masked copy, never the original
                    source = replace(item, key=rp.masked_copy_key(s.prefix, s.replay_id, item.message_id))
                body = masked
            text, attributes, is_pointer = rp.payload(source, body, rp.message_attributes(s.replay_id, item))
            if is_pointer:
                pointers.add(str(n))
                if source.key != item.key and body is not None:  # a copy (bundled, masked) of the bytes read
                    self.s3.put_bytes(source.bucket, source.key, body, content_type=item.content_type or "application/octet-stream")
            messages[str(n)] = self.target.message(text, attributes, item)
        return messages, pointers, refused

    # -- read / verify --------------------------------------------------------------------------------
    def read(self, item: rp.ReplayItem) -> tuple[bytes | None, rp.ReplayItem]:
        """A record's bytes (None: a large one sent as a pointer unread) and the object a pointer
        names: a bundled record's verified bytes are copied under ``_replays/`` when sent as a pointer."""
        s = self.s
        if item.bundle_offset is not None:  # a record inside a bundle: its verified bytes
            body = self.bundles.record(self.s3, item)
            return body, replace(item, key=rp.bundled_copy_key(s.prefix, s.replay_id, item.message_id))
        if s.policy is None and item.size is not None and item.size > MESSAGE_SIZE_LIMIT:
            return None, item
        try:
            body = self.s3.read_bytes(item.bucket, item.key)
        except ClientError as err:
            raise ReplayError(
                f"archived object s3://{item.bucket}/{item.key} (message {item.message_id}) cannot be read: "
                f"{error_code(err)}. Messages before it were sent and "
                "checkpointed; restore the object (or filter the message out) and rerun with the same replay_id."
            ) from None
        why = bytes_mismatch(body, item.size if item.sha256 is not None else None, item.sha256)
        if why:  # (a manifest's line: its size and SHA-256 are known; a listed object's are not)
            raise ReplayError(
                f"archived object s3://{item.bucket}/{item.key} (message {item.message_id}) is not the record its manifest "
                f"line describes: {why}; it was not sent. Messages before it were sent and checkpointed; restore the "
                "object (or filter the message out) and rerun with the same replay_id."
            )
        return body, item

    def pace(self, sent: int, started: float) -> None:
        rate = float(self.s.max_messages_per_second or 0)
        if rate > 0:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)

    # -- checkpoint -----------------------------------------------------------------------------------
    def read_checkpoint(self) -> rp.Checkpoint | None:
        bucket, key = self.s.bucket, self.checkpoint_key
        try:
            data = self.s3.read_bytes(bucket, key)
        except ClientError as err:
            if is_missing_object(err):
                return None
            raise
        try:
            return rp.Checkpoint.from_json(data, self.s.replay_id)
        except ValueError as exc:
            raise _bad_checkpoint(bucket, key, exc) from None

    def write_checkpoint(self, checkpoint: rp.Checkpoint) -> None:
        self.s3.put_bytes(self.s.bucket, self.checkpoint_key, checkpoint.to_json(), content_type="application/json")


def _chunks(positions: list[int]) -> list[list[int]]:
    return [positions[i : i + BATCH] for i in range(0, len(positions), BATCH)]


class Watermark:
    """Concurrent sends' progress in a checkpoint: ``last`` and the counts move only over the
    positions of ``todo`` done without a gap, so the checkpoint still says "everything up to
    ``last`` is done" (and its counts reach it). A previous run's refused entries not retried yet
    stay in it until they are."""

    def __init__(self, checkpoint: rp.Checkpoint, todo: list[rp.ReplayItem], refused_before: list[dict[str, str]]) -> None:
        self.checkpoint, self.todo = checkpoint, todo
        self.outcome: list[tuple[bool, bool, dict[str, str] | None] | None] = [None] * len(todo)
        self.next = 0
        previous = {f["message_id"]: f for f in refused_before}  # todo begins with them
        self.retrying = {i.message_id: previous[i.message_id] for i in todo if i.message_id in previous}
        self.failed: list[dict[str, str]] = []  # refusals up to the gap

    def record(self, positions: list[int], outcomes: list[tuple[bool, bool, dict[str, str] | None]]) -> None:
        c = self.checkpoint
        for position, outcome in zip(positions, outcomes, strict=True):
            self.outcome[position] = outcome
        while self.next < len(self.todo) and self.outcome[self.next] is not None:
            item, (was_sent, pointer, refusal) = self.todo[self.next], self.outcome[self.next]  # type: ignore[misc]
            c.sent += int(was_sent)
            c.pointers += int(pointer)
            if refusal is not None:
                self.failed.append(refusal)
            self.retrying.pop(item.message_id, None)
            if c.last is None or list(item.sort_key) > c.last:
                c.last = list(item.sort_key)
            self.next += 1

    def checkpoint_now(self) -> rp.Checkpoint:
        """The checkpoint to write: what is done up to the gap, and the refusals still to retry."""
        c = self.checkpoint
        c.failed = self.failed + list(self.retrying.values())
        return c


class Target:
    """Where a replay sends: an SNS topic (PublishBatch) or an SQS queue (SendMessageBatch), the
    queue resolved to its URL (``ConfigurationError`` naming ``target_queue`` when it cannot be).
    ``queue_url``: None for a topic."""

    def __init__(self, settings: ArchiveReplaySettings, sns: SnsMessagingHook | None, sqs: SqsMessagingHook | None) -> None:
        self.replay_id, self.group_by = settings.replay_id, settings.group_by
        self.queue_url: str | None = None
        self.hook: SnsMessagingHook | SqsMessagingHook
        self._send: Callable[[dict[str, OutgoingMessage]], BatchResult]
        topic = settings.topic_arn
        if topic:
            if sns is None:
                raise ValueError("a replay to an SNS topic needs the SNS hook")
            self.name, self.hook = topic, sns
            self._send = lambda messages: sns.publish_messages(topic, messages)
        else:
            if sqs is None:
                raise ValueError("a replay to an SQS queue needs the SQS hook")
            try:
                url = sqs.resolve_queue_url(str(settings.target_queue))
            except Exception as exc:  # noqa: BLE001 — any lookup failure means the field is wrong
                raise ConfigurationError("target_queue", f"{settings.target_queue!r} cannot be resolved to an SQS queue: {exc}") from None
            self.name = self.queue_url = url
            self.hook = sqs
            self._send = lambda messages: sqs.send_messages(url, messages)
        self.fifo = identifiers.is_fifo_name(self.name)

    def message(self, text: str, attributes: dict, item: rp.ReplayItem) -> OutgoingMessage:
        if not self.fifo:
            return OutgoingMessage(text, attributes)
        group, dedup = rp.group_id(item, self.group_by), rp.deduplication_id(self.replay_id, item.message_id)
        return OutgoingMessage(text, attributes, group_id=group, deduplication_id=dedup)

    def send(self, messages: dict[str, OutgoingMessage]) -> BatchResult:
        return self._send(messages)


class BundleCache:
    """The bundles (``layout="bundle"``) a replay reads records from: each read and checked once
    while its records are sent (items go in event-time order, so a bundle's records come together);
    at most KEEP at a time."""

    KEEP = 4

    def __init__(self) -> None:
        self.lines: dict[str, dict] = {}
        self.lock = threading.Lock()  # concurrent workers: each bundle still read once

    def record(self, s3: S3ArchiveHook, item: rp.ReplayItem) -> bytes:
        with self.lock:
            return self._record(s3, item)

    def _record(self, s3: S3ArchiveHook, item: rp.ReplayItem) -> bytes:
        from airflow_reliable_messaging.domain import bundle

        uri = archive_layout.s3_uri(item.bucket, item.key)
        try:
            if item.key not in self.lines:
                if len(self.lines) >= self.KEEP:
                    self.lines.pop(next(iter(self.lines)))
                self.lines[item.key] = bundle.decode_bundle(s3.read_archived(item.bucket, item.key, bundle.MAX_BUNDLE_BYTES), uri)
            assert item.bundle_offset is not None and item.bundle_length is not None and item.sha256 is not None
            return bundle.find(self.lines[item.key], item.message_id, item.sha256, item.bundle_offset, item.bundle_length).body
        except (ObjectUnreadable, ValueError) as exc:
            raise ReplayError(
                f"bundle {uri} (message {item.message_id}) cannot be used: {exc}. Messages before it were sent and "
                "checkpointed; restore the bundle (or filter the message out) and rerun with the same replay_id."
            ) from None


def _bad_checkpoint(bucket: str, key: str, exc: ValueError) -> ReplayError:
    return ReplayError(
        f"checkpoint {archive_layout.s3_uri(bucket, key)} {exc}: it is not trusted, nothing was sent. Inspect it; "
        "delete it to replay the whole selection again, or use another replay_id."
    )


class Found:
    """What discovery found: the records, how, and what it could not use (reported, not skipped)."""

    def __init__(self, bucket: str, manifests_only: bool) -> None:
        self.bucket, self.manifests_only = bucket, manifests_only
        self.items: list[rp.ReplayItem] = []
        self.how = "listing"
        self.bad_manifests: list[dict[str, str]] = []
        self.not_in_layout: list[str] = []

    def report(self) -> dict[str, Any]:
        """The result's part: counts and samples, and a warning for each kind of problem."""
        warnings = []
        out: dict[str, Any] = {"bad_manifests": sorted(self.bad_manifests, key=lambda b: b["key"])[:SAMPLE]}
        if self.bad_manifests:
            covered = "their records were not replayed" if self.manifests_only else "the window was listed as well"
            warnings.append(f"{len(self.bad_manifests)} manifest(s) could not be used ({covered}): " + "; ".join(
                f"{archive_layout.printable(b['key'])}: {b['reason']}" for b in out["bad_manifests"][:5]))  # fmt: skip
        out["not_in_layout"] = {"count": len(self.not_in_layout), "sample": sorted(self.not_in_layout)[:SAMPLE]}
        if self.not_in_layout:
            warnings.append(
                f"{len(self.not_in_layout)} key(s) under the archive prefix are not in the archive layout and were not "
                f"replayed, e.g. {', '.join(archive_layout.printable(k) for k in out['not_in_layout']['sample'][:5])}"
            )
        return {**out, "warnings": warnings}

    def raise_if_incomplete(self, replay_id: str) -> None:
        """With ``discovery="manifests"`` the records of a bad manifest were not found: after the rest
        is sent, the task fails naming them."""
        if self.manifests_only and self.bad_manifests:
            raise ReplayError(
                f"Replay {replay_id}: {len(self.bad_manifests)} manifest(s) could not be used, their records were not "
                "replayed (the others were): " + "; ".join(
                    f"{archive_layout.s3_uri(self.bucket, b['key'])}: {b['reason']}" for b in self.bad_manifests[:SAMPLE]
                ) + ". Repair them or replay with discovery='listing'."
            )  # fmt: skip
