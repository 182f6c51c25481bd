"""The audit load run: discovery, COPY, MERGE, ledger and report (SnowflakeAuditLoadOperator's
work). It takes ``LoadSettings`` (built by the operator from its validated, rendered parameters)
and the S3 and Snowflake hooks; it never sees the operator."""

from __future__ import annotations

import hashlib
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain.audit_load import (
    CopyOutcome,
    bundle_key,
    chunked,
    index_digest,
    is_json_content,
    landed_differences,
    listed_event_time,
    parse_copy_result,
    payload_bundle_line,
    payload_mismatch,
    sniff_content_type,
    transaction_counts,
)
from airflow_reliable_messaging.domain.manifest import (
    MAX_MANIFEST_BYTES,
    ArchivedRecord,
    decode_manifest,
    encode_manifest,
    isoformat,
    parse_isoformat,
)
from airflow_reliable_messaging.exceptions import LoadError, ObjectUnreadable
from airflow_reliable_messaging.sql_templates import render, stage_file_list

if TYPE_CHECKING:
    from airflow_reliable_messaging.domain.audit_load import LoadTarget
    from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook
    from airflow_reliable_messaging.hooks.snowflake import SnowflakeAuditHook

MAX_FAILURES_IN_REPORT = 20
BUNDLE_PART_BYTES = 128 * 1024 * 1024
MAX_BUNDLE_OBJECT_BYTES = 40 * 1024 * 1024  # above a bundle's gzip bytes (at most domain/bundle.py's MAX_BUNDLE_BYTES, + gzip framing)


CLAIM_POLL_SECONDS = 5.0


class LoadClaim:
    """The claim row that gives one execution of a load the schema's landing tables.

    Taken by one MERGE (``sql/load/claim_load.sql``); the execution that finds its own token in the
    row holds it. Another run's claim is waited for up to ``wait``, then the run fails naming it.
    The holder refreshes the claim's expiry (``lease``) before each step that writes and checks
    that it still holds it before promoting and before the ledger: a claim left by a crashed run
    expires ``lease`` after its last refresh, or is taken over at once by a retry of the same DAG
    run, and an execution that lost its claim stops before changing anything shared.
    """

    def __init__(self, sf: SnowflakeAuditHook, ids: dict[str, str], run_id: str, wait: timedelta, lease: timedelta, log: Any) -> None:
        self.sf, self.ids, self.run_id, self.wait, self.log = sf, ids, run_id, wait, log
        self.token = f"{run_id} #{uuid.uuid4().hex[:12]}"
        self.lease_seconds = max(int(lease.total_seconds()), 1)
        self.held = False

    def _params(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "token": self.token, "lease_seconds": self.lease_seconds}

    def holder(self) -> dict[str, Any] | None:
        rows = self.sf.query(render("load/claim_holder.sql", **self.ids))
        return rows[0] if rows else None

    def take(self) -> None:
        from snowflake.connector.errors import ProgrammingError

        deadline = time.monotonic() + self.wait.total_seconds()
        while True:
            try:
                self.sf.query(render("load/claim_load.sql", **self.ids), self._params())
            except ProgrammingError as exc:
                if exc.errno != 2003:  # "does not exist or not authorized"
                    raise
                raise LoadError(
                    f"{self.ids['ns']}.AUDIT_LOAD_CLAIM is missing or not granted: run the setup again after "
                    "upgrading (SnowflakeAuditSetupOperator, sql/setup/tables.sql and grants.sql)"
                ) from None
            holder = self.holder()
            if holder and holder["TOKEN"] == self.token:
                self.held = True
                return
            left = deadline - time.monotonic()
            if holder and left <= 0:
                raise LoadError(
                    f"{self.ids['ns']} is being loaded by run {holder['RUN_ID']!r} (claimed {holder['CLAIMED_AT']}, "
                    f"expires {holder['EXPIRES_AT']} unless it refreshes it); waited {self.wait}. This run loaded "
                    "nothing: run it again when that run has ended."
                )
            if holder:
                self.log.info("Load: waiting for run %r, which holds %s", holder["RUN_ID"], self.ids["ns"])
                time.sleep(min(CLAIM_POLL_SECONDS, max(left, 0.0)))

    def refresh(self) -> None:
        """Extend the claim; fail, changing nothing more, if another execution took it over."""
        (row,) = self.sf.query(render("load/refresh_claim.sql", **self.ids), self._params()) or [{}]
        if not int(row.get("NUMBER OF ROWS UPDATED", 0)):
            self.held = False
            holder = self.holder()
            by = f"run {holder['RUN_ID']!r}" if holder else "nobody (it expired)"
            raise LoadError(
                f"this run's claim on {self.ids['ns']} expired after {self.lease_seconds} s without a refresh and is "
                f"now held by {by}; stopped before changing the audit tables. Run it again."
            )

    def release(self) -> None:
        if self.held:
            self.sf.query(render("load/release_claim.sql", **self.ids), self._params())
            self.held = False


