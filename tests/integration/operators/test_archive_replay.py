"""S3ArchiveReplayOperator against an archive in the local cloud's S3."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain.claim_check import parse_pointer
from airflow_reliable_messaging.domain.manifest import ArchivedRecord, encode_manifest, isoformat
from airflow_reliable_messaging.exceptions import ConfigurationError, ReplayError
from airflow_reliable_messaging.operators.archive_replay import S3ArchiveReplayOperator
from tests.messaging import drain

pytestmark = pytest.mark.localcloud

PREFIX = "audit/v1"
T0 = (datetime.now(UTC) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)


def _archive(s3, bucket, specs, manifests=True):
    """Write objects in the archive layout (and batch manifests, one per 10 records). ``specs``:
    (message_id, minutes after T0, body bytes, source system, message type)."""
    records = []
    for mid, minutes, body, system, kind in specs:
        when = T0 + timedelta(minutes=minutes)
        key = layout.archive_key(PREFIX, when, mid)
        s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"source-system": system, "message-type": kind})
        records.append(ArchivedRecord(
            message_id=mid, bucket=bucket, key=key, size=len(body), sha256=hashlib.sha256(body).hexdigest(),
            content_type="application/json", event_time=isoformat(when), archived_at=isoformat(when + timedelta(minutes=2)),
            source_system=system, message_type=kind,
        ))  # fmt: skip
    if manifests:
        for n in range(0, len(records), 10):
            batch = records[n : n + 10]
            key = layout.batch_manifest_key(PREFIX, T0 + timedelta(minutes=5), f"batch-{n}")
            s3.put_object(Bucket=bucket, Key=key, Body=encode_manifest(batch, layout.s3_uri(bucket, key)))
    return records


@pytest.fixture
def bucket(s3, unique):
    name = unique("archive")
    s3.create_bucket(Bucket=name)
    return name


def _op(bucket, **kwargs):
    defaults = {
        "task_id": "replay", "archive_bucket": bucket, "archive_prefix": PREFIX, "start": T0.isoformat(),
        "end": (T0 + timedelta(hours=2)).isoformat(), "replay_id": "test-replay", "max_messages_per_second": 0,
    }  # fmt: skip
    return S3ArchiveReplayOperator(**{**defaults, **kwargs})


def _checkpoint_key(s3, bucket):
    """The replay's checkpoint object (the only object under ``_replays/`` in these tests)."""
    return s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/_replays/")["Contents"][0]["Key"]


def _bodies(messages):
    return [m["Body"] for m in messages]


def test_interrupted_replay_resumes_without_duplicates(s3, sqs, bucket, unique):
    specs = [(f"msg-{i:03d}", i, json.dumps({"n": i}).encode(), "claims", "collision") for i in range(25)]
    _archive(s3, bucket, specs)
    url = sqs.create_queue(QueueName=unique("target"))["QueueUrl"]  # standard: no dedup safety net
    missing = layout.archive_key(PREFIX, T0 + timedelta(minutes=14), "msg-014")
    body = s3.get_object(Bucket=bucket, Key=missing)["Body"].read()
    s3.delete_object(Bucket=bucket, Key=missing)  # the interruption: msg-014 unreadable mid-way

    with pytest.raises(ReplayError) as exc:
        _op(bucket, target_queue=url).execute({})
    assert "msg-014" in str(exc.value) and "rerun with the same replay_id" in str(exc.value)
    first = drain(sqs, url, 10)
    assert len(first) == 10  # the first batch went out and was checkpointed

    s3.put_object(Bucket=bucket, Key=missing, Body=body)
    result = _op(bucket, target_queue=url).execute({})
    assert (result["sent"], result["sent_this_run"], result["selected"]) == (25, 15, 25)
    rest = drain(sqs, url, 15)
    bodies = [json.loads(b)["n"] for b in _bodies(first + rest)]
    assert bodies == list(range(25))  # each once, in event-time order
    attrs = rest[0]["MessageAttributes"]
    assert attrs["replay_id"]["StringValue"] == "test-replay"
    assert attrs["replayed_message_id"]["StringValue"] == "msg-010"

    # a rerun of a completed replay sends nothing
    again = _op(bucket, target_queue=url).execute({})
    assert again["sent_this_run"] == 0 and drain(sqs, url, 0, timeout=1.0) == []
    # the same replay id with another window is refused, naming the field
    with pytest.raises(ConfigurationError) as exc:
        _op(bucket, target_queue=url, end=(T0 + timedelta(hours=1)).isoformat()).execute({})
    assert exc.value.field == "replay_id"


