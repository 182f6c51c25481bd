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
from tests.integration.operators.crash import WorkerKilled

PREFIX = "audit/v1"


def seed_body(payload: bytes, txn: str = "tx-1", when: str = "2021-07-03 16:21:12.357246", message_type: str = "imageB64", **extra) -> str:
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
            "visibility_timeout": 10,  # no redelivery while a loaded machine works on a batch; tests of redelivery set their own
            "claim_check_buckets": [self.payload_bucket],
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

    def quarantined(self) -> dict[str, dict]:
        """The quarantine documents by SQS message id (with ``_payload``: the object a pointer named, if copied)."""
        docs = {}
        for key in self.keys(f"{PREFIX}/{layout.QUARANTINE}/"):
            if not key.endswith(".payload"):
                doc = json.loads(self.get(key)["Body"].read())
                docs[doc["sqs_message_id"]] = {**doc, "_key": key}
        return docs


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


# -- one record, whatever its transport -------------------------------------------------------------
def _subscribed(env, name: str) -> str:
    """A topic whose (non-raw) subscription is the archive's source queue: its messages arrive SNS-enveloped."""
    sqs, sns = env.aws("sqs"), env.aws("sns")
    topic = sns.create_topic(Name=env.queue_url.rsplit("/", 1)[1] + name)["TopicArn"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=env.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic


def _offload(env, key: str, body: str, *, legacy: bool = False) -> tuple[str, dict]:
    """What an extended client sends for ``body``: the pointer and its size attribute (SQS shape)."""
    env.aws("s3").put_object(Bucket=env.payload_bucket, Key=key, Body=body.encode())
    pointer = json.dumps([cc.LEGACY_POINTER_CLASS if legacy else cc.POINTER_CLASS, {"s3BucketName": env.payload_bucket, "s3Key": key}])
    size = {(cc.LEGACY_SIZE_ATTRIBUTE if legacy else cc.SIZE_ATTRIBUTE): {"DataType": "Number", "StringValue": str(len(body.encode()))}}
    return pointer, size


CONTENT_METADATA = ("event-time", "size", "sha256", "source-system", "message-type")  # what the record is, not how it came


def test_a_seed_record_is_archived_the_same_way_whatever_its_transport(archive_env):
    """Issue 13 (1): a seed request offloaded by an extended client (pointer; legacy pointer in an
    SNS envelope) is keyed by its own dateTime and messageID, stored decoded, described by its
    messageMetaData and deduplicated — exactly as the same request sent inline (raw or enveloped)."""
    env = archive_env
    sns = env.aws("sns")
    payload = b"\x89PNG\r\n" + os.urandom(150_000)
    body = lambda t: seed_body(payload, txn=f"tx-{t}", messageID=f"rec-{t}")  # noqa: E731
    env.send(body("inline"))
    topic = _subscribed(env, "-seed")
    sns.publish(TopicArn=topic, Message=body("enveloped"))
    pointer, size = _offload(env, "offloaded/pointer", body("pointer"))
    env.send(pointer, MessageAttributes=size)
    pointer, size = _offload(env, "offloaded/legacy", body("legacy"), legacy=True)
    sns.publish(
        TopicArn=topic,
        Message=pointer,
        MessageAttributes={k: {"DataType": "Number", "StringValue": v["StringValue"]} for k, v in size.items()},
    )

    report = env.operator(notifications="per_batch").execute({})

    assert report["archived"] == 4 and report["quarantined"] == report["dead_lettered"] == 0 and env.depth() == 0
    assert report["bytes"] == 4 * len(payload)
    lines = {r.message_id: r for r in env.manifests()}
    inline = env.get(f"{PREFIX}/2021/07/03/16/21/12/rec-inline")
    for t in ("inline", "enveloped", "pointer", "legacy"):
        key = f"{PREFIX}/2021/07/03/16/21/12/rec-{t}"  # the record's dateTime and messageID, not SQS's
        obj = env.get(key)
        assert obj["Body"].read() == payload, t  # decoded, not the base64 document
        assert obj["ContentType"] == inline["ContentType"] == "application/octet-stream"
        assert {k: obj["Metadata"][k] for k in CONTENT_METADATA} == {k: inline["Metadata"][k] for k in CONTENT_METADATA}
        assert obj["Metadata"]["source-transaction-id"] == f"tx-{t}"
        head = env.aws("s3").head_object(Bucket=env.bucket, Key=key, ChecksumMode="ENABLED")
        assert base64.b64decode(head["ChecksumSHA256"]).hex() == hashlib.sha256(payload).hexdigest()  # S3's own, full object
        line = lines[f"rec-{t}"]
        assert (line.key, line.size, line.sha256, line.content_type) == (
            key,
            len(payload),
            hashlib.sha256(payload).hexdigest(),
            inline["ContentType"],
        )
        assert (line.event_time, line.extra["time_source"], line.extra["id_source"]) == (
            "2021-07-03T16:21:12.357246Z",
            "producer",
            "producer",
        )
        assert line.transaction_status == "first"
    assert lines["rec-pointer"].extra["claim_check"] == f"s3://{env.payload_bucket}/offloaded/pointer"  # provenance is kept

    # the same transaction again, now offloaded: a duplicate of the inline copy, with no object of its own
    pointer, size = _offload(env, "offloaded/repeat", seed_body(payload, txn="tx-inline", messageID="rec-repeat"))
    env.send(pointer, MessageAttributes=size)
    again = env.operator().execute({})
    assert again["duplicates"] == 1 and again["archived"] == 0 and again["duplicate_transactions"] == ["tx-inline"]
    assert f"{PREFIX}/2021/07/03/16/21/12/rec-repeat" not in env.data_keys()
    repeat = {r.message_id: r for r in env.manifests()}["rec-repeat"]
    assert (repeat.transaction_status, repeat.repeat_of, repeat.key) == (
        "duplicate",
        "rec-inline",
        f"{PREFIX}/2021/07/03/16/21/12/rec-inline",
    )


def test_a_document_offloaded_without_a_content_type_is_typed_as_the_same_document_inline(archive_env):
    """AWS's extended clients for Python (SQS and SNS) offload a body with ``PutObject`` and no
    ``Content-Type`` (optional in https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html;
    S3 then serves the generic ``binary/octet-stream``; sqs_extended_client/client.py and
    sns_extended_client/session.py call ``put_object(Bucket, Key, Body)``):
    a JSON document or a text line that is not a seed request must get the content type the same
    bytes get inline (JSON → application/json: the weekly load loads only JSON payloads into
    AUDIT_PAYLOAD), not ``application/octet-stream`` because it was large. Binary stays binary and
    a content type the producer gave its object is kept."""
    env = archive_env
    document = json.dumps({"event": "claimFiled", "claim": {"id": 7, "lines": ["x" * 100] * 1500}}).encode()  # ~160 KB
    text = ("audit line " * 15_000).encode()
    binary = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 600
    msg_id = lambda name: {"messageID": {"DataType": "String", "StringValue": name}}  # noqa: E731
    for name, body in (("json", document), ("text", text)):
        env.send(body.decode(), MessageAttributes=msg_id(f"{name}-inline"))
    for name, body in (("json", document), ("text", text), ("binary", binary)):
        env.aws("s3").put_object(Bucket=env.payload_bucket, Key=f"offloaded/{name}", Body=body)  # as the clients do: no ContentType
        pointer = cc.S3Pointer(env.payload_bucket, f"offloaded/{name}").to_body()
        env.send(pointer, MessageAttributes={**msg_id(f"{name}-pointer"), **cc.size_attribute(len(body))})
    env.aws("s3").put_object(Bucket=env.payload_bucket, Key="offloaded/typed", Body=document, ContentType="application/vnd.claims+json")
    env.send(cc.S3Pointer(env.payload_bucket, "offloaded/typed").to_body(),
             MessageAttributes={**msg_id("typed-pointer"), **cc.size_attribute(len(document))})  # fmt: skip

    report = env.operator(notifications="none").execute({})

    assert report["archived"] == 6 and report["quarantined"] == report["dead_lettered"] == 0 and env.depth() == 0
    lines = {r.message_id: r for r in env.manifests()}
    types = {m: (r.content_type, env.get(r.key)["ContentType"]) for m, r in lines.items()}
    assert types["json-pointer"] == types["json-inline"] == ("application/json", "application/json")
    assert types["text-pointer"] == types["text-inline"] == ("text/plain; charset=utf-8", "text/plain; charset=utf-8")
    assert types["binary-pointer"] == ("application/octet-stream", "application/octet-stream")
    assert types["typed-pointer"] == ("application/vnd.claims+json", "application/vnd.claims+json")
    for name, body in (("json", document), ("text", text)):
        inline, pointer = lines[f"{name}-inline"], lines[f"{name}-pointer"]
        assert (pointer.size, pointer.sha256) == (inline.size, inline.sha256) == (len(body), hashlib.sha256(body).hexdigest())
        assert env.get(pointer.key)["Body"].read() == body


def test_a_seed_pointer_larger_than_a_part_is_streamed_and_uploaded_in_parts(archive_env):
    """A seed request whose payload exceeds what is kept in memory (PART_SIZE), its payload before
    its metadata: hashed while read, read again from its byte range and uploaded in parts, with
    the same key, metadata and SHA-256 as any other copy of it; no upload is left behind."""
    from airflow_reliable_messaging.runs.archive import PART_SIZE

    env = archive_env
    payload = os.urandom(PART_SIZE + 1_000_000)
    meta = {
        "messageType": "scanB64",
        "sourceSystemID": "scanner",
        "sourceTransactionID": "tx-big",
        "dateTime": "2024-05-06 07:08:09.000010",
    }
    document = json.dumps({"messagePayload": base64.b64encode(payload).decode(), "messageMetaData": meta, "messageID": "big-1"})
    pointer, size = _offload(env, "offloaded/big", document)
    env.send(pointer, MessageAttributes=size)

    report = env.operator(notifications="none").execute({})

    assert report["archived"] == 1 and report["bytes"] == len(payload) and env.depth() == 0
    key = f"{PREFIX}/2024/05/06/07/08/09/big-1"
    obj = env.get(key)
    assert obj["Body"].read() == payload
    assert obj["Metadata"]["sha256"] == hashlib.sha256(payload).hexdigest() and obj["Metadata"]["source-transaction-id"] == "tx-big"
    assert obj["ContentType"] == "application/octet-stream"
    assert obj["ETag"].strip('"').endswith("-2")  # a multipart upload of two parts: one in memory at a time
    assert not env.aws("s3").list_multipart_uploads(Bucket=env.bucket).get("Uploads")
    (line,) = env.manifests()
    assert line.sha256 == hashlib.sha256(payload).hexdigest() and line.size == len(payload)


def test_a_failed_part_upload_is_aborted_and_retried_later(archive_env, faults):
    from airflow_reliable_messaging.runs.archive import PART_SIZE

    env = archive_env
    payload = os.urandom(PART_SIZE + 10)
    pointer, size = _offload(env, "offloaded/big", seed_body(payload, txn="tx-big", messageID="big-2"))
    env.send(pointer, MessageAttributes=size)
    with faults.injecting([{"service": "s3", "operation": "UploadPart", "fault": "5xx", "status": 503, "nth": [1, 2]}]):
        first = env.operator(notifications="none", visibility_timeout=1, max_messages=1,
                             botocore_config={"retries": {"mode": "standard", "total_max_attempts": 2}}).execute({})  # fmt: skip
    assert first["retained"] == 1 and first["archived"] == 0
    assert not env.aws("s3").list_multipart_uploads(Bucket=env.bucket).get("Uploads")  # aborted, not left to bill
    assert env.data_keys() == []
    time.sleep(1.2)
    second = env.operator(notifications="none").execute({})
    assert second["archived"] == 1 and env.depth() == 0
    assert env.get(f"{PREFIX}/2021/07/03/16/21/12/big-2")["Body"].read() == payload


def test_a_malformed_seed_pointer_is_quarantined_with_the_object_it_named(archive_env):
    """As an inline request with a bad payload is quarantined with its body, an offloaded one is
    quarantined with a copy of the object (the producer's bucket may expire it)."""
    env = archive_env
    document = seed_body(b"x" * 1000, txn="tx-bad").replace('"messagePayload": "', '"messagePayload": "%%%')
    pointer, size = _offload(env, "offloaded/bad", document)
    sqs_id = env.send(pointer, MessageAttributes=size)

    report = env.operator().execute({})

    assert report["quarantined"] == 1 and report["archived"] == 0 and env.depth() == 0
    (doc_key,) = [k for k in env.keys(f"{PREFIX}/{layout.QUARANTINE}/") if not k.endswith(".payload")]
    doc = json.loads(env.get(doc_key)["Body"].read())
    assert doc["sqs_message_id"] == sqs_id
    assert f"claim-check payload s3://{env.payload_bucket}/offloaded/bad: messagePayload is not valid base64" in doc["reason"]
    assert doc["claim_check_copy"] == f"s3://{env.bucket}/{doc_key}.payload"
    assert env.get(doc_key + ".payload")["Body"].read() == document.encode()
    assert not env.keys(f"{PREFIX}/{layout.TRANSACTIONS}/")  # nothing was claimed for it


def test_a_bad_datetime_attribute_on_a_pointer_is_named_as_the_attribute(archive_env):
    """Issue 13 (6): the reason names the field read — the message attribute, not messageMetaData.
    On a pointer to a seed request the request's own dateTime wins, as it does inline."""
    env = archive_env
    bad_time = {"dateTime": {"DataType": "String", "StringValue": "not-a-time"}}
    pointer, size = _offload(env, "offloaded/plain", json.dumps({"event": "opaque"}))
    plain_id = env.send(pointer, MessageAttributes={**size, **bad_time})
    pointer, size = _offload(env, "offloaded/seed", seed_body(b"fine", txn="tx-t", messageID="seed-with-bad-attr"))
    env.send(pointer, MessageAttributes={**size, **bad_time})
    env.send(seed_body(b"fine too", txn="tx-u", messageID="inline-with-bad-attr"), MessageAttributes=bad_time)

    report = env.operator(notifications="none").execute({})

    assert report["quarantined"] == 1 and report["archived"] == 2
    (doc_key,) = [k for k in env.keys(f"{PREFIX}/{layout.QUARANTINE}/") if not k.endswith(".payload")]
    doc = json.loads(env.get(doc_key)["Body"].read())
    assert doc["sqs_message_id"] == plain_id
    assert "message attribute dateTime 'not-a-time'" in doc["reason"] and "messageMetaData" not in doc["reason"]
    assert {layout.parse_archive_key(PREFIX, k).message_id for k in env.data_keys()} == {"seed-with-bad-attr", "inline-with-bad-attr"}


# -- one canonical record per producer transaction -------------------------------------------------
def _notifications(env) -> dict[str, list[dict]]:
    """What the topic's subscriber received, per message id: bodies in order, with the attribute."""
    out: dict[str, list[dict]] = {}
    for m in env.drain(env.observer_url):
        body = json.loads(m["Body"])
        body["_attribute"] = m["MessageAttributes"].get("transaction", {}).get("StringValue")
        out.setdefault(body.get("messageID", body.get("batchID")), []).append(body)
    return out


def _transaction_lines(env, txn: str) -> dict[str, object]:
    return {r.message_id: r for r in env.manifests() if r.source_transaction_id == txn}


def _check_transaction(env, lines: dict, contents: set[bytes]) -> None:
    """One object per distinct content; duplicates name the object and digest of the copy they repeat."""
    statuses = Counter(r.transaction_status for r in lines.values())
    keys = {r.key for r in lines.values() if r.transaction_status != "duplicate"}
    assert {env.get(k)["Body"].read() for k in keys} == contents and len(keys) == len(contents)
    by_id = {r.message_id: r for r in lines.values()}
    for r in lines.values():
        if r.transaction_status == "duplicate":
            assert r.key == by_id[r.repeat_of].key and r.sha256 == by_id[r.repeat_of].sha256
            assert layout.parse_archive_key(PREFIX, r.key).message_id == r.repeat_of
        if r.transaction_status == "conflict":
            assert r.extra["first_sha256"] != r.sha256
    assert statuses["first"] == 1, statuses


def test_a_repeated_transaction_is_recorded_once_and_a_conflict_is_kept_loudly_in_one_batch(archive_env, caplog, capfd):
    """Issue 13 (2), one batch: the same sourceTransactionID three times (twice the same bytes,
    once others) — two objects, one duplicate recorded without an object, one conflict; both
    flagged to SNS subscribers, in the manifest and in the XCom; the conflict logged as an error."""
    env = archive_env
    for mid, data in (("m-a", b"same bytes"), ("m-b", b"same bytes"), ("m-c", b"other bytes")):
        env.send(seed_body(data, txn="tx-dup", messageID=mid))
    env.send(seed_body(b"alone", txn="tx-alone", messageID="m-d"))

    caplog.set_level("WARNING", logger="airflow.task")
    report = env.operator().execute({})
    out, err = capfd.readouterr()  # Airflow 3 logs tasks through structlog to the console; 2.11 through logging

    assert report["received"] == 4 and report["archived"] == 3 and env.depth() == 0
    assert report["duplicates"] == 1 and report["conflicts"] == 1
    assert report["duplicate_transactions"] == ["tx-dup"] and report["conflict_transactions"] == ["tx-dup"]
    lines = _transaction_lines(env, "tx-dup")
    assert sorted(r.transaction_status for r in lines.values()) == ["conflict", "duplicate", "first"]
    _check_transaction(env, lines, {b"same bytes", b"other bytes"})
    assert len([k for k in env.data_keys()]) == 3  # m-d, the first copy and the conflicting one
    notes = _notifications(env)
    status = {mid: r.transaction_status for mid, r in lines.items()}
    for mid, bodies in notes.items():  # (a standard topic does not keep the order of PublishBatch calls)
        events = {b["event"]: b for b in bodies}
        assert len(events) == len(bodies)
        if status.get(mid) == "duplicate":
            assert set(events) == {"received", "duplicate", "metadata_stored", "archive_complete"}, events
            assert all(b["transaction"]["repeatOf"] == lines[mid].repeat_of and b["_attribute"] == "duplicate" for b in bodies)
            assert events["duplicate"]["storageContext"]["S3Reference"]["key"] == lines[lines[mid].repeat_of].key
        elif status.get(mid) == "conflict":
            assert set(events) == {"received", "archive_stored", "conflict", "metadata_stored", "archive_complete"}, events
            assert events["conflict"]["transaction"]["firstSha256"] == lines[lines[mid].repeat_of].sha256
            assert events["conflict"]["_attribute"] == "conflict"
        else:
            assert set(events) == {"received", "archive_stored", "metadata_stored", "archive_complete"}, events
    assert set(notes) == {"m-a", "m-b", "m-c", "m-d"}
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] + [
        line for line in (out + err).splitlines() if "[error" in line
    ]
    assert any("conflict of sourceTransactionID 'tx-dup'" in line and "both kept" in line for line in logged), logged
    assert len(env.keys(f"{PREFIX}/{layout.TRANSACTIONS}/")) == 3  # tx-dup, its conflicting content, tx-alone


