"""Bundles of small records (domain/bundle.py): framing, offsets, checksums, hostile bundles."""

import gzip
import hashlib
import json
from datetime import UTC, datetime

import pytest

from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain import bundle
from airflow_reliable_messaging.domain.manifest import ArchivedRecord, decode_manifest, encode_manifest


def rec(mid: str, body: bytes, content_type: str = "application/json") -> bundle.BundledRecord:
    return bundle.BundledRecord(
        message_id=mid, body=body, content_type=content_type, event_time="2026-11-30T10:00:00.000000Z",
        sha256=hashlib.sha256(body).hexdigest(), json_payload=bundle.is_json(body, content_type), source_system="s1",
    )  # fmt: skip


URI = "s3://b/audit/_bundles/2026/11/30/10/bundle-1.jsonl.gz"
RECORDS = [
    rec("m1", b'{"a": 1}'),
    rec("m2", b"\xff\x00binary", "application/octet-stream"),
    rec("m3", "caf\u00e9 text".encode(), "text/plain"),
]


def test_round_trip_keeps_bytes_and_places_each_line():
    (group,) = bundle.split(RECORDS)
    body, placed = bundle.encode_bundle(group, URI)
    lines = bundle.decode_bundle(body, URI)
    for original, place in zip(RECORDS, placed, strict=True):
        found = bundle.find(lines, original.message_id, original.sha256, place.offset, place.length)
        assert found.body == original.body and found.content_type == original.content_type
    raw = gzip.decompress(body)
    first = json.loads(raw[placed[0].offset : placed[0].offset + placed[0].length])
    assert first["payload"] == {"a": 1} and first["message_id"] == "m1" and first["bundle"] == URI  # what Snowflake COPYs
    assert "payload" not in json.loads(raw[placed[1].offset : placed[1].offset + placed[1].length])
    assert bundle.encode_bundle(group, URI)[0] == body  # deterministic: a rewrite after a crash is the same object


def test_split_bounds_each_bundle():
    many = [rec(f"m{i}", b'{"x": "' + b"y" * 1000 + b'"}') for i in range(50)]
    groups = list(bundle.split(many, max_bytes=5000))
    assert [r.message_id for g in groups for r in g] == [r.message_id for r in many]
    assert all(len(gzip.decompress(bundle.encode_bundle(g, URI)[0])) <= 5000 for g in groups) and len(groups) > 1
    with pytest.raises(ValueError, match="exceeds"):
        list(bundle.split(many, max_bytes=100))


def hostile(edit) -> bytes:
    (group,) = bundle.split(RECORDS)
    return edit(gzip.decompress(bundle.encode_bundle(group, URI)[0]))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bundle.encode_bundle(next(bundle.split(RECORDS)), URI)[0][:-9], "truncated"),
        (gzip.compress(hostile(lambda raw: raw.replace(b"caf", b"CAF"))), "does not match its SHA-256"),
        (gzip.compress(hostile(lambda raw: raw[:-1])), "truncated"),
        (gzip.compress(hostile(lambda raw: raw + raw.splitlines(keepends=True)[0])), "appears twice"),
        (b"not gzip at all", "not gzip"),
        (gzip.compress(hostile(lambda raw: raw.replace(b'"payload":{"a":1}', b'"payload":{"a":2}'))), "payload is not its body"),
        (gzip.compress(hostile(lambda raw: raw.replace(b"bundle-1", b"bundle-2"))), "names another bundle"),
        (gzip.compress(b"x" * 2000), "more than 1000 bytes"),
        (bundle.encode_bundle(next(bundle.split(RECORDS)), URI)[0] + b"junk", "after its gzip stream"),
    ],
)
def test_hostile_bundles_are_refused_with_the_reason(data, reason):
    with pytest.raises(ValueError, match=reason):
        bundle.decode_bundle(data, URI, max_bytes=1000 if "more than" in reason else bundle.MAX_BUNDLE_BYTES)


def test_forged_offsets_are_refused():
    (group,) = bundle.split(RECORDS)
    body, placed = bundle.encode_bundle(group, URI)
    lines = bundle.decode_bundle(body, URI)
    with pytest.raises(ValueError, match="no bundle line at offset"):
        bundle.find(lines, "m2", RECORDS[1].sha256, placed[1].offset + 1, placed[1].length)
    with pytest.raises(ValueError, match="is not message m1"):  # another record's line
        bundle.find(lines, "m1", RECORDS[0].sha256, placed[1].offset, placed[1].length)