def test_fifo_topic_target_with_filters_pointers_and_dedup_ids(s3, sns, sqs, bucket, unique):
    big = json.dumps({"blob": "x" * (300 * 1024)}).encode()
    specs = [
        ("a-1", 1, b'{"claim": 1}', "claims", "collision"),
        ("a-2", 2, big, "claims", "collision"),
        ("b-1", 3, b'{"quote": 1}', "quotes", "quote"),
        ("a-3", 4, b"\x89PNG\r\n\x1a\n\x00binary", "claims", "image"),
        ("a-4", 200, b'{"claim": "late"}', "claims", "collision"),  # outside the window
    ]
    _archive(s3, bucket, specs)
    topic = sns.create_topic(Name=unique("t") + ".fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    url = sqs.create_queue(QueueName=unique("q") + ".fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})

    dry = _op(bucket, topic_arn=topic, source_systems="claims", dry_run=True).execute({})
    assert (dry["would_send"], dry["would_send_pointers"], dry["sent"]) == (3, 1, 0)
    assert dry["sample_message_ids"] == ["a-1", "a-2", "a-3"]
    assert drain(sqs, url, 0, timeout=0.5) == []
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/_replays/")  # nothing written

    result = _op(bucket, topic_arn=topic, source_systems=["claims"]).execute({})
    assert (result["sent"], result["pointers"]) == (3, 2)
    got = drain(sqs, url, 3)
    assert got[0]["Body"] == '{"claim": 1}'
    pointer = parse_pointer(got[1]["Body"])
    assert (pointer.bucket, pointer.key) == (bucket, layout.archive_key(PREFIX, T0 + timedelta(minutes=2), "a-2"))
    assert got[1]["MessageAttributes"]["ExtendedPayloadSize"]["StringValue"] == str(len(big))
    assert parse_pointer(got[2]["Body"]).key.endswith("/a-3")  # binary payloads go by reference
    assert {m["MessageAttributes"]["replay_id"]["StringValue"] for m in got} == {"test-replay"}
    checkpoint = _checkpoint_key(s3, bucket)
    assert s3.head_object(Bucket=bucket, Key=checkpoint)["ServerSideEncryption"] == "AES256"


