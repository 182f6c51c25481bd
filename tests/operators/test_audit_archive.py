"""AuditArchiveOperator against the local cloud (moto server on loopback): real S3, SQS, SNS."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from functools import cached_property

import pytest

from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain import claim_check as cc
from airflow_reliable_messaging.domain.manifest import decode_manifest
from airflow_reliable_messaging.exceptions import ConfigurationError
from airflow_reliable_messaging.operators.audit_archive import ArchiveHaltedError, AuditArchiveOperator

PREFIX = "audit/v1"


def seed_body(
    payload: bytes, txn: str = "tx-1", when: str = "2021-07-03 16:21:12.357246", message_type: str = "imageB64", **extra
) -> str:
    meta = {"messageType": message_type, "sourceSystemID": "claims", "sourceTransactionID": txn, "dateTime": when}
    return json.dumps({"messageMetaData": meta, "messagePayload": base64.b64encode(payload).decode(), **extra})


@dataclass
class ArchiveEnv:
    aws: object
    queue_url: str
    dlq_url: str
    bucket: str
    payload_bucket: str
    topic_arn: str
    observer_url: str  # raw subscription of the notification topic

    def operator(self, **overrides) -> AuditArchiveOperator:
        kwargs = {
            "task_id": "archive",
            "queue_url": self.queue_url,
            "bucket": self.bucket,
            "prefix": PREFIX,
            "topic_arn": self.topic_arn,
            "dead_letter_queue_url": self.dlq_url,
            "wait_time_seconds": 0,
            "visibility_timeout": 2,
            **overrides,
        }
        return AuditArchiveOperator(**kwargs)

    def send(self, body: str, **kwargs) -> str:
        return self.aws("sqs").send_message(QueueUrl=self.queue_url, MessageBody=body, **kwargs)["MessageId"]

    def drain(self, queue_url: str, wait: float = 0) -> list[dict]:
        sqs = self.aws("sqs")
        out, deadline = [], time.monotonic() + wait
        while True:
            got = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"]
            ).get("Messages", [])
            out.extend(got)
            if not got and time.monotonic() >= deadline:
                return out
            if not got:
                time.sleep(0.2)

    def depth(self, queue_url: str | None = None) -> int:
        attrs = self.aws("sqs").get_queue_attributes(
            QueueUrl=queue_url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attrs.values())

    def keys(self, prefix: str = PREFIX) -> list[str]:
        pages = self.aws("s3").get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for p in pages for o in p.get("Contents", []))

    def data_keys(self) -> list[str]:
        return [k for k in self.keys() if layout.parse_archive_key(PREFIX, k)]

    def manifests(self) -> list:
        s3 = self.aws("s3")
        lines = []
        for key in self.keys(f"{PREFIX}/{layout.BATCH_MANIFESTS}/"):
            lines.extend(decode_manifest(s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()))
        return lines

    def get(self, key: str) -> dict:
        return self.aws("s3").get_object(Bucket=self.bucket, Key=key)


@pytest.fixture
def archive_env(aws, unique) -> ArchiveEnv:
    sqs, s3, sns = aws("sqs"), aws("s3"), aws("sns")
    queue_url = sqs.create_queue(QueueName=unique("audit-in"))["QueueUrl"]
    dlq_url = sqs.create_queue(QueueName=unique("audit-dlq"))["QueueUrl"]
    bucket, payload_bucket = unique("archive"), unique("payloads")
    s3.create_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=payload_bucket)
    topic_arn = sns.create_topic(Name=unique("audit-events"))["TopicArn"]
    observer_url = sqs.create_queue(QueueName=unique("observer"))["QueueUrl"]
    observer_arn = sqs.get_queue_attributes(QueueUrl=observer_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=observer_arn, Attributes={"RawMessageDelivery": "true"})
    return ArchiveEnv(aws, queue_url, dlq_url, bucket, payload_bucket, topic_arn, observer_url)


def failure_of(message: dict) -> dict:
    return json.loads(message["MessageAttributes"]["ArchiveFailure"]["StringValue"])


# -- the happy paths --------------------------------------------------------------------------------
def test_inline_enveloped_claim_check_and_plain_records_are_archived(archive_env):
    env = archive_env
    sqs, sns, s3 = env.aws("sqs"), env.aws("sns"), env.aws("s3")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    seed_id = env.send(seed_body(png), MessageSystemAttributes={
        "AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"}
    })  # fmt: skip
    # an SNS envelope: the source queue subscribed to the producers' topic without raw delivery
    in_topic = sns.create_topic(Name=env.queue_url.rsplit("/", 1)[1] + "-topic")["TopicArn"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=env.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=in_topic, Protocol="sqs", Endpoint=queue_arn)
    sns_id = sns.publish(TopicArn=in_topic, Message=seed_body(b'{"claim": 7}', txn="tx-2", message_type="claimJson"))["MessageId"]
    # a claim-check pointer (extended-client format) to a payload in another bucket
    big = os.urandom(300_000)
    s3.put_object(Bucket=env.payload_bucket, Key="offloaded/1", Body=big)
    pointer_id = env.send(
        cc.S3Pointer(env.payload_bucket, "offloaded/1").to_body(),
        MessageAttributes={cc.SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": str(len(big))}},
    )
    plain_id = env.send("a plain text audit line")

    report = env.operator().execute({})

    assert report["received"] == 4 and report["archived"] == 4 and report["already_archived"] == 0
    assert report["quarantined"] == report["dead_lettered"] == report["retained"] == 0
    assert report["bytes"] == len(png) + len(b'{"claim": 7}') + len(big) + len(b"a plain text audit line")
    assert report["manifests"] == 1 and report["notifications"] == 16 and report["stopped"] == "empty"
    assert env.depth() == 0

    keys = env.data_keys()
    assert len(keys) == 4
    by_id = {layout.parse_archive_key(PREFIX, k).message_id: k for k in keys}
    seed_key = by_id[seed_id]
    assert seed_key == f"{PREFIX}/2021/07/03/16/21/12/{seed_id}"
    obj = env.get(seed_key)
    assert obj["Body"].read() == png
    assert obj["ServerSideEncryption"] == "AES256" and obj["ContentType"] == "application/octet-stream"
    meta = obj["Metadata"]
    assert meta["sha256"] == hashlib.sha256(png).hexdigest() and meta["size"] == str(len(png))
    assert meta["source-system"] == "claims" and meta["source-transaction-id"] == "tx-1" and meta["message-type"] == "imageB64"
    assert meta["trace-header"].startswith("Root=1-5759e988") and meta["received-at"] and meta["archived-at"]

    enveloped = env.get(by_id[sns_id])
    assert enveloped["Body"].read() == b'{"claim": 7}' and enveloped["ContentType"] == "application/json"
    assert enveloped["Metadata"]["envelope"] == "sns"

    copied = s3.head_object(Bucket=env.bucket, Key=by_id[pointer_id], ChecksumMode="ENABLED")
    assert copied["ContentLength"] == len(big) and copied["ServerSideEncryption"] == "AES256"
    assert copied["Metadata"]["claim-check"] == f"s3://{env.payload_bucket}/offloaded/1"
    assert base64.b64decode(copied["ChecksumSHA256"]).hex() == hashlib.sha256(big).hexdigest()
    assert env.get(by_id[pointer_id])["Body"].read() == big
    assert env.get(by_id[plain_id])["Body"].read() == b"a plain text audit line"

    lines = {r.message_id: r for r in env.manifests()}
    assert set(lines) == {seed_id, sns_id, pointer_id, plain_id}
    assert lines[pointer_id].sha256 == hashlib.sha256(big).hexdigest() and lines[pointer_id].size == len(big)
    assert lines[seed_id].sha256 == meta["sha256"] and lines[seed_id].event_time == "2021-07-03T16:21:12.357246Z"
    assert lines[sns_id].content_type == "application/json" and lines[sns_id].source_transaction_id == "tx-2"

    notes = env.drain(env.observer_url)
    kinds = Counter(m["MessageAttributes"]["event"]["StringValue"] for m in notes)
    assert kinds == {"received": 4, "archive_stored": 4, "metadata_stored": 4, "archive_complete": 4}
    complete = [json.loads(m["Body"]) for m in notes if json.loads(m["Body"])["event"] == "archive_complete"]
    refs = {c["messageID"]: c["storageContext"]["S3Reference"]["key"] for c in complete}
    assert refs == by_id
    assert all(c["storageContext"]["metaDataReference"]["manifest"].startswith(f"s3://{env.bucket}/") for c in complete)
    assert report["prefixes"] and all(p.startswith(f"s3://{env.bucket}/{PREFIX}/") for p in report["prefixes"])


def test_claim_check_pointer_inside_an_sns_envelope(archive_env):
    """As the SNS extended client publishes it: pointer body, ExtendedPayloadSize in SNS shape."""
    env = archive_env
    sqs, sns, s3 = env.aws("sqs"), env.aws("sns"), env.aws("s3")
    in_topic = sns.create_topic(Name=env.queue_url.rsplit("/", 1)[1] + "-large")["TopicArn"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=env.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=in_topic, Protocol="sqs", Endpoint=queue_arn)  # not raw: SNS envelopes
    payload = b'{"large": "' + b"y" * 280_000 + b'"}'
    s3.put_object(Bucket=env.payload_bucket, Key="sns/large", Body=payload, ContentType="application/json")
    sns_id = sns.publish(
        TopicArn=in_topic,
        Message=cc.S3Pointer(env.payload_bucket, "sns/large").to_body(),
        MessageAttributes={
            cc.SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": str(len(payload))},
            "sourceTransactionID": {"DataType": "String", "StringValue": "tx-large"},
        },
    )["MessageId"]

    report = env.operator(notifications="per_batch").execute({})

    assert report["archived"] == 1 and report["bytes"] == len(payload) and env.depth() == 0
    (key,) = env.data_keys()
    assert key.endswith("/" + sns_id)
    obj = env.get(key)
    assert obj["Body"].read() == payload and obj["ContentType"] == "application/json"
    assert obj["Metadata"]["envelope"] == "sns" and obj["Metadata"]["source-transaction-id"] == "tx-large"
    (line,) = env.manifests()
    assert line.sha256 == hashlib.sha256(payload).hexdigest() and line.extra["claim_check"].endswith("/sns/large")


def test_same_record_twice_is_one_object_and_other_bytes_under_the_same_id_go_to_the_dlq(archive_env):
    env = archive_env
    env.send(seed_body(b"first", messageID="producer-id-1"))
    env.send(seed_body(b"first", messageID="producer-id-1"))  # the producer retried
    env.send(seed_body(b"changed!", messageID="producer-id-1"))  # same id, other bytes

    report = env.operator().execute({})

    assert report["archived"] == 1 and report["already_archived"] == 1 and report["dead_lettered"] == 1
    assert env.data_keys() == [f"{PREFIX}/2021/07/03/16/21/12/producer-id-1"]
    assert env.get(env.data_keys()[0])["Body"].read() == b"first"
    (dead,) = env.drain(env.dlq_url)
    assert json.loads(dead["Body"])["messagePayload"] == base64.b64encode(b"changed!").decode()
    assert "already holds other bytes" in failure_of(dead)["reason"]
    assert env.depth() == 0
    assert [r.message_id for r in env.manifests()] == ["producer-id-1"]


def test_claim_check_redelivery_is_recognised_and_another_payload_is_not_copied_over(archive_env):
    env = archive_env
    s3 = env.aws("s3")
    s3.put_object(Bucket=env.payload_bucket, Key="p/1", Body=b"one" * 1000)
    s3.put_object(Bucket=env.payload_bucket, Key="p/2", Body=b"two" * 1000)
    same_id = {  # the producer names the record and its time (else SQS's id and time would differ)
        "messageID": {"DataType": "String", "StringValue": "large-1"},
        "dateTime": {"DataType": "String", "StringValue": "2024-01-02 03:04:05.000006"},
    }
    env.send(cc.S3Pointer(env.payload_bucket, "p/1").to_body(), MessageAttributes=same_id)
    first = env.operator(notifications="none").execute({})
    env.send(cc.S3Pointer(env.payload_bucket, "p/1").to_body(), MessageAttributes=same_id)  # redelivered copy
    env.send(cc.S3Pointer(env.payload_bucket, "p/2").to_body(), MessageAttributes=same_id)  # other payload, same id

    second = env.operator(notifications="none").execute({})

    assert first["archived"] == 1 and second["already_archived"] == 1 and second["dead_lettered"] == 1
    (key,) = env.data_keys()
    assert env.get(key)["Body"].read() == b"one" * 1000
    (dead,) = env.drain(env.dlq_url)
    assert cc.parse_pointer(dead["Body"]).key == "p/2" and "not overwritten" in failure_of(dead)["reason"]


def test_duplicate_source_transaction_ids_are_reported(archive_env):
    env = archive_env
    first = env.send(seed_body(b"one", txn="tx-dup"))
    second = env.send(seed_body(b"two", txn="tx-dup"))
    env.send(seed_body(b"three", txn="tx-other"))

    report = env.operator(notifications="none").execute({})

    assert report["archived"] == 3 and report["duplicates"] == 1 and report["duplicate_transactions"] == ["tx-dup"]
    lines = {r.message_id: r for r in env.manifests()}
    dup = [m for m in (first, second) if "duplicate_of" in lines[m].extra]
    assert len(dup) == 1 and lines[dup[0]].extra["duplicate_of"] in (first, second)


def test_per_batch_summaries_kms_and_bounded_runs(archive_env):
    env = archive_env
    key_id = env.aws("kms").create_key()["KeyMetadata"]["KeyId"]
    for i in range(25):
        env.send(seed_body(f"record {i}".encode(), txn=f"tx-{i}"))

    report = env.operator(notifications="per_batch", kms_key_id=key_id, max_messages=20, records_per_manifest=10).execute({})

    assert report["received"] == 20 and report["archived"] == 20 and report["stopped"] == "max_messages"
    assert report["manifests"] == 2 and report["notifications"] == 2
    assert env.depth() == 5
    head = env.aws("s3").head_object(Bucket=env.bucket, Key=env.data_keys()[0])
    assert head["ServerSideEncryption"] == "aws:kms" and key_id in head["SSEKMSKeyId"]
    summaries = [json.loads(m["Body"]) for m in env.drain(env.observer_url)]
    assert [s["event"] for s in summaries] == ["batch_archived", "batch_archived"]
    assert sorted(s["counts"]["archived"] for s in summaries) == [10, 10]

    report = env.operator(notifications="none", max_run_seconds=30).execute({})
    assert report["archived"] == 5 and env.depth() == 0 and len(env.data_keys()) == 25


# -- failure paths ---------------------------------------------------------------------------------
def test_unparseable_records_are_quarantined_with_the_reason(archive_env):
    env = archive_env
    bad = {
        "bad-json": '{"messageMetaData": {"messageType": ',
        "bad-base64": seed_body(b"x").replace('"messagePayload": "', '"messagePayload": "%%%'),
        "missing-metadata": json.dumps({"messagePayload": "aGVsbG8="}),
    }
    ids = {name: env.send(body) for name, body in bad.items()}
    good = env.send(seed_body(b"fine"))

    report = env.operator().execute({})

    assert report["quarantined"] == 3 and report["archived"] == 1 and env.depth() == 0
    quarantine = env.keys(f"{PREFIX}/{layout.QUARANTINE}/")
    assert len(quarantine) == 3
    docs = {}
    for key in quarantine:
        obj = env.get(key)
        assert obj["ServerSideEncryption"] == "AES256"
        doc = json.loads(obj["Body"].read())
        docs[doc["sqs_message_id"]] = doc
        assert obj["Metadata"]["reason"]
    assert docs[ids["bad-json"]]["body"] == bad["bad-json"] and "not valid JSON" in docs[ids["bad-json"]]["reason"]
    assert "not valid base64" in docs[ids["bad-base64"]]["reason"]
    assert "messageMetaData is missing" in docs[ids["missing-metadata"]]["reason"]
    assert [r.message_id for r in env.manifests()] == [good]


def test_pointer_to_a_missing_object_goes_to_the_dlq_with_the_reason(archive_env):
    env = archive_env
    body = cc.S3Pointer(env.payload_bucket, "expired/payload").to_body()
    message_id = env.send(body, MessageAttributes={
        cc.LEGACY_SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": "300000"},
        "sourceSystemID": {"DataType": "String", "StringValue": "claims"},
    })  # fmt: skip

    report = env.operator().execute({})

    assert report["dead_lettered"] == 1 and report["archived"] == 0 and env.depth() == 0
    (dead,) = env.drain(env.dlq_url)
    assert dead["Body"] == body
    assert dead["MessageAttributes"][cc.LEGACY_SIZE_ATTRIBUTE]["StringValue"] == "300000"
    assert dead["MessageAttributes"]["sourceSystemID"]["StringValue"] == "claims"
    failure = failure_of(dead)
    assert "expired/payload does not exist" in failure["reason"] and failure["reason"].startswith("RecordError")
    assert failure["sqs_message_id"] == message_id and failure["source_queue"] == env.queue_url
    assert failure["sent_timestamp"]


def test_s3_write_failure_dead_letters_and_stops_the_run(archive_env, unique):
    env = archive_env
    for i in range(3):
        env.send(seed_body(f"r{i}".encode(), txn=f"t{i}"))
    op = env.operator(bucket=unique("missing-bucket"))

    with pytest.raises(ArchiveHaltedError, match="NoSuchBucket"):
        op.execute({})

    dead = env.drain(env.dlq_url)
    assert len(dead) == 3 and all("NoSuchBucket" in failure_of(m)["reason"] for m in dead)
    assert env.depth() == 0  # deleted only once the DLQ held them


def test_without_a_reachable_dlq_failed_records_stay_in_the_queue(archive_env, unique):
    env = archive_env
    env.send(cc.S3Pointer(env.payload_bucket, "nope").to_body())
    env.send(seed_body(b"ok"))
    missing_dlq = env.dlq_url.rsplit("/", 1)[0] + "/" + unique("gone")

    for dlq in (None, missing_dlq):
        # The retained record comes back after its visibility timeout: long enough that a slow run
        # does not receive it twice, short enough for the test.
        report = env.operator(dead_letter_queue_url=dlq, visibility_timeout=3, max_messages=2).execute({})
        assert report["retained"] == 1 and report["dead_lettered"] == 0
        time.sleep(3.2)
        assert env.depth() == 1
    (left,) = env.drain(env.queue_url)
    assert cc.parse_pointer(left["Body"]) is not None


def test_failed_notifications_keep_records_in_the_queue_until_published(archive_env, unique):
    env = archive_env
    env.send(seed_body(b"notify me"))
    gone_topic = env.topic_arn.rsplit(":", 1)[0] + ":" + unique("no-topic")

    first = env.operator(topic_arn=gone_topic, visibility_timeout=1, max_messages=1).execute({})
    assert first["archived"] == 1 and first["retained"] == 1 and first["notify_failed"] == 4
    time.sleep(1.2)
    second = env.operator().execute({})
    assert second["already_archived"] == 1 and second["notifications"] == 4 and env.depth() == 0
    assert len(env.data_keys()) == 1


def test_a_record_whose_notification_fails_alone_stays_in_the_queue(archive_env):
    from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

    class OversizedNoteHook(SnsMessagingHook):
        """Makes SNS itself reject one entry (over 256 KiB), as a real per-entry failure."""

        def publish_batch(self, topic_arn, entries):
            for entry in entries:
                if '"tx-unlucky"' in entry["Message"] and '"archive_complete"' in entry["Message"]:
                    entry["Message"] += " " * (256 * 1024)
            return super().publish_batch(topic_arn, entries)

    class Operator(AuditArchiveOperator):
        @cached_property
        def sns_hook(self):
            return OversizedNoteHook(**self._hook_kwargs())

    env = archive_env
    for txn in ("tx-a", "tx-unlucky", "tx-b"):
        env.send(seed_body(txn.encode(), txn=txn))
    # max_messages=3: the retained record must not be received again within this run, however
    # slow the machine (its visibility timeout may run out before the run ends).
    op = Operator(task_id="archive", queue_url=env.queue_url, bucket=env.bucket, prefix=PREFIX,
                  topic_arn=env.topic_arn, wait_time_seconds=0, visibility_timeout=2, max_messages=3)  # fmt: skip

    report = op.execute({})

    assert report["archived"] == 3 and report["notify_failed"] == 1 and report["retained"] == 1
    assert report["notifications"] == 11
    time.sleep(2.2)
    (left,) = env.drain(env.queue_url)
    assert json.loads(left["Body"])["messageMetaData"]["sourceTransactionID"] == "tx-unlucky"


class WorkerKilled(BaseException):
    """Stands for the worker process dying: not an Exception, so nothing may catch it."""


@pytest.mark.parametrize("crash_at", ["manifest", "delete"])
def test_crash_between_the_s3_write_and_the_sqs_delete_loses_and_doubles_nothing(archive_env, crash_at):
    from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook
    from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

    class DyingS3Hook(S3ArchiveHook):
        def put_bytes(self, bucket, key, body, **kwargs):
            if "/_manifests/" in key:
                raise WorkerKilled(key)
            return super().put_bytes(bucket, key, body, **kwargs)

    class DyingSqsHook(SqsMessagingHook):
        def delete_batch(self, queue_url, receipts):
            raise WorkerKilled(queue_url)

    class DyingOperator(AuditArchiveOperator):
        @cached_property
        def s3_hook(self):
            return (DyingS3Hook if crash_at == "manifest" else S3ArchiveHook)(**self._hook_kwargs())

        @cached_property
        def sqs_hook(self):
            return (DyingSqsHook if crash_at == "delete" else SqsMessagingHook)(**self._hook_kwargs())

    env = archive_env
    ids = [env.send(seed_body(f"payload {i}".encode(), txn=f"tx-{i}")) for i in range(12)]
    kwargs = {"visibility_timeout": 1, "notifications": "none", "records_per_manifest": 100}
    dying = DyingOperator(
        task_id="archive", queue_url=env.queue_url, bucket=env.bucket, prefix=PREFIX,
        dead_letter_queue_url=env.dlq_url, wait_time_seconds=0, **kwargs,
    )  # fmt: skip
    with pytest.raises(WorkerKilled):
        dying.execute({})
    written = len(env.data_keys())
    assert written >= 10  # at least the first receive's objects were written before the crash
    time.sleep(1.2)
    assert env.depth() == 12  # nothing was deleted

    report = env.operator(**kwargs).execute({})

    assert report["archived"] == 12 - written and report["already_archived"] == written and report["manifests"] >= 1
    assert env.depth() == 0
    assert sorted(layout.parse_archive_key(PREFIX, k).message_id for k in env.data_keys()) == sorted(ids)
    assert {r.message_id for r in env.manifests()} == set(ids)


def test_request_budget_per_archived_record(archive_env):
    """At steady state (10-message receives, 100-record manifest batches): ≤1.65 requests per record
    with the seed's four notifications per record, ≤1.25 with one summary per batch."""
    env = archive_env
    budget = {"per_record": 1.65, "per_batch": 1.25}
    for mode, limit in budget.items():
        sqs = env.aws("sqs")
        for start in range(0, 100, 10):
            sqs.send_message_batch(QueueUrl=env.queue_url, Entries=[
                {"Id": str(i), "MessageBody": seed_body(f"{mode} {i}".encode(), txn=f"{mode}-{i}")} for i in range(start, start + 10)
            ])  # fmt: skip
        op = env.operator(notifications=mode, visibility_timeout=300)
        calls: Counter[str] = Counter()
        for hook in (op.sqs_hook, op.s3_hook, op.sns_hook):
            hook.get_conn().meta.events.register("before-call", lambda model, **_: calls.update([model.name]))
        report = op.execute({})
        assert report["archived"] == 100 and env.depth() == 0
        per_record = sum(calls.values()) / report["archived"]
        print(f"{mode}: {per_record:.2f} requests per archived record {dict(calls)}")
        assert per_record <= limit, (mode, dict(calls))


