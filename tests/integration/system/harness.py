"""What the system-test DAGs share: where they run (the local cloud, or a real AWS account and
Snowflake), the run's unique resource names, AWS clients through the Airflow connection, and the
IAM policy a run needs.

Nothing here reads the environment at import: a scenario DAG parses without AWS, and its tasks
read the run's settings when they execute (``settings()``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Re-exported for the system-test examples (tests/integration/system/example_*.py), on either Airflow line.
try:  # Airflow 3
    from airflow.sdk import chain, task  # noqa: F401
except ImportError:  # Airflow 2.11
    from airflow.decorators import task  # type: ignore[no-redef]  # noqa: F401
    from airflow.models.baseoperator import chain  # type: ignore[no-redef]  # noqa: F401

REPO = Path(__file__).resolve().parents[3]
POLICIES = REPO / "iam" / "policies"

TARGET = "ARM_SYSTEM_TARGET"  # "local" (default) or "aws"
ENV_ID = "ARM_SYSTEM_ENV_ID"  # set per scenario run by tests/integration/system/test_system.py
BUCKET = "ARM_SYSTEM_BUCKET"  # aws: an existing bucket the runs write under <env id>/ (needed by the load)
INTEGRATION = "ARM_SYSTEM_SNOWFLAKE_INTEGRATION"  # aws: a storage integration allowed to read BUCKET
WAREHOUSE = "ARM_SYSTEM_SNOWFLAKE_WAREHOUSE"  # aws: optional, else the connection's
AWS_CONN_ID = "aws_default"


@dataclass(frozen=True)
class Settings:
    target: str
    env_id: str
    bucket: str | None
    integration: str | None

    @property
    def real(self) -> bool:
        return self.target == "aws"

    @property
    def poll(self) -> float:
        """Seconds between two polls of a sensor or a wait."""
        return 5.0 if self.real else 0.1

    @property
    def patience(self) -> float:
        """Seconds a wait for AWS (a replay, a move task, an SNS delivery) may take."""
        return 900.0 if self.real else 30.0

    def name(self, stem: str) -> str:
        """A unique, AWS-safe resource name of this run: ``<env id>-<stem>``."""
        return f"{self.env_id}-{stem}"

    @property
    def database(self) -> str:
        return self.env_id.replace("-", "_").upper()

    def archive_location(self, stem: str) -> tuple[str, str]:
        """(bucket, prefix) for a scenario's archive: under the given bucket in a real account (its
        storage integration must be allowed to read it), else in a bucket of the run's own."""
        if self.bucket:
            return self.bucket, f"{self.env_id}/{stem}"
        return self.name(stem), stem


def real_target() -> bool:
    """Whether the run targets a real account (read at parse time for poll intervals only)."""
    return os.environ.get(TARGET) == "aws"


def settings() -> Settings:
    target = os.environ.get(TARGET, "local")
    if target not in ("local", "aws"):
        raise ValueError(f"{TARGET}={target!r}: use 'local' or 'aws'")
    env_id = os.environ.get(ENV_ID)
    if not env_id:
        raise RuntimeError(f"{ENV_ID} is not set: run the scenarios through tests/integration/system/test_system.py")
    return Settings(target, env_id, os.environ.get(BUCKET) or None, os.environ.get(INTEGRATION) or None)


def client(service: str):
    """A boto3 client through the Airflow AWS connection (the local cloud's, or the user's)."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    return AwsBaseHook(aws_conn_id=AWS_CONN_ID, client_type=service).get_conn()


def wait_for(check: Callable[[], Any], what: str, patience: float, poll: float) -> Any:
    """``check()`` until it returns something truthy; AssertionError naming ``what`` after ``patience``."""
    deadline = time.monotonic() + patience
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {patience:.0f}s waiting for {what}")
        time.sleep(poll)


def scenario_dag(dag_id: str, **kwargs: Any):
    """A scenario's DAG: manual, rendering XCom values as Python objects."""
    from datetime import datetime

    from airflow_reliable_messaging._compat import DAG

    defaults = {"schedule": None, "start_date": datetime(2026, 1, 1), "catchup": False,
                "render_template_as_native_obj": True, "tags": ["system-test"]}  # fmt: skip
    return DAG(dag_id=dag_id, **{**defaults, **kwargs})


def from_setup(field: str) -> str:
    """A template for a field of what the scenario's ``setup`` task returned."""
    return "{{ ti.xcom_pull(task_ids='setup')['" + field + "'] }}"


# -- resources: create and delete, tolerant of what is already gone ------------------------------------
def own_bucket(name: str) -> None:
    """Create the run's bucket, unless the run writes under a given one (``ARM_SYSTEM_BUCKET``)."""
    if not settings().bucket:
        create_bucket(name)


def queue(name: str, **attributes: Any) -> tuple[str, str]:
    sqs = client("sqs")
    url = sqs.create_queue(QueueName=name, Attributes={k: str(v) for k, v in attributes.items()})["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def allow_topic(queue_url: str, queue_arn: str, topic_arn: str) -> None:
    """The queue policy SNS needs to deliver (and dead-letter) to a queue of the same account."""
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
    }]}  # fmt: skip
    client("sqs").set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})


