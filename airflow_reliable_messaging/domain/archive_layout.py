"""Where things live in the audit archive bucket.

The seed pipeline's layout keys each payload by the producer's event time::

    <prefix>/YYYY/MM/DD/HH/MM/SS/<messageID>

Beside the data this provider keeps, under the same prefix (never inside the time folders):

    <prefix>/_manifests/batches/YYYY/MM/DD/HH/<batch-id>.jsonl   one per archive batch (archive hour)
    <prefix>/_manifests/index/YYYY/MM/DD/HH/<digest>.jsonl       written by the loader for archives
                                                                 without manifests (event hour)
    <prefix>/_quarantine/YYYY/MM/DD/HH/<id>                       records that could not be parsed
    <prefix>/_quarantine/YYYY/MM/DD/HH/<id>.payload               ... and the claim-check object it named
    <prefix>/_transactions/<hh>/<digest>.json                     the first copy of a producer transaction
    <prefix>/_transactions/<hh>/<digest>/<sha256>.json            each other content under that transaction
    <prefix>/_notified/<batch-id>.json                            the claim on a batch's summary notification
                                                                 (``domain/batch_claims.py``)
    <prefix>/_bundles/YYYY/MM/DD/HH/<bundle-id>.jsonl.gz          small records of one archive batch whose
                                                                 event time is in that hour (layout "bundled",
                                                                 ``domain/bundle.py``)

``<digest>`` is the SHA-256 (hex) of the transaction's identity (source system and
``sourceTransactionID``, :func:`transaction_digest`); ``<hh>`` its first two characters (spreads
the markers over 256 prefixes). Markers are written once, with ``If-None-Match: *``, and never
changed (``domain/transactions.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from airflow_reliable_messaging.exceptions import ConfigurationError

MANIFESTS = "_manifests"
BATCH_MANIFESTS = f"{MANIFESTS}/batches"
INDEX_MANIFESTS = f"{MANIFESTS}/index"
QUARANTINE = "_quarantine"
TRANSACTIONS = "_transactions"
BUNDLES = "_bundles"
NOTIFIED = "_notified"
BUNDLE_SUFFIX = ".jsonl.gz"

# Message ids become the last key segment: no separators, no dot-segments, bounded length.
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,254}\Z")
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()/-]*\Z")
# ASCII digits only: int() also reads other scripts' digits, which the archive never writes.
_HOUR = r"(?P<year>[0-9]{4})/(?P<month>[0-9]{2})/(?P<day>[0-9]{2})/(?P<hour>[0-9]{2})/"
_DATA_KEY = re.compile(_HOUR + r"(?P<minute>[0-9]{2})/(?P<second>[0-9]{2})/(?P<name>[^/]*)")
_MANIFEST_KEY = re.compile(_HOUR + r"(?P<name>[^/]*)\.jsonl")
_BUNDLE_KEY = re.compile(_HOUR + r"(?P<name>[^/]*)\.jsonl\.gz")
DATA_LAYOUT = "YYYY/MM/DD/HH/MM/SS/<message id>"


# S3 keys are at most 1,024 bytes. The longest key this project writes under a prefix is the
# prefix plus 305 bytes: an S3-archive replay's masked copy ("/_replays/<32>/masked/<message id
# of 255>"), or a report file under a DAG id of 255 ("/_reports/<dag id>/<20>/sns-published.json");
# then a claim-check object kept beside its quarantine document (290), a data object (276).
# tests/unit/domain/test_archive_layout.py builds each family's longest key.
MAX_KEY_BYTES = 1024
KEY_SUFFIX_RESERVE = 320
MAX_PREFIX_BYTES = MAX_KEY_BYTES - KEY_SUFFIX_RESERVE


def normalize_prefix(prefix: str | None, field: str = "prefix") -> str:
    """Return ``prefix`` without leading/trailing slashes; reject what S3 keys should not hold, and
    a prefix too long for the longest key written under it to fit S3's 1,024 bytes."""
    prefix = ("" if prefix is None else str(prefix)).strip().strip("/")  # (str: native rendering may give an int)
    if not _PREFIX.match(prefix) or any(part in ("", ".", "..") for part in prefix.split("/") if prefix):
        raise ConfigurationError(field, f"{printable(prefix)} is not a safe S3 key prefix")
    if len(prefix) > MAX_PREFIX_BYTES:  # (ASCII only: characters are bytes)
        raise ConfigurationError(
            field, f"is {len(prefix)} bytes long; at most {MAX_PREFIX_BYTES}, so that every key written under it "
            f"(up to {KEY_SUFFIX_RESERVE} bytes more) fits S3's {MAX_KEY_BYTES}-byte key limit"
        )  # fmt: skip
    return prefix


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def validate_message_id(message_id: str) -> str:
    if not isinstance(message_id, str) or not _MESSAGE_ID.match(message_id) or ".." in message_id:
        raise ValueError(f"message id {message_id!r} is not usable as an archive key segment")
    return message_id