def test_archive_without_manifests_is_listed(s3, sqs, bucket, unique):
    specs = [(f"seed-{i}", i * 7, f"payload {i}".encode(), "sys-a" if i % 2 else "sys-b", "text") for i in range(6)]
    _archive(s3, bucket, specs, manifests=False)
    url = sqs.create_queue(QueueName=unique("q") + ".fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    result = _op(bucket, target_queue=url, message_ids="seed-1,seed-4,seed-5", source_systems="sys-a").execute({})
    assert result["discovery"] == "listing" and result["sent"] == 2
    got = drain(sqs, url, 2)
    assert _bodies(got) == ["payload 1", "payload 5"]


@pytest.mark.parametrize("manifests", [True, False])
def test_an_open_window_from_long_ago_lists_the_archive_in_one_range(s3, sqs, bucket, unique, manifests):
    """A start two years back and no end: the listing is one ranged ListObjectsV2 per kind of
    folder, not one request per hour of the window (17,000+ here)."""
    from benchmarks import metering

    specs = [(f"old-{i}", i * 11, f"payload {i}".encode(), "claims", "t") for i in range(5)]
    _archive(s3, bucket, specs, manifests=manifests)
    url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    metering.install()
    with metering.Meter() as meter:
        result = _op(bucket, target_queue=url, start=(T0 - timedelta(days=730)).isoformat(), end=None).execute({})
    assert result["sent"] == 5 and result["discovery"] == ("1 manifests" if manifests else "listing")
    assert meter.count("ListObjectsV2") <= 3
    assert sorted(_bodies(drain(sqs, url, 5))) == [f"payload {i}" for i in range(5)]


def test_invalid_arguments_name_the_field(bucket):
    with pytest.raises(ConfigurationError) as exc:
        _op(bucket, target_queue="q", start="not a date").execute({})
    assert exc.value.field == "start"
    with pytest.raises(ConfigurationError) as exc:
        _op(bucket).execute({})
    assert exc.value.field == "topic_arn"
    with pytest.raises(ConfigurationError) as exc:
        _op("Bad_Bucket", target_queue="q").execute({})
    assert exc.value.field == "archive_bucket"
    with pytest.raises(ConfigurationError) as exc:
        _op(bucket, target_queue="q", replay_id=None).execute({})
    assert exc.value.field == "replay_id"
    # checked before anything is read or sent (before: the rate failed after the first batch was sent)
    for kwargs, field in [({"target_queue": "no such/queue"}, "target_queue"),
                          ({"target_queue": "q", "max_messages_per_second": "fast"}, "max_messages_per_second"),
                          ({"target_queue": "q", "max_messages_per_second": -5}, "max_messages_per_second"),
                          ({"target_queue": "q", "archive_delay_hours": 1.5}, "archive_delay_hours")]:  # fmt: skip
        with pytest.raises(ConfigurationError) as exc:
            _op(bucket, aws_conn_id="no_such_connection", **kwargs).execute({})
        assert exc.value.field == field


def test_rate_limit_paces_the_batches(s3, sqs, bucket, unique):
    import time

    _archive(s3, bucket, [(f"r-{i:02d}", i, b"{}", "claims", "t") for i in range(20)])
    url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    began = time.monotonic()
    result = _op(bucket, target_queue=url, max_messages_per_second=20).execute({})
    assert result["sent"] == 20
    assert time.monotonic() - began >= 0.9  # 20 messages at 20/s: two batches, about a second


def test_a_data_protection_policy_masks_replayed_messages_without_breaking_them(s3, sqs, bucket, unique):
    """Replayed payloads are de-identified as documents: JSON stays JSON (a masked number becomes a
    string), text is masked as text, a payload above the size limit goes as a pointer to a masked
    copy (never to the original), and a binary payload, which cannot be searched, is not sent."""
    card = "4539894458086459"
    big = json.dumps({"card": int(card), "filler": "x" * 300_000}).encode()
    _archive(s3, bucket, [
        ("m-json", 1, json.dumps({"amount": 12.5, "card": int(card), "to": "ann@example.com"}).encode(), "claims", "t"),
        ("m-text", 2, b"contact ann@example.com", "claims", "t"),
        ("m-binary", 3, b"\xff\xfe\x00\x01", "claims", "t"),
        ("m-big", 4, big, "claims", "t"),
    ])  # fmt: skip
    url = sqs.create_queue(QueueName=unique("masked"))["QueueUrl"]
    policy = {"Version": "2021-06-01", "Statement": [{"DataIdentifier": [
        "arn:aws:dataprotection::aws:data-identifier/CreditCardNumber", "arn:aws:dataprotection::aws:data-identifier/EmailAddress"],
        "Operation": {"Deidentify": {"MaskConfig": {"MaskWithCharacter": "#"}}}}]}  # fmt: skip
    with pytest.raises(ReplayError, match=r"m-binary \(NotDeidentifiable\)"):
        _op(bucket, target_queue=url, data_protection_policy=policy).execute({})
    got = {m["MessageAttributes"]["replayed_message_id"]["StringValue"]: m["Body"] for m in drain(sqs, url, 3)}
    assert set(got) == {"m-json", "m-text", "m-big"}
    assert json.loads(got["m-json"]) == {"amount": 12.5, "card": "#" * 16, "to": "#" * 15}
    assert got["m-text"] == "contact " + "#" * 15
    pointer = parse_pointer(got["m-big"])
    assert pointer.key != layout.archive_key(PREFIX, T0 + timedelta(minutes=4), "m-big") and "/_replays/" in pointer.key
    copy = json.loads(s3.get_object(Bucket=pointer.bucket, Key=pointer.key)["Body"].read())
    assert copy["card"] == "#" * 16 and card not in json.dumps(copy)
    original = s3.get_object(Bucket=bucket, Key=layout.archive_key(PREFIX, T0 + timedelta(minutes=4), "m-big"))["Body"].read()
    assert original == big  # the archive itself is never changed


def _forged_manifest(s3, bucket):
    """A manifest in the archive's manifest folder naming a private object outside the archive prefix."""
    secret = b'{"secret": "payroll"}'
    s3.put_object(Bucket=bucket, Key="private/payroll.json", Body=secret)
    forged = ArchivedRecord(
        message_id="forged-1", bucket=bucket, key="private/payroll.json", size=len(secret),
        sha256=hashlib.sha256(secret).hexdigest(), content_type="application/json",
        event_time=isoformat(T0 + timedelta(minutes=2)), archived_at=isoformat(T0 + timedelta(minutes=3)),
    )  # fmt: skip
    key = layout.batch_manifest_key(PREFIX, T0 + timedelta(minutes=6), "forged")
    s3.put_object(Bucket=bucket, Key=key, Body=encode_manifest([forged], layout.s3_uri(bucket, key)))
    return key


def test_a_forged_manifest_never_makes_the_replay_publish_objects_outside_the_archive(s3, sqs, bucket, unique):
    """Issue 13: a manifest under the archive's manifest prefix naming another key of the bucket
    (outside the archive prefix) is refused; the private object is never sent."""
    _archive(s3, bucket, [("msg-001", 1, b'{"ok": 1}', "claims", "claim")])
    _forged_manifest(s3, bucket)
    url = sqs.create_queue(QueueName=unique("target"))["QueueUrl"]
    result = _op(bucket, target_queue=url).execute({})  # reported, and the archive's own records replayed
    assert result["sent"] == 1 and "outside the archive prefix" in result["bad_manifests"][0]["reason"]
    with pytest.raises(ReplayError, match="outside the archive prefix"):
        _op(bucket, target_queue=url, discovery="manifests", replay_id="manifests-only").execute({})
    assert not [m for m in drain(sqs, url, 0) if "payroll" in m["Body"]]


def test_a_manifest_line_of_the_window_naming_another_records_object_is_refused(s3, sqs, bucket, unique):
    """A line whose message id and event time are the window's but whose key is another record's
    (here one archived a year before the window) made the replay publish that object in the line's
    name: the key must be filed under the line's own message id and event time."""
    _archive(s3, bucket, [("msg-001", 1, b'{"ok": 1}', "claims", "claim")])
    old_when = T0 - timedelta(days=365)
    old_key = layout.archive_key(PREFIX, old_when, "old-record")
    secret = b'{"secret": "last year"}'
    s3.put_object(Bucket=bucket, Key=old_key, Body=secret)
    forged = ArchivedRecord(
        message_id="in-window-1", bucket=bucket, key=old_key, size=len(secret), sha256=hashlib.sha256(secret).hexdigest(),
        content_type="application/json", event_time=isoformat(T0 + timedelta(minutes=2)),
        archived_at=isoformat(T0 + timedelta(minutes=3)),
    )  # fmt: skip
    manifest = layout.batch_manifest_key(PREFIX, T0 + timedelta(minutes=6), "forged-time")
    s3.put_object(Bucket=bucket, Key=manifest, Body=encode_manifest([forged], layout.s3_uri(bucket, manifest)))
    url = sqs.create_queue(QueueName=unique("target"))["QueueUrl"]

    result = _op(bucket, target_queue=url).execute({})

    assert result["sent"] == 1, result
    (bad,) = result["bad_manifests"]
    assert bad["key"] == manifest and "key names message 'old-record', not its message_id 'in-window-1'" in bad["reason"]
    assert _bodies(drain(sqs, url, 1)) == ['{"ok": 1}']


@pytest.mark.parametrize("tampered", [b'{"amount": 999}', b'{"amount": 100, "to": "elsewhere"}'])  # same size; longer
def test_an_object_that_is_not_what_its_manifest_line_says_is_never_replayed_in_its_name(s3, sqs, bucket, unique, tampered):
    """A per-record object read for a replay is checked against its manifest line's SHA-256 and
    size, as a bundled record's bytes are: an object replaced since it was archived (or a line
    that describes other bytes) must not be re-published as that record. The replay stops naming
    the message and the object, as for a bundle that does not check."""
    records = _archive(s3, bucket, [("msg-001", 1, b'{"ok": 1}', "claims", "claim"), ("msg-002", 2, b'{"amount": 100}', "claims", "claim")])
    s3.put_object(Bucket=bucket, Key=records[1].key, Body=tampered)
    url = sqs.create_queue(QueueName=unique("target"))["QueueUrl"]

    with pytest.raises(ReplayError, match="msg-002") as failure:
        _op(bucket, target_queue=url).execute({})

    assert records[1].key in str(failure.value) and "manifest line" in str(failure.value)
    assert tampered.decode() not in _bodies(drain(sqs, url, 1))


def test_an_unreadable_manifest_is_reported_alone_and_the_window_still_replayed(s3, sqs, bucket, unique):
    """A manifest S3 will not serve (here in Glacier: GetObject answers InvalidObjectState,
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html) failed the whole replay
    with the botocore error; it is a bad manifest like any other: reported, the window listed."""
    _archive(s3, bucket, [("msg-001", 1, b'{"ok": 1}', "claims", "claim")])
    cold = layout.batch_manifest_key(PREFIX, T0 + timedelta(minutes=7), "cold")
    s3.put_object(Bucket=bucket, Key=cold, Body=b"{}\n", StorageClass="GLACIER")
    url = sqs.create_queue(QueueName=unique("target"))["QueueUrl"]

    result = _op(bucket, target_queue=url).execute({})

    assert result["sent"] == 1 and "listed" in result["discovery"], result
    (bad,) = result["bad_manifests"]
    assert bad["key"] == cold and "cannot be read (InvalidObjectState)" in bad["reason"], bad
    assert _bodies(drain(sqs, url, 1)) == ['{"ok": 1}']


def test_an_object_at_a_manifest_key_is_read_up_to_the_manifest_bound(s3, sqs, bucket, unique):
    """Whatever is at a manifest key was read whole into memory (the load stops at 256 MiB): an
    object of 256 MiB + 1 byte of blank lines was taken as an empty manifest, after holding all of
    it. It is read up to the bound and reported."""
    bound = 256 * 1024 * 1024  # (the load's and the replay's: domain/manifest.py MAX_MANIFEST_BYTES)
    _archive(s3, bucket, [("msg-001", 1, b'{"ok": 1}', "claims", "claim")])
    huge = layout.batch_manifest_key(PREFIX, T0 + timedelta(minutes=8), "huge")
    s3.put_object(Bucket=bucket, Key=huge, Body=b"\n" * (bound + 1))
    url = sqs.create_queue(QueueName=unique("target"))["QueueUrl"]

    result = _op(bucket, target_queue=url).execute({})

    assert result["sent"] == 1, result
    (bad,) = result["bad_manifests"]
    assert bad == {"key": huge, "reason": f"larger than {bound} bytes"}


# -- hostile archives, checkpoints and empty selections (issue 14's leftovers) -----------------------
def test_keys_outside_the_archive_layout_are_counted_and_reported(s3, sqs, bucket, unique):
    """A listed archive may hold keys the archive never writes (notes, a key with a space, an
    impossible time): they are not replayed, but counted and named in the result and the log.
    (Before: skipped silently.)"""
    _archive(s3, bucket, [(f"seed-{i}", i, f"payload {i}".encode(), "sys", "t") for i in range(3)], manifests=False)
    hour = layout.data_hour_prefix(PREFIX, T0)
    strays = [hour + "notes.txt", hour + "00/01/bad id", hour + "61/00/msg-x"]
    for key in strays:
        s3.put_object(Bucket=bucket, Key=key, Body=b"stray")
    url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    result = _op(bucket, target_queue=url).execute({})
    assert (result["discovery"], result["sent"]) == ("listing", 3)
    assert result["not_in_layout"] == {"count": 3, "sample": sorted(strays)}
    assert any("3 key(s) under the archive prefix are not in the archive layout" in w for w in result["warnings"])
    assert sorted(_bodies(drain(sqs, url, 3))) == [f"payload {i}" for i in range(3)]


def test_a_bad_manifest_is_reported_alone_and_its_records_are_still_replayed(s3, sqs, bucket, unique):
    """One unreadable and one forged manifest among good ones: each is reported with its reason,
    the window is listed as well so the records only they named are still found, and everything
    else is replayed (nothing lost). With discovery="manifests" (no listing) the replay sends the
    rest and then fails, naming them. (Before: the first bad manifest failed the whole replay.)"""
    records = _archive(s3, bucket, [(f"m-{i:02d}", i, json.dumps({"n": i}).encode(), "claims", "t") for i in range(12)])
    # the second manifest (m-10, m-11) is truncated: its two records are named by nothing else
    second = layout.batch_manifest_key(PREFIX, T0 + timedelta(minutes=5), "batch-10")
    s3.put_object(Bucket=bucket, Key=second, Body=b'{"message_id": "m-10", "bucket"')
    forged_key = _forged_manifest(s3, bucket)
    url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]

    with pytest.raises(ReplayError, match="2 manifest") as exc:
        _op(bucket, target_queue=url, discovery="manifests", replay_id="only-manifests").execute({})
    assert second in str(exc.value) and forged_key in str(exc.value)
    assert sorted(json.loads(b)["n"] for b in _bodies(drain(sqs, url, 10))) == list(range(10))  # the rest went out

    result = _op(bucket, target_queue=url, source_systems="claims").execute({})
    assert result["sent"] == 12 and "listed" in result["discovery"]
    assert [b["key"] for b in result["bad_manifests"]] == sorted([second, forged_key])
    assert all(b["reason"] for b in result["bad_manifests"])
    assert any("outside the archive prefix" in b["reason"] for b in result["bad_manifests"])
    got = drain(sqs, url, 12)
    assert sorted(json.loads(b)["n"] for b in _bodies(got)) == list(range(12))
    assert not [m for m in got if "payroll" in m["Body"]]
    assert {m["MessageAttributes"]["source_system"]["StringValue"] for m in got} == {"claims"}
    assert len(records) == 12


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda doc: b"{not json", "not a checkpoint"),
        (lambda doc: json.dumps([doc]).encode(), "not a checkpoint"),
        (lambda doc: json.dumps({**doc, "sent": "lots"}).encode(), "sent"),
        (lambda doc: json.dumps({**doc, "extra": 1}).encode(), "extra"),
        (lambda doc: json.dumps({**doc, "replay_id": "another-replay"}).encode(), "replay_id"),
        # a forged "last": beyond the window, naming no message of the replay, or ahead of what was sent
        (lambda doc: json.dumps({**doc, "last": ["2999-01-01T00:00:00.000Z", "zzz"]}).encode(), "last"),
        (lambda doc: json.dumps({**doc, "last": [doc["last"][0], "not-a-message"]}).encode(), "last"),
        (lambda doc: json.dumps({**doc, "last": ["x", "m-05"]}).encode(), "last"),
        (lambda doc: json.dumps({**doc, "completed": False, "sent": 2}).encode(), "sent"),
    ],
)
def test_a_corrupt_or_forged_checkpoint_is_refused_and_nothing_is_skipped(s3, sqs, bucket, unique, mutate, why):
    """The checkpoint is read back from S3: only one in the form this replay writes, for this
    replay_id, whose "last" is a message of the selection the sent count reaches, is trusted; any
    other is refused naming its key (before: a corrupt one crashed, a forged "last" skipped messages)."""
    from airflow_reliable_messaging.domain import replay as rp

    _archive(s3, bucket, [(f"m-{i:02d}", i, json.dumps({"n": i}).encode(), "claims", "t") for i in range(8)])
    url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    _op(bucket, target_queue=url, replay_id="ck-test", end=(T0 + timedelta(minutes=5, seconds=30)).isoformat()).execute({})
    assert len(drain(sqs, url, 6)) == 6
    key = rp.checkpoint_key(PREFIX, "ck-test")
    doc = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert doc["last"][1] == "m-05"
    s3.put_object(Bucket=bucket, Key=key, Body=mutate(doc))
    with pytest.raises(ReplayError, match=why) as exc:
        _op(bucket, target_queue=url, replay_id="ck-test", end=(T0 + timedelta(minutes=5, seconds=30)).isoformat()).execute({})
    assert key in str(exc.value)
    assert drain(sqs, url, 0, timeout=0.5) == []


