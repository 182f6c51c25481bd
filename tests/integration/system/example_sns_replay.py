"""System test: SNS FIFO archive replay after a consumer failure.

setup (FIFO topic with an archive policy, FIFO queue subscribed; three claims published and
"lost" by the consumer) → replay the window → wait for Completed and resume live delivery →
check (the three claims again, with their original MessageIds, then a live one) → teardown
(archive policy cleared, topic and queue deleted: always).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from airflow_reliable_messaging.operators.sns_replay import SnsReplayOperator
from airflow_reliable_messaging.sensors.replay import ReplayCompletedSensor
from tests.integration.system import harness as h
from tests.integration.system.harness import chain, task


def _names() -> dict[str, str]:
    s = h.settings()
    return {"topic": s.name("claims") + ".fifo", "queue": s.name("claims-consumer") + ".fifo"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


with h.scenario_dag("system_sns_replay") as dag:

    @task
    def setup() -> dict:
        s, n = h.settings(), _names()
        sns = h.client("sns")
        topic = sns.create_topic(Name=n["topic"], Attributes={
            "FifoTopic": "true", "ContentBasedDeduplication": "true", "ArchivePolicy": json.dumps({"MessageRetentionPeriod": "1"}),
        })["TopicArn"]  # fmt: skip
        url, arn = h.queue(n["queue"], FifoQueue="true")
        h.allow_topic(url, arn, topic)
        subscription = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True)["SubscriptionArn"]
        beginning = sns.get_topic_attributes(TopicArn=topic)["Attributes"]["BeginningArchiveTime"]
        time.sleep(1)
        start = max(datetime.now(UTC), datetime.fromisoformat(beginning.replace("Z", "+00:00")) + timedelta(milliseconds=1))
        ids = [sns.publish(TopicArn=topic, Message=json.dumps({"claim": i}), MessageGroupId="claims")["MessageId"] for i in range(3)]
        lost = h.drain(url, 3, s.patience, s.poll)  # consumed, then lost by the failing consumer
        end = datetime.now(UTC) + timedelta(milliseconds=1)
        assert sorted(json.loads(m["Body"])["MessageId"] for m in lost) == sorted(ids)
        return {"topic_arn": topic, "subscription_arn": subscription, "queue_url": url, "ids": ids,
                "start": _iso(start), "end": _iso(end)}  # fmt: skip

    resources = setup()

    replay = SnsReplayOperator(
        task_id="replay", topic_arn=h.from_setup("topic_arn"), subscription_arn=h.from_setup("subscription_arn"),
        start=h.from_setup("start"), end=h.from_setup("end"),
    )  # fmt: skip
    wait = ReplayCompletedSensor(
        task_id="wait", subscription_arn=h.from_setup("subscription_arn"), resume_live_delivery=True, deferrable=False,
        poke_interval=5 if h.real_target() else 0.1, timeout=900,
    )  # fmt: skip

    @task
    def check(resources: dict) -> None:
        s = h.settings()
        replayed = [json.loads(m["Body"]) for m in h.drain(resources["queue_url"], 3, s.patience, s.poll)]
        assert [m["MessageId"] for m in replayed] == resources["ids"], replayed  # original ids, in order
        live = h.client("sns").publish(TopicArn=resources["topic_arn"], Message="live", MessageGroupId="claims")["MessageId"]
        delivered = [json.loads(m["Body"])["MessageId"] for m in h.drain(resources["queue_url"], 1, s.patience, s.poll)]
        assert live in delivered, delivered  # the subscription carries live traffic again

    @task(trigger_rule="all_done")
    def teardown() -> None:
        n = _names()
        h.delete_topics(n["topic"])
        h.delete_queues(n["queue"])

    chain(resources, replay, wait, check(resources), teardown())