def depth(queue_url: str) -> int:
    attrs = client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def drain(queue_url: str, expected: int, patience: float, poll: float) -> list[dict]:
    """Receive and delete until ``expected`` messages came (fewer: AssertionError)."""
    sqs, got = client("sqs"), []

    def more() -> bool:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1 if poll > 1 else 0,
                                    MessageAttributeNames=["All"], AttributeNames=["All"]).get("Messages", [])  # fmt: skip
        for message in batch:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        got.extend(batch)
        return len(got) >= expected

    wait_for(more, f"{expected} message(s) in {queue_url} (got {len(got)})", patience, poll)
    return got


def delete_queues(*names: str) -> None:
    sqs = client("sqs")
    for name in names:
        try:
            sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except sqs.exceptions.QueueDoesNotExist:
            pass


def delete_topics(*names: str) -> None:
    """Unsubscribe everything, clear an archive policy (a topic with one cannot be deleted), delete."""
    sns = client("sns")
    account, region = client("sts").get_caller_identity()["Account"], sns.meta.region_name
    for name in names:
        arn = f"arn:aws:sns:{region}:{account}:{name}"
        try:
            attributes = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
        except sns.exceptions.NotFoundException:
            continue
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn):
            for sub in page["Subscriptions"]:
                if sub["SubscriptionArn"].startswith("arn:"):
                    sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
        if attributes.get("ArchivePolicy"):
            sns.set_topic_attributes(TopicArn=arn, AttributeName="ArchivePolicy", AttributeValue="{}")
        sns.delete_topic(TopicArn=arn)


def delete_objects(bucket: str, prefix: str, delete_bucket: bool) -> None:
    s3 = client("s3")
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        if delete_bucket:
            s3.delete_bucket(Bucket=bucket)
    except s3.exceptions.NoSuchBucket:
        pass


def create_bucket(name: str) -> None:
    s3 = client("s3")
    region = s3.meta.region_name
    config = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=name, **config)


# -- the IAM policy of a run ------------------------------------------------------------------------
# What the harness itself calls to create, observe and delete a scenario's resources.
HARNESS_ACTIONS = {
    "sqs": ["CreateQueue", "DeleteQueue", "GetQueueUrl", "GetQueueAttributes", "SetQueueAttributes",
            "SendMessage", "ReceiveMessage", "DeleteMessage"],
    "sns": ["CreateTopic", "DeleteTopic", "GetTopicAttributes", "SetTopicAttributes", "Subscribe", "Unsubscribe",
            "ListSubscriptionsByTopic", "Publish", "GetSubscriptionAttributes", "SetSubscriptionAttributes"],
    "s3": ["CreateBucket", "DeleteBucket", "ListBucket", "GetObject", "PutObject", "DeleteObject"],
}  # fmt: skip
# iam/policies/<file>.json of the operators each scenario runs
SCENARIO_POLICIES = {
    "archive": ["audit_archive"],
    "weekly_load": ["snowflake_audit_load", "audit_reconcile_report", "report_delivery"],
    "sns_replay": ["sns_replay"],
    "redrive": ["dlq_redrive"],
}


def policy_actions(names: list[str]) -> dict[str, set[str]]:
    """service -> actions: the operators' shipped policies plus the harness's own calls."""
    actions: dict[str, set[str]] = {service: {f"{service}:{a}" for a in names_} for service, names_ in HARNESS_ACTIONS.items()}
    for name in names:
        doc = json.loads((POLICIES / f"{name}.json").read_text())
        for statement in doc["Statement"]:
            for action in statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]:
                actions.setdefault(action.split(":")[0], set()).add(action)
    return actions


def run_policy(scenarios: list[str], region: str, account: str, env_prefix: str, bucket: str | None) -> dict:
    """The IAM policy a run of ``scenarios`` needs, scoped to its resources (names start with
    ``env_prefix``; S3 also the given ``bucket``'s ``env_prefix`` folder)."""
    names = sorted({p for s in scenarios for p in SCENARIO_POLICIES[s]})
    actions = policy_actions(names)
    buckets = [f"arn:aws:s3:::{env_prefix}*", f"arn:aws:s3:::{env_prefix}*/*"]
    if bucket:
        buckets += [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/{env_prefix}*"]
    resources = {
        "sqs": [f"arn:aws:sqs:{region}:{account}:{env_prefix}*"],
        # Get/SetSubscriptionAttributes and Unsubscribe have no resource-level permissions
        "sns": ["*"],
        "s3": buckets,
        "kms": [f"arn:aws:kms:{region}:{account}:key/*"],
    }
    statements = [
        {"Sid": service.capitalize(), "Effect": "Allow", "Action": sorted(found), "Resource": resources.get(service, ["*"])}
        for service, found in sorted(actions.items())
    ]
    return {"Version": "2012-10-17", "Statement": statements}
