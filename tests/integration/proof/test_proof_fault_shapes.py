"""The fault injector's faults, as boto3 sees them (retries off), and that botocore's standard
retries (the hooks' default) ride them out."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from airflow_reliable_messaging.hooks._aws import DEFAULT_RETRIES
from local_cloud.faults_client import delay, partial, server_error, throttle

pytestmark = pytest.mark.localcloud


def _code(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def test_throttling_in_each_protocol(faults, raw_client, unique):
    sqs, sns, s3 = raw_client("sqs"), raw_client("sns"), raw_client("s3")
    bucket = unique("shape")
    s3.create_bucket(Bucket=bucket)
    faults.set([throttle("sqs", "ListQueues"), throttle("sns", "ListTopics"), throttle("s3", ["PutObject", "HeadObject"])])

    with pytest.raises(ClientError) as exc:
        sqs.list_queues()
    assert _code(exc.value) == ("RequestThrottled", 400)  # JSON protocol, query-compatible header
    assert exc.value.response["Error"]["QueryErrorCode"] == "RequestThrottled"
    with pytest.raises(ClientError) as exc:
        sns.list_topics()
    assert _code(exc.value) == ("Throttling", 400)  # query protocol XML
    assert exc.value.response["Error"]["Type"] == "Sender"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert _code(exc.value) == ("SlowDown", 503)  # REST-XML
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="k")
    assert _code(exc.value)[1] == 503  # HEAD: no body, the status tells

    stats = faults.stats()
    assert stats["calls"] == {"sqs:ListQueues": 1, "sns:ListTopics": 1, "s3:PutObject": 1, "s3:HeadObject": 1}
    assert stats["injected_total"] == 4
    faults.reset()
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # the throttled put never happened


def test_code_and_status_overrides_and_sns_throttled_429(faults, raw_client):
    faults.set([throttle("sns", "ListTopics", code="Throttled", status=429), throttle("sqs", "ListQueues", code="ThrottlingException")])
    with pytest.raises(ClientError) as exc:
        raw_client("sns").list_topics()
    assert _code(exc.value) == ("Throttled", 429)  # SNS's modelled ThrottledException (Publish TPS)
    with pytest.raises(ClientError) as exc:
        raw_client("sqs").list_queues()
    assert _code(exc.value)[0] == "ThrottlingException"


@pytest.mark.parametrize("status, code", [(500, "InternalError"), (503, "ServiceUnavailable"), (502, "InternalError")])
def test_server_errors(faults, raw_client, status, code):
    faults.set([server_error("*", ["ListQueues", "ListTopics", "ListBuckets"], status=status)])
    for service, call in (("sqs", "list_queues"), ("sns", "list_topics"), ("s3", "list_buckets")):
        with pytest.raises(ClientError) as exc:
            getattr(raw_client(service), call)()
        assert _code(exc.value) == (code, status), service


def test_nth_call_and_every(faults, raw_client):
    sqs = raw_client("sqs")
    faults.set([server_error("sqs", "ListQueues", nth=[2, 4])])
    outcomes = []
    for _ in range(5):
        try:
            sqs.list_queues()
            outcomes.append("ok")
        except ClientError:
            outcomes.append("fault")
    assert outcomes == ["ok", "fault", "ok", "fault", "ok"]
    faults.set([throttle("sqs", "ListQueues", every=3)])
    seen = []
    for _ in range(6):
        try:
            sqs.list_queues()
            seen.append(0)
        except ClientError:
            seen.append(1)
    assert seen == [0, 0, 1, 0, 0, 1]


def test_rate_is_seeded_and_reproducible(faults, raw_client):
    sqs = raw_client("sqs")

    def pattern():
        faults.set([throttle("sqs", "ListQueues", rate=0.3)], seed=11)
        out = []
        for _ in range(40):
            try:
                sqs.list_queues()
                out.append(0)
            except ClientError:
                out.append(1)
        return out

    first, second = pattern(), pattern()
    assert first == second and 4 <= sum(first) <= 24


def test_delay_makes_a_timeout_after_the_call_took_effect(faults, raw_client, unique):
    sqs = raw_client("sqs", read_timeout=0.5, connect_timeout=2)
    url = raw_client("sqs").create_queue(QueueName=unique("slow"))["QueueUrl"]
    faults.set([delay("sqs", "SendMessage", seconds=1.5, nth=1)])
    with pytest.raises(ReadTimeoutError):
        sqs.send_message(QueueUrl=url, MessageBody="m")
    faults.reset()
    import time

    time.sleep(1.2)
    got = raw_client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in got] == ["m"]  # the client saw a timeout; the message was sent


def test_after_mode_reports_failure_of_a_call_that_happened(faults, raw_client, unique):
    sqs = raw_client("sqs")
    url = sqs.create_queue(QueueName=unique("after"))["QueueUrl"]
    faults.set([server_error("sqs", "SendMessage", nth=1, when="after")])
    with pytest.raises(ClientError):
        sqs.send_message(QueueUrl=url, MessageBody="m")
    faults.reset()
    assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])) == 1


def test_partial_sqs_batches(faults, raw_client, unique):
    sqs = raw_client("sqs")
    url = sqs.create_queue(QueueName=unique("partial"))["QueueUrl"]
    faults.set([partial("sqs", "SendMessageBatch", entries=3, nth=1)], seed=3)
    response = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": f"e{i}", "MessageBody": f"m{i}"} for i in range(10)])
    failed = response["Failed"]
    assert len(failed) == 3 and len(response["Successful"]) == 7
    assert all(f["SenderFault"] is False and f["Code"] == "InternalError" for f in failed)
    # the failed entries were not sent
    faults.reset()
    bodies = set()
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", []):
        bodies.update((m["Body"], m["ReceiptHandle"]) for m in got)
    sent = {b for b, _ in bodies}
    assert sent == {f"m{i}" for i in range(10)} - {f"m{f['Id'][1:]}" for f in failed}

    receipts = {f"r{i}": r for i, (_, r) in enumerate(sorted(bodies))}
    faults.set([partial("sqs", "DeleteMessageBatch", entries=0.5, nth=1)], seed=5)
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": k, "ReceiptHandle": v} for k, v in receipts.items()])
    assert len(deleted["Failed"]) == 4 and len(deleted["Successful"]) == 3
    assert all(f["SenderFault"] is False for f in deleted["Failed"])
    faults.reset()
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert int(attrs["ApproximateNumberOfMessagesNotVisible"]) == 4  # not deleted: they will come back

    # every entry failing: SQS is not called at all
    faults.set([partial("sqs", "SendMessageBatch", entries=1.0, nth=1)])
    response = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "only", "MessageBody": "x"}])
    assert response["Successful"] == [] and response["Failed"][0]["Id"] == "only"


def test_partial_sns_publish_batch(faults, raw_client, unique):
    sns, sqs = raw_client("sns"), raw_client("sqs")
    topic = sns.create_topic(Name=unique("pb"))["TopicArn"]
    url = sqs.create_queue(QueueName=unique("pb-sub"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    faults.set([partial("sns", "PublishBatch", entries=2, nth=1)], seed=1)
    entries = [{"Id": f"p{i}", "Message": json.dumps({"n": i}), "MessageAttributes": {
        "n": {"DataType": "String", "StringValue": str(i)}}} for i in range(6)]  # fmt: skip
    response = sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
    assert len(response["Failed"]) == 2 and len(response["Successful"]) == 4
    assert all(f["SenderFault"] is False and f["Code"] == "InternalError" for f in response["Failed"])
    faults.reset()
    got = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get("Messages", []):
        got.extend(batch)
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    failed_ids = {f["Id"] for f in response["Failed"]}
    expected = {i for i in range(6) if f"p{i}" not in failed_ids}
    assert {json.loads(m["Body"])["n"] for m in got} == expected
    # renumbered members keep their own attributes
    assert all(m["MessageAttributes"]["n"]["StringValue"] == str(json.loads(m["Body"])["n"]) for m in got)


def test_standard_retries_ride_out_faults(faults, local_cloud, unique):
    """The hooks' default (botocore standard mode) retries each fault kind and succeeds."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    cfg = Config(retries=dict(DEFAULT_RETRIES))
    sqs = session.client("sqs", config=cfg, **local_cloud.boto3_kwargs())
    s3 = session.client("s3", config=cfg, **local_cloud.boto3_kwargs())
    bucket = unique("retry")
    s3.create_bucket(Bucket=bucket)
    faults.set([
        throttle("sqs", "ListQueues", nth=[1, 2]),
        server_error("sqs", "ListQueues", status=503, nth=[3]),
        throttle("s3", "PutObject", nth=[1]),
        server_error("s3", "PutObject", status=500, nth=[2]),
    ])  # fmt: skip
    response = sqs.list_queues()
    assert response["ResponseMetadata"]["RetryAttempts"] == 3
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert put["ResponseMetadata"]["RetryAttempts"] == 2


def test_unknown_fault_is_refused(faults):
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as exc:
        faults.set([{"fault": "meteor"}])
    assert exc.value.code == 400


def test_sns_hook_retries_throttled_429(faults, aws, unique):
    """Found by this suite: botocore's standard mode does not retry SNS's ``Throttled`` (429), the
    Publish rate limit; SnsMessagingHook adds it (a needs-retry handler with jittered backoff)."""
    from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

    topic = aws("sns").create_topic(Name=unique("throttled"))["TopicArn"]
    faults.set([throttle("sns", "PublishBatch", code="Throttled", status=429, nth=[1, 2])])
    result = SnsMessagingHook(aws_conn_id="aws_default").publish_batch(topic, [{"Id": "a", "Message": "m"}])
    assert list(result.successful) == ["a"] and not result.failed
    assert faults.stats()["calls"]["sns:PublishBatch"] == 3