@dataclass(frozen=True)
class CheckedBundle:
    """An archive bundle checked before its COPY: its lines' fingerprints, the pending records it
    holds, and how many of them carry a JSON payload."""

    lines: set[tuple[str, str, bool]]
    listed: list[str]
    json_payloads: int


@dataclass(frozen=True)
class LoadSettings:
    """What one load does: where (``target``), which interval and window (the interval widened by
    the lookback), for which DAG run, and how (the operator's validated parameters)."""

    target: LoadTarget
    run_id: str
    interval: tuple[datetime, datetime]
    window: tuple[datetime, datetime]
    discovery: str
    max_json_payload_bytes: int
    on_bad_file: str
    kms_key_id: str | None
    claim_wait: timedelta
    claim_lease: timedelta


class AuditLoadRun:
    """One execution of the load: discovery, COPY, MERGE, ledger, report."""

    def __init__(self, settings: LoadSettings, s3: S3ArchiveHook, sf: SnowflakeAuditHook, log: Any) -> None:
        self.s, self.s3, self.sf, self.log = settings, s3, sf, log
        self.target, self.run_id = settings.target, settings.run_id
        self.interval, self.window = settings.interval, settings.window
        self.ids = self.target.identifiers()
        self.failed_files: list[dict[str, Any]] = []
        self.record_failures: list[tuple[str, str, str]] = []  # message id, file, reason
        self.payloads = {"json_loaded": 0, "json_too_large": 0, "not_json": 0}
        self.manifests: dict[str, list[ArchivedRecord] | Exception] = {}  # key -> records, or why not
        self.not_in_layout = 0  # objects in the time folders that are not archive objects
        self.bad: dict[str, tuple[str, bool]] = {}  # key found -> (why it is not loaded, quarantinable)
        self.warnings: list[str] = []
        self.claim = LoadClaim(sf, self.ids, self.run_id, settings.claim_wait, settings.claim_lease, log)

    # -- the steps ---------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started_at = datetime.now(UTC)
        self.sf.query(render("load/use_schema.sql", **self.ids))
        discovered = self.discover(started_at)  # S3 only (index manifests are named by their content)
        self.claim.take()  # before the ledger is read: from here on, this run alone loads the schema
        try:
            report = self.load(started_at, *discovered)
        finally:
            self.claim.release()
        report["snowflake_query_ids"] = list(self.sf.executed_query_ids)  # the release's too
        return report

    def load(self, started_at: datetime, mode: str, manifest_keys: list[str], bad: dict[str, tuple[str, bool]]) -> dict[str, Any]:
        self.log.info("Discovery (%s): %d manifest(s) for %s .. %s", mode, len(manifest_keys), *map(isoformat, self.window))
        already = self.loaded_files([self.target.uri(k) for k in [*manifest_keys, *bad]])
        for key, (reason, quarantinable) in bad.items():
            if self.target.uri(key) not in already:  # not quarantined by an earlier run
                self.fail_file(self.target.uri(key), reason, quarantinable=quarantinable)
        pending = [k for k in manifest_keys if self.target.uri(k) not in already]
        validated = self.read_manifests(pending)
        copy = self.copy("load/copy_manifests.sql", list(validated))
        records_by_manifest = self.check_landed(validated, copy)
        records = [r for rs in records_by_manifest.values() for r in rs]
        bundles = self.write_payload_bundles(list(records_by_manifest), [r for r in records if not r.bundled])
        archive_bundles = self.check_archive_bundles(records)
        copy.merge(self.copy("load/copy_payloads.sql", bundles + list(archive_bundles)))
        self.check_landed_bundles(archive_bundles)
        for name, reason in copy.failed.items():
            self.fail_file(name, reason)

        self.claim.refresh()  # still ours: no other run can have promoted or copied in between
        self.sf.execute_script(render("load/promote_landing.sql", **self.ids), {"run_id": self.run_id})
        (merged,) = self.sf.query(render("load/merge_records.sql", **self.ids), {"run_id": self.run_id})
        self.sf.query(render("load/merge_payloads.sql", **self.ids), {"run_id": self.run_id})
        self.write_failures()
        self.claim.refresh()
        ledger = {"run_id": self.run_id, "interval_start": isoformat(self.interval[0]), "interval_end": isoformat(self.interval[1])}
        self.sf.query(render("load/write_ledger.sql", **self.ids), ledger)
        for key, listed in records_by_manifest.items():  # no raw row names them: ledgered on their own
            if not listed and self.target.uri(key) not in copy.failed:
                self.sf.query(render("load/ledger_empty_manifest.sql", **self.ids), {**ledger, "file_name": self.target.uri(key)})
        inserted = int(merged.get("NUMBER OF ROWS INSERTED", 0))
        updated = int(merged.get("NUMBER OF ROWS UPDATED", 0))
        unique = {r.message_id: r for r in records}
        in_interval = sum(1 for r in unique.values() if self.interval[0] <= parse_isoformat(r.event_time) < self.interval[1])
        self.warn_if_nothing_found(mode, manifest_keys, bad, len(pending), in_interval, started_at)
        quarantined = [f for f in self.failed_files if f["quarantined"]]
        if quarantined:  # the run succeeds: the report must still say what it set aside
            first = quarantined[0]
            self.warn(
                f"set {len(quarantined)} file(s) aside in {self.target.uri(layout.quarantine_prefix(self.target.prefix))}, "
                f"e.g. {layout.printable(first['file'])}: {first['reason'][:300]}"
            )
        return {
            "started_at": isoformat(started_at),
            # Discovery listed after this: the reconciliation expects what was archived before it.
            "expected_before": isoformat(started_at),
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
                "archive_bundles": len(archive_bundles),
                "objects_not_in_layout": self.not_in_layout,
                "failed": self.failed_files[:MAX_FAILURES_IN_REPORT],
                "failed_count": len(self.failed_files),
                "not_quarantined": sum(1 for f in self.failed_files if not f["quarantined"]),
            },
            "records": {
                "seen": len(unique),
                "in_interval": in_interval,
                "inserted": inserted,
                "updated": updated,
                "already_loaded": max(len(unique) - inserted - updated, 0),
                **transaction_counts(unique.values()),
                "failed": len(self.record_failures),
                "failures": [{"message_id": m, "file": f, "reason": r} for m, f, r in self.record_failures[:MAX_FAILURES_IN_REPORT]],
            },
            "payloads": dict(self.payloads),
            "bytes": sum(r.size for r in unique.values()),
            "warnings": self.warnings,
        }

    def discover(self, now: datetime) -> tuple[str, list[str], dict[str, tuple[str, bool]]]:
        """The discovery mode, the window's manifest keys, and the keys found that cannot be loaded
        (key -> (reason, whether quarantining it helps))."""
        t, (start, end) = self.target, self.window
        mode = self.s.discovery
        if mode == "auto":
            root = f"{t.prefix}/{layout.BATCH_MANIFESTS}/" if t.prefix else f"{layout.BATCH_MANIFESTS}/"
            mode = "manifests" if self.s3.any_object(t.bucket, root) else "listing"
        if mode == "manifests":
            # Batch manifests are filed by archive time, and a record of the window may be archived
            # any time after it (late, a backfill, a replayed outage): every batch manifest archived
            # since the window opened, up to now (an hour ahead for clock skew). One ranged listing.
            until = max(end, now + timedelta(hours=1))
            keys = self.list_keys(layout.hour_range(layout.batch_manifest_hour_prefix, t.prefix, start, until))
            keys += self.list_keys(layout.hour_range(layout.index_manifest_hour_prefix, t.prefix, start, end))
        else:
            keys = self.index_window(start, end)
        manifests = []
        for key in keys:
            try:
                layout.check_manifest_key(t.prefix, key)
            except ValueError as exc:
                self.bad[key] = (str(exc), True)
            else:
                manifests.append(key)
        return mode, sorted(set(manifests)), self.bad

    def warn_if_nothing_found(self, mode: str, found: list[str], bad: dict, read: int, in_interval: int, now: datetime) -> None:
        """A load that finds nothing says so, and where it looked (the report carries it)."""
        interval = " .. ".join(map(isoformat, self.interval))
        if not found and not bad:
            if mode == "manifests":
                where = (
                    f"no batch manifest archived from {isoformat(self.window[0])} to {isoformat(now)} and no index "
                    "manifest of the window; objects written without a manifest (a copy, a migration, another "
                    "producer) are found only by listing: run the load with discovery='listing'"
                )
            else:
                where = "no object in the archive's time folders of the window"
            self.warn(f"found nothing for {interval}: {where}")
        elif read and not in_interval:
            self.warn(f"found no record of {interval} in the {read} manifest(s) it read")

    def warn(self, text: str) -> None:
        self.log.warning("Load: %s", text)
        self.warnings.append(text)

    def list_keys(self, key_range: layout.KeyRange | None) -> list[str]:
        return [o["Key"] for o in self.s3.iter_objects_in_range(self.target.bucket, key_range)] if key_range else []

    def index_window(self, start: datetime, end: datetime) -> list[str]:
        """Write an index manifest per hour for the data objects no index manifest lists yet;
        return the keys of the window's index manifests (those found and those written). An object
        that is not the archive's (its key not in the layout) or cannot be read is left out of the
        index and reported on its own; its neighbours are indexed."""
        t = self.target
        indexed: set[str] = set()
        index_keys = self.list_keys(layout.hour_range(layout.index_manifest_hour_prefix, t.prefix, start, end))
        for key in index_keys:  # a bad one (name or content) indexes nothing; it is reported later
            try:
                layout.check_manifest_key(t.prefix, key)
            except ValueError:
                continue
            records = self.read_manifest(key)
            if isinstance(records, list):
                indexed |= {r.key for r in records}
        data = layout.hour_range(layout.data_hour_prefix, t.prefix, start, end)
        new_by_hour: dict[datetime, list[tuple[dict[str, Any], layout.ArchiveKey]]] = {}
        for obj in self.s3.iter_objects_in_range(t.bucket, data) if data else ():
            try:
                parsed = layout.check_archive_key(t.prefix, obj["Key"])
            except ValueError as exc:
                self.not_in_layout += 1
                self.bad[obj["Key"]] = (f"not an archive object: {exc}", True)
                continue
            if obj["Key"] not in indexed:
                hour = parsed.event_time.replace(minute=0, second=0, microsecond=0)
                new_by_hour.setdefault(hour, []).append((obj, parsed))
        for hour, new in sorted(new_by_hour.items()):
            records = []
            for obj, parsed in new:
                try:
                    records.append(self.index_record(obj, parsed))
                except ObjectUnreadable as exc:  # kept for the next run: not quarantined
                    self.bad[obj["Key"]] = (f"archive object unreadable: {exc}", False)
            if not records:
                continue
            key = layout.index_manifest_key(t.prefix, hour, index_digest(r.key for r in records))
            self.s3.put_bytes(
                t.bucket, key, encode_manifest(records, t.uri(key)),
                content_type="application/x-ndjson", kms_key_id=self.s.kms_key_id,
            )  # fmt: skip
            self.log.info("Indexed %d object(s) of %s in %s", len(records), hour.strftime("%Y-%m-%d %H:00"), t.uri(key))
            index_keys.append(key)
        return index_keys

    def index_record(self, obj: dict[str, Any], parsed: layout.ArchiveKey) -> ArchivedRecord:
        """Metadata of an object found by listing: read once to checksum and sniff it. Its id and
        time come from its key (user metadata may refine the time, never replace it)."""
        t = self.target
        body, response = self.s3.open_archived(t.bucket, obj["Key"])
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
            message_id=parsed.message_id,
            bucket=t.bucket,
            key=obj["Key"],
            size=size,
            sha256=digest.hexdigest(),
            content_type=content_type,
            event_time=listed_event_time(meta.get("event-time"), parsed.event_time),
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

    def read_manifest(self, key: str) -> list[ArchivedRecord] | Exception:
        """A manifest's records, checked line by line to name only the archive's objects exactly as
        it keys them (read once per run); else the ``ObjectUnreadable`` or ``ValueError`` saying why."""
        if key not in self.manifests:
            t = self.target
            try:
                body = self.s3.read_archived(t.bucket, key, MAX_MANIFEST_BYTES)
                if len(body) > MAX_MANIFEST_BYTES:
                    raise ValueError(f"larger than {MAX_MANIFEST_BYTES} bytes")
                self.manifests[key] = decode_manifest(body, bucket=t.bucket, prefix=t.prefix, uri=t.uri(key))
            except (ObjectUnreadable, ValueError) as exc:
                self.manifests[key] = exc
        return self.manifests[key]

    def read_manifests(self, keys: list[str]) -> dict[str, list[ArchivedRecord]]:
        """Validate each pending manifest before COPY; a bad one is reported and left out."""
        good: dict[str, list[ArchivedRecord]] = {}
        for key in keys:
            records = self.read_manifest(key)
            if isinstance(records, ObjectUnreadable):
                self.fail_file(self.target.uri(key), f"manifest unreadable: {records}", quarantinable=False)
            elif isinstance(records, Exception):
                self.fail_file(self.target.uri(key), f"manifest is invalid: {records}")
            else:
                good[key] = records
        return good

    def check_landed(self, validated: dict[str, list[ArchivedRecord]], copy: CopyOutcome) -> dict[str, list[ArchivedRecord]]:
        """The validated manifests whose landed lines are exactly the records validated. S3 gives
        COPY no snapshot: the lines of a manifest replaced after its validation are taken out of
        the landing table and the manifest reported as a bad file; nothing unvalidated is promoted.
        A manifest the load history skips while none of its rows is landed or raw (taken out so
        by an earlier run) is copied again, and checked again."""
        t = self.target
        uris = {t.uri(k): k for k in validated}
        landed = self.sf.query(render("load/landed_manifests.sql", **self.ids))
        absent = {t.uri(k) for k, rs in validated.items() if rs} & set(copy.skipped) - {r["FILE_NAME"] for r in landed}
        if absent:
            absent -= {r["FILE_NAME"] for r in self.sf.query(render("load/pending_raw_manifests.sql", **self.ids))}
        if absent:
            again = self.copy("load/copy_manifests_again.sql", [uris[u] for u in sorted(absent)])
            copy.skipped[:] = [u for u in copy.skipped if u not in again.loaded]
            copy.merge(CopyOutcome(loaded=again.loaded, failed=again.failed))
            landed = self.sf.query(render("load/landed_manifests.sql", **self.ids))
        differ = landed_differences(
            {u: validated[k] for u, k in uris.items()}, ((r["FILE_NAME"], r["RECORD"]) for r in landed), copy.loaded,
            bucket=t.bucket, prefix=t.prefix,
        )  # fmt: skip
        for name, reason in differ.items():
            self.sf.query(render("load/drop_landed.sql", **self.ids), {"file_name": name})
            if name in uris:
                self.fail_file(name, f"manifest changed between its validation and COPY: {reason}")
            else:
                self.warn(f"took out landed lines naming {layout.printable(str(name))}, not loaded: {reason}")
        return {k: rs for k, rs in validated.items() if t.uri(k) not in differ}

    def write_payload_bundles(self, manifest_keys: list[str], records: list[ArchivedRecord]) -> list[str]:
        """NDJSON bundles of the pending records' JSON payloads (binary payloads stay in S3)."""
        t, limit = self.target, self.s.max_json_payload_bytes
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
            try:  # the manifest's size is a claim: never read more than the limit
                payload = self.s3.read_archived(record.bucket, record.key, limit)
            except ObjectUnreadable as exc:
                self.record_failures.append((record.message_id, record.s3_uri, f"payload unreadable: {exc.code}"))
                continue
            if len(payload) > limit:
                self.payloads["json_too_large"] += 1
                continue
            mismatch = payload_mismatch(record, payload)
            if mismatch:  # the line describes other bytes: never load these in its name
                self.record_failures.append((record.message_id, record.s3_uri, mismatch))
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

    def check_archive_bundles(self, records: list[ArchivedRecord]) -> dict[str, CheckedBundle]:
        """The archive's bundles (``layout="bundle"``) the pending records are in, each read once
        and checked — every line against its SHA-256, every listed record against the line at its
        offset — before it is COPYed as it is into the payload table. A bad bundle is reported (and
        quarantined) with the reason, its records named; the rest of the load goes on."""
        from airflow_reliable_messaging.domain import bundle

        by_key: dict[str, dict[str, ArchivedRecord]] = {}
        for record in records:
            if record.bundled:
                by_key.setdefault(record.key, {})[record.message_id] = record
        good: dict[str, CheckedBundle] = {}
        for key, listed in sorted(by_key.items()):
            uri = self.target.uri(key)
            try:
                body = self.s3.read_archived(self.target.bucket, key, MAX_BUNDLE_OBJECT_BYTES)
                if len(body) > MAX_BUNDLE_OBJECT_BYTES:
                    raise ValueError(f"larger than {MAX_BUNDLE_OBJECT_BYTES} bytes")
                lines = bundle.decode_bundle(body, uri)
                found = [bundle.find(lines, r.message_id, r.sha256, r.bundle_offset, r.bundle_length) for r in listed.values()]  # type: ignore[arg-type]
            except (ObjectUnreadable, ValueError) as exc:
                unreadable = isinstance(exc, ObjectUnreadable)
                reason = f"bundle {'unreadable' if unreadable else 'is invalid'}: {exc}"
                self.record_failures += [(m, uri, reason[:500]) for m in listed]
                self.fail_file(uri, reason, quarantinable=not unreadable)
                continue
            loaded = sum(1 for r in found if r.json_payload)
            good[key] = CheckedBundle({bundle.fingerprint(r) for r, _ in lines.values()}, list(listed), loaded)
            self.payloads["json_loaded"] += loaded
            self.payloads["not_json"] += len(found) - loaded
        return good

    def check_landed_bundles(self, checked: dict[str, CheckedBundle]) -> None:
        """The lines COPY landed from each archive bundle are the lines checked before it (S3 gives
        COPY no snapshot, as for manifests): a bundle replaced in between has its landed lines taken
        out (nothing unchecked reaches AUDIT_PAYLOAD) and is a failed file, its records named. A
        bundle the load history skipped landed nothing now: it was loaded, checked, by an earlier run."""
        from airflow_reliable_messaging.domain import bundle

        if not checked:
            return
        uris = {self.target.uri(k): c for k, c in checked.items()}
        landed: dict[str, list[str]] = {}
        for row in self.sf.query(render("load/landed_bundles.sql", **self.ids)):
            if row["FILE_NAME"] in uris:
                landed.setdefault(row["FILE_NAME"], []).append(row["RECORD"])
        for uri, texts in landed.items():
            try:
                got = {bundle.fingerprint(bundle.decode_landed_line(text, uri)) for text in texts}
                reason = (
                    ""
                    if got == uris[uri].lines
                    else f"COPY read {len(got)} line(s) that are not the {len(uris[uri].lines)} checked before it"
                )
            except (ValueError, TypeError, RecursionError) as exc:
                reason = f"the lines COPY read do not check: {str(exc)[:300]}"
            if reason:
                self.sf.query(render("load/drop_landed_bundle.sql", **self.ids), {"file_name": uri})
                reason = f"bundle changed between its check and COPY: {reason}"
                self.record_failures += [(m, uri, reason[:500]) for m in uris[uri].listed]
                self.payloads["json_loaded"] -= uris[uri].json_payloads
                self.fail_file(uri, reason)

    def _upload_bundle(self, spool: IO[bytes], key: str) -> str:
        spool.seek(0)
        self.s3.upload_stream(self.target.bucket, key, spool, content_type="application/x-ndjson", kms_key_id=self.s.kms_key_id)
        spool.close()
        return key

    def copy(self, statement: str, keys: list[str]) -> CopyOutcome:
        outcome = CopyOutcome()
        paths = [self.target.stage_path(k) for k in keys]
        for chunk in chunked(paths):
            self.claim.refresh()
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

    def fail_file(self, uri: str, reason: str, *, quarantinable: bool = True) -> None:
        """Report a file (manifest or object) that is not loaded. With ``on_bad_file="quarantine"``
        a bad one is set aside; one that could not be read or copied stays for the next run."""
        self.log.error("Not loaded: %s — %s", layout.printable(uri), reason)
        quarantine = quarantinable and self.s.on_bad_file == "quarantine"
        self.failed_files.append({"file": uri, "reason": reason, "quarantined": quarantine})
        if quarantine:
            self.quarantine(uri, reason)

    def quarantine(self, uri: str, reason: str) -> None:
        """A copy at ``<prefix>/_quarantine/YYYY/MM/DD/HH/<manifest|object>-<digest>`` with the
        reason and original URI in its metadata, and a ledger row so no later run takes it again."""
        bucket, key = layout.split_s3_uri(uri)
        kind = (
            "manifest"
            if key.endswith(".jsonl") and f"{layout.MANIFESTS}/" in key
            else "bundle"
            if f"/{layout.BUNDLES}/" in key
            else "object"
        )
        dest = layout.quarantine_key(self.target.prefix, datetime.now(UTC), f"{kind}-{index_digest([key])}")
        self.s3.copy_with_metadata(
            bucket, key, dest, kms_key_id=self.s.kms_key_id,
            metadata={"quarantine-reason": reason[:1024].encode("ascii", "replace").decode(),
                      "original-uri": quote(uri, safe=":/")[:1024]},
        )  # fmt: skip
        self.sf.query(render("load/ledger_quarantined.sql", **self.ids), {"file_name": uri, "run_id": self.run_id})
        self.log.warning("Quarantined %s as s3://%s/%s", layout.printable(uri), bucket, dest)

    def write_failures(self) -> None:
        for chunk_start in range(0, len(self.record_failures), 500):
            chunk = self.record_failures[chunk_start : chunk_start + 500]
            rows = ", ".join(f"(%(m{i})s, %(f{i})s, %(r{i})s)" for i in range(len(chunk)))
            params: dict[str, Any] = {"run_id": self.run_id}
            for i, (m, f, r) in enumerate(chunk):
                params.update({f"m{i}": m, f"f{i}": f, f"r{i}": r})
            self.sf.query(render("load/record_failures.sql", rows=rows, **self.ids), params)
