"""Archive audit records on the local cloud: a seed-shaped record, a bad one, claim-check ones
(an offloaded seed request decoded like an inline one, an opaque payload copied), a repeat.

    .venvs/af-3.3.1/bin/python docs/operators/audit_archive_example.py
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # local_cloud/ is a repo folder
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="archive-example-"))

from local_cloud.control import LocalCloud  # noqa: E402

with LocalCloud() as cloud:
    os.environ.update(cloud.airflow_environ())  # connection aws_default -> the local cloud
    import boto3

    sqs, s3 = (boto3.client(s, **cloud.boto3_kwargs()) for s in ("sqs", "s3"))
    queue = sqs.create_queue(QueueName="audit-in")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="audit-dlq")["QueueUrl"]
    s3.create_bucket(Bucket="audit-archive")
    s3.create_bucket(Bucket="audit-payloads")

    # 1. the seed's incoming request shape
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({
        "messageMetaData": {"messageType": "textB64", "sourceSystemID": "claims",
                            "sourceTransactionID": "tx-1", "dateTime": "2021-07-03 16:21:12.357246"},
        "messagePayload": base64.b64encode(b"hello audit").decode(),
    }))  # fmt: skip
    # 2. a body that is not valid JSON: quarantined with the reason
    sqs.send_message(QueueUrl=queue, MessageBody='{"messageMetaData": ')
    # 3. a claim-check pointer as the SQS/SNS extended clients write it: copied server side
    s3.put_object(Bucket="audit-payloads", Key="big/1", Body=b"x" * 300_000)
    sqs.send_message(
        QueueUrl=queue,
        MessageBody=json.dumps(["software.amazon.payloadoffloading.PayloadS3Pointer",
                                {"s3BucketName": "audit-payloads", "s3Key": "big/1"}]),
        MessageAttributes={"ExtendedPayloadSize": {"DataType": "Number", "StringValue": "300000"}},
    )  # fmt: skip

    # 4. a seed request too large for SQS, offloaded by an extended client: read in a stream and
    #    archived as if it had come inline (its dateTime and messageID for the key, decoded)
    offloaded = json.dumps({
        "messageID": "scan-1",
        "messageMetaData": {"messageType": "imageB64", "sourceSystemID": "kyc", "sourceTransactionID": "tx-2",
                            "dateTime": "2021-07-03 16:25:00.000000"},
        "messagePayload": base64.b64encode(b"\x89PNG" + bytes(300_000)).decode(),
    })  # fmt: skip
    s3.put_object(Bucket="audit-payloads", Key="big/2", Body=offloaded.encode())
    sqs.send_message(
        QueueUrl=queue,
        MessageBody=json.dumps(["software.amazon.payloadoffloading.PayloadS3Pointer",
                                {"s3BucketName": "audit-payloads", "s3Key": "big/2"}]),
        MessageAttributes={"ExtendedPayloadSize": {"DataType": "Number", "StringValue": str(len(offloaded))}},
    )  # fmt: skip

    from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator

    # 5. later, the producer sends transaction tx-1 again: recorded as a duplicate, no second object
    def archive() -> dict:
        return AuditArchiveOperator(
            task_id="archive", queue_url=queue, bucket="audit-archive", prefix="audit",
            dead_letter_queue_url=dlq, notifications="none", wait_time_seconds=0,
            claim_check_buckets=["audit-payloads"],  # the producers' offload bucket: pointers elsewhere are quarantined
        ).execute({})  # fmt: skip

    print(json.dumps(archive(), indent=1))
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({
        "messageMetaData": {"messageType": "textB64", "sourceSystemID": "claims",
                            "sourceTransactionID": "tx-1", "dateTime": "2021-07-03 16:30:00.000000"},
        "messagePayload": base64.b64encode(b"hello audit").decode(),
    }))  # fmt: skip
    again = archive()
    print("again:", {k: again[k] for k in ("archived", "duplicates", "duplicate_transactions")})
    for obj in s3.list_objects_v2(Bucket="audit-archive")["Contents"]:
        print(obj["Size"], obj["Key"])