def test_settings_are_validated_naming_the_parameter(archive_env):
    with pytest.raises(ConfigurationError, match="bucket"):
        archive_env.operator(bucket="Not_A_Bucket").settings()
    with pytest.raises(ConfigurationError, match="notifications"):
        archive_env.operator(notifications="sometimes").settings()
    with pytest.raises(ConfigurationError, match="max_messages"):
        archive_env.operator(max_messages="many").settings()
    with pytest.raises(ConfigurationError, match="topic_arn"):
        archive_env.operator(topic_arn="arn:aws:sqs:us-east-1:123456789012:q").settings()
    settings = archive_env.operator(topic_arn="", max_messages="7", prefix="/a/b/").settings()
    assert settings.notifications == "none" and settings.max_messages == 7 and settings.prefix == "a/b"


# -- interop with AWS's own extended client --------------------------------------------------------
PRODUCER = r"""
import json, sys
import boto3
import sqs_extended_client  # noqa: F401  (patches boto3's Session)
cfg = json.loads(sys.stdin.read())
sqs = boto3.session.Session().client("sqs", **cfg["client"])
sqs.s3_client = boto3.client("s3", **cfg["client"])  # the library's own client has no endpoint option
sqs.large_payload_support = cfg["bucket"]
sqs.use_legacy_attribute = cfg["legacy"]
sqs.send_message(QueueUrl=cfg["queue"], MessageBody=cfg["body"])
"""


