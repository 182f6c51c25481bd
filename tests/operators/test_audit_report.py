"""Report delivery operators against the local cloud: SNS (batched, FIFO, claim-check) and email."""

from __future__ import annotations

import json

import pytest

from airflow_reliable_messaging.domain import report as fmt
from airflow_reliable_messaging.domain.claim_check import POINTER_CLASS
from airflow_reliable_messaging.exceptions import ConfigurationError
from airflow_reliable_messaging.operators.audit_report import EmailReportOperator, SnsReportPublishOperator


def a_report(rows, report_id="rep-1"):
    return {"title": "Weekly audit archive report", "dag_id": "weekly_audit_load", "report_id": report_id,
            "interval": {"start": "2026-11-16T00:00:00.000000Z", "end": "2026-11-23T00:00:00.000000Z"},
            "totals": fmt.totals(rows), "rows": rows, "load": None}  # fmt: skip


def row(system, note=""):
    return {"SOURCE_SYSTEM": system, "RECORDS": 2, "TOTAL_BYTES": 10, "FAILED": 0, "NOTE": note}


def subscribed_queue(aws, unique, fifo=False):
    sns, sqs = aws("sns"), aws("sqs")
    suffix = ".fifo" if fifo else ""
    attrs = {"FifoTopic": "true", "ContentBasedDeduplication": "false"} if fifo else {}
    topic = sns.create_topic(Name=unique("report") + suffix, Attributes=attrs)["TopicArn"]
    qattrs = {"FifoQueue": "true"} if fifo else {}
    url = sqs.create_queue(QueueName=unique("sub") + suffix, Attributes=qattrs)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return topic, url


def received(sqs, url):
    out = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]).get("Messages"):
        out += batch
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


@pytest.fixture
def bucket(aws, unique):
    name = unique("reports")
    aws("s3").create_bucket(Bucket=name)
    return name


def test_large_messages_are_sent_as_extended_client_pointers(aws, unique, bucket):
    topic, url = subscribed_queue(aws, unique)
    report = a_report([row("small"), row("huge", "x" * 300_000)])
    result = SnsReportPublishOperator(task_id="p", topic_arn=topic, report=report, marker_bucket=bucket, marker_prefix="audit").execute({})
    assert result["published"] == 3 and result["offloaded"] == 1
    messages = received(aws("sqs"), url)
    pointers = [m for m in messages if m["Body"].startswith("[")]
    assert len(pointers) == 1
    kind, location = json.loads(pointers[0]["Body"])
    assert kind == POINTER_CLASS
    stored = json.loads(aws("s3").get_object(Bucket=location["s3BucketName"], Key=location["s3Key"])["Body"].read())
    assert stored["row"]["NOTE"] == "x" * 300_000
    assert int(pointers[0]["MessageAttributes"]["ExtendedPayloadSize"]["StringValue"]) > 256 * 1024


def test_fifo_topics_get_deterministic_dedup_ids_and_reruns_send_nothing(aws, unique, bucket):
    topic, url = subscribed_queue(aws, unique, fifo=True)
    report = a_report([row(f"system-{i}") for i in range(12)])
    op = SnsReportPublishOperator(task_id="p", topic_arn=topic, report=report, marker_bucket=bucket)
    first = op.execute({})
    assert first["published"] == 13 and first["requests"] == 2  # PublishBatch: 10 + 3
    parts = sorted(json.loads(m["Body"])["part"] for m in received(aws("sqs"), url))
    assert parts == list(range(1, 14))
    assert op.execute({})["already_published"] is True
    assert received(aws("sqs"), url) == []


def test_bad_inputs_are_rejected_naming_the_field(bucket):
    with pytest.raises(ConfigurationError, match="topic_arn"):
        SnsReportPublishOperator(task_id="p", topic_arn="arn:aws:sqs:us-east-1:123456789012:q", report=a_report([]), marker_bucket=bucket).execute({})
    with pytest.raises(ConfigurationError, match="report"):
        SnsReportPublishOperator(task_id="p", topic_arn="arn:aws:sns:us-east-1:123456789012:t", report="not json", marker_bucket=bucket).execute({})
    with pytest.raises(ConfigurationError, match="to"):
        EmailReportOperator(task_id="e", to="nobody", report=a_report([]), marker_bucket=bucket).execute({})


def test_email_is_multipart_and_sent_once(local_cloud, bucket):
    before = len(local_cloud.emails())
    op = EmailReportOperator(task_id="e", to=["a@example.test", "b@example.test"], report=a_report([row("claims")]), marker_bucket=bucket)
    assert op.execute({})["sent"] is True
    assert op.execute({})["already_sent"] is True
    mails = local_cloud.emails()[before:]
    assert len(mails) == 1
    assert {p.get_content_type() for p in mails[0].walk() if not p.is_multipart()} == {"text/plain", "text/html"}
    assert mails[0]["X-Audit-Report-Id"] == "rep-1"


def test_an_unreachable_aws_endpoint_fails_clearly_after_retries(monkeypatch, bucket):
    from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator

    dead = {"conn_type": "aws", "login": "x", "password": "y",
            "extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1",
                      "config_kwargs": {"retries": {"mode": "standard", "max_attempts": 2}, "connect_timeout": 1}}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEAD", json.dumps(dead))
    op = SnowflakeAuditLoadOperator(task_id="l", archive_bucket=bucket, aws_conn_id="aws_dead",
                                    interval_start="2026-11-16T00:00:00Z", interval_end="2026-11-23T00:00:00Z")  # fmt: skip
    from botocore.exceptions import EndpointConnectionError

    with pytest.raises(EndpointConnectionError, match="127.0.0.1:9"):
        op.execute({"run_id": "r"})
