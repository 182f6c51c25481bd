"""System test: the SQS → S3 audit archive, for the three shapes producers send — an inline
record, an SNS envelope (a queue subscribed without raw delivery), and an extended-client
claim-check pointer to a payload in S3.

setup (queue, DLQ, bucket, topic subscribed to the queue; one message of each shape) → archive →
check (three objects, the pointer's payload copied byte for byte) → teardown (always).
"""

from __future__ import annotations

import json

from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator
from tests.integration.system import harness as h
from tests.integration.system.harness import chain, task

PAYLOAD = b'{"claim": "' + b"z" * 300_000 + b'"}'  # over SQS's 256 KiB extended-client threshold


def _names() -> dict[str, str]:
    s = h.settings()
    bucket, prefix = s.archive_location("archive")
    return {"queue": s.name("archive-in"), "dlq": s.name("archive-dlq"), "topic": s.name("archive-topic"),
            "bucket": bucket, "prefix": prefix, "payloads": f"{prefix}-payloads"}  # fmt: skip


with h.scenario_dag("system_archive") as dag:

    @task
    def setup() -> dict:
        s, n = h.settings(), _names()
        h.own_bucket(n["bucket"])
        url, arn = h.queue(n["queue"])
        dlq_url, _ = h.queue(n["dlq"])
        sns, sqs, s3 = h.client("sns"), h.client("sqs"), h.client("s3")
        topic = sns.create_topic(Name=n["topic"])["TopicArn"]
        h.allow_topic(url, arn, topic)
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)  # raw delivery off: SNS envelopes
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"event": "inline", "amount": 12}))
        sns.publish(TopicArn=topic, Message=json.dumps({"event": "enveloped", "amount": 7}))
        key = f"{n['payloads']}/claim-1"
        s3.put_object(Bucket=n["bucket"], Key=key, Body=PAYLOAD)
        pointer = json.dumps(["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": n["bucket"], "s3Key": key}])
        sqs.send_message(QueueUrl=url, MessageBody=pointer,
                         MessageAttributes={"ExtendedPayloadSize": {"DataType": "Number", "StringValue": str(len(PAYLOAD))}})  # fmt: skip
        h.wait_for(lambda: h.depth(url) >= 3, "the three records in the source queue", s.patience, s.poll)  # SNS delivers asynchronously
        return {"queue_url": url, "dlq_url": dlq_url, **n}

    resources = setup()

    archive = AuditArchiveOperator(
        task_id="archive",
        queue_url=h.from_setup("queue_url"),
        dead_letter_queue_url=h.from_setup("dlq_url"),
        bucket=h.from_setup("bucket"),
        prefix=h.from_setup("prefix"),
        notifications="none",
        claim_check_buckets=h.from_setup("bucket"),  # the pointer's payload is in the archive bucket here
        max_run_seconds=120,
        wait_time_seconds=1,
    )

    @task
    def check(report: dict, resources: dict) -> None:
        assert report["archived"] == 3 and report["dead_lettered"] == report["quarantined"] == 0, report
        s3 = h.client("s3")
        listed = s3.list_objects_v2(Bucket=resources["bucket"], Prefix=resources["prefix"] + "/")["Contents"]
        data = [o["Key"] for o in listed if "/_" not in o["Key"]]
        assert len(data) == 3, data
        bodies = [s3.get_object(Bucket=resources["bucket"], Key=k)["Body"].read() for k in data]
        assert PAYLOAD in bodies  # the pointer's payload, copied server side
        assert h.depth(resources["queue_url"]) == 0

    @task(trigger_rule="all_done")
    def teardown() -> None:
        s, n = h.settings(), _names()
        h.delete_topics(n["topic"])
        h.delete_queues(n["queue"], n["dlq"])
        h.delete_objects(n["bucket"], n["prefix"], delete_bucket=False)
        h.delete_objects(n["bucket"], n["payloads"], delete_bucket=not s.bucket)

    chain(resources, archive, check(archive.output, resources), teardown())