def test_an_empty_selection_is_loud(s3, sqs, bucket, unique):
    """A window, prefix or filter that selects nothing: the dry run says so in a warning; a real
    run fails, naming what it looked at (a replay of nothing is a mistaken request, not a success)."""
    _archive(s3, bucket, [("m-1", 1, b"{}", "claims", "t")])
    url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    dry = _op(bucket, target_queue=url, source_systems="no-such-system", dry_run=True).execute({})
    assert dry["would_send"] == 0 and dry["selected"] == 0
    assert any("nothing to replay" in w for w in dry["warnings"])
    with pytest.raises(ReplayError, match="nothing to replay") as exc:
        _op(bucket, target_queue=url, source_systems="no-such-system").execute({})
    assert "no-such-system" in str(exc.value) and "1 manifests" in str(exc.value)
    with pytest.raises(ReplayError, match="nothing to replay"):
        _op(bucket, target_queue=url, archive_prefix="audit/v2").execute({})
    assert drain(sqs, url, 0, timeout=0.5) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dry_run", ""),
        ("dry_run", "maybe"),
        ("max_messages_per_second", None),
        ("max_messages_per_second", "nan"),
        ("max_messages_per_second", ""),
    ],
)
def test_a_rendered_empty_or_not_a_number_is_refused(bucket, field, value):
    """Before: dry_run "" ran for real, "False" ran a dry run; a rate of None, "" or "nan" sent unpaced."""
    with pytest.raises(ConfigurationError) as exc:
        _op(bucket, target_queue="q", aws_conn_id="no_such_connection", **{field: value}).execute({})
    assert exc.value.field == field


