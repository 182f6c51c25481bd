"""Naive one-message-at-a-time versions of the provider's jobs: the baselines of the benchmark.

Each does the same work as the operator it is compared with, the way a first implementation
would: one receive per message, one write, one publish per notification, one delete. Plain
boto3 clients; no batching, no concurrency. They are written for the benchmark only.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

POINTER = "software.amazon.payloadoffloading.PayloadS3Pointer"


def _archive_key(prefix: str, date_time: str, message_id: str) -> str:
    when = datetime.strptime(date_time, "%Y-%m-%d %H:%M:%S.%f")
    return f"{prefix}/{when:%Y/%m/%d/%H/%M/%S}/{message_id}"


def archive(sqs: Any, s3: Any, sns: Any, *, queue_url: str, bucket: str, prefix: str, topic_arn: str,
            wait_seconds: int = 0) -> int:  # fmt: skip
    """receive one → put (or server-side copy) one → publish four → delete one, until empty."""
    done = 0
    while True:
        got = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=wait_seconds, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            return done
        message = got[0]
        body = message["Body"]
        if body.startswith(f'["{POINTER}"'):
            pointer = json.loads(body)[1]
            key = f"{prefix}/claim-check/{message['MessageId']}"
            s3.copy_object(
                Bucket=bucket, Key=key, CopySource={"Bucket": pointer["s3BucketName"], "Key": pointer["s3Key"]},
                ServerSideEncryption="AES256",
            )  # fmt: skip
            meta: dict[str, Any] = {}
        else:
            doc = json.loads(body)
            meta = doc["messageMetaData"]
            key = _archive_key(prefix, meta["dateTime"], message["MessageId"])
            s3.put_object(
                Bucket=bucket, Key=key, Body=base64.b64decode(doc["messagePayload"]), ServerSideEncryption="AES256",
                Metadata={"source-system": meta.get("sourceSystemID", ""), "message-type": meta.get("messageType", "")},
            )  # fmt: skip
        for event in ("received", "archive_stored", "metadata_stored", "archive_complete"):
            note = {"event": event, "messageID": message["MessageId"], "messageMetaData": meta,
                    "storageContext": {"S3Reference": {"bucket": bucket, "key": key}}}  # fmt: skip
            sns.publish(TopicArn=topic_arn, Message=json.dumps(note), Subject="Audit archive")
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        done += 1


def redrive(sqs: Any, *, dlq_url: str, target_url: str, wait_seconds: int = 1) -> int:
    """receive one → send one → delete one, until the DLQ answers empty."""
    done = 0
    while True:
        got = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=1, WaitTimeSeconds=wait_seconds, MessageAttributeNames=["All"]).get(
            "Messages", []
        )
        if not got:
            return done
        message = got[0]
        kwargs: dict[str, Any] = {"QueueUrl": target_url, "MessageBody": message["Body"]}
        if message.get("MessageAttributes"):
            kwargs["MessageAttributes"] = message["MessageAttributes"]
        sqs.send_message(**kwargs)
        sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
        done += 1


def publish_report(sns: Any, *, topic_arn: str, report: dict[str, Any]) -> int:
    """One Publish for the summary, one per report row."""
    base = {"report_id": report["report_id"], "interval": report["interval"]}
    sns.publish(TopicArn=topic_arn, Message=json.dumps({**base, "kind": "summary", "totals": report["totals"]}, default=str))
    for row in report["rows"]:
        sns.publish(TopicArn=topic_arn, Message=json.dumps({**base, "kind": "source_system", "row": row}, default=str))
    return len(report["rows"]) + 1


def replay_from_s3(s3: Any, sns: Any, *, bucket: str, prefix: str, topic_arn: str, start: datetime,
                   end: datetime) -> int:  # fmt: skip
    """List the archive's data keys of the window, read each object, publish it on its own."""
    sent = 0
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        for obj in page.get("Contents", []):
            parts = obj["Key"][len(prefix) + 1 :].split("/")
            if len(parts) != 7 or not parts[0].isdigit():
                continue  # manifests, quarantine, checkpoints
            when = datetime(*map(int, parts[:6]), tzinfo=UTC)
            if not start <= when < end:
                continue
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            sns.publish(TopicArn=topic_arn, Message=body.decode("utf-8", "replace"),
                        MessageAttributes={"replayed_message_id": {"DataType": "String", "StringValue": parts[6]}})  # fmt: skip
            sent += 1
    return sent
