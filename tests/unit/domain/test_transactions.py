"""Transaction markers: their place in the archive, what they hold, and how a record is judged."""

from __future__ import annotations

import json

import pytest

from airflow_reliable_messaging.domain import archive_events as ev
from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain import transactions as tx
from airflow_reliable_messaging.domain.manifest import ArchivedRecord, decode_manifest, encode_manifest

SHA_A, SHA_B = "a" * 64, "b" * 64


def marker(message_id="m-1", sha=SHA_A) -> tx.Marker:
    return tx.Marker(
        source_system="claims", source_transaction_id="tx-1", message_id=message_id, sqs_message_id="sqs-1", sha256=sha,
        size=3, key=f"audit/2021/07/03/16/21/12/{message_id}", content_type="text/plain", claimed_at="2026-01-01T00:00:00.000000Z",
    )  # fmt: skip


def test_marker_keys_live_under_the_prefix_and_take_any_transaction_id():
    key = layout.transaction_marker_key("audit", "claims", "tx-1")
    digest = layout.transaction_digest("claims", "tx-1")
    assert key == f"audit/_transactions/{digest[:2]}/{digest}.json"
    assert layout.transaction_variant_key("audit", "claims", "tx-1", SHA_B) == f"audit/_transactions/{digest[:2]}/{digest}/{SHA_B}.json"
    # scoped by source system; hostile or unencodable ids still make one safe key each
    assert layout.transaction_digest("billing", "tx-1") != digest and layout.transaction_digest(None, "tx-1") == layout.transaction_digest(
        "", "tx-1"
    )
    for hostile in ("../../x", "a/b", "\ud800", "' OR 1=1 --", "x" * 5000):
        key = layout.transaction_marker_key("audit", hostile, hostile)
        assert key.startswith("audit/_transactions/") and ".." not in key and len(key) < 120
    assert layout.parse_archive_key("audit", key) is None  # never taken for archived data
    with pytest.raises(ValueError):
        layout.transaction_variant_key("audit", "s", "t", "../x")


def test_a_marker_round_trips_and_a_forged_one_is_refused():
    m = marker()
    assert tx.Marker.from_json(m.to_json(), "audit") == m
    doc = json.loads(m.to_json())
    for field, value in (("message_id", "../x"), ("sha256", "zz"), ("key", "private/secret"), ("key", "audit/2021/07/03/16/21/12/other"),
                         ("size", "3"), ("marker_version", 2), ("content_type", None)):  # fmt: skip
        with pytest.raises(ValueError):
            tx.Marker.from_json(json.dumps({**doc, field: value}).encode(), "audit")
    with pytest.raises(ValueError):
        tx.Marker.from_json(b"[" * 100_000, "audit")


def test_judge():
    first = marker()
    assert tx.judge(first, "m-1", SHA_B, first.key) == tx.FIRST  # itself (a redelivery), whatever it now says
    assert tx.judge(first, "m-2", SHA_A, "audit/2021/07/03/16/21/12/m-2") == tx.DUPLICATE
    assert tx.judge(first, "m-2", SHA_B, "audit/2021/07/03/16/21/12/m-2") == tx.CONFLICT
    # the same message id re-sent with a new time (another key): a repeat, not the first copy again
    assert tx.judge(first, "m-1", SHA_A, "audit/2021/07/03/16/25/00/m-1") == tx.DUPLICATE
    assert tx.judge(first, "m-1", SHA_B, "audit/2021/07/03/16/25/00/m-1") == tx.CONFLICT


def _line(status=None, repeat_of=None, **extra) -> ArchivedRecord:
    return ArchivedRecord(
        message_id="m-2", bucket="b", key="audit/2021/07/03/16/21/12/m-1", size=3, sha256=SHA_A, content_type="text/plain",
        event_time="2021-07-03T16:21:12.000000Z", archived_at="2026-01-01T00:00:01.000000Z", source_system="claims",
        source_transaction_id="tx-1", transaction_status=status, repeat_of=repeat_of, extra=extra,
    )  # fmt: skip


def test_manifest_lines_carry_the_transaction_status_and_refuse_a_bad_one():
    line = _line("duplicate", "m-1")
    assert decode_manifest(encode_manifest([line], "s3://b/m.jsonl")) == [line]
    body = json.loads(encode_manifest([line], "s3://b/m.jsonl"))
    for field, value in (("transaction_status", "maybe"), ("repeat_of", "../m-1"), ("repeat_of", 5)):
        with pytest.raises(ValueError, match=field):
            decode_manifest(json.dumps({**body, field: value}).encode())


def test_repeats_have_their_own_lifecycle_events():
    duplicate = ev.record_notifications(_line("duplicate", "m-1"), "s3://b/m", already_archived=False)
    assert [n.attributes["event"] for n in duplicate] == ["received", "duplicate", "metadata_stored", "archive_complete"]
    body = json.loads(duplicate[1].body)
    assert body["transaction"] == {"status": "duplicate", "repeatOf": "m-1"}
    assert body["storageContext"]["S3Reference"]["key"] == "audit/2021/07/03/16/21/12/m-1"  # the first copy's object
    assert duplicate[1].message(fifo=False).attributes["transaction"]["StringValue"] == "duplicate"
    conflict = ev.record_notifications(_line("conflict", "m-1", first_sha256=SHA_B), "s3://b/m", already_archived=False)
    assert [n.attributes["event"] for n in conflict] == ["received", "archive_stored", "conflict", "metadata_stored", "archive_complete"]
    assert json.loads(conflict[2].body)["transaction"] == {"status": "conflict", "repeatOf": "m-1", "firstSha256": SHA_B}
    plain = ev.record_notifications(_line(), "s3://b/m", already_archived=False)
    assert [n.attributes["event"] for n in plain] == list(ev.RECORD_EVENTS)
    assert "transaction" not in plain[0].message(fifo=False).attributes and "transaction" not in json.loads(plain[0].body)
    summary = json.loads(ev.batch_notification("batch-1", "s3://b/m", {"duplicates": 1}, [_line("duplicate", "m-1"), _line()]).body)
    assert summary["duplicates"] == [{"messageID": "m-2", "repeatOf": "m-1"}] and summary["conflicts"] == []