def test_a_rendered_false_runs_for_real(s3, sqs, bucket, unique):
    _archive(s3, bucket, [("m-1", 1, b"{}", "claims", "t")])
    url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    assert _op(bucket, target_queue=url, dry_run="False").execute({})["sent"] == 1
    assert len(drain(sqs, url, 1)) == 1


@pytest.mark.parametrize("end", ["None", "", " null "])
def test_an_end_that_rendered_unset_means_until_now(s3, sqs, bucket, unique, end):
    """A templated end that rendered "None" (a DAG without native rendering) or "" is "until now",
    on the first attempt and on a retry (the checkpoint pins the first attempt's now). Before:
    "None" and "null" failed as "end is required"."""
    _archive(s3, bucket, [("m-1", 1, b"{}", "claims", "t")])
    url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    first = _op(bucket, target_queue=url, end=end, replay_id="open-end").execute({})
    again = _op(bucket, target_queue=url, end=end, replay_id="open-end").execute({})
    assert first["sent"] == again["sent"] == 1 and again["sent_this_run"] == 0 and first["window"] == again["window"]
    assert len(drain(sqs, url, 1)) == 1


# -- workers -------------------------------------------------------------------------------------------
def _drain_sent(sqs, url, expected):
    """Receive and delete everything: [(body, group id, SentTimestamp in ms)] in the order received."""
    import time

    out, deadline = [], time.monotonic() + 20
    while time.monotonic() < deadline:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"],
                                    WaitTimeSeconds=0).get("Messages", [])  # fmt: skip
        if not batch and len(out) >= expected:
            break
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            out.append((m["Body"], m["Attributes"].get("MessageGroupId"), int(m["Attributes"]["SentTimestamp"])))
    return out


