"""Redrive a dead-letter queue on the local cloud: dry run, then the real thing.

.venvs/af-3.3.1/bin/python docs/operators/redrive_example.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # local_cloud/ is a repo folder

from local_cloud.control import LocalCloud  # noqa: E402


def main() -> None:
    with LocalCloud() as cloud:
        os.environ.update(cloud.airflow_environ())
        import boto3

        from airflow_reliable_messaging.operators.dlq_redrive import DLQRedriveOperator

        sqs = boto3.client("sqs", **cloud.boto3_kwargs())
        dlq_url = sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"})
        orders = sqs.create_queue(QueueName="orders", Attributes={"RedrivePolicy": policy})["QueueUrl"]
        for n in range(3):
            sqs.send_message(QueueUrl=orders, MessageBody=json.dumps({"order": n}))
        for _ in range(3):  # a consumer that fails: receives, never deletes
            sqs.receive_message(QueueUrl=orders, MaxNumberOfMessages=10, VisibilityTimeout=0)

        # the quarantine bucket parks poison messages and keeps the loop guard's ledger of native moves
        boto3.client("s3", **cloud.boto3_kwargs()).create_bucket(Bucket="orders-quarantine")
        context, common = {"run_id": "example"}, {"dlq": "orders-dlq", "quarantine_bucket": "orders-quarantine"}
        dry = DLQRedriveOperator(task_id="inspect", dry_run=True, **common).execute(context)
        print("dry run:", json.dumps(dry["dry_run_summary"], indent=2))
        done = DLQRedriveOperator(task_id="redrive", deferrable=False, poll_interval=0.2, **common).execute(context)
        print("report:", json.dumps(done, indent=2))
        back = sqs.receive_message(QueueUrl=orders, MaxNumberOfMessages=10).get("Messages", [])
        print("back in orders:", sorted(m["Body"] for m in back))


if __name__ == "__main__":
    main()