def as_utc(moment: datetime) -> datetime:
    """A plain ``datetime`` in UTC; naive datetimes are taken as UTC (the seed's producer clock
    has no zone). Subclasses (pendulum's ``DateTime``, which Airflow's templates render natively)
    become plain datetimes: pendulum drops a stdlib zone in arithmetic (``t - timedelta`` is naive)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if type(moment) is not datetime:
        moment = datetime(*moment.timetuple()[:6], moment.microsecond, tzinfo=UTC)
    return moment


def isoformat(moment: datetime) -> str:
    """UTC, microseconds, ``Z`` suffix: sortable and parsed the same by Python and Snowflake."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_isoformat(text: str) -> datetime:
    return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def archive_key(prefix: str, event_time: datetime, message_id: str) -> str:
    t = as_utc(event_time)
    return _join(prefix, t.strftime("%Y/%m/%d/%H/%M/%S"), validate_message_id(message_id))


@dataclass(frozen=True)
class ArchiveKey:
    event_time: datetime  # to the second, UTC
    message_id: str


def check_archive_key(prefix: str, key: str) -> ArchiveKey:
    """The event time and message id of ``key`` when it is exactly a key ``archive_key`` writes
    under ``prefix``; otherwise ValueError saying why (outside the prefix, not the layout
    ``YYYY/MM/DD/HH/MM/SS/<message id>`` — dot-segments, extra or empty segments —, an impossible
    time, a message id the archive would refuse). For every key read back from S3 or a manifest."""
    m = _DATA_KEY.fullmatch(_under_prefix(prefix, key))
    if not m:
        raise ValueError(f"{printable(key)} is not in the archive layout <prefix>/{DATA_LAYOUT}")
    when = _time(m, key)
    try:
        message_id = validate_message_id(m["name"])
    except ValueError:
        raise ValueError(f"{printable(key)}: its last segment is not a valid message id") from None
    if archive_key(prefix, when, message_id) != key:  # what the archive would write for it
        raise ValueError(f"{printable(key)} is not a key the archive writes")
    return ArchiveKey(when, message_id)


def parse_archive_key(prefix: str, key: str) -> ArchiveKey | None:
    """The event time and message id of a data key under ``prefix``; None for anything else."""
    try:
        return check_archive_key(prefix, key)
    except ValueError:
        return None


def check_manifest_key(prefix: str, key: str) -> None:
    """ValueError unless ``key`` is a batch or index manifest key as the archive and the load write
    them (``<prefix>/_manifests/{batches,index}/YYYY/MM/DD/HH/<id>.jsonl``)."""
    rest = _under_prefix(prefix, key)
    for root, make in ((BATCH_MANIFESTS, batch_manifest_key), (INDEX_MANIFESTS, index_manifest_key)):
        m = _MANIFEST_KEY.fullmatch(rest.removeprefix(root + "/")) if rest.startswith(root + "/") else None
        if m and _MESSAGE_ID.match(m["name"]) and ".." not in m["name"]:
            if make(prefix, _time(m, key), m["name"]) == key:
                return
    raise ValueError(
        f"{printable(key)} is not a manifest key the archive writes "
        f"(<prefix>/{BATCH_MANIFESTS}/ or {INDEX_MANIFESTS}/YYYY/MM/DD/HH/<id>.jsonl)"
    )


def check_bundle_key(prefix: str, key: str) -> datetime:
    """The hour folder of ``key`` when it is exactly a bundle key ``bundle_key`` writes under
    ``prefix`` (``<prefix>/_bundles/YYYY/MM/DD/HH/<bundle id>.jsonl.gz``); ValueError otherwise."""
    rest = _under_prefix(prefix, key)
    m = _BUNDLE_KEY.fullmatch(rest.removeprefix(BUNDLES + "/")) if rest.startswith(BUNDLES + "/") else None
    if m and _MESSAGE_ID.match(m["name"]) and ".." not in m["name"]:
        hour = _time(m, key)
        if bundle_key(prefix, hour, m["name"]) == key:
            return hour
    raise ValueError(f"{printable(key)} is not a bundle key the archive writes (<prefix>/{BUNDLES}/YYYY/MM/DD/HH/<id>{BUNDLE_SUFFIX})")


def _under_prefix(prefix: str, key: str) -> str:
    if not isinstance(key, str):
        raise ValueError(f"the key {printable(key)} is not a string")
    head = f"{prefix}/" if prefix else ""
    if not key.startswith(head):
        raise ValueError(f"{printable(key)} is outside the archive prefix {prefix!r}")
    return key[len(head) :]


def _time(m: re.Match[str], key: str) -> datetime:
    year, month, day, hour = (int(m[name]) for name in ("year", "month", "day", "hour"))
    minute, second = (int(m.groupdict().get(name) or 0) for name in ("minute", "second"))
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{printable(key)}: its time folders are not a valid time") from None


def printable(value: object, limit: int = 200) -> str:
    """A key or id from outside, quoted and escaped for logs and errors (no control characters,
    no bidirectional overrides, bounded length)."""
    text = value if isinstance(value, str) else repr(value)
    return ascii(text if len(text) <= limit else text[:limit] + "...")


