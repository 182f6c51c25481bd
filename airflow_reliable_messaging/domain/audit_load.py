"""Planning and bookkeeping of the Snowflake audit load (pure: no I/O).

The load COPYs manifests (each line: one archived record's metadata) and payload bundles (each
line: one JSON payload with its message id) from the archive bucket through an external stage,
then MERGEs them into typed tables keyed by message id. The ledger of loaded files and
Snowflake's own load history make a rerun load nothing twice.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_reliable_messaging.domain.archive_layout import as_utc, normalize_prefix
from airflow_reliable_messaging.domain.identifiers import bucket_name, snowflake_identifier
from airflow_reliable_messaging.domain.manifest import (
    BINARY_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    ArchivedRecord,
    bytes_mismatch,
    decode_manifest,
    isoformat,
    parse_isoformat,
)

MAX_FILES_PER_COPY = 1000  # Snowflake's limit for FILES = (...)
PAYLOAD_BUNDLES = "_load/payloads"


@dataclass(frozen=True)
class LoadTarget:
    """Validated names of the Snowflake objects and the archive location the load uses."""

    database: str
    schema: str
    stage: str
    bucket: str
    prefix: str

    @classmethod
    def create(cls, *, database: str, schema: str, stage: str, bucket: str, prefix: str | None) -> LoadTarget:
        return cls(
            database=snowflake_identifier(database, "snowflake_database"),
            schema=snowflake_identifier(schema, "snowflake_schema"),
            stage=snowflake_identifier(stage, "snowflake_stage"),
            bucket=bucket_name(bucket, "archive_bucket"),
            prefix=normalize_prefix(prefix, "archive_prefix"),
        )

    @property
    def ns(self) -> str:
        return f"{self.database}.{self.schema}"

    @property
    def stage_url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}/" if self.prefix else f"s3://{self.bucket}/"

    def identifiers(self) -> dict[str, str]:
        return {"database": self.database, "schema": self.schema, "ns": self.ns, "stage": self.stage}

    def stage_path(self, key: str) -> str:
        """A key's path relative to the stage URL (what ``FILES = (...)`` takes)."""
        if self.prefix:
            if not key.startswith(self.prefix + "/"):
                raise ValueError(f"{key!r} is outside the stage prefix {self.prefix!r}")
            return key[len(self.prefix) + 1 :]
        return key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def load_window(start: datetime, end: datetime, lookback: timedelta) -> tuple[datetime, datetime]:
    """The data interval widened by the lookback, so late arrivals are never missed."""
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        raise ValueError(f"the data interval is empty or reversed: {start.isoformat()} .. {end.isoformat()}")
    if lookback < timedelta(0):
        raise ValueError("lookback must not be negative")
    return start - lookback, end


def chunked(items: Sequence[str], size: int = MAX_FILES_PER_COPY) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


@dataclass
class CopyOutcome:
    loaded: dict[str, int] = field(default_factory=dict)  # file -> rows loaded
    skipped: list[str] = field(default_factory=list)  # already loaded (load history)
    failed: dict[str, str] = field(default_factory=dict)  # file -> first error

    def merge(self, other: CopyOutcome) -> None:
        self.loaded.update(other.loaded)
        self.skipped.extend(other.skipped)
        self.failed.update(other.failed)


def parse_copy_result(rows: Iterable[dict[str, Any]], requested: Sequence[str]) -> CopyOutcome:
    """Interpret COPY INTO's result rows (``file``, ``status``, ``rows_loaded``, ``first_error``).

    Result file names are full URLs; they are mapped back to the requested stage paths. A
    requested file absent from the result is treated as failed: nothing is silently dropped.
    """
    outcome = CopyOutcome()
    seen: set[str] = set()
    for row in rows:
        if "FILE" not in row:  # "Copy executed with 0 files processed."
            continue
        name = _match_requested(str(row["FILE"]), requested)
        seen.add(name)
        status = str(row.get("STATUS", "")).upper()
        if status == "LOADED":
            outcome.loaded[name] = int(row.get("ROWS_LOADED") or 0)
        elif status == "LOAD_SKIPPED":
            outcome.skipped.append(name)
        else:  # LOAD_FAILED, PARTIALLY_LOADED
            outcome.failed[name] = f"{status}: {row.get('FIRST_ERROR') or 'no error message'}"
    for name in requested:
        if name not in seen:
            outcome.failed.setdefault(name, "not in the COPY result")
    return outcome


def _match_requested(result_name: str, requested: Sequence[str]) -> str:
    for name in requested:
        if result_name == name or result_name.endswith("/" + name):
            return name
    return result_name


