"""Fixtures of the proof suite: boto3 clients without retries, pipelines (the fault injectors are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.messaging import subscribed_queue


@pytest.fixture
def raw_client(local_cloud):
    """``raw_client("sqs")``: a boto3 client that does not retry (faults are seen as they come)."""
    import boto3
    from botocore.config import Config

    def make(service: str, **config):
        cfg = Config(retries={"total_max_attempts": 1}, **config)
        return boto3.session.Session().client(service, config=cfg, **local_cloud.boto3_kwargs())

    return make


# -- shared scenery: an archive pipeline (queue, DLQ, bucket, topic) and a Snowflake database ------
import base64  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

PREFIX = "audit/v1"


def seed_body(payload: bytes, txn: str, when: str = "2021-07-03 16:21:12.357246", **extra) -> str:
    """A message in the seed's format (base64 payload under messagePayload)."""
    meta = {"messageType": "imageB64", "sourceSystemID": "claims", "sourceTransactionID": txn, "dateTime": when}
    return json.dumps({"messageMetaData": meta, "messagePayload": base64.b64encode(payload).decode(), **extra})


@dataclass
class Pipeline:
    aws: object
    queue_url: str
    dlq_url: str
    bucket: str
    topic_arn: str
    observer_url: str

    def archive_kwargs(self, **overrides) -> dict:
        return {
            "task_id": "archive", "queue_url": self.queue_url, "bucket": self.bucket, "prefix": PREFIX,
            "topic_arn": self.topic_arn, "dead_letter_queue_url": self.dlq_url, "wait_time_seconds": 0,
            "visibility_timeout": 30, "records_per_manifest": 10, **overrides,
        }  # fmt: skip

    def send_many(self, bodies: list[str]) -> None:
        sqs = self.aws("sqs")
        for n in range(0, len(bodies), 10):
            chunk = bodies[n : n + 10]
            resp = sqs.send_message_batch(QueueUrl=self.queue_url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)])
            assert not resp.get("Failed"), resp["Failed"]

    def drain(self, queue_url: str, delete: bool = True) -> list[dict]:
        sqs, out = self.aws("sqs"), []
        while got := sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60,
            MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"],
        ).get("Messages", []):  # fmt: skip
            out.extend(got)
            if delete:
                sqs.delete_message_batch(
                    QueueUrl=queue_url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
                )
        return out

    def depth(self, queue_url: str) -> int:
        attrs = self.aws("sqs").get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"],
        )["Attributes"]
        return sum(int(v) for v in attrs.values())

    def objects(self, prefix: str = PREFIX) -> dict[str, dict]:
        pages = self.aws("s3").get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return {o["Key"]: o for p in pages for o in p.get("Contents", [])}


@pytest.fixture
def pipeline(aws, unique) -> Pipeline:
    sqs, s3, sns = aws("sqs"), aws("s3"), aws("sns")
    queue_url = sqs.create_queue(QueueName=unique("in"))["QueueUrl"]
    dlq_url = sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
    bucket = unique("archive")
    s3.create_bucket(Bucket=bucket)
    topic_arn = sns.create_topic(Name=unique("events"))["TopicArn"]
    observer_url = subscribed_queue(sns, sqs, topic_arn, unique("observer"))
    return Pipeline(aws, queue_url, dlq_url, bucket, topic_arn, observer_url)


@dataclass
class Warehouse:
    bucket: str
    database: str
    cloud: object

    def sql(self, statement: str, params=None) -> list[tuple]:
        import snowflake.connector

        with snowflake.connector.connect(**self.cloud.snowflake_connect_kwargs(self.database, "RAW")) as conn:
            cur = conn.cursor()
            cur.execute(statement.replace("{ns}", f"{self.database}.RAW"), params)
            return cur.fetchall()

    def load_kwargs(self, **overrides) -> dict:
        return {
            "task_id": "load", "archive_bucket": self.bucket, "archive_prefix": PREFIX,
            "snowflake_database": self.database, "snowflake_schema": "RAW", "snowflake_stage": "AUDIT_ARCHIVE_STAGE",
            **overrides,
        }  # fmt: skip


@pytest.fixture
def warehouse(local_cloud, pipeline, unique) -> Warehouse:
    """The pipeline's archive bucket set up for loading into a fresh Snowflake database."""
    from airflow_reliable_messaging.operators.snowflake_audit_setup import SnowflakeAuditSetupOperator

    database = unique("proof").replace("-", "_").upper()
    SnowflakeAuditSetupOperator(
        task_id="setup", archive_bucket=pipeline.bucket, archive_prefix=PREFIX, snowflake_database=database
    ).execute({})
    return Warehouse(pipeline.bucket, database, local_cloud)


def wait_until(predicate, timeout: float = 10.0, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)