def test_records_written_by_amazon_sqs_extended_client_are_archived(archive_env, local_cloud):
    import importlib.util

    if importlib.util.find_spec("sqs_extended_client") is None:
        pytest.skip("amazon-sqs-extended-client is not installed (requirements/test.txt)")
    env = archive_env
    bodies = {
        False: seed_body(os.urandom(200_000), txn="tx-ext"),  # > 256 KiB once base64-encoded: offloaded
        True: json.dumps({"event": "legacy", "blob": "x" * 300_000}),
    }
    for legacy, body in bodies.items():
        cfg = {"client": local_cloud.boto3_kwargs(), "bucket": env.payload_bucket, "legacy": legacy, "queue": env.queue_url, "body": body}
        done = subprocess.run([sys.executable, "-c", PRODUCER], input=json.dumps(cfg), text=True, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]

    report = env.operator(notifications="none").execute({})

    assert report["archived"] == 2 and report["dead_lettered"] == report["quarantined"] == 0
    archived = {env.get(k)["Body"].read() for k in env.data_keys()}
    assert archived == {b.encode() for b in bodies.values()}  # verbatim, copied server side
    lines = env.manifests()
    assert sorted(r.size for r in lines) == sorted(len(b.encode()) for b in bodies.values())
    assert {r.sha256 for r in lines} == {hashlib.sha256(b.encode()).hexdigest() for b in bodies.values()}