def test_replay_workers_send_every_record_once_at_the_same_time(s3, sqs, bucket, unique, faults):
    """``workers=4`` to a standard queue: every record arrives once, the batches went out at the same
    time (each SendMessageBatch is held 0.5 s at the emulator: one worker's six batches arrive over
    at least 2.5 s, four workers' within less), and the requests are those of one worker (the same
    sends, object reads and checkpoint writes)."""
    from local_cloud.faults_client import rule

    _archive(s3, bucket, [(f"w-{i:03d}", i, json.dumps({"n": i}).encode(), "claims", "t") for i in range(60)])
    runs = {}
    for workers in (1, 4):
        url = sqs.create_queue(QueueName=unique("target"))["QueueUrl"]
        extra = {"workers": workers} if workers > 1 else {}
        with faults.injecting([rule("delay", "sqs", "SendMessageBatch", delay=0.5)]):
            result = _op(bucket, target_queue=url, replay_id=f"workers-{workers}", **extra).execute({})
            calls = faults.stats()["calls"]
        got = _drain_sent(sqs, url, 60)
        assert (result["sent"], result["failed"]) == (60, 0), result
        assert sorted(json.loads(b)["n"] for b, _, _ in got) == list(range(60))  # each once
        runs[workers] = (result, calls, max(t for *_, t in got) - min(t for *_, t in got))
    (one, one_calls, one_span), (four, four_calls, four_span) = runs[1], runs[4]
    assert four["workers"] == 4 and "workers" not in one  # the default: one worker, as before
    assert one_span >= 2500 > four_span, (one_span, four_span)
    for call in ("sqs:SendMessageBatch", "s3:GetObject", "s3:PutObject"):
        assert four_calls.get(call) == one_calls.get(call), (call, one_calls, four_calls)
    assert four_calls["sqs:SendMessageBatch"] == 6 and four_calls["s3:PutObject"] == 7  # a checkpoint per batch, and the last


