"""System test: dead-letter queue redrive, native (an SQS message-move task) and client side (with
a filter only the client mode honours).

setup (a source queue whose redrive policy sends to a DLQ after one receive; a consumer that fails
every message; a quarantine bucket for the redrive's records) → native redrive → check →
fail them again → client redrive of one tenant → check → teardown (always).
"""

from __future__ import annotations

import json

from airflow_reliable_messaging.operators.dlq_redrive import DLQRedriveOperator
from tests.integration.system import harness as h
from tests.integration.system.harness import chain, task

TENANTS = ("acme", "acme", "other")


def _names() -> dict[str, str]:
    s = h.settings()
    bucket, prefix = s.archive_location("redrive")
    return {"source": s.name("orders"), "dlq": s.name("orders-dlq"), "bucket": bucket, "prefix": prefix}


def _fail_every_message(source_url: str, dlq_url: str, count: int) -> None:
    """The consumer receives and never deletes: past maxReceiveCount 1 SQS dead-letters each one."""
    s, sqs = h.settings(), h.client("sqs")

    def all_dead() -> bool:
        sqs.receive_message(QueueUrl=source_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return h.depth(dlq_url) >= count

    h.wait_for(all_dead, f"{count} messages dead-lettered", s.patience, s.poll)


with h.scenario_dag("system_redrive") as dag:

    @task
    def setup() -> dict:
        n = _names()
        h.own_bucket(n["bucket"])
        dlq_url, dlq_arn = h.queue(n["dlq"])
        source_url, _ = h.queue(n["source"], RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"}))
        sqs = h.client("sqs")
        for i, tenant in enumerate(TENANTS):
            sqs.send_message(QueueUrl=source_url, MessageBody=json.dumps({"order": i}),
                             MessageAttributes={"tenant": {"DataType": "String", "StringValue": tenant}})  # fmt: skip
        _fail_every_message(source_url, dlq_url, len(TENANTS))
        return {"source_url": source_url, "dlq_url": dlq_url, **n}

    resources = setup()

    common = {"dlq": h.from_setup("dlq_url"), "quarantine_bucket": h.from_setup("bucket"), "quarantine_prefix": h.from_setup("prefix"),
              "deferrable": False, "poll_interval": 5 if h.real_target() else 0.1}  # fmt: skip
    native = DLQRedriveOperator(task_id="native_redrive", mode="native", **common)

    @task
    def check_native_and_fail_again(resources: dict) -> None:
        s = h.settings()
        back = h.drain(resources["source_url"], len(TENANTS), s.patience, s.poll)
        assert sorted(json.loads(m["Body"])["order"] for m in back) == list(range(len(TENANTS)))
        for message in back:  # the consumer still fails: send them through the DLQ again
            h.client("sqs").send_message(QueueUrl=resources["source_url"], MessageBody=message["Body"],
                                         MessageAttributes=message["MessageAttributes"])  # fmt: skip
        _fail_every_message(resources["source_url"], resources["dlq_url"], len(TENANTS))

    client = DLQRedriveOperator(task_id="client_redrive", mode="client", message_attribute_filter={"tenant": "acme"}, **common)

    @task
    def check_client(resources: dict) -> None:
        s = h.settings()
        back = h.drain(resources["source_url"], TENANTS.count("acme"), s.patience, s.poll)
        assert {m["MessageAttributes"]["tenant"]["StringValue"] for m in back} == {"acme"}
        assert h.depth(resources["dlq_url"]) == TENANTS.count("other")  # the filtered-out one stays

    @task(trigger_rule="all_done")
    def teardown() -> None:
        s, n = h.settings(), _names()
        h.delete_queues(n["source"], n["dlq"])
        h.delete_objects(n["bucket"], n["prefix"], delete_bucket=not s.bucket)

    chain(resources, native, check_native_and_fail_again(resources), client, check_client(resources), teardown())