def escaped(value: str, limit: int = 200) -> str:
    """A key or URI from a message inside a reason: :func:`printable` without its quotes (control
    characters and bidirectional overrides escaped, bounded) — a reason reaches logs, the DLQ's
    failure attribute and the quarantine, where a raw newline or escape sequence forges lines."""
    return printable(value, limit)[1:-1]


def hours(start: datetime, end: datetime) -> list[datetime]:
    """Every UTC hour that overlaps the half-open window [start, end)."""
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        return []
    hour = start.replace(minute=0, second=0, microsecond=0)
    out = []
    while hour < end:
        out.append(hour)
        hour += timedelta(hours=1)
    return out


@dataclass(frozen=True)
class KeyRange:
    """The keys of consecutive hour folders, as one ListObjectsV2 range: ``Prefix=prefix``,
    ``StartAfter=start_after``, stop at the first key ``>= stop_at``. The hour folders sort
    lexicographically (``YYYY/MM/DD/HH``), so one listing costs ⌈objects/1000⌉ requests, however
    many hours it spans (an hour-by-hour listing costs at least one request per hour)."""

    prefix: str
    start_after: str
    stop_at: str

    def __contains__(self, key: str) -> bool:
        return key.startswith(self.prefix) and self.start_after < key < self.stop_at


def hour_range(hour_prefix: Callable[[str, datetime], str], prefix: str, start: datetime, end: datetime) -> KeyRange | None:
    """The ``KeyRange`` of the hour folders ``hour_prefix(prefix, hour)`` overlapping [start, end)."""
    spanned = hours(start, end)
    if not spanned:
        return None
    first = hour_prefix(prefix, spanned[0])  # "<root>/YYYY/MM/DD/HH/"
    root = first[: -len("YYYY/MM/DD/HH/")]
    return KeyRange(root, first[:-1], hour_prefix(prefix, spanned[-1] + timedelta(hours=1)))


def _hour_path(hour: datetime) -> str:
    return as_utc(hour).strftime("%Y/%m/%d/%H")


def data_hour_prefix(prefix: str, hour: datetime) -> str:
    return _join(prefix, _hour_path(hour)) + "/"


def batch_manifest_key(prefix: str, archived_at: datetime, batch_id: str) -> str:
    return _join(prefix, BATCH_MANIFESTS, _hour_path(archived_at), f"{validate_message_id(batch_id)}.jsonl")


def batch_manifest_hour_prefix(prefix: str, hour: datetime) -> str:
    return _join(prefix, BATCH_MANIFESTS, _hour_path(hour)) + "/"


def index_manifest_key(prefix: str, hour: datetime, digest: str) -> str:
    return _join(prefix, INDEX_MANIFESTS, _hour_path(hour), f"{validate_message_id(digest)}.jsonl")


def index_manifest_hour_prefix(prefix: str, hour: datetime) -> str:
    return _join(prefix, INDEX_MANIFESTS, _hour_path(hour)) + "/"


def bundle_key(prefix: str, hour: datetime, bundle_id: str) -> str:
    """Where a bundle of records whose event time is in ``hour`` goes."""
    return _join(prefix, BUNDLES, _hour_path(hour), f"{validate_message_id(bundle_id)}{BUNDLE_SUFFIX}")


def bundle_hour_prefix(prefix: str, hour: datetime) -> str:
    return _join(prefix, BUNDLES, _hour_path(hour)) + "/"


def quarantine_prefix(prefix: str) -> str:
    return _join(prefix, QUARANTINE) + "/"


def quarantine_key(prefix: str, received_at: datetime, item_id: str) -> str:
    return _join(prefix, QUARANTINE, _hour_path(received_at), validate_message_id(item_id))


def quarantine_payload_key(quarantine_document_key: str) -> str:
    """Where the claim-check object of a quarantined record is kept, beside its document."""
    return quarantine_document_key + ".payload"


_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")


def transaction_digest(source_system: str | None, transaction_id: str) -> str:
    """The key-safe identity of a producer transaction (any characters in its two parts)."""
    identity = json.dumps([source_system or "", transaction_id], ensure_ascii=True)
    return hashlib.sha256(identity.encode("ascii")).hexdigest()


def transaction_marker_key(prefix: str, source_system: str | None, transaction_id: str) -> str:
    digest = transaction_digest(source_system, transaction_id)
    return _join(prefix, TRANSACTIONS, digest[:2], f"{digest}.json")


def transaction_variant_key(prefix: str, source_system: str | None, transaction_id: str, sha256: str) -> str:
    """The marker of one more content (``sha256``) under a transaction whose first copy differs."""
    if not _HEX64.match(sha256):
        raise ValueError(f"{sha256[:80]!r} is not a hex SHA-256")
    digest = transaction_digest(source_system, transaction_id)
    return _join(prefix, TRANSACTIONS, digest[:2], digest, f"{sha256}.json")


def notification_claim_key(prefix: str, batch_id: str) -> str:
    """The claim on the summary notification of the batch ``batch_id`` (``domain/batch_claims.py``)."""
    return _join(prefix, NOTIFIED, f"{validate_message_id(batch_id)}.json")


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key