def test_replay_workers_keep_each_fifo_group_in_order(s3, sqs, bucket, unique, faults):
    """To a FIFO queue, three workers split the message groups (six source systems, two each): each
    group arrives in event-time order, every record once, and the groups went out at the same time
    (six batches held 0.6 s each at the emulator arrive over at least 3 s one after another).
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-queues-understanding-logic.html"""
    from local_cloud.faults_client import rule

    systems = ["claims", "quotes", "payments", "policies", "billing", "agents"]
    _archive(s3, bucket, [(f"{systems[i % 6]}-{i // 6:02d}", i, json.dumps({"n": i}).encode(), systems[i % 6], "t")
                          for i in range(60)])  # fmt: skip
    url = sqs.create_queue(QueueName=unique("q") + ".fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    with faults.injecting([rule("delay", "sqs", "SendMessageBatch", delay=0.6)]):
        result = _op(bucket, target_queue=url, workers=3).execute({})
        calls = faults.stats()["calls"]
    assert (result["sent"], result["failed"], result["workers"]) == (60, 0, 3), result
    assert calls["sqs:SendMessageBatch"] == 6  # two groups of 10 per worker: full batches, as one worker's
    got = _drain_sent(sqs, url, 60)
    by_group: dict[str, list[int]] = {}
    for body, group, _ in got:
        by_group.setdefault(group, []).append(json.loads(body)["n"])
    assert by_group == {s: [i for i in range(60) if systems[i % 6] == s] for s in systems}
    span = max(t for *_, t in got) - min(t for *_, t in got)
    assert span < 3000, span


def test_replay_workers_checkpoint_only_what_is_done_without_a_gap(s3, sqs, bucket, unique):
    """Three workers, the second batch's object unreadable: the batch after it may already be sent,
    but the checkpoint stops before the gap, so the rerun sends everything from the gap on — nothing
    is skipped (records sent beyond the gap go again: at least once) — and its counts reach 25."""
    specs = [(f"msg-{i:03d}", i, json.dumps({"n": i}).encode(), "claims", "collision") for i in range(25)]
    _archive(s3, bucket, specs)
    url = sqs.create_queue(QueueName=unique("target"))["QueueUrl"]
    missing = layout.archive_key(PREFIX, T0 + timedelta(minutes=14), "msg-014")
    body = s3.get_object(Bucket=bucket, Key=missing)["Body"].read()
    s3.delete_object(Bucket=bucket, Key=missing)

    with pytest.raises(ReplayError, match="msg-014"):
        _op(bucket, target_queue=url, workers=3).execute({})
    first = [json.loads(b)["n"] for b, _, _ in _drain_sent(sqs, url, 10)]
    assert set(range(10)) <= set(first) and not set(range(10, 20)) & set(first)
    key = _checkpoint_key(s3, bucket)
    checkpoint = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert (checkpoint["sent"], checkpoint["last"][1], checkpoint["completed"]) == (10, "msg-009", False)

    s3.put_object(Bucket=bucket, Key=missing, Body=body)
    result = _op(bucket, target_queue=url, workers=3).execute({})
    assert (result["sent"], result["sent_this_run"]) == (25, 15)
    rest = [json.loads(b)["n"] for b, _, _ in _drain_sent(sqs, url, 15)]
    assert sorted(rest) == list(range(10, 25))
    assert sorted(set(first) | set(rest)) == list(range(25))


@pytest.mark.parametrize("workers", [1, 3])
def test_a_rerun_stopped_while_retrying_many_refused_messages_still_retries_the_rest(s3, sqs, bucket, unique, workers):
    """More refusals than one batch (15): a rerun retries them first, ten at a time. Stopped after
    the first ten (the next batch's object unreadable), its checkpoint must still list the five not
    retried yet — they were sent nowhere, and ``last`` is already past them. (Before, with one
    worker, each batch's checkpoint held only that run's new refusals: the five were forgotten and
    the next rerun reported the replay complete with 20 of 25 sent.)"""
    binary = [(f"msg-{i:03d}", i, b"\xff\xfe" + bytes([i]), "claims", "t") for i in range(15)]  # refused by a policy
    text = [(f"msg-{i:03d}", i, json.dumps({"n": i}).encode(), "claims", "t") for i in range(15, 25)]
    _archive(s3, bucket, binary + text)
    url = sqs.create_queue(QueueName=unique("target"))["QueueUrl"]
    policy = {"Version": "2021-06-01", "Statement": [{"DataIdentifier": ["arn:aws:dataprotection::aws:data-identifier/EmailAddress"],
              "Operation": {"Deidentify": {"MaskConfig": {"MaskWithCharacter": "#"}}}}]}  # fmt: skip
    sent: list[str] = []

    def received(expected):
        got = [m["MessageAttributes"]["replayed_message_id"]["StringValue"] for m in drain(sqs, url, expected)]
        sent.extend(got)
        return got

    with pytest.raises(ReplayError, match=r"15 message\(s\) refused"):
        _op(bucket, target_queue=url, data_protection_policy=policy, workers=workers).execute({})
    assert sorted(received(10)) == [f"msg-{i:03d}" for i in range(15, 25)]

    # The rerun without the policy sends the binary records; msg-012 (its second batch) is unreadable.
    missing = layout.archive_key(PREFIX, T0 + timedelta(minutes=12), "msg-012")
    body = s3.get_object(Bucket=bucket, Key=missing)["Body"].read()
    s3.delete_object(Bucket=bucket, Key=missing)
    with pytest.raises(ReplayError, match="msg-012"):
        _op(bucket, target_queue=url, workers=workers).execute({})
    assert sorted(received(10)) == [f"msg-{i:03d}" for i in range(10)]
    key = _checkpoint_key(s3, bucket)
    checkpoint = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert sorted(f["message_id"] for f in checkpoint["failed"]) == [f"msg-{i:03d}" for i in range(10, 15)], checkpoint

    s3.put_object(Bucket=bucket, Key=missing, Body=body)
    result = _op(bucket, target_queue=url, workers=workers).execute({})
    assert (result["sent"], result["sent_this_run"]) == (25, 5), result
    assert sorted(received(5)) == [f"msg-{i:03d}" for i in range(10, 15)]
    assert sorted(sent) == [f"msg-{i:03d}" for i in range(25)]  # each once, at the target