def test_a_repeat_in_another_batch_and_another_run_is_still_one_record(archive_env):
    """Issue 13 (2), across receives/manifest batches of one run and across runs: the marker, not
    the run's memory, decides; a repeat of the conflicting content is a duplicate of it."""
    env = archive_env
    sqs = env.aws("sqs")
    env.send(seed_body(b"v1", txn="tx-x", messageID="x-1"))
    for i in range(9):  # the first receive takes ten messages: the repeat comes in the second
        env.send(seed_body(f"filler {i}".encode(), txn=f"tx-f{i}", messageID=f"f-{i}"))
    env.send(seed_body(b"v1", txn="tx-x", messageID="x-2"))

    first_run = env.operator(notifications="per_batch", records_per_manifest=10).execute({})

    assert first_run["manifests"] == 2 and first_run["duplicates"] == 1 and first_run["archived"] == 10
    assert {mid: (r.transaction_status, r.repeat_of) for mid, r in _transaction_lines(env, "tx-x").items()} == {
        "x-1": ("first", None), "x-2": ("duplicate", "x-1"),
    }  # fmt: skip
    summaries = [b for bodies in _notifications(env).values() for b in bodies]
    assert sorted(s["counts"]["duplicates"] for s in summaries) == [0, 1]
    assert [d for s in summaries for d in s["duplicates"]] == [{"messageID": "x-2", "repeatOf": "x-1"}]

    # a later run: the same bytes again, other bytes, and those other bytes again
    for mid, data in (("x-3", b"v1"), ("x-4", b"v2")):
        env.send(seed_body(data, txn="tx-x", messageID=mid))
    second_run = env.operator().execute({})
    env.send(seed_body(b"v2", txn="tx-x", messageID="x-5"))
    third_run = env.operator().execute({})

    assert (second_run["duplicates"], second_run["conflicts"], third_run["duplicates"]) == (1, 1, 1)
    lines = _transaction_lines(env, "tx-x")
    assert {mid: (r.transaction_status, r.repeat_of) for mid, r in lines.items()} == {
        "x-1": ("first", None), "x-2": ("duplicate", "x-1"), "x-3": ("duplicate", "x-1"),
        "x-4": ("conflict", "x-1"), "x-5": ("duplicate", "x-4"),
    }  # fmt: skip
    _check_transaction(env, lines, {b"v1", b"v2"})
    events = {mid: {b["event"] for b in bodies} for mid, bodies in _notifications(env).items()}
    assert "duplicate" in events["x-3"] and "duplicate" in events["x-5"] and "conflict" in events["x-4"]
    assert "archive_stored" not in events["x-3"] | events["x-5"]
    assert (
        sqs.get_queue_attributes(QueueUrl=env.queue_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
        == "0"
    )


def test_a_crash_between_the_marker_and_the_payload_is_completed_not_called_a_duplicate(archive_env):
    """The marker is written, the worker dies before the payload: the redelivered message is the
    transaction's first copy (its own marker), archived as such — not a duplicate of itself."""
    from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook

    class DyingS3Hook(S3ArchiveHook):
        def put_object_if_absent(self, bucket, key, body, **kwargs):
            raise WorkerKilled(key)

    class DyingOperator(AuditArchiveOperator):
        @cached_property
        def s3_hook(self):
            return self.aws.hook(DyingS3Hook)

    env = archive_env
    env.send(seed_body(b"once", txn="tx-crash", messageID="c-1"))
    dying = DyingOperator(task_id="archive", queue_url=env.queue_url, bucket=env.bucket, prefix=PREFIX, topic_arn=env.topic_arn,
                          wait_time_seconds=0, visibility_timeout=1)  # fmt: skip
    with pytest.raises(WorkerKilled):
        dying.execute({})
    assert len(env.keys(f"{PREFIX}/{layout.TRANSACTIONS}/")) == 1 and env.data_keys() == []
    time.sleep(1.2)

    report = env.operator().execute({})

    assert report["archived"] == 1 and report["duplicates"] == report["conflicts"] == 0 and env.depth() == 0
    (line,) = env.manifests()
    assert (line.message_id, line.transaction_status, line.repeat_of) == ("c-1", "first", None)
    assert sorted(b["event"] for b in _notifications(env)["c-1"]) == ["archive_complete", "archive_stored", "metadata_stored", "received"]
    # and the record redelivered once more (its delete lost): already archived, still not a duplicate
    env.send(seed_body(b"once", txn="tx-crash", messageID="c-1"))
    again = env.operator().execute({})
    assert again["already_archived"] == 1 and again["duplicates"] == 0


def test_a_producer_retry_with_the_same_message_id_and_a_new_time_is_a_repeat_not_a_second_record(archive_env):
    """A producer that stamps ``dateTime`` when it sends, retrying a send it thinks failed: the same
    messageID and transaction, another time, so another archive key. It was judged the first copy
    again (the marker's message id matched): a second object and a second manifest line for one
    message, which Snowflake keeps once (one row per message id), so the week never reconciled."""
    env = archive_env
    env.send(seed_body(b"same", txn="tx-r", messageID="r-1", when="2021-07-03 16:21:12.000000"))
    first = env.operator().execute({})
    env.send(seed_body(b"same", txn="tx-r", messageID="r-1", when="2021-07-03 16:25:00.000000"))
    retry = env.operator().execute({})
    assert first["archived"] == 1 and (retry["duplicates"], retry["conflicts"]) == (1, 0)
    assert len(env.data_keys()) == 1
    # other bytes under the same id and transaction: kept as their own object, loudly (a conflict)
    env.send(seed_body(b"changed", txn="tx-r", messageID="r-1", when="2021-07-03 16:30:00.000000"))
    changed = env.operator().execute({})
    assert changed["conflicts"] == 1 and len(env.data_keys()) == 2 and env.depth() == 0
    named = {line.key for line in env.manifests()}
    assert set(env.data_keys()) <= named  # every object is named by a manifest line


_CONCURRENT_CHILD_TIMEOUT = 300


def _archive_in_process(barrier, results, kwargs) -> None:
    """One archive task in a process of its own, released with the others."""
    try:
        op = AuditArchiveOperator(**kwargs)
        op.sqs_hook.get_conn(), op.s3_hook.get_conn(), op.sns_hook.get_conn()
        barrier.wait(timeout=120)
        results.put(op.execute({}))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put({"error": f"{type(exc).__name__}: {exc}"})


def _archive_in_processes(count: int, kwargs: dict) -> list[dict]:
    """``count`` archive tasks, each in a process of its own, released together; their reports."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(count), ctx.Queue()
    procs = [ctx.Process(target=_archive_in_process, args=(barrier, results, kwargs)) for _ in range(count)]
    for p in procs:
        p.start()
    reports = [results.get(timeout=_CONCURRENT_CHILD_TIMEOUT) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return reports


def test_two_archive_tasks_draining_one_queue_at_once_keep_one_record_per_transaction(archive_env):
    """Issue 13 (2), concurrency: two archive operators in separate processes, released together on
    one queue holding each transaction twice (and some with other bytes). Whichever task gets which
    copy, S3 holds one object per content and every repeat is reported once — by the transaction
    marker's conditional write, not a read-then-write."""
    env = archive_env
    transactions = 30
    for n in range(transactions):
        for copy in ("a", "b"):
            env.send(seed_body(f"payload {n}".encode(), txn=f"tx-{n}", messageID=f"m{n}-{copy}"))
        if n % 5 == 0:
            env.send(seed_body(f"changed {n}".encode(), txn=f"tx-{n}", messageID=f"m{n}-c"))
    total = transactions * 2 + transactions // 5
    kwargs = {"task_id": "archive", "queue_url": env.queue_url, "bucket": env.bucket, "prefix": PREFIX, "topic_arn": env.topic_arn,
              "wait_time_seconds": 0, "visibility_timeout": 10, "records_per_manifest": 5}  # fmt: skip
    # (10 s: long enough that no message comes back to a task still working on it, even on a loaded
    # machine — a redelivered repeat would be counted as a duplicate again)
    reports = _archive_in_processes(2, kwargs)
    assert all("error" not in r for r in reports), reports
    assert all(r["received"] > 0 for r in reports), reports  # both tasks really drained the queue
    for _ in range(6):  # repeats whose first copy was still being written wait in the queue: drain them
        if env.depth() == 0:
            break
        time.sleep(10.2)
        reports.append(env.operator(records_per_manifest=5).execute({}))
    assert env.depth() == 0

    assert sum(r["archived"] for r in reports) == transactions + transactions // 5
    assert sum(r["duplicates"] for r in reports) == transactions and sum(r["conflicts"] for r in reports) == transactions // 5
    lines = {r.message_id: r for r in env.manifests()}
    assert len(lines) == total
    for n in range(transactions):
        mine = {mid: r for mid, r in lines.items() if r.source_transaction_id == f"tx-{n}"}
        contents = {f"payload {n}".encode()} | ({f"changed {n}".encode()} if n % 5 == 0 else set())
        _check_transaction(env, mine, contents)
    assert len(env.data_keys()) == transactions + transactions // 5  # never a second object for the same bytes
    notes = _notifications(env)
    duplicate_events = [mid for mid, bodies in notes.items() if any(b["event"] == "duplicate" for b in bodies)]
    conflict_events = [mid for mid, bodies in notes.items() if any(b["event"] == "conflict" for b in bodies)]
    assert sorted(duplicate_events) == sorted(mid for mid, r in lines.items() if r.transaction_status == "duplicate")
    assert sorted(conflict_events) == sorted(mid for mid, r in lines.items() if r.transaction_status == "conflict")
    assert len(duplicate_events) == transactions and len(conflict_events) == transactions // 5


@pytest.mark.parametrize("workers", [4])
def test_mapped_workers_on_one_queue_write_each_record_manifest_line_and_summary_once(archive_env, workers):
    """Issue 17: the archive DAG's mapped workers, as separate processes released together on one
    queue with per-batch summaries: every record has one object and one manifest line, every
    manifest one summary at the subscriber, and the summaries' counts add up to the records."""
    env, total = archive_env, 120
    for n in range(total):
        env.send(seed_body(f"record {n}".encode(), txn=f"tx-{n}", messageID=f"m{n}"))
    kwargs = {"task_id": "archive", "queue_url": env.queue_url, "bucket": env.bucket, "prefix": PREFIX, "topic_arn": env.topic_arn,
              "notifications": "per_batch", "wait_time_seconds": 0, "visibility_timeout": 60, "records_per_manifest": 7}  # fmt: skip
    reports = _archive_in_processes(workers, kwargs)
    assert all("error" not in r for r in reports), reports
    assert sum(r["received"] > 0 for r in reports) >= 2, reports  # the workers really shared the queue
    assert env.depth() == 0
    # A standard queue delivers at least once: a message can reach a second worker while the first
    # holds it (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/standard-queues-at-least-once-delivery.html);
    # the second finds it archived, writes nothing new and lists it in its batch's manifest too.
    redelivered = sum(r["already_archived"] for r in reports)
    assert sum(r["archived"] for r in reports) == total and sum(r["received"] for r in reports) == total + redelivered

    lines = env.manifests()
    assert {r.message_id for r in lines} == {f"m{n}" for n in range(total)} and len(lines) == total + redelivered
    ids = {layout.parse_archive_key(PREFIX, k).message_id for k in env.data_keys()}
    assert len(env.data_keys()) == total and ids == {f"m{n}" for n in range(total)}
    summaries = [json.loads(m["Body"]) for m in env.drain(env.observer_url, wait=1)]
    manifest_keys = env.keys(f"{PREFIX}/{layout.BATCH_MANIFESTS}/")
    assert len(summaries) == len(manifest_keys) == sum(r["manifests"] for r in reports)
    assert sorted(s["storageContext"]["metaDataReference"]["manifest"] for s in summaries) == sorted(
        f"s3://{env.bucket}/{k}" for k in manifest_keys
    )
    assert sum(s["counts"]["archived"] for s in summaries) == total


# -- a batch's summary published once, by construction (issue 17) ------------------------------------
def _summaries(env, wait: float = 0) -> Counter[str]:
    """The batch_archived summaries at the topic's subscriber, counted per batch id."""
    return Counter(json.loads(m["Body"])["batchID"] for m in env.drain(env.observer_url, wait=wait))


def test_two_workers_flushing_one_batch_at_once_publish_its_summary_once(archive_env, faults):
    """Issue 17: a standard queue can hand one message to two consumers at once
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/standard-queues-at-least-once-delivery.html);
    with a visibility timeout of 0 the local cloud does it every time, so two workers in separate
    processes, released together, both receive the same five messages and flush the same batch.
    Their deletes are held back 3 s (a fault of the local cloud) so that neither removes the
    messages before the other received them. Both used to publish the batch's summary (two at the
    subscriber of a standard topic); now each claims it first with If-None-Match, which S3 lets
    exactly one concurrent writer win
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html)."""
    from local_cloud.faults_client import delay

    env = archive_env
    for n in range(5):
        env.send(seed_body(f"shared {n}".encode(), txn=f"tx-{n}", messageID=f"s{n}"))
    kwargs = {"task_id": "archive", "queue_url": env.queue_url, "bucket": env.bucket, "prefix": PREFIX, "topic_arn": env.topic_arn,
              "notifications": "per_batch", "wait_time_seconds": 0, "visibility_timeout": 0, "max_messages": 5,
              "records_per_manifest": 5}  # fmt: skip
    with faults.injecting([delay("sqs", "DeleteMessageBatch", seconds=3)]):
        reports = _archive_in_processes(2, kwargs)
    assert all("error" not in r for r in reports), reports
    assert [r["received"] for r in reports] == [5, 5], reports  # both really held the whole batch

    assert sorted(_summaries(env, wait=1).values()) == [1]  # one summary of the one batch at the subscriber
    claims = env.keys(f"{PREFIX}/{layout.NOTIFIED}/")
    assert len(claims) == 1 and json.loads(env.get(claims[0])["Body"].read())["state"] == "published"
    # the loser says so (counted at the subscriber above, not from these)
    lost = [r for r in reports if r["summaries_already_published"] or r["summaries_held_elsewhere"]]
    assert len(lost) == 1 and sum(r["notifications"] for r in reports) == 1, reports


def test_a_retry_after_a_lost_delete_does_not_publish_the_batch_summary_again(archive_env, faults):
    """Issue 17: the summary went out, the SQS delete did not (here every DeleteMessageBatch fails,
    as a worker killed between PublishBatch and the delete would leave it): the messages come back
    after the visibility timeout and the retry flushes the same batch. Its claim, left ``published``
    by the first run, keeps the standard topic's subscriber at one summary; the retry deletes the
    messages."""
    from local_cloud.faults_client import server_error

    env = archive_env
    for n in range(4):
        env.send(seed_body(f"lost delete {n}".encode(), txn=f"tx-{n}", messageID=f"d{n}"))
    with faults.injecting([server_error("sqs", "DeleteMessageBatch", status=500)]):
        first = env.operator(notifications="per_batch", visibility_timeout=1,
                             botocore_config={"retries": {"mode": "standard", "total_max_attempts": 1}}).execute({})  # fmt: skip
    assert first["notifications"] == 1 and first["delete_failed"] == 4
    time.sleep(1.2)
    retry = env.operator(notifications="per_batch").execute({})

    assert sorted(_summaries(env).values()) == [1] and env.depth() == 0  # one summary at the subscriber
    assert retry["already_archived"] == 4 and retry["summaries_already_published"] == 1 and retry["deleted"] == 4


def test_a_summary_claimed_while_its_manifest_failed_is_released_and_published_by_the_next_run(archive_env, faults):
    """The summary's claim is taken while the batch manifest is written (two writes in flight). When
    the manifest fails, the won claim is marked ``released`` — nothing was published — so the next
    run that flushes the batch takes it over at once and publishes it once, rather than finding it
    held by a live claim for 15 minutes (the records waiting in the queue meanwhile)."""
    from local_cloud.faults_client import server_error

    env = archive_env
    for n in range(3):
        env.send(seed_body(f"manifest lost {n}".encode(), txn=f"tx-{n}", messageID=f"m{n}"))
    no_retries = {"retries": {"mode": "standard", "total_max_attempts": 1}}
    with faults.injecting([server_error("s3", "PutObject", path=f"/{layout.BATCH_MANIFESTS}/")]):
        first = env.operator(notifications="per_batch", visibility_timeout=1, botocore_config=no_retries).execute({})
    assert first["manifests"] == 0 and first["notifications"] == 0 and first["retained"] == 3 and env.depth() == 3
    claims = env.keys(f"{PREFIX}/{layout.NOTIFIED}/")
    assert len(claims) == 1 and json.loads(env.get(claims[0])["Body"].read())["state"] == "released"
    assert _summaries(env) == Counter()
    time.sleep(1.2)

    retry = env.operator(notifications="per_batch").execute({})
    assert retry["manifests"] == 1 and retry["notifications"] == 1 and retry["summaries_held_elsewhere"] == 0
    assert env.depth() == 0 and sorted(_summaries(env).values()) == [1]
    assert json.loads(env.get(claims[0])["Body"].read())["state"] == "published"


def test_a_summary_claim_left_by_a_crashed_run_holds_until_it_expires_then_is_taken_over_once(archive_env):
    """The expiry rule (domain/batch_claims.py): a ``claimed`` claim whose holder died is honoured
    until its ``expires_at`` (the records stay in the queue, nothing is published), then taken over
    with If-Match on its ETag and the summary published once."""
    from datetime import UTC, datetime, timedelta

    from airflow_reliable_messaging.domain import archive_events, batch_claims

    env = archive_env
    ids = [f"c{n}" for n in range(3)]
    for n, mid in enumerate(ids):
        env.send(seed_body(f"crashed {n}".encode(), txn=f"tx-{n}", messageID=mid))
    when = datetime(2021, 7, 3, 16, 21, 12, 357246, tzinfo=UTC)  # seed_body's dateTime
    batch = archive_events.batch_id(archive_events.line_identity(m, layout.archive_key(PREFIX, when, m), "first") for m in ids)
    key = layout.notification_claim_key(PREFIX, batch)

    def crashed(claimed_ago: timedelta) -> None:
        body = batch_claims.claim_body(batch, "s3://x/y", "crashed run", datetime.now(UTC) - claimed_ago)
        env.aws("s3").put_object(Bucket=env.bucket, Key=key, Body=body)

    crashed(timedelta(minutes=1))  # live (or crashed less than 15 minutes ago)
    held = env.operator(notifications="per_batch", visibility_timeout=1).execute({})
    assert _summaries(env) == Counter() and env.depth() == 3  # nothing at the subscriber, the records wait
    assert held["summaries_held_elsewhere"] == 1 and held["notifications"] == 0 and held["retained"] == 3
    time.sleep(1.2)

    crashed(batch_claims.CLAIM_EXPIRY + timedelta(seconds=1))  # expired
    taken = env.operator(notifications="per_batch").execute({})
    assert taken["notifications"] == 1 and taken["deleted"] == 3 and env.depth() == 0
    assert sorted(_summaries(env).values()) == [1]
    claim = json.loads(env.get(key)["Body"].read())
    assert claim["state"] == "published" and claim["holder"].startswith("no DAG run archive")


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


def test_a_producer_time_before_the_year_1000_is_quarantined_not_filed_outside_the_layout(archive_env):
    """``strftime("%Y")`` writes year 5 as ``5``: a producer dateTime of year 0005 was archived at
    ``<prefix>/5/01/01/...`` (outside the layout: the load and the replay do not see it) and its
    manifest line (event_time ``5-01-01T...``) made the load refuse, and quarantine, the manifest
    of every record of its batch. It is quarantined with the reason; its batch is loadable."""
    env = archive_env
    ancient = env.send(seed_body(b"old", txn="tx-old", when="0005-01-01 00:00:00.000000", messageID="ancient-1"))
    env.send(seed_body(b"fine", txn="tx-fine", messageID="fine-1"))

    report = env.operator(notifications="none").execute({})

    assert (report["archived"], report["quarantined"]) == (1, 1), report
    assert "messageMetaData.dateTime '0005-01-01 00:00:00.000000' is before the year 1000" in env.quarantined()[ancient]["reason"]
    s3 = env.aws("s3")
    for key in env.keys(f"{PREFIX}/{layout.BATCH_MANIFESTS}/"):  # as the load and the replay read them
        body = s3.get_object(Bucket=env.bucket, Key=key)["Body"].read()
        assert [r.message_id for r in decode_manifest(body, bucket=env.bucket, prefix=PREFIX, uri=layout.s3_uri(env.bucket, key))] == [
            "fine-1"
        ]
    outside_folders = [k for k in env.keys() if not k.startswith(f"{PREFIX}/_")]
    assert outside_folders == env.data_keys() == [f"{PREFIX}/2021/07/03/16/21/12/fine-1"]  # nothing outside the layout


def test_a_pointer_to_a_bucket_not_allowed_is_quarantined_unread(archive_env, faults, unique):
    """A pointer is the producer's word: followed only to the buckets ``claim_check_buckets`` names.
    Any other (the archive bucket itself, another bucket the role can read) is quarantined with the
    reason naming the parameter and the bucket; no S3 call reads it, nothing is copied."""
    env = archive_env
    s3 = env.aws("s3")
    private = unique("private")
    s3.create_bucket(Bucket=private)
    s3.put_object(Bucket=private, Key="secrets/db.json", Body=b'{"password": "hunter2"}')
    s3.put_object(Bucket=env.bucket, Key="elsewhere/x", Body=b"archive bucket, outside the archive")
    ids = {
        "private": env.send(cc.S3Pointer(private, "secrets/db.json").to_body()),
        "archive": env.send(json.dumps([cc.LEGACY_POINTER_CLASS, {"s3BucketName": env.bucket, "s3Key": "elsewhere/x"}])),
    }
    from local_cloud.faults_client import throttle

    with faults.injecting([throttle("s3", "NoSuchOperation")]):  # (calls are counted while a rule is set)
        report = env.operator(notifications="none").execute({})
        calls = faults.stats()["calls"]

    assert report["quarantined"] == 2 and report["archived"] == report["dead_lettered"] == 0 and env.depth() == 0
    assert calls.get("s3:PutObject", 0) >= 2, calls  # the calls are counted: both quarantine documents were put
    assert not {c for c in calls if c.split(":")[1] in ("GetObject", "HeadObject", "CopyObject")}, calls
    docs = env.quarantined()
    for name, bucket in (("private", private), ("archive", env.bucket)):
        reason = docs[ids[name]]["reason"]
        assert f"names bucket {bucket!r}, which claim_check_buckets does not allow (only {env.payload_bucket})" in reason
        assert "not read" in reason and "claim_check_copy" not in docs[ids[name]]
    assert not [k for k in env.keys(f"{PREFIX}/{layout.QUARANTINE}/") if k.endswith(".payload")]
    assert "hunter2" not in json.dumps(docs)

    # the operator's default follows no pointer at all
    env.send(_offload(env, "offloaded/ok", "fine")[0])
    default = env.operator(notifications="none", claim_check_buckets=None).execute({})
    assert default["quarantined"] == 1 and default["archived"] == 0
    assert any("does not allow (none (it is empty))" in d["reason"] for d in env.quarantined().values())


def test_a_pointer_into_the_archive_is_quarantined_unread_even_when_its_bucket_is_allowed(archive_env, faults):
    """The archive bucket may hold the producers' payloads too (then it is in claim_check_buckets),
    but a pointer into the archive itself — an archived record, a manifest, the quarantine — is
    refused unread: followed, it archived that object again under the message's id (a forged
    pointer re-archives or leaks archive objects). Keys are literal (S3 does not normalise
    paths: https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html), so the
    same bucket outside ``<prefix>/`` — even ``<prefix>-payloads/`` — is still followed."""
    env = archive_env
    s3 = env.aws("s3")
    env.send(seed_body(b"first", txn="tx-first", messageID="first-1"))
    env.send('{"messageMetaData": ')  # quarantined: gives the quarantine an object
    first = env.operator(notifications="none").execute({})
    assert first["archived"] == 1 and first["quarantined"] == 1
    (record_key,) = env.data_keys()
    (manifest_key,) = env.keys(f"{PREFIX}/{layout.BATCH_MANIFESTS}/")
    (quarantine_key,) = env.keys(f"{PREFIX}/{layout.QUARANTINE}/")
    s3.put_object(Bucket=env.bucket, Key=f"{PREFIX}//odd", Body=b"under the prefix, an empty segment")
    targets = [record_key, manifest_key, quarantine_key, f"{PREFIX}//odd"]
    before = {k: (env.get(k)["ETag"], env.get(k)["Body"].read()) for k in targets}
    ids = {key: env.send(cc.S3Pointer(env.bucket, key).to_body()) for key in targets}
    allowed = [env.bucket, env.payload_bucket]
    from local_cloud.faults_client import throttle

    with faults.injecting([throttle("s3", "NoSuchOperation")]):  # (calls are counted while a rule is set)
        report = env.operator(notifications="none", claim_check_buckets=allowed).execute({})
        calls = faults.stats()["calls"]

    assert (report["quarantined"], report["archived"], report["already_archived"], report["dead_lettered"]) == (4, 0, 0, 0), report
    assert env.depth() == 0 and report["manifests"] == 0
    assert calls.get("s3:PutObject", 0) >= 4, calls  # the calls are counted: the quarantine documents were put
    assert not {c for c in calls if c.split(":")[1] in ("GetObject", "HeadObject", "CopyObject")}, calls
    docs = env.quarantined()
    for key, sqs_id in ids.items():
        reason = docs[sqs_id]["reason"]
        assert f"names s3://{env.bucket}/{key}, inside the archive s3://{env.bucket}/{PREFIX}/" in reason, reason
        assert reason.endswith("the object was not read") and "claim_check_copy" not in docs[sqs_id]
    assert not [k for k in env.keys(f"{PREFIX}/{layout.QUARANTINE}/") if k.endswith(".payload")]
    assert {k: (env.get(k)["ETag"], env.get(k)["Body"].read()) for k in targets} == before
    assert env.data_keys() == [record_key] and len(env.keys(f"{PREFIX}/{layout.BATCH_MANIFESTS}/")) == 1

    # the archive bucket outside the prefix is the producers' to use
    s3.put_object(Bucket=env.bucket, Key=f"{PREFIX}-payloads/ok", Body=b"offloaded beside the archive")
    outside = env.send(cc.S3Pointer(env.bucket, f"{PREFIX}-payloads/ok").to_body())
    followed = env.operator(notifications="none", claim_check_buckets=allowed).execute({})
    assert followed["archived"] == 1 and followed["quarantined"] == 0, followed
    (line,) = [r for r in env.manifests() if r.extra.get("sqs_message_id") == outside]
    assert env.get(line.key)["Body"].read() == b"offloaded beside the archive"


@pytest.mark.parametrize(
    ("attributes", "named"),
    [
        ({cc.SIZE_ATTRIBUTE: {"DataType": "String", "StringValue": "large"}}, "ExtendedPayloadSize 'large'"),
        ({cc.SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": "-4"}}, "ExtendedPayloadSize '-4'"),
        ({cc.SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": "4.0"}}, "ExtendedPayloadSize '4.0'"),
        ({cc.LEGACY_SIZE_ATTRIBUTE: {"DataType": "String", "StringValue": "4_000"}}, "SQSLargePayloadSize '4_000'"),
        ({cc.LEGACY_SIZE_ATTRIBUTE: {"DataType": "Binary", "BinaryValue": b"4"}}, "SQSLargePayloadSize without a value"),
        ({cc.SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": "4"}, cc.LEGACY_SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": "5"}},
         "ExtendedPayloadSize 4 and message attribute SQSLargePayloadSize 5 disagree"),
    ],
)  # fmt: skip
def test_a_size_attribute_that_is_not_a_byte_count_is_quarantined_naming_it(archive_env, attributes, named):
    env = archive_env
    pointer, _ = _offload(env, "offloaded/four", "four")
    sqs_id = env.send(pointer, MessageAttributes=attributes)

    report = env.operator(notifications="none").execute({})

    assert report["quarantined"] == 1 and report["archived"] == 0 and env.depth() == 0
    reason = env.quarantined()[sqs_id]["reason"]
    assert f"message attribute {named}" in reason, reason


@pytest.mark.parametrize(
    ("where", "named"),
    [
        ({"s3BucketName": "{bucket}"}, "s3Key is missing"),
        ({"s3BucketName": "{bucket}", "s3Key": ""}, "s3Key is missing"),
        ({"s3BucketName": "{bucket}", "s3Key": 7}, "s3Key is missing or not a non-empty string"),
        ({"s3Key": "k"}, "s3BucketName is missing"),
        ({"s3BucketName": "{bucket}", "s3Key": "k" * 1025}, "longer than S3's 1024 bytes"),
        ("k", "is not ["),
    ],
)
def test_a_broken_pointer_is_quarantined_not_archived_as_a_document(archive_env, where, named):
    """A body naming the pointer class is a pointer gone wrong: archiving the JSON array as the
    record (what happened) loses the payload it points to without a word."""
    env = archive_env
    where = json.loads(json.dumps(where).replace("{bucket}", env.payload_bucket))
    sqs_id = env.send(json.dumps([cc.POINTER_CLASS, where]))

    report = env.operator(notifications="none").execute({})

    assert report["quarantined"] == 1 and report["archived"] == 0 and env.data_keys() == []
    assert named in env.quarantined()[sqs_id]["reason"]


def test_a_failed_record_too_large_for_the_dlq_is_quarantined_not_left_in_the_queue(archive_env):
    """SQS takes at most 1 MiB of body and attributes (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html):
    a message of exactly 1 MiB that must be dead-lettered no longer fits beside its ArchiveFailure
    attribute. It was left in the queue, failing every run until retention dropped it; S3 keeps it."""
    env = archive_env
    env.send(seed_body(b"first", messageID="big-id"))
    short = seed_body(b"other bytes", messageID="big-id", pad="")
    body = short.replace('"pad": ""', '"pad": "' + "x" * (1024 * 1024 - len(short)) + '"')
    assert len(body.encode()) == 1024 * 1024
    sqs_id = env.send(body)

    report = env.operator(notifications="none").execute({})

    assert (report["archived"], report["dead_lettered"], report["quarantined"], report["retained"]) == (1, 0, 1, 0), report
    assert env.depth() == 0 and env.drain(env.dlq_url) == []
    doc = env.quarantined()[sqs_id]
    assert doc["body"] == body
    assert "already holds other bytes" in doc["reason"] and "too large for the dead-letter queue" in doc["reason"], doc["reason"]


def test_pointer_to_a_missing_object_goes_to_the_dlq_with_the_reason(archive_env):
    env = archive_env
    body = cc.S3Pointer(env.payload_bucket, "expired/payload").to_body()
    message_id = env.send(body, MessageAttributes={
        cc.LEGACY_SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": "300000"},
        "sourceSystemID": {"DataType": "String", "StringValue": "claims"},
    })  # fmt: skip

    pointer, _ = _offload(env, "offloaded/short", "x" * 100)
    short_id = env.send(pointer, MessageAttributes={cc.LEGACY_SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": "300000"}})

    report = env.operator().execute({})

    assert report["dead_lettered"] == 2 and report["archived"] == 0 and env.depth() == 0
    dead_letters = {failure_of(m)["sqs_message_id"]: m for m in env.drain(env.dlq_url)}
    # the reason names the attribute that declared the size (the legacy one here)
    assert "holds 100 bytes, the message attribute SQSLargePayloadSize declares 300000" in failure_of(dead_letters.pop(short_id))["reason"]
    (dead,) = dead_letters.values()
    assert dead["Body"] == body
    assert dead["MessageAttributes"][cc.LEGACY_SIZE_ATTRIBUTE]["StringValue"] == "300000"
    assert dead["MessageAttributes"]["sourceSystemID"]["StringValue"] == "claims"
    failure = failure_of(dead)
    assert "expired/payload does not exist" in failure["reason"] and failure["reason"].startswith("RecordError")
    assert failure["sqs_message_id"] == message_id and failure["source_queue"] == env.queue_url
    assert failure["sent_timestamp"]


def test_a_pointer_key_with_control_characters_is_shown_escaped_in_the_reason(archive_env, caplog, capfd):
    """An S3 key may hold any character; the pointer's key is the producer's text. Shown raw in a
    reason, a newline or an escape sequence forged lines in the task log and in whatever reads the
    DLQ's ArchiveFailure reason. It is escaped (the key still readable)."""
    env = archive_env
    key = "expired/x\n2026-12-02T00:00:00Z [error] forged line\x1b[2J\u202e"
    sqs_id = env.send(cc.S3Pointer(env.payload_bucket, key).to_body())

    caplog.set_level("WARNING", logger="airflow.task")
    report = env.operator(notifications="none").execute({})
    out, err = capfd.readouterr()  # Airflow 3 logs tasks through structlog to the console; 2.11 through logging

    assert report["dead_lettered"] == 1 and env.depth() == 0
    (dead,) = env.drain(env.dlq_url)
    reason = failure_of(dead)["reason"]
    assert failure_of(dead)["sqs_message_id"] == sqs_id
    assert "expired/x\\n2026-12-02T00:00:00Z [error] forged line\\x1b[2J\\u202e does not exist" in reason, reason
    assert not any(c in reason for c in "\n\x1b\u202e")
    logged = "\n".join([r.getMessage() for r in caplog.records] + (out + err).splitlines())
    assert "forged line" in logged and not any(c in logged for c in "\x1b\u202e")
    assert not [line for line in logged.splitlines() if line.startswith("2026-12-02T00:00:00Z [error] forged line")]


def test_s3_write_failure_dead_letters_and_stops_the_run(archive_env, unique):
    env = archive_env
    for i in range(13):
        env.send(seed_body(f"r{i}".encode(), txn=f"t{i}"))
    op = env.operator(bucket=unique("missing-bucket"), visibility_timeout=30)

    with pytest.raises(ArchiveHaltedError, match="NoSuchBucket"):
        op.execute({})

    dead = env.drain(env.dlq_url)
    assert len(dead) == 10 and all("NoSuchBucket" in failure_of(m)["reason"] for m in dead)  # the first receive
    # the next receive was already in flight when the run stopped: its records are left in the
    # queue untouched (they come back after their visibility timeout), not dead-lettered
    assert env.depth() == 3
    assert len(env.drain(env.queue_url)) == 0  # (still invisible)


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


def test_a_failed_second_publish_batch_to_a_fifo_topic_keeps_only_the_records_it_carried(archive_env, faults, unique):
    """A FIFO topic gets a batch's notifications in one ``publish_messages`` call (3 records x 4 =
    12: two PublishBatch requests of 10 and 2). The second request fails (503, botocore's retries
    off): the 10 of the first were published, so the two records whose notifications all went out
    are deleted, and only the third, whose last two notifications did not, stays in the queue
    (kept, its 10 published ones would be published again by the retry)
    (PublishBatch, at most 10 entries: https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html)."""
    from local_cloud.faults_client import server_error

    env = archive_env
    sns = env.aws("sns")
    topic = sns.create_topic(Name=unique("audit-events") + ".fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    for txn in ("tx-a", "tx-b", "tx-c"):
        env.send(seed_body(txn.encode(), txn=txn))
    with faults.injecting([server_error("sns", "PublishBatch", status=503, nth=2)]):
        report = env.operator(topic_arn=topic, notifications="per_record", max_messages=3, visibility_timeout=30,
                              botocore_config={"retries": {"mode": "standard", "total_max_attempts": 1}}).execute({})  # fmt: skip
        calls = faults.stats()["calls"].get("sns:PublishBatch")
    assert calls == 2
    assert report["archived"] == 3 and report["notifications"] == 10 and report["notify_failed"] == 2
    assert report["deleted"] == 2 and report["retained"] == 1
    assert env.depth() == 1  # the third record, invisible until its visibility timeout ends


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
            return self.aws.hook(OversizedNoteHook)

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


@pytest.mark.parametrize("crash_at", ["manifest", "delete"])
def test_crash_between_the_s3_write_and_the_sqs_delete_loses_and_doubles_nothing(archive_env, crash_at):
    from tests.integration.operators.crash import dying_archive_operator

    DyingOperator = dying_archive_operator(crash_at)
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

    report = env.operator(**{**kwargs, "visibility_timeout": 30}).execute({})  # no redelivery within the rerun

    assert report["archived"] == 12 - written and report["already_archived"] == written and report["manifests"] >= 1
    assert env.depth() == 0
    assert sorted(layout.parse_archive_key(PREFIX, k).message_id for k in env.data_keys()) == sorted(ids)
    assert {r.message_id for r in env.manifests()} == set(ids)


def test_request_budget_per_archived_record(archive_env):
    """At steady state (10-message receives, 100-record manifest batches): ≤1.65 requests per record
    with the seed's four notifications per record, ≤1.25 with one summary per batch — plus exactly
    one conditional PutObject per record for its transaction marker (every seed record carries a
    sourceTransactionID: the claim that makes deduplication hold across tasks and runs)."""
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
        op.s3_hook.get_conn().meta.events.register(
            "before-parameter-build.s3.PutObject",
            lambda params, **_: calls.update(["marker"] if f"/{layout.TRANSACTIONS}/" in params["Key"] else []),
        )
        report = op.execute({})
        assert report["archived"] == 100 and env.depth() == 0
        markers = calls.pop("marker")
        assert markers == 100  # one claim per transaction, none for anything else
        per_record = (sum(calls.values()) - markers) / report["archived"]
        print(f"{mode}: {per_record:.2f} requests per archived record + 1 transaction marker {dict(calls)}")
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
    """AWS's own extended client offloads the seed request (base64 payload and all) to S3: the
    archive decodes it as if it had come inline; an offloaded body that is not a seed request is
    copied as it is (both pointer attributes: ExtendedPayloadSize and the legacy SQSLargePayloadSize)."""
    import importlib.util

    if importlib.util.find_spec("sqs_extended_client") is None:
        pytest.skip("amazon-sqs-extended-client is not installed (requirements/test.txt)")
    env = archive_env
    payload = os.urandom(200_000)
    bodies = {
        False: seed_body(payload, txn="tx-ext", messageID="ext-seed-1"),  # > 256 KiB once base64-encoded: offloaded
        True: json.dumps({"event": "legacy", "blob": "x" * 300_000}),
    }
    for legacy, body in bodies.items():
        cfg = {"client": local_cloud.boto3_kwargs(), "bucket": env.payload_bucket, "legacy": legacy, "queue": env.queue_url, "body": body}
        done = subprocess.run([sys.executable, "-c", PRODUCER], input=json.dumps(cfg), text=True, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]

    report = env.operator(notifications="none").execute({})

    assert report["archived"] == 2 and report["dead_lettered"] == report["quarantined"] == 0
    lines = {r.key: r for r in env.manifests()}
    seed_key = f"{PREFIX}/2021/07/03/16/21/12/ext-seed-1"  # the record's own dateTime and messageID
    assert seed_key in lines and env.get(seed_key)["Body"].read() == payload
    assert lines[seed_key].sha256 == hashlib.sha256(payload).hexdigest() and lines[seed_key].source_transaction_id == "tx-ext"
    (other,) = [k for k in lines if k != seed_key]
    assert env.get(other)["Body"].read() == bodies[True].encode()  # verbatim, copied server side
    assert lines[other].sha256 == hashlib.sha256(bodies[True].encode()).hexdigest()


SNS_PRODUCER = r"""
import json, sys
import boto3
from sns_extended_client import SNSExtendedClientSession
cfg = json.loads(sys.stdin.read())
sns = SNSExtendedClientSession().client("sns", **cfg["client"])
sns.s3_client = boto3.client("s3", **cfg["client"])  # the library's own client has no endpoint option
sns.large_payload_support = cfg["bucket"]
for message in cfg["messages"]:
    sns.use_legacy_attribute = message["legacy"]
    sns.always_through_s3 = message.get("always", False)
    sns.publish(TopicArn=cfg["topic"], Message=message["body"], MessageAttributes=message.get("attributes", {}))
"""


@pytest.mark.parametrize("raw_delivery", [False, True])
def test_records_published_by_amazon_sns_extended_client_are_archived(archive_env, local_cloud, raw_delivery):
    """AWS's SNS extended client (Python) offloads to S3 and publishes the pointer; the archive's
    queue gets it enveloped (or raw). Its legacy mode writes the legacy pointer class with
    SQSLargePayloadSize; a producer may name the S3 key itself (``S3Key`` attribute, any characters)."""
    env = archive_env
    sqs, sns = env.aws("sqs"), env.aws("sns")
    topic = sns.create_topic(Name=env.queue_url.rsplit("/", 1)[1] + f"-snsext{int(raw_delivery)}")["TopicArn"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=env.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": str(raw_delivery).lower()})
    payload = os.urandom(200_000)
    messages = [
        {"legacy": False, "body": seed_body(payload, txn="tx-sns-ext", messageID="sns-ext-seed")},  # > 256 KiB as base64
        {"legacy": True, "body": json.dumps({"event": "legacy", "blob": "y" * 270_000})},
        {"legacy": False, "always": True, "body": "small, offloaded anyway",
         "attributes": {"S3Key": {"DataType": "String", "StringValue": "a/../b c+d%2F é"}}},
    ]  # fmt: skip
    cfg = {"client": local_cloud.boto3_kwargs(), "bucket": env.payload_bucket, "topic": topic, "messages": messages}
    done = subprocess.run([sys.executable, "-c", SNS_PRODUCER], input=json.dumps(cfg), text=True, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    deadline = time.monotonic() + 10
    while env.depth() < 3 and time.monotonic() < deadline:  # SNS delivers asynchronously
        time.sleep(0.2)

    report = env.operator(notifications="none").execute({})

    assert report["archived"] == 3 and report["quarantined"] == report["dead_lettered"] == 0, report
    lines = {r.key: r for r in env.manifests()}
    seed_key = f"{PREFIX}/2021/07/03/16/21/12/sns-ext-seed"  # its own dateTime and messageID, decoded
    assert env.get(seed_key)["Body"].read() == payload and lines[seed_key].source_transaction_id == "tx-sns-ext"
    others = {env.get(k)["Body"].read(): lines[k] for k in lines if k != seed_key}
    assert set(others) == {messages[1]["body"].encode(), b"small, offloaded anyway"}
    assert others[b"small, offloaded anyway"].extra["claim_check"] == f"s3://{env.payload_bucket}/a/../b c+d%2F é"
    assert {r.extra["envelope"] for r in lines.values()} == {"raw" if raw_delivery else "sns"}