def index_digest(keys: Iterable[str]) -> str:
    """A stable name for an index manifest listing exactly these keys."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:24]


def bundle_key(prefix: str, pending_manifests: Iterable[str], part: int) -> str:
    """Where the payload bundle for a set of manifests goes; same set → same name (COPY skips it)."""
    digest = hashlib.sha256("\n".join(sorted(pending_manifests)).encode()).hexdigest()[:24]
    head = f"{prefix}/" if prefix else ""
    return f"{head}{PAYLOAD_BUNDLES}/{digest}/part-{part:04d}.jsonl"


def sniff_content_type(head: bytes) -> str:
    """JSON when the bytes start like a JSON object/array, text when valid UTF-8, else binary."""
    stripped = head.lstrip()
    if stripped[:1] in (b"{", b"["):
        return JSON_CONTENT_TYPE
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a multi-byte character cut at the end
            return BINARY_CONTENT_TYPE
    return TEXT_CONTENT_TYPE if head else BINARY_CONTENT_TYPE


def is_json_content(content_type: str | None) -> bool:
    """``application/json``, ``text/json`` or any ``+json`` media type, parameters ignored."""
    media = (content_type or "").split(";")[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def payload_bundle_line(message_id: str, payload: bytes, bundle_uri: str) -> str:
    """One NDJSON line for the payload table; ValueError (with the reason) when not JSON."""
    try:
        value = json.loads(payload)
    except UnicodeDecodeError:
        raise ValueError("payload declared JSON is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"payload declared JSON does not parse: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    return json.dumps({"message_id": message_id, "bundle": bundle_uri, "payload": value}, separators=(",", ":"))


def payload_mismatch(record: ArchivedRecord, payload: bytes) -> str | None:
    """Why ``payload`` (the object read) is not the record its manifest line describes (its size
    and SHA-256, as a bundled record's line is checked), or None when it is."""
    why = bytes_mismatch(payload, record.size, record.sha256)
    return f"payload does not match its manifest line: {why}" if why else None


def landed_differences(
    validated: Mapping[str, list[ArchivedRecord]],
    landed: Iterable[tuple[str | None, str]],
    loaded: Mapping[str, int],
    *,
    bucket: str,
    prefix: str,
) -> dict[str | None, str]:
    """Where the manifest lines COPY landed are not the records validated before it, by the
    manifest URI the lines name (None: a line names none), with why.

    S3 gives COPY no snapshot: a manifest replaced between its validation and the COPY lands other
    lines. ``validated``: records by manifest URI; ``landed``: (named manifest, line as JSON text)
    of every landing row; ``loaded``: rows COPY reported per manifest URI it loaded now."""
    groups: dict[str | None, list[str]] = {}
    for name, text in landed:
        groups.setdefault(name, []).append(text)
    differ: dict[str | None, str] = {}
    for name, texts in groups.items():
        if name is None or name not in validated:
            differ[name] = f"{len(texts)} landed line(s) name a manifest this run did not validate"
            continue
        try:
            body = "\n".join(json.dumps(json.loads(text)) for text in texts).encode()
            got = decode_manifest(body, bucket=bucket, prefix=prefix, uri=name)
        except (ValueError, RecursionError) as exc:
            differ[name] = f"the lines COPY read do not validate: {str(exc)[:300]}"
            continue
        if Counter(map(_canonical, got)) != Counter(map(_canonical, validated[name])):
            differ[name] = f"COPY read {len(got)} line(s) that are not the {len(validated[name])} validated before it"
    for name, rows in loaded.items():
        if name in validated and name not in differ and (rows != len(validated[name]) or len(groups.get(name, ())) < rows):
            differ[name] = f"COPY read {rows} line(s), not the {len(validated[name])} validated before it"
    return differ


def _canonical(record: ArchivedRecord) -> str:
    return json.dumps(record.to_dict(), sort_keys=True)


def transaction_counts(records: Iterable[ArchivedRecord]) -> dict[str, int]:
    """Of manifest lines (one per message id): distinct producer transactions (a record without a
    transaction id is one), duplicates recorded without a second copy, conflicts (other bytes)."""
    records = list(records)
    return {
        "transactions": len({(r.source_system, r.source_transaction_id) if r.source_transaction_id else r.message_id for r in records}),
        "repeats": sum(r.transaction_status == "duplicate" for r in records),
        "conflicts": sum(r.transaction_status == "conflict" for r in records),
    }


def listed_event_time(declared: str | None, key_time: datetime) -> str:
    """The event time of an object found by listing: its ``event-time`` metadata when that is a
    time within the key's second (it adds the fraction), else the key's time (metadata is not
    trusted further than the key it came with)."""
    try:
        moment = parse_isoformat(declared) if declared else None
    except (TypeError, ValueError, OverflowError):
        moment = None
    return isoformat(moment if moment is not None and moment.replace(microsecond=0) == key_time else key_time)


# -- reconciliation ---------------------------------------------------------------------------------
MAX_KEYS_IN_REPORT = 20


@dataclass
class Reconciliation:
    """S3 and Snowflake compared for one interval, object by object (keyed by S3 URI).

    An archived object is compared when Snowflake has its row, when a load took a manifest line
    naming it (``seen``), or when it was written at least ``settle`` before the load looked
    (``cutoff``); otherwise it is excluded, with the reason, and the report says so."""

    matched: int = 0
    missing: list[str] = field(default_factory=list)
    size_mismatch: list[str] = field(default_factory=list)
    never_in_a_manifest: int = 0  # of the missing: no load ever saw them (no manifest names them)
    excluded: dict[str, int] = field(default_factory=dict)
    not_in_s3: int = 0

    @property
    def compared(self) -> int:
        return self.matched + len(self.missing) + len(self.size_mismatch)

    def verdict(self, *, snowflake_rows: int, load_took: int, not_in_layout: int, looked_at: datetime) -> tuple[str | None, list[str]]:
        """(why the reconciliation fails or None, warnings). Comparing nothing passes only when
        there is nothing to compare: no row, no record the load took, no manifest line, no
        archived object of the interval (one the load did not see is excluded, not absent)."""
        warnings = []
        if self.excluded:
            after, settling = self.excluded.get("archived_after_the_load_looked", 0), self.excluded.get("archived_within_settle", 0)
            warnings.append(
                f"{after + settling} archived object(s) not compared: {after} archived after the load looked "
                f"({isoformat(looked_at)}), {settling} within `settle` before it; the next load (or a rerun of "
                "this one) takes them"
            )
        if not_in_layout:
            warnings.append(
                f"{not_in_layout} key(s) in the archive's time folders are not in the archive layout "
                "(<prefix>/YYYY/MM/DD/HH/MM/SS/<message id>): neither loaded nor compared (see not_in_layout_keys)"
            )
        if self.not_in_s3:
            warnings.append(
                f"{self.not_in_s3} record(s) in Snowflake or in loaded manifests name objects no longer in the "
                "archive (deleted, or expired by a lifecycle rule)"
            )
        error = None
        if self.missing or self.size_mismatch:
            error = f"{len(self.missing)} archived record(s) missing in Snowflake, {len(self.size_mismatch)} with a different size"
            if self.never_in_a_manifest:
                error += (
                    f"; {self.never_in_a_manifest} of the missing are named by no manifest any load read (written "
                    "without one: a copy, a migration, another producer): load them with discovery='listing'"
                )
        elif not self.compared:
            took = max(snowflake_rows, load_took, self.not_in_s3)
            if took:
                error = (
                    f"compared nothing: Snowflake has {snowflake_rows} record(s) of the interval and the load took "
                    f"{load_took}, but the archive has no object of it to compare them with (check archive_bucket "
                    "and archive_prefix; were the objects deleted?)"
                )
            elif excluded := sum(self.excluded.values()):
                error = (
                    f"compared nothing: the archive has {excluded} object(s) of the interval, all archived after the "
                    f"load looked ({isoformat(looked_at)}) or within `settle` before it, and Snowflake has no record of "
                    "it: load the interval again, then reconcile"
                )
            else:
                warnings.insert(0, "compared nothing: no archived object of the interval was due and Snowflake has no record of it")
        return error, warnings


def reconcile(
    objects: dict[str, tuple[int, datetime]],
    rows: dict[str, int],
    seen: dict[str, int],
    *,
    cutoff: datetime,
    looked_at: datetime,
) -> Reconciliation:
    """``objects``: the interval's archived objects (size, LastModified); ``rows``: AUDIT_RECORD's
    sizes; ``seen``: sizes in the manifest lines loads took; ``looked_at``: when the load listed.
    LastModified counts whole seconds: an object of the second the load looked in, or of the
    cutoff's, may be later than them, so it is not expected unless a row or a line names it."""
    out = Reconciliation()
    cutoff, looked_at = cutoff.replace(microsecond=0), looked_at.replace(microsecond=0)
    for uri, (size, modified) in sorted(objects.items()):
        if uri in rows:
            if rows[uri] == size:
                out.matched += 1
            else:
                out.size_mismatch.append(uri)
        elif uri in seen or modified < cutoff:
            out.missing.append(uri)
            out.never_in_a_manifest += uri not in seen
        else:
            reason = "archived_after_the_load_looked" if modified >= looked_at else "archived_within_settle"
            out.excluded[reason] = out.excluded.get(reason, 0) + 1
    out.not_in_s3 = len((rows.keys() | seen.keys()) - objects.keys())
    return out
