"""S3ArchiveReplayOperator: re-publish a window of the S3 audit archive to an SNS topic or SQS queue."""

from __future__ import annotations

import time
from functools import cached_property
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging._compat import BaseOperator
from airflow_reliable_messaging.domain import archive_layout, identifiers, templated
from airflow_reliable_messaging.exceptions import ConfigurationError, ReplayError
from airflow_reliable_messaging.links.aws import SnsTopicLink, SqsQueueLink

if TYPE_CHECKING:
    from airflow_reliable_messaging._compat import Context
    from airflow_reliable_messaging.domain import replay as rp
    from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook

DISCOVERY = ("auto", "manifests", "listing")
BATCH = 10
SAMPLE = 20


class S3ArchiveReplayOperator(BaseOperator):
    """Re-publish the archived records of ``[start, end)`` (event time) to a topic or a queue.

    For standard topics (no SNS archive) and for windows older than the SNS archive keeps. Records
    are found through the archive's batch manifests (filed by archive hour: the window plus
    ``archive_delay_hours``) and index manifests (filed by event hour); an archive without
    manifests (the seed's ``YYYY/MM/DD/HH/MM/SS/<messageID>`` layout) is listed instead. They are
    sent in event-time order, in batches of 10 (``PublishBatch``/``SendMessageBatch``; failed entries
    retried when not the sender's fault, else reported), at most ``max_messages_per_second``.

    Every message carries the message attributes ``replay_id`` and ``replayed_message_id``; on FIFO
    targets the group id is the record's source system (``group_by``) and the deduplication id a
    hash of replay id and message id, so a retried batch is deduplicated. Payloads above 256 KiB,
    and binary ones, are sent as extended-client claim-check pointers to the archived object.

    Resumable: after each batch a checkpoint (``<prefix>/_replays/<hash of replay id>.json``,
    SSE) records the last message handled; a retry or rerun with the same ``replay_id`` continues
    from there, and retries entries refused earlier. The default ``replay_id`` is stable across the
    retries of one DAG run. ``dry_run`` reports what would be sent and writes nothing.

    :param archive_bucket: bucket of the audit archive (templated).
    :param archive_prefix: key prefix of the archive (templated).
    :param start: window start, ISO 8601 or datetime (templated).
    :param end: window end (exclusive; default now) (templated).
    :param topic_arn: SNS topic to publish to (templated); or
    :param target_queue: SQS queue URL, ARN or name to send to (templated).
    :param source_systems: only these source systems (list or comma-separated) (templated).
    :param message_types: only these message types (templated).
    :param message_ids: only these message ids (templated).
    :param replay_id: names the replay and its checkpoint (templated).
    :param dry_run: report what would be sent; send and write nothing.
    :param max_messages_per_second: rate limit (0: none).
    :param discovery: ``auto`` (manifests, else listing), ``manifests`` or ``listing``.
    :param archive_delay_hours: how long after its event time a record may have been archived.
    :param group_by: FIFO group id source: ``source_system`` or ``message_type``.
    :param data_protection_policy: an SNS data protection policy (JSON shape, see
        ``domain/masking.py``) applied to every payload before it is sent: JSON on its structure
        (still JSON), other text as text; a payload above the size limit is masked into a copy under
        ``<prefix>/_replays/`` that the claim-check pointer names. Binary payloads, and payloads a
        ``Deny`` statement refuses, are not sent (reported like refused entries) (templated).
    :param aws_conn_id: Airflow AWS connection (templated).
    :param region_name: AWS region (templated).
    """

    template_fields: Sequence[str] = (
        "archive_bucket", "archive_prefix", "start", "end", "topic_arn", "target_queue", "source_systems",
        "message_types", "message_ids", "replay_id", "dry_run", "max_messages_per_second", "data_protection_policy",
        "aws_conn_id", "region_name",
    )  # fmt: skip
    operator_extra_links = (SnsTopicLink(), SqsQueueLink())
    ui_color = "#c7e3a3"

    def __init__(
        self,
        *,
        archive_bucket: str,
        archive_prefix: str = "",
        start: str | datetime,
        end: str | datetime | None = None,
        topic_arn: str | None = None,
        target_queue: str | None = None,
        source_systems: list[str] | str | None = None,
        message_types: list[str] | str | None = None,
        message_ids: list[str] | str | None = None,
        replay_id: str | None = None,
        dry_run: bool = False,
        max_messages_per_second: float = 100.0,
        discovery: str = "auto",
        archive_delay_hours: int = 24,
        group_by: str = "source_system",
        data_protection_policy: dict | str | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.archive_bucket = archive_bucket
        self.archive_prefix = archive_prefix
        self.start = start
        self.end = end
        self.topic_arn = topic_arn
        self.target_queue = target_queue
        self.source_systems = source_systems
        self.message_types = message_types
        self.message_ids = message_ids
        self.replay_id = replay_id
        self.dry_run = dry_run
        self.max_messages_per_second = max_messages_per_second
        self.discovery = discovery
        self.archive_delay_hours = archive_delay_hours
        self.group_by = group_by
        self.data_protection_policy = data_protection_policy
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    def _hook_kwargs(self) -> dict[str, Any]:
        return {"aws_conn_id": self.aws_conn_id, "region_name": self.region_name}

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the archive prefix in; the topic or queue out (records sent; none for a dry run)."""
        from airflow_reliable_messaging import lineage

        result = lineage.result_of(self, task_instance)
        outputs = []
        if not result.get("dry_run", self.dry_run):
            if self.topic_arn:
                target = lineage.sns(self.topic_arn)
            else:
                from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

                queue, sqs = str(self.target_queue), SqsMessagingHook(**self._hook_kwargs())
                if not queue.startswith(("arn:", "http://", "https://")):
                    try:  # a queue name: its URL carries the account
                        queue = sqs.resolve_queue_url(queue)
                    except Exception:  # noqa: BLE001 — lineage must never fail a task
                        pass
                target = lineage.sqs(queue, sqs.conn_region_name)
            outputs.append(lineage.with_statistics(target, result.get("sent_this_run", result.get("sent"))))
        return lineage.operator_lineage(inputs=[lineage.s3(self.archive_bucket, self.archive_prefix)], outputs=outputs)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_reliable_messaging.domain import replay as rp
        from airflow_reliable_messaging.domain.claim_check import MESSAGE_SIZE_LIMIT

        now = datetime.now(UTC)
        bucket = identifiers.bucket_name(self.archive_bucket, "archive_bucket")
        prefix = archive_layout.normalize_prefix(self.archive_prefix, "archive_prefix")
        open_end = not isinstance(self.end, datetime) and templated.text(self.end) is None  # None, "None", "": until now
        win = rp.window(self.start, now if open_end else self.end, now)
        flt = rp.ReplayFilter.of(self.source_systems, self.message_types, self.message_ids)
        if self.discovery not in DISCOVERY:
            raise ConfigurationError("discovery", f"{self.discovery!r} is not one of {', '.join(DISCOVERY)}")
        if self.group_by not in ("source_system", "message_type"):
            raise ConfigurationError("group_by", f"{self.group_by!r} is not source_system or message_type")
        if bool(self.topic_arn) == bool(self.target_queue):
            raise ConfigurationError("topic_arn", "give exactly one of topic_arn or target_queue")
        if self.topic_arn:
            identifiers.topic_arn(self.topic_arn, "topic_arn")
        else:
            identifiers.queue_reference(str(self.target_queue), "target_queue")
        self.dry_run = templated.as_bool(self.dry_run, "dry_run")
        self.max_messages_per_second = templated.number(self.max_messages_per_second, "max_messages_per_second")
        self.archive_delay_hours = int(templated.number(self.archive_delay_hours, "archive_delay_hours", whole=True))
        self._policy = None
        if self.data_protection_policy not in (None, "", "None", {}):
            from airflow_reliable_messaging.domain.masking import DataProtectionPolicy

            self._policy = DataProtectionPolicy.parse(self.data_protection_policy, "data_protection_policy")
        replay_id = rp.validate_replay_id(self.replay_id or self._default_replay_id(context))

        from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook

        s3 = S3ArchiveHook(**self._hook_kwargs())
        sender = _Sender(self)
        found = self._discover(s3, bucket, prefix, win, now, flt)
        items, how = found.items, found.how
        selected = rp.select(items, win, now, flt)
        checkpoint = rp.Checkpoint(replay_id, sender.target, win.to_dict(), flt.to_dict())
        ck_key = rp.checkpoint_key(prefix, replay_id)
        previous = self._read_checkpoint(s3, bucket, ck_key, replay_id)
        if previous is not None and open_end and previous.window.get("start") == checkpoint.window["start"]:
            # "until now" means until the first attempt's now: a retry resumes the same window
            win = rp.Window(win.start, rp.parse_instant(previous.window["end"], "end"))
            selected = rp.select(items, win, now, flt)
            checkpoint = rp.Checkpoint(replay_id, sender.target, win.to_dict(), flt.to_dict())
        if previous is not None:
            if not previous.same_replay(checkpoint):
                raise ConfigurationError(
                    "replay_id", f"{replay_id!r} already names another replay (target, window or filters differ)"
                )
            try:
                previous.check_progress(selected)
            except ValueError as exc:
                raise _bad_checkpoint(bucket, ck_key, exc) from None
            checkpoint = previous
        retry_ids = {f["message_id"] for f in checkpoint.failed}
        todo = [i for i in selected if i.message_id in retry_ids] + [
            i for i in checkpoint.remaining(selected) if i.message_id not in retry_ids
        ]
        self.log.info(
            "Replay %s of s3://%s/%s %s..%s (found by %s): %d selected, %d already handled, %d to send to %s",
            replay_id, bucket, prefix, win.to_dict()["start"], win.to_dict()["end"], how, len(selected),
            len(selected) - len(todo), len(todo), sender.target,
        )  # fmt: skip
        summary = {
            "replay_id": replay_id, "target": sender.target, "window": win.to_dict(), "filters": flt.to_dict(),
            "discovery": how, "selected": len(selected), "dry_run": bool(self.dry_run),
            "checkpoint": archive_layout.s3_uri(bucket, ck_key), **found.report(),
        }  # fmt: skip
        if not selected:
            # a replay of nothing is a mistaken request (window, prefix or filters), never a success
            nothing = (
                f"Replay {replay_id}: nothing to replay in s3://{bucket}/{prefix} {win.to_dict()['start']}.."
                f"{win.to_dict()['end']} with filters {flt.to_dict() or 'none'} (searched {how}; "
                f"{len(items)} record(s) found, none in the window and filters)"
            )
            summary["warnings"].append(nothing)
        for warning in summary["warnings"]:  # bad manifests and stray keys are logged before any failure
            self.log.warning("%s", warning)
        if not selected and not self.dry_run:
            raise ReplayError(summary["warnings"][-1] + ". Check the window, archive_prefix and filters.")
        if self.dry_run:
            big = sum(1 for i in todo if (i.size or 0) > MESSAGE_SIZE_LIMIT)
            self.log.info("Dry run: would send %d messages (%d as claim-check pointers); nothing sent", len(todo), big)
            return {**summary, "would_send": len(todo), "would_send_pointers": big, "already_sent": checkpoint.sent,
                    "sample_message_ids": [i.message_id for i in todo[:SAMPLE]], "sent": 0}  # fmt: skip
        sender.persist_link(context)
        if checkpoint.completed and not todo:
            self.log.info("Replay %s already completed (%d sent): nothing to do", replay_id, checkpoint.sent)
            found.raise_if_incomplete(replay_id)
            return {**summary, "sent": checkpoint.sent, "sent_this_run": 0, "pointers": checkpoint.pointers,
                    "failed": 0}  # fmt: skip

        checkpoint.failed, checkpoint.completed = [], False
        sent_before, started = checkpoint.sent, time.monotonic()
        for chunk in rp.chunks(todo, BATCH):
            entries, pointers, refused = self._entries(s3, chunk, replay_id, sender, prefix)
            result = sender.send(entries)
            result.failed.update(refused)
            for entry_id, error in result.failed.items():
                item = chunk[int(entry_id)]
                checkpoint.failed.append({"message_id": item.message_id, "code": str(error.get("Code")),
                                          "message": str(error.get("Message", ""))[:300]})  # fmt: skip
            checkpoint.sent += len(result.successful)
            checkpoint.pointers += sum(1 for i in result.successful if i in pointers)
            if checkpoint.last is None or list(chunk[-1].sort_key) > checkpoint.last:
                checkpoint.last = list(chunk[-1].sort_key)
            self._write_checkpoint(s3, bucket, ck_key, checkpoint)
            self._pace(checkpoint.sent - sent_before, started)
        checkpoint.completed = not checkpoint.failed
        self._write_checkpoint(s3, bucket, ck_key, checkpoint)
        sent_now = checkpoint.sent - sent_before
        self.log.info("Replay %s: sent %d now, %d in all (%d pointers) to %s", replay_id, sent_now, checkpoint.sent,
                      checkpoint.pointers, sender.target)  # fmt: skip
        if checkpoint.failed:
            ids = ", ".join(f"{f['message_id']} ({f['code']})" for f in checkpoint.failed[:SAMPLE])
            raise ReplayError(
                f"Replay {replay_id}: {len(checkpoint.failed)} message(s) refused by {sender.target}: {ids}. The "
                "others were sent; rerun with the same replay_id to retry only the refused ones."
            )
        found.raise_if_incomplete(replay_id)
        return {**summary, "sent": checkpoint.sent, "sent_this_run": sent_now, "pointers": checkpoint.pointers, "failed": 0}

    # -- discovery -----------------------------------------------------------------------------------
    def _discover(self, s3: S3ArchiveHook, bucket: str, prefix: str, win: rp.Window, now: datetime,
                  flt: rp.ReplayFilter) -> _Found:  # fmt: skip
        """The window's records: from its manifests, else (and also, in ``auto``, when a manifest is
        bad: the records only it names are still found) from listing its data keys. Bad manifests
        and keys outside the archive layout are reported, never skipped silently."""
        from airflow_reliable_messaging.domain import replay as rp
        from airflow_reliable_messaging.domain.manifest import decode_manifest

        found = _Found(bucket, self.discovery == "manifests")
        manifests = 0
        if self.discovery in ("auto", "manifests"):
            delay = timedelta(hours=int(self.archive_delay_hours))
            for key_range in rp.manifest_ranges(prefix, win, now, delay):
                for obj in s3.iter_objects_in_range(bucket, key_range):
                    if not obj["Key"].endswith(".jsonl"):
                        found.not_in_layout.append(obj["Key"])
                        continue
                    manifests += 1
                    try:
                        records = decode_manifest(s3.read_bytes(bucket, obj["Key"]), bucket=bucket, prefix=prefix)
                    except ValueError as exc:  # one bad manifest: reported; the others are still replayed
                        found.bad_manifests.append({"key": obj["Key"], "reason": str(exc)[:500]})
                        continue
                    # a duplicate has no object of its own: its first copy is replayed (as listing finds it)
                    found.items.extend(rp.ReplayItem.from_record(r) for r in records if r.transaction_status != "duplicate")
            found.how = f"{manifests} manifests"
            if self.discovery == "manifests" or (manifests and not found.bad_manifests):
                return found
        data = rp.data_range(prefix, win, now)
        listed = []
        for obj in s3.iter_objects_in_range(bucket, data) if data else ():
            item = rp.item_from_key(prefix, bucket, obj["Key"], obj.get("Size"))
            if item is None:
                found.not_in_layout.append(obj["Key"])
            else:
                listed.append(item)
        if flt.needs_metadata:  # source system / message type live in the objects' metadata
            listed = [self._with_metadata(s3, i) if win.start <= i.event_time else i for i in listed]
        found.items.extend(listed)
        found.how = f"{found.how} ({len(found.bad_manifests)} bad) and listed" if manifests else "listing"
        return found

    def _with_metadata(self, s3: S3ArchiveHook, item: rp.ReplayItem) -> rp.ReplayItem:
        from airflow_reliable_messaging.domain import replay as rp

        info = s3.head_object_info(item.bucket, item.key)
        if info is None:
            return item
        meta = info.metadata or {}
        return rp.ReplayItem(
            item.message_id, item.bucket, item.key, item.event_time, info.size, meta.get("source-system"),
            meta.get("message-type"), info.content_type,
        )  # fmt: skip

    # -- sending -------------------------------------------------------------------------------------
    def _entries(self, s3: S3ArchiveHook, chunk: list[rp.ReplayItem], replay_id: str, sender: _Sender,
                 prefix: str) -> tuple[list[dict], set[str], dict[str, dict]]:  # fmt: skip
        """The batch entries, which of them are pointers, and the items refused before sending."""
        from dataclasses import replace

        from botocore.exceptions import ClientError

        from airflow_reliable_messaging.domain import replay as rp
        from airflow_reliable_messaging.domain.claim_check import MESSAGE_SIZE_LIMIT
        from airflow_reliable_messaging.domain.masking import NotDeidentifiable, SensitiveDataDenied, deidentify_payload

        entries, pointers, refused = [], set(), {}
        for n, item in enumerate(chunk):
            body, source = None, item
            if item.bundle_offset is not None:  # a record inside a bundle: its verified bytes
                body = self._bundles.record(s3, item)
                source = replace(item, key=rp.bundled_copy_key(prefix, replay_id, item.message_id))
            elif self._policy is not None or item.size is None or item.size <= MESSAGE_SIZE_LIMIT:
                try:
                    body = s3.read_bytes(item.bucket, item.key)
                except ClientError as err:
                    raise ReplayError(
                        f"archived object s3://{item.bucket}/{item.key} (message {item.message_id}) cannot be read: "
                        f"{err.response.get('Error', {}).get('Code', err)}. Messages before it were sent and "
                        "checkpointed; restore the object (or filter the message out) and rerun with the same replay_id."
                    ) from None
            if self._policy is not None:
                try:
                    masked = deidentify_payload(body, self._policy)
                except (NotDeidentifiable, SensitiveDataDenied) as exc:  # names identifiers, never values
                    refused[str(n)] = {"Code": type(exc).__name__, "Message": str(exc)}
                    continue
                if masked != body:  # sent as a pointer, it must name a masked copy, never the original
                    source = replace(item, key=rp.masked_copy_key(prefix, replay_id, item.message_id))
                body = masked
            text, attributes, is_pointer = rp.payload(source, body, rp.message_attributes(replay_id, item))
            if is_pointer:
                pointers.add(str(n))
                if source.key != item.key:
                    s3.put_bytes(source.bucket, source.key, body, content_type=item.content_type or "application/octet-stream")
            entries.append(sender.entry(str(n), text, attributes, item, replay_id, self.group_by))
        return entries, pointers, refused

    @cached_property
    def _bundles(self) -> _BundleCache:
        return _BundleCache()

    def _pace(self, sent: int, started: float) -> None:
        rate = float(self.max_messages_per_second or 0)
        if rate > 0:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)

    # -- checkpoint ----------------------------------------------------------------------------------
    def _read_checkpoint(self, s3: S3ArchiveHook, bucket: str, key: str, replay_id: str) -> rp.Checkpoint | None:
        from botocore.exceptions import ClientError

        from airflow_reliable_messaging.domain import replay as rp

        try:
            data = s3.read_bytes(bucket, key)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        try:
            return rp.Checkpoint.from_json(data, replay_id)
        except ValueError as exc:
            raise _bad_checkpoint(bucket, key, exc) from None

    def _write_checkpoint(self, s3: S3ArchiveHook, bucket: str, key: str, checkpoint: rp.Checkpoint) -> None:
        s3.put_bytes(bucket, key, checkpoint.to_json(), content_type="application/json")

    def _default_replay_id(self, context: Context) -> str:
        from airflow_reliable_messaging.domain import replay as rp

        run_id = context.get("run_id") if context else None
        if not run_id:
            raise ConfigurationError("replay_id", "is required outside a DAG run (it names the replay's checkpoint)")
        return rp.default_replay_id(self.dag_id, str(run_id), self.task_id)


class _BundleCache:
    """The bundles (``layout="bundle"``) a replay reads records from: each read and checked once
    while its records are sent (items go in event-time order, so a bundle's records come together);
    at most KEEP at a time."""

    KEEP = 4

    def __init__(self) -> None:
        self.lines: dict[str, dict] = {}

    def record(self, s3: S3ArchiveHook, item: rp.ReplayItem) -> bytes:
        from airflow_reliable_messaging.domain import bundle
        from airflow_reliable_messaging.exceptions import ObjectUnreadable

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


class _Found:
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


class _Sender:
    """The target: an SNS topic (PublishBatch) or an SQS queue (SendMessageBatch)."""

    def __init__(self, op: S3ArchiveReplayOperator) -> None:
        self.op = op
        self.queue_url: str | None = None
        if op.topic_arn:
            from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

            self.sns = SnsMessagingHook(**op._hook_kwargs())
            self.target = op.topic_arn
            self.fifo = identifiers.is_fifo_name(op.topic_arn)
        else:
            from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

            self.sqs = SqsMessagingHook(**op._hook_kwargs())
            try:
                self.queue_url = self.sqs.resolve_queue_url(str(op.target_queue))
            except Exception as exc:  # noqa: BLE001 — any lookup failure means the field is wrong
                raise ConfigurationError("target_queue", f"{op.target_queue!r} cannot be resolved to an SQS queue: {exc}") from None
            self.target = self.queue_url
            self.fifo = identifiers.is_fifo_name(self.queue_url)

    def entry(self, entry_id: str, text: str, attributes: dict, item: rp.ReplayItem, replay_id: str, group_by: str) -> dict:
        from airflow_reliable_messaging.domain import replay as rp

        entry: dict[str, Any] = {"Id": entry_id, "MessageAttributes": attributes}
        entry["Message" if self.op.topic_arn else "MessageBody"] = text
        if self.fifo:
            entry["MessageGroupId"] = rp.group_id(item, group_by)
            entry["MessageDeduplicationId"] = rp.deduplication_id(replay_id, item.message_id)
        return entry

    def send(self, entries: list[dict]):
        if self.op.topic_arn:
            return self.sns.publish_batch(self.op.topic_arn, entries)
        return self.sqs.send_batch(self.queue_url, entries)  # type: ignore[arg-type]

    def persist_link(self, context: Context) -> None:
        if self.op.topic_arn:
            arn = identifiers.topic_arn(self.op.topic_arn)
            SnsTopicLink.persist(context, self.op, region_name=arn.region, aws_partition=arn.partition,
                                 topic_arn=self.op.topic_arn)  # fmt: skip
        elif self.queue_url:
            SqsQueueLink.persist(context, self.op, region_name=self.sqs.conn_region_name,
                                 aws_partition=self.sqs.conn_partition, queue_url=self.queue_url)  # fmt: skip
