"""SnsReplayOperator and ReplayCompletedSensor against the local cloud's SNS archive and replay."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from airflow_reliable_messaging.domain import replay as rp
from airflow_reliable_messaging.exceptions import ConfigurationError, ReplayError
from airflow_reliable_messaging.hooks.sns import SnsMessagingHook
from airflow_reliable_messaging.operators.sns_replay import SnsReplayOperator
from airflow_reliable_messaging.sensors.replay import ReplayCompletedSensor
from tests.integration.conftest import run_deferred
from tests.messaging import drain, fifo_queue, now_ms

pytestmark = pytest.mark.localcloud


def _archived_topic(sns, name: str) -> str:
    arn = sns.create_topic(
        Name=name,
        Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "true", "DisplayName": "Auto Insurance Claims Topic"},
    )["TopicArn"]
    SnsMessagingHook().set_archive_policy(arn, {"MessageRetentionPeriod": "30"})
    return arn


def test_auto_insurance_walkthrough(sns, sqs, unique):
    """The seed's walkthrough, through the operator and the deferrable sensor."""
    topic = _archived_topic(sns, f"AutoInsuranceClaimsTopic-{unique('x')}.fifo")
    primary_url, primary_arn = fifo_queue(sqs, f"AutoInsuranceClaimsQueue-{unique('x')}.fifo")
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=primary_arn)

    timestamp_start = now_ms()
    claim = '{ "claim_type": "collision", "registration": "AB123CDE" }'
    message_id = sns.publish(TopicArn=topic, Message=claim, MessageGroupId="group1")["MessageId"]
    (consumed,) = drain(sqs, primary_url, 1)  # read and deleted by the primary consumer
    assert json.loads(consumed["Body"])["Message"] == claim

    replay_queue = f"AutoInsuranceReplayQueue-{unique('x')}.fifo"
    result = SnsReplayOperator(
        task_id="replay", topic_arn=topic, target_queue=replay_queue, create_queue=True,
        start=timestamp_start.isoformat(),
    ).execute({})  # fmt: skip
    assert result["replay_policy"] == {"PointType": "Timestamp", "StartingPoint": result["window"]["start"]}
    assert result["pauses_subscription"] is False and result["queue_url"].endswith(replay_queue)
    json.dumps(result)  # XCom-serialisable

    # the queue the operator created lets the topic send to it
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=result["queue_url"], AttributeNames=["Policy"])["Attributes"]["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == topic

    sensor = ReplayCompletedSensor(task_id="wait", subscription_arn=result["subscription_arn"], poke_interval=0.2)
    done = run_deferred(sensor)
    assert done["replay_status"] == "Completed" and done["paused"] is False

    (replayed,) = drain(sqs, result["queue_url"], 1)
    envelope = json.loads(replayed["Body"])
    assert envelope["Message"] == claim and envelope["MessageId"] == message_id and envelope["Replayed"] is True

    # a retry finds the same subscription with the same policy: nothing restarted, nothing redelivered
    again = SnsReplayOperator(
        task_id="replay", topic_arn=topic, target_queue=replay_queue, create_queue=True, start=timestamp_start.isoformat()
    ).execute({})
    assert again["subscription_arn"] == result["subscription_arn"] and again["already_applied"] is True
    assert len(sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]) == 2
    assert drain(sqs, result["queue_url"], 0, timeout=1.0) == []
    # asked to, it replays the window again
    forced = SnsReplayOperator(
        task_id="replay", topic_arn=topic, target_queue=replay_queue, start=timestamp_start, replace_existing=True
    ).execute({})
    assert forced["already_applied"] is False
    run_deferred(ReplayCompletedSensor(task_id="wait", subscription_arn=forced["subscription_arn"], poke_interval=0.2))
    assert [json.loads(m["Body"])["MessageId"] for m in drain(sqs, result["queue_url"], 1)] == [message_id]

    SnsMessagingHook().set_archive_policy(topic, {})
    sns.delete_topic(TopicArn=topic)


def test_replay_window_to_failed_consumer_then_resume(sns, sqs, unique):
    """Failure recovery: the consumer dropped a window of claims; replay it to its own queue."""
    topic = _archived_topic(sns, unique("claims") + ".fifo")
    url, arn = fifo_queue(sqs, unique("consumer") + ".fifo")
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True)["SubscriptionArn"]
    sns.publish(TopicArn=topic, Message="before", MessageGroupId="g")
    time.sleep(0.01)
    start = now_ms()
    ids = [sns.publish(TopicArn=topic, Message=f"claim {i}", MessageGroupId="g")["MessageId"] for i in range(3)]
    time.sleep(0.01)
    end = now_ms()
    sns.publish(TopicArn=topic, Message="after", MessageGroupId="g")
    assert len(drain(sqs, url, 5)) == 5  # consumed... and lost by the failing consumer

    result = SnsReplayOperator(
        task_id="replay", topic_arn=topic, subscription_arn=sub, start=start.isoformat(), end=end.isoformat()
    ).execute({})
    assert result["pauses_subscription"] is True and result["queue_arn"] == arn

    done = ReplayCompletedSensor(
        task_id="wait", subscription_arn=sub, deferrable=False, poke_interval=0.1, resume_live_delivery=True
    ).execute({})
    assert done["resumed_with"] == rp.resume_policy(result["replay_policy"])  # from just before the previous end
    replayed = [json.loads(m["Body"]) for m in drain(sqs, url, 3)]
    assert [r["MessageId"] for r in replayed[:3]] == ids and all(r["Replayed"] for r in replayed[:3])
    # resuming from the ending point delivers what was published since ("after"), then live traffic
    assert [r["Message"] for r in replayed[3:]] == ["after"]
    time.sleep(1.0)
    sns.publish(TopicArn=topic, Message="live", MessageGroupId="g")
    assert [json.loads(m["Body"])["Message"] for m in drain(sqs, url, 1)] == ["live"]


