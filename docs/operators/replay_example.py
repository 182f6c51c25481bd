"""The seed's auto-insurance walkthrough on the local cloud, through the provider's operators.

    .venvs/af-3.3.1/bin/python docs/operators/replay_example.py

FIFO topic with content-based deduplication and a 30-day archive, a claim published and consumed,
a replay queue subscribed from the publish time, wait for Completed, read the claim again. Then the
same window replayed from an S3 audit archive to another queue.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # local_cloud/ is a repo folder

from local_cloud.control import LocalCloud  # noqa: E402


def main() -> None:
    with LocalCloud() as cloud:
        os.environ.update(cloud.airflow_environ())
        import boto3

        from airflow_reliable_messaging.domain import archive_layout
        from airflow_reliable_messaging.hooks.sns import SnsMessagingHook
        from airflow_reliable_messaging.operators.archive_replay import S3ArchiveReplayOperator
        from airflow_reliable_messaging.operators.sns_replay import SnsReplayOperator
        from airflow_reliable_messaging.sensors.replay import ReplayCompletedSensor

        sns, sqs, s3 = (boto3.client(s, **cloud.boto3_kwargs()) for s in ("sns", "sqs", "s3"))
        topic = sns.create_topic(
            Name="AutoInsuranceClaimsTopic.fifo",
            Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "true"},
        )["TopicArn"]
        primary = sqs.create_queue(QueueName="AutoInsuranceClaimsQueue.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        primary_arn = sqs.get_queue_attributes(QueueUrl=primary, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=primary_arn)
        SnsMessagingHook().set_archive_policy(topic, {"MessageRetentionPeriod": "30"})

        start = datetime.now(UTC)
        claim = '{ "claim_type": "collision", "registration": "AB123CDE" }'
        sns.publish(TopicArn=topic, Message=claim, MessageGroupId="group1")
        for m in sqs.receive_message(QueueUrl=primary, WaitTimeSeconds=2)["Messages"]:
            print("consumed:", json.loads(m["Body"])["Message"])
            sqs.delete_message(QueueUrl=primary, ReceiptHandle=m["ReceiptHandle"])

        started = SnsReplayOperator(
            task_id="replay",
            topic_arn=topic,
            target_queue="AutoInsuranceReplayQueue.fifo",
            create_queue=True,
            start=start,
        ).execute({})
        print("replay started:", json.dumps(started, indent=2))
        done = ReplayCompletedSensor(
            task_id="wait", subscription_arn=started["subscription_arn"], deferrable=False, poke_interval=0.5
        ).execute({})
        print("replay status:", done["replay_status"])
        for m in sqs.receive_message(QueueUrl=started["queue_url"], WaitTimeSeconds=2)["Messages"]:
            body = json.loads(m["Body"])
            print("replayed:", body["Message"], "MessageId", body["MessageId"], "Replayed", body.get("Replayed"))

        # the same claim from the S3 audit archive (e.g. a standard topic, or older than the SNS archive)
        s3.create_bucket(Bucket="audit-archive")
        key = archive_layout.archive_key("audit/v1", start, "claim-0001")
        s3.put_object(Bucket="audit-archive", Key=key, Body=claim.encode())
        target = sqs.create_queue(QueueName="claims-reprocessing")["QueueUrl"]
        report = S3ArchiveReplayOperator(
            task_id="s3_replay",
            archive_bucket="audit-archive",
            archive_prefix="audit/v1",
            start=start - timedelta(seconds=1),
            end=datetime.now(UTC),
            target_queue=target,
            replay_id="walkthrough-1",
        ).execute({})
        print("S3 archive replay:", json.dumps(report, indent=2))
        SnsMessagingHook().set_archive_policy(topic, {})  # archiving off, then the topic may be deleted
        sns.delete_topic(TopicArn=topic)


if __name__ == "__main__":
    main()
