"""One weekly load: discovery, COPY, MERGE, ledger and report (SnowflakeAuditLoadOperator's work,
kept apart so the operator stays thin and its module light to import at DAG parse time)."""

from __future__ import annotations

import hashlib
import tempfile
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain.audit_load import (
    CopyOutcome,
    bundle_key,
    chunked,
    index_digest,
    is_json_content,
    parse_copy_result,
    payload_bundle_line,
    sniff_content_type,
    transaction_counts,
)
from airflow_reliable_messaging.domain.identifiers import blank_to_none
from airflow_reliable_messaging.domain.manifest import (
    ArchivedRecord,
    decode_manifest,
    encode_manifest,
    isoformat,
)
from airflow_reliable_messaging.sql_templates import render, stage_file_list

if TYPE_CHECKING:
    from airflow_reliable_messaging.domain.audit_load import LoadTarget
    from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook
    from airflow_reliable_messaging.hooks.snowflake import SnowflakeAuditHook

MAX_FAILURES_IN_REPORT = 20
BUNDLE_PART_BYTES = 128 * 1024 * 1024


class AuditLoadRun:
    """One execution of the load: discovery, COPY, MERGE, ledger, report."""

    def __init__(self, op, target: LoadTarget, s3: S3ArchiveHook, sf: SnowflakeAuditHook, run_id, interval, window):
        self.op, self.target, self.s3, self.sf, self.run_id = op, target, s3, sf, run_id
        self.interval, self.window = interval, window
        self.log = op.log
        self.ids = target.identifiers()
        self.failed_files: list[dict[str, str]] = []
        self.record_failures: list[tuple[str, str, str]] = []  # message id, file, reason
        self.payloads = {"json_loaded": 0, "json_too_large": 0, "not_json": 0}

    # -- the steps ---------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started_at = datetime.now(UTC)
        # Batch manifests are filed by archive time; this run takes those archived until here.
        self.archived_until = min(started_at, self.interval[1] + self.op.late_arrival_horizon)
        self.sf.query(render("load/use_schema.sql", **self.ids))
        mode, manifest_keys = self.discover()
        self.log.info("Discovery (%s): %d manifest(s) for %s .. %s", mode, len(manifest_keys), *map(isoformat, self.window))
        already = self.loaded_files([self.target.uri(k) for k in manifest_keys])
        pending = [k for k in manifest_keys if self.target.uri(k) not in already]
        records_by_manifest = self.read_manifests(pending)
        records = [r for rs in records_by_manifest.values() for r in rs]
        bundles = self.write_payload_bundles(list(records_by_manifest), records)

        copy = CopyOutcome()
        copy.merge(self.copy("load/copy_manifests.sql", list(records_by_manifest)))
        copy.merge(self.copy("load/copy_payloads.sql", bundles))
        for name, reason in copy.failed.items():
            self.fail_file(name, reason)

        self.sf.execute_script(render("load/promote_landing.sql", **self.ids), {"run_id": self.run_id})
        (merged,) = self.sf.query(render("load/merge_records.sql", **self.ids), {"run_id": self.run_id})
        self.sf.query(render("load/merge_payloads.sql", **self.ids), {"run_id": self.run_id})
        self.write_failures()
        self.sf.query(
            render("load/write_ledger.sql", **self.ids),
            {"run_id": self.run_id, "interval_start": isoformat(self.interval[0]), "interval_end": isoformat(self.interval[1])},
        )
        inserted = int(merged.get("NUMBER OF ROWS INSERTED", 0))
        updated = int(merged.get("NUMBER OF ROWS UPDATED", 0))
        unique = {r.message_id: r for r in records}
        unique_ids = set(unique)
        return {
            "started_at": isoformat(started_at),
            # The reconciliation expects the interval's objects archived before this, no later ones.
            "expected_before": isoformat(self.archived_until),
            "window": {
                "interval": f"{isoformat(self.interval[0])} .. {isoformat(self.interval[1])}",
                "start": isoformat(self.window[0]),
                "end": isoformat(self.window[1]),
                "discovery": mode,
            },
            "files": {
                "manifests_found": len(manifest_keys),
                "manifests_already_loaded": len(manifest_keys) - len(pending),
                "copied": len(copy.loaded),
                "skipped_by_load_history": len(copy.skipped),
                "payload_bundles": len(bundles),
                "failed": self.failed_files[:MAX_FAILURES_IN_REPORT],
                "failed_count": len(self.failed_files),
            },
            "records": {
                "seen": len(unique_ids),
                "inserted": inserted,
                "updated": updated,
                "already_loaded": max(len(unique_ids) - inserted - updated, 0),
                **transaction_counts(unique.values()),
                "failed": len(self.record_failures),
                "failures": [
                    {"message_id": m, "file": f, "reason": r} for m, f, r in self.record_failures[:MAX_FAILURES_IN_REPORT]
                ],
            },
            "payloads": dict(self.payloads),
            "bytes": sum(r.size for r in {r.message_id: r for r in records}.values()),
            "snowflake_query_ids": list(self.sf.executed_query_ids),
        }

    def discover(self) -> tuple[str, list[str]]:
        t, (start, end) = self.target, self.window
        mode = self.op.discovery
        if mode == "auto":
            root = f"{t.prefix}/{layout.BATCH_MANIFESTS}/" if t.prefix else f"{layout.BATCH_MANIFESTS}/"
            mode = "manifests" if self.s3.any_object(t.bucket, root) else "listing"
        keys: list[str] = []
        if mode == "manifests":
            # Batch manifests are filed by archive time: a record of the interval may be archived
            # after the interval ends, up to the late-arrival horizon.
            until = max(end, self.archived_until + timedelta(microseconds=1))
            keys += self.list_keys(layout.hour_range(layout.batch_manifest_hour_prefix, t.prefix, start, until))
            keys += self.list_keys(layout.hour_range(layout.index_manifest_hour_prefix, t.prefix, start, end))
        else:
            keys += self.index_window(start, end)
        return mode, sorted(set(k for k in keys if k.endswith(".jsonl")))

    def list_keys(self, key_range: layout.KeyRange | None) -> list[str]:
        return [o["Key"] for o in self.s3.iter_objects_in_range(self.target.bucket, key_range)] if key_range else []

    def index_window(self, start: datetime, end: datetime) -> list[str]:
        """Write an index manifest per hour for the data objects no index manifest lists yet;
        return the keys of the window's index manifests (those found and those written)."""
        t = self.target
        indexed: set[str] = set()
        index_keys = self.list_keys(layout.hour_range(layout.index_manifest_hour_prefix, t.prefix, start, end))
        for key in index_keys:
            try:
                indexed |= {r.key for r in decode_manifest(self.s3.read_bytes(t.bucket, key))}
            except ValueError as exc:
                self.fail_file(t.uri(key), f"index manifest unreadable: {exc}")
        data = layout.hour_range(layout.data_hour_prefix, t.prefix, start, end)
        new_by_hour: dict[datetime, list[dict[str, Any]]] = {}
        for obj in self.s3.iter_objects_in_range(t.bucket, data) if data else ():
            parsed = layout.parse_archive_key(t.prefix, obj["Key"])
            if parsed and obj["Key"] not in indexed:
                hour = parsed.event_time.replace(minute=0, second=0, microsecond=0)
                new_by_hour.setdefault(hour, []).append(obj)
        for hour, new in sorted(new_by_hour.items()):
            records = [self.index_record(o) for o in new]
            key = layout.index_manifest_key(t.prefix, hour, index_digest(o["Key"] for o in new))
            self.s3.put_bytes(
                t.bucket, key, encode_manifest(records, t.uri(key)),
                content_type="application/x-ndjson", kms_key_id=blank_to_none(self.op.kms_key_id),
            )  # fmt: skip
            self.log.info("Indexed %d object(s) of %s in %s", len(records), hour.strftime("%Y-%m-%d %H:00"), t.uri(key))
            index_keys.append(key)
        return index_keys

    def index_record(self, obj: dict[str, Any]) -> ArchivedRecord:
        """Metadata of an object found by listing: read once to checksum and sniff it."""
        t = self.target
        parsed = layout.parse_archive_key(t.prefix, obj["Key"])
        assert parsed is not None
        body, response = self.s3.open_stream(t.bucket, obj["Key"])
        digest, head, size = hashlib.sha256(), b"", 0
        for chunk in iter(lambda: body.read(1024 * 1024), b""):
            if not head:
                head = chunk[:512]
            digest.update(chunk)
            size += len(chunk)
        meta = {k.lower(): v for k, v in (response.get("Metadata") or {}).items()}
        declared_type = response.get("ContentType") or ""
        content_type = declared_type if declared_type not in ("", "binary/octet-stream") else sniff_content_type(head)
        return ArchivedRecord(
            message_id=meta.get("message-id", parsed.message_id),
            bucket=t.bucket,
            key=obj["Key"],
            size=size,
            sha256=digest.hexdigest(),
            content_type=content_type,
            event_time=meta.get("event-time") or isoformat(parsed.event_time),
            archived_at=isoformat(obj["LastModified"]),
            source_system=meta.get("source-system"),
            message_type=meta.get("message-type"),
            source_transaction_id=meta.get("source-transaction-id"),
            origin="index",
        )

    def loaded_files(self, uris: list[str]) -> set[str]:
        done: set[str] = set()
        for chunk in chunked(uris):
            placeholders = ", ".join(f"%(f{i})s" for i in range(len(chunk)))
            rows = self.sf.query(
                render("load/loaded_files.sql", file_list=placeholders, **self.ids), {f"f{i}": u for i, u in enumerate(chunk)}
            )
            done |= {row["FILE_NAME"] for row in rows}
        return done

    def read_manifests(self, keys: list[str]) -> dict[str, list[ArchivedRecord]]:
        """Validate each pending manifest before COPY; a bad one is reported and left out."""
        good: dict[str, list[ArchivedRecord]] = {}
        for key in keys:
            try:
                records = decode_manifest(self.s3.read_bytes(self.target.bucket, key))
            except ValueError as exc:
                self.fail_file(self.target.uri(key), f"manifest is invalid: {exc}")
                continue
            foreign = sorted({r.bucket for r in records if r.bucket != self.target.bucket})
            if foreign:  # a manifest must not make the load read (and publish) another bucket
                self.fail_file(self.target.uri(key), f"manifest names records in another bucket ({', '.join(foreign)[:200]})")
                continue
            good[key] = records
        return good

    def write_payload_bundles(self, manifest_keys: list[str], records: list[ArchivedRecord]) -> list[str]:
        """NDJSON bundles of the pending records' JSON payloads (binary payloads stay in S3)."""
        t, limit = self.target, self.op.max_json_payload_bytes
        # (a duplicate's payload is its first copy's: loaded once, under the first copy's message id)
        stored = [r for r in {r.message_id: r for r in records}.values() if r.transaction_status != "duplicate"]
        candidates = [r for r in stored if is_json_content(r.content_type)]
        self.payloads["not_json"] = len(stored) - len(candidates)
        keys: list[str] = []
        part, spool, spool_size = 0, None, 0
        for record in candidates:
            if record.size > limit:
                self.payloads["json_too_large"] += 1
                continue
            try:
                payload = self.s3.read_bytes(record.bucket, record.key)
            except Exception as exc:  # the archived object is gone or unreadable
                self.record_failures.append((record.message_id, record.s3_uri, f"payload unreadable: {type(exc).__name__}"))
                continue
            if spool is None:
                part += 1
                spool, spool_size = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024), 0
            key = bundle_key(t.prefix, manifest_keys, part)
            try:
                line = payload_bundle_line(record.message_id, payload, t.uri(key)).encode() + b"\n"
            except ValueError as exc:
                self.record_failures.append((record.message_id, record.s3_uri, str(exc)))
                continue
            spool.write(line)
            spool_size += len(line)
            self.payloads["json_loaded"] += 1
            if spool_size >= BUNDLE_PART_BYTES:
                keys.append(self._upload_bundle(spool, key))
                spool = None
        if spool is not None and spool_size:
            keys.append(self._upload_bundle(spool, bundle_key(t.prefix, manifest_keys, part)))
        return keys

    def _upload_bundle(self, spool, key: str) -> str:
        from airflow_reliable_messaging.hooks.s3 import sse_arguments

        spool.seek(0)
        self.s3.get_conn().upload_fileobj(
            spool, self.target.bucket, key,
            ExtraArgs={"ContentType": "application/x-ndjson", **sse_arguments(blank_to_none(self.op.kms_key_id))},
        )  # fmt: skip
        spool.close()
        return key

    def copy(self, statement: str, keys: list[str]) -> CopyOutcome:
        outcome = CopyOutcome()
        paths = [self.target.stage_path(k) for k in keys]
        for chunk in chunked(paths):
            rows = self.sf.query(render(statement, files=stage_file_list(chunk), **self.ids))
            result = parse_copy_result(rows, chunk)
            outcome.merge(result)
        # Report files by their URI, as the ledger and the raw tables name them.
        base = self.target.stage_url
        return CopyOutcome(
            loaded={base + k: v for k, v in outcome.loaded.items()},
            skipped=[base + k for k in outcome.skipped],
            failed={base + k: v for k, v in outcome.failed.items()},
        )

    def fail_file(self, uri: str, reason: str) -> None:
        self.log.error("Not loaded: %s — %s", uri, reason)
        self.failed_files.append({"file": uri, "reason": reason})
        if self.op.on_bad_file == "quarantine":
            self.quarantine(uri, reason)

    def quarantine(self, uri: str, reason: str) -> None:
        from airflow_reliable_messaging.hooks.s3 import sse_arguments

        bucket, key = layout.split_s3_uri(uri)
        dest = layout.quarantine_key(self.target.prefix, datetime.now(UTC), "manifest-" + index_digest([key]))
        self.s3.get_conn().copy_object(
            Bucket=bucket, Key=dest, CopySource={"Bucket": bucket, "Key": key},
            Metadata={"quarantine-reason": reason[:1024].encode("ascii", "replace").decode(), "original-uri": uri},
            MetadataDirective="REPLACE",
            **sse_arguments(blank_to_none(self.op.kms_key_id)),
        )  # fmt: skip
        self.sf.query(render("load/ledger_quarantined.sql", **self.ids), {"file_name": uri, "run_id": self.run_id})
        self.log.warning("Quarantined %s as s3://%s/%s", uri, bucket, dest)

    def write_failures(self) -> None:
        for chunk_start in range(0, len(self.record_failures), 500):
            chunk = self.record_failures[chunk_start : chunk_start + 500]
            rows = ", ".join(f"(%(m{i})s, %(f{i})s, %(r{i})s)" for i in range(len(chunk)))
            params: dict[str, Any] = {"run_id": self.run_id}
            for i, (m, f, r) in enumerate(chunk):
                params.update({f"m{i}": m, f"f{i}": f, f"r{i}": r})
            self.sf.query(render("load/record_failures.sql", rows=rows, **self.ids), params)