def _one_message_delivered(sns, sqs, unique):
    """An archived FIFO topic and a subscribed queue that got one message: (topic, queue URL,
    subscription, start and end of a window holding just that message)."""
    topic = _archived_topic(sns, unique("claims") + ".fifo")
    url, arn = fifo_queue(sqs, unique("consumer") + ".fifo")
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True)["SubscriptionArn"]
    start = now_ms()
    sns.publish(TopicArn=topic, Message="one", MessageGroupId="g")
    time.sleep(0.01)
    end = now_ms()
    drain(sqs, url, 1)
    return topic, url, sub, start, end


def test_ending_point_leaves_subscription_paused(sns, sqs, unique):
    topic, url, sub, start, end = _one_message_delivered(sns, sqs, unique)
    SnsReplayOperator(task_id="r", topic_arn=topic, subscription_arn=sub, start=start, end=end).execute({})
    done = run_deferred(ReplayCompletedSensor(task_id="w", subscription_arn=sub, poke_interval=0.1))
    assert done["paused"] is True and done["resumed_with"] is None
    assert len(drain(sqs, url, 1)) == 1
    sns.publish(TopicArn=topic, Message="live", MessageGroupId="g")
    assert drain(sqs, url, 0, timeout=1.0) == []


def test_invalid_requests_name_the_field(sns, sqs, unique):
    std = sns.create_topic(Name=unique("std"))["TopicArn"]
    with pytest.raises(ConfigurationError) as exc:
        SnsReplayOperator(task_id="r", topic_arn=std, target_queue="q", start=now_ms()).execute({})
    assert exc.value.field == "topic_arn" and "not a FIFO topic" in str(exc.value)

    no_archive = sns.create_topic(Name=unique("na") + ".fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    with pytest.raises(ConfigurationError) as exc:
        SnsReplayOperator(task_id="r", topic_arn=no_archive, target_queue="q", start=now_ms()).execute({})
    assert exc.value.field == "topic_arn" and "no archive policy" in str(exc.value)

    topic = _archived_topic(sns, unique("t") + ".fifo")
    _, arn = fifo_queue(sqs, unique("q") + ".fifo")
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True)["SubscriptionArn"]
    with pytest.raises(ConfigurationError) as exc:
        SnsReplayOperator(task_id="r", topic_arn=topic, subscription_arn=sub, start=now_ms() - timedelta(hours=1)).execute({})
    assert exc.value.field == "start" and "BeginningArchiveTime" in str(exc.value)

    start = now_ms()
    with pytest.raises(ConfigurationError) as exc:
        SnsReplayOperator(task_id="r", topic_arn=topic, subscription_arn=sub, start=start,
                          end=start - timedelta(seconds=1)).execute({})  # fmt: skip
    assert exc.value.field == "end" and "ends before" in str(exc.value)

    with pytest.raises(ConfigurationError) as exc:
        SnsReplayOperator(task_id="r", topic_arn=topic, subscription_arn=sub, target_queue="q", start=start).execute({})
    assert exc.value.field == "subscription_arn"

    http = sns.subscribe(TopicArn=topic, Protocol="http", Endpoint="http://127.0.0.1:9/x", ReturnSubscriptionArn=True)
    with pytest.raises(ConfigurationError) as exc:
        SnsReplayOperator(task_id="r", topic_arn=topic, subscription_arn=http["SubscriptionArn"], start=now_ms()).execute({})
    assert exc.value.field == "subscription_arn" and "only to SQS" in str(exc.value)

    with pytest.raises(ConfigurationError) as exc:
        SnsReplayOperator(task_id="r", topic_arn=topic, target_queue=unique("missing") + ".fifo", start=now_ms()).execute({})
    assert exc.value.field == "target_queue" and "create_queue" in str(exc.value)