def test_manifest_lines_of_bundled_records_name_their_bundle_and_message():
    key = layout.bundle_key("audit", datetime(2026, 11, 30, 10, tzinfo=UTC), "bundle-1")
    assert key == "audit/_bundles/2026/11/30/10/bundle-1.jsonl.gz"
    assert layout.check_bundle_key("audit", key) == datetime(2026, 11, 30, 10, tzinfo=UTC)
    line = ArchivedRecord("m1", "b", key, 8, "0" * 64, "application/json", "2026-11-30T10:00:00.000000Z",
                          "2026-11-30T10:00:01.000000Z", bundle_offset=0, bundle_length=120)  # fmt: skip
    assert line.s3_uri == f"s3://b/{key}#m1"  # one URI per record
    uri = "s3://b/audit/_manifests/batches/2026/11/30/10/x.jsonl"
    (back,) = decode_manifest(encode_manifest([line], uri), bucket="b", prefix="audit", uri=uri)
    assert back == line
    forged = json.loads(encode_manifest([line], uri))
    for change, reason in [
        ({"bundle_offset": -1}, "not a byte offset"),
        ({"bundle_length": None}, "come together"),
        ({"key": "audit/2026/11/30/10/00/00/m1", "s3_uri": "s3://b/audit/2026/11/30/10/00/00/m1#m1"}, "not a bundle key"),
        ({"s3_uri": f"s3://b/{key}"}, "with its message id"),
    ]:
        with pytest.raises(ValueError, match=reason):
            decode_manifest(json.dumps({**forged, **change}).encode(), bucket="b", prefix="audit", uri=uri)


def _reference_line(record: bundle.BundledRecord, uri: str) -> bytes:
    """The line as the bundle format defines it: every field in one JSON object, keys sorted."""
    doc: dict = {"bundle_version": bundle.BUNDLE_VERSION, "bundle": uri, "message_id": record.message_id,
                 "sha256": record.sha256, "size": record.size, "content_type": record.content_type,
                 "event_time": record.event_time}  # fmt: skip
    doc.update({k: getattr(record, k) for k in ("source_system", "message_type", "received_at", "trace_header", "sqs_message_id")
                if getattr(record, k) is not None})  # fmt: skip
    try:
        doc["body"] = record.body.decode("utf-8")
    except UnicodeDecodeError:
        doc["body_base64"] = __import__("base64").b64encode(record.body).decode()
    if record.json_payload:
        doc["payload"] = json.loads(record.body)
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\n"


VARIED = [
    *RECORDS,
    bundle.BundledRecord(
        message_id="m4",
        body=json.dumps({"z": "\u00e9\u2603", "q": 'say "hi"\n', "n": [1, 2.5, None]}).encode(),
        content_type="application/json",
        event_time="2026-11-30T10:00:00.000000Z",
        sha256="0" * 64,
        json_payload=True,
        source_system="s\u00e9",
        message_type="claimJson",
        received_at="2026-11-30T10:00:01.000000Z",
        trace_header="Root=1-abc",
        sqs_message_id="0f3c0a8e",
    ),
    bundle.BundledRecord(message_id="m5", body=b"", content_type="text/plain", event_time="t", sha256="1" * 64),
]


@pytest.mark.parametrize("uri", [URI, "", 's3://b/k "quoted" \u00e9'])
def test_a_line_encoded_once_is_the_whole_lines_sorted_json(uri):
    """split() encodes each record once (the bundle's URI goes in when its group is known): the
    bytes are the format's, so a bundle rewritten after a crash is the same object."""
    for record in VARIED:
        encoded = bundle.encode(record)
        assert encoded.line(uri) == bundle.encode_line(record, uri) == _reference_line(record, uri)
        assert encoded.length(len(json.dumps(uri))) == len(_reference_line(record, uri))
    (group,) = bundle.split(VARIED)
    assert all(isinstance(item, bundle.EncodedRecord) for item in group)
    body, placed = bundle.encode_bundle(group, uri)
    assert gzip.decompress(body) == b"".join(_reference_line(r, uri) for r in VARIED)
    assert bundle.encode_bundle(VARIED, uri) == (body, placed)