def test_replay_limit_exceeded_is_explained(sns, sqs, unique, replay_control):
    replay_control(pending_seconds=3.0, max_concurrent_replays=1)
    topic = _archived_topic(sns, unique("t") + ".fifo")
    start = now_ms()
    SnsReplayOperator(task_id="a", topic_arn=topic, target_queue=unique("a") + ".fifo", create_queue=True, start=start).execute({})
    with pytest.raises(ReplayError) as exc:
        SnsReplayOperator(task_id="b", topic_arn=topic, target_queue=unique("b") + ".fifo", create_queue=True,
                          start=start).execute({})  # fmt: skip
    assert "ReplayLimitExceeded" in str(exc.value) and "too many concurrent replays" in str(exc.value)


def test_sensor_fails_fast_with_the_reason(sns, sqs, unique):
    topic = _archived_topic(sns, unique("t") + ".fifo")
    start = now_ms()
    sns.publish(TopicArn=topic, Message="m", MessageGroupId="g")
    url, arn = fifo_queue(sqs, unique("gone") + ".fifo")
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True)["SubscriptionArn"]
    sqs.delete_queue(QueueUrl=url)
    SnsReplayOperator(task_id="r", topic_arn=topic, subscription_arn=sub, start=start).execute({})
    began = time.monotonic()
    with pytest.raises(ReplayError) as exc:
        run_deferred(ReplayCompletedSensor(task_id="w", subscription_arn=sub, poke_interval=0.1, timeout=60))
    assert "failed" in str(exc.value) and "does not exist" in str(exc.value)
    assert time.monotonic() - began < 10

    # a subscription without any replay policy is an error, not an endless wait
    _, other = fifo_queue(sqs, unique("q") + ".fifo")
    plain = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=other, ReturnSubscriptionArn=True)["SubscriptionArn"]
    with pytest.raises(ReplayError, match="no ReplayPolicy"):
        ReplayCompletedSensor(task_id="w", subscription_arn=plain, deferrable=False, poke_interval=0.1).execute({})


def test_windows_and_arguments_aws_cannot_serve_are_refused_before_any_call(unique):
    """Checked without a connection (aws_conn_id names none): a window beyond the 365 days an SNS
    archive keeps (https://docs.aws.amazon.com/sns/latest/dg/message-archiving-and-replay-topic-owner.html),
    a malformed subscription ARN or queue, subscription attributes SNS refuses."""
    topic = "arn:aws:sns:us-east-1:123456789012:claims.fifo"
    base = {"task_id": "r", "topic_arn": topic, "target_queue": "replayed.fifo", "start": now_ms() - timedelta(hours=1),
            "aws_conn_id": "no_such_connection"}  # fmt: skip
    for overrides, field in [
        ({"start": now_ms() - timedelta(days=3650)}, "start"),
        ({"target_queue": None, "subscription_arn": topic + ":1"}, "subscription_arn"),
        ({"target_queue": "not a queue"}, "target_queue"),
        ({"subscription_attributes": {"ReplayPolicy": "{}"}}, "subscription_attributes"),
        ({"subscription_attributes": {"RawMessageDelivery": "maybe"}}, "subscription_attributes"),
    ]:
        with pytest.raises(ConfigurationError) as exc:
            SnsReplayOperator(**{**base, **overrides}).execute({})
        assert exc.value.field == field, overrides
        if field == "start":
            assert "source s3_archive" in str(exc.value)


def test_rendered_false_switches_nothing_on(sns, sqs, unique):
    """Templates render booleans as text ("False") unless the DAG renders native objects: "False"
    must not create a queue, run a dry run instead of the replay, or resume a paused subscription;
    an empty value is refused, naming the argument. (Before: any non-empty text was true.)"""
    topic, url, sub, start, end = _one_message_delivered(sns, sqs, unique)
    missing = unique("not-there") + ".fifo"
    with pytest.raises(ConfigurationError, match="does not exist") as exc:
        SnsReplayOperator(task_id="r", topic_arn=topic, target_queue=missing, create_queue="False", start=start).execute({})
    assert exc.value.field == "target_queue"
    assert not sqs.list_queues(QueueNamePrefix=missing).get("QueueUrls")
    for field, value in (("dry_run", ""), ("create_queue", "maybe")):
        with pytest.raises(ConfigurationError) as exc:
            SnsReplayOperator(task_id="r", topic_arn=topic, subscription_arn=sub, start=start, **{field: value}).execute({})
        assert exc.value.field == field
    result = SnsReplayOperator(task_id="r", topic_arn=topic, subscription_arn=sub, start=start, end=end, dry_run="False").execute({})
    assert result["dry_run"] is False and result["pauses_subscription"] is True  # replayed, not planned
    done = ReplayCompletedSensor(task_id="w", subscription_arn=sub, deferrable=False, poke_interval=0.1,
                                 resume_live_delivery="false").execute({})  # fmt: skip
    assert done["paused"] is True and done["resumed_with"] is None
    assert len(drain(sqs, url, 1)) == 1
    sns.publish(TopicArn=topic, Message="live", MessageGroupId="g")
    assert drain(sqs, url, 0, timeout=1.0) == []  # still paused, as asked
