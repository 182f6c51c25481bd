"""The local cloud's SNS FIFO archive and replay behave as the SNS developer guide documents,
through boto3 against the running emulator."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from tests.messaging import drain, fifo_queue, replay_knobs

pytestmark = pytest.mark.localcloud


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def control(local_cloud):
    """Emulator knobs (not an AWS API); reset after the test."""
    post = replay_knobs(local_cloud)
    yield post
    post(reset=True)


def _topic(sns, unique, archive_days=30, **attributes):
    attrs = {"FifoTopic": "true", "ContentBasedDeduplication": "true", **attributes}
    arn = sns.create_topic(Name=unique("t") + ".fifo", Attributes=attrs)["TopicArn"]
    if archive_days:
        policy = json.dumps({"MessageRetentionPeriod": str(archive_days)})
        sns.set_topic_attributes(TopicArn=arn, AttributeName="ArchivePolicy", AttributeValue=policy)
    return arn


def _subscribe(sns, topic, queue_arn, **attributes):
    return sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes=attributes, ReturnSubscriptionArn=True)[
        "SubscriptionArn"
    ]


def _status(sns, sub):
    return sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"].get("ReplayStatus")


def _wait_status(sns, sub, wanted=("Completed", "Failed"), timeout=15.0):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _status(sns, sub)
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in wanted:
            return seen
        time.sleep(0.03)
    raise AssertionError(f"replay status stuck; seen {seen}")


def _error(exc_info) -> tuple[str, int]:
    err = exc_info.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


# -- archive policy ------------------------------------------------------------------------------
def test_archive_policy_on_fifo_topic_and_beginning_archive_time(sns, unique):
    before = _now().replace(microsecond=0)
    topic = _topic(sns, unique, archive_days=30)
    attrs = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
    assert json.loads(attrs["ArchivePolicy"]) == {"MessageRetentionPeriod": "30"}
    beginning = datetime.fromisoformat(attrs["BeginningArchiveTime"].replace("Z", "+00:00"))
    assert before <= beginning <= _now()

    # changing the retention keeps the archive (and its beginning)
    sns.set_topic_attributes(TopicArn=topic, AttributeName="ArchivePolicy", AttributeValue='{"MessageRetentionPeriod":"365"}')
    attrs = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
    assert json.loads(attrs["ArchivePolicy"]) == {"MessageRetentionPeriod": "365"}
    assert datetime.fromisoformat(attrs["BeginningArchiveTime"].replace("Z", "+00:00")) == beginning

    # set at creation too
    created = sns.create_topic(
        Name=unique("c") + ".fifo", Attributes={"FifoTopic": "true", "ArchivePolicy": '{"MessageRetentionPeriod":"1"}'}
    )["TopicArn"]
    assert "BeginningArchiveTime" in sns.get_topic_attributes(TopicArn=created)["Attributes"]


@pytest.mark.parametrize(
    "value",
    [
        '{"MessageRetentionPeriod":"0"}',
        '{"MessageRetentionPeriod":"366"}',
        '{"MessageRetentionPeriod":"x"}',
        "not json",
        '{"Retention":"3"}',
    ],  # fmt: skip
)
def test_invalid_archive_policies_are_refused(sns, unique, value):
    topic = _topic(sns, unique, archive_days=0)
    with pytest.raises(ClientError) as exc:
        sns.set_topic_attributes(TopicArn=topic, AttributeName="ArchivePolicy", AttributeValue=value)
    assert _error(exc) == ("InvalidParameter", 400)
    assert "ArchivePolicy" not in sns.get_topic_attributes(TopicArn=topic)["Attributes"]


def test_archive_policy_only_on_fifo_topics(sns, unique):
    topic = sns.create_topic(Name=unique("std"))["TopicArn"]
    with pytest.raises(ClientError) as exc:
        sns.set_topic_attributes(TopicArn=topic, AttributeName="ArchivePolicy", AttributeValue='{"MessageRetentionPeriod":"3"}')
    assert _error(exc) == ("InvalidParameter", 400)


def test_topic_with_archive_cannot_be_deleted_until_policy_cleared(sns, sqs, unique):
    topic = _topic(sns, unique)
    with pytest.raises(ClientError) as exc:
        sns.delete_topic(TopicArn=topic)
    assert _error(exc) == ("InvalidState", 400)
    assert sns.get_topic_attributes(TopicArn=topic)

    sns.publish(TopicArn=topic, Message="archived then deleted", MessageGroupId="g")
    sns.set_topic_attributes(TopicArn=topic, AttributeName="ArchivePolicy", AttributeValue="{}")
    attrs = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
    assert "ArchivePolicy" not in attrs and "BeginningArchiveTime" not in attrs

    # archiving again starts a new, empty archive: the old window is gone
    start = _now() - timedelta(seconds=5)
    sns.set_topic_attributes(TopicArn=topic, AttributeName="ArchivePolicy", AttributeValue='{"MessageRetentionPeriod":"2"}')
    _, queue_arn = fifo_queue(sqs, unique("q") + ".fifo")
    sub = _subscribe(sns, topic, queue_arn)
    with pytest.raises(ClientError) as exc:
        sns.set_subscription_attributes(
            SubscriptionArn=sub, AttributeName="ReplayPolicy",
            AttributeValue=json.dumps({"PointType": "Timestamp", "StartingPoint": _ts(start)}),
        )  # fmt: skip
    assert _error(exc) == ("InvalidParameter", 400)

    sns.set_topic_attributes(TopicArn=topic, AttributeName="ArchivePolicy", AttributeValue="{}")
    sns.delete_topic(TopicArn=topic)
    with pytest.raises(ClientError):
        sns.get_topic_attributes(TopicArn=topic)


# -- replay --------------------------------------------------------------------------------------
def test_replay_redelivers_window_with_original_id_timestamp_and_marker(sns, sqs, unique):
    """The seed walkthrough: publish a claim, consume it, subscribe a replay queue from the publish time."""
    topic = _topic(sns, unique)
    primary_url, primary_arn = fifo_queue(sqs, unique("primary") + ".fifo")
    _subscribe(sns, topic, primary_arn)
    start = _now()
    claim = json.dumps({"claim_type": "collision", "registration": "AB123CDE"})
    message_id = sns.publish(TopicArn=topic, Message=claim, MessageGroupId="group1")["MessageId"]
    (original,) = drain(sqs, primary_url, 1)
    envelope = json.loads(original["Body"])
    assert envelope["MessageId"] == message_id and envelope["Message"] == claim
    assert "Replayed" not in envelope

    replay_url, replay_arn = fifo_queue(sqs, unique("replay") + ".fifo")
    policy = json.dumps({"PointType": "Timestamp", "StartingPoint": _ts(start)})
    sub = _subscribe(sns, topic, replay_arn, ReplayPolicy=policy)
    attrs = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    assert attrs["ReplayPolicy"] == policy
    seen = _wait_status(sns, sub)
    assert seen[0] == "Pending" and seen[-1] == "Completed"

    (replayed,) = drain(sqs, replay_url, 1)
    body = json.loads(replayed["Body"])
    assert body["MessageId"] == message_id
    assert body["Timestamp"] == envelope["Timestamp"]
    assert body["Replayed"] is True
    assert body["Message"] == claim

    # after catching up the subscription carries live traffic (not marked replayed)
    sns.publish(TopicArn=topic, Message="live", MessageGroupId="group1")
    (live,) = drain(sqs, replay_url, 1)
    assert json.loads(live["Body"])["Message"] == "live" and "Replayed" not in json.loads(live["Body"])


def test_publish_batch_is_archived_and_replayed_in_order(sns, sqs, unique):
    topic = _topic(sns, unique)
    start = _now()
    entries = [{"Id": str(i), "Message": f"m{i}", "MessageGroupId": "g"} for i in range(6)]
    result = sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
    assert not result.get("Failed")
    ids = [s["MessageId"] for s in sorted(result["Successful"], key=lambda s: int(s["Id"]))]
    # a duplicate within 5 minutes (content-based deduplication) is neither delivered nor archived again
    sns.publish(TopicArn=topic, Message="m0", MessageGroupId="g")

    url, arn = fifo_queue(sqs, unique("q") + ".fifo")
    sub = _subscribe(sns, topic, arn, ReplayPolicy=json.dumps({"PointType": "Timestamp", "StartingPoint": _ts(start)}))
    _wait_status(sns, sub)
    got = [json.loads(m["Body"]) for m in drain(sqs, url, 6)]
    assert [g["Message"] for g in got] == [f"m{i}" for i in range(6)]
    assert [g["MessageId"] for g in got] == ids


def test_status_goes_pending_in_progress_completed(sns, sqs, unique, control):
    control(pending_seconds=0.5, delivery_interval_seconds=0.2)
    topic = _topic(sns, unique)
    start = _now()
    for i in range(4):
        sns.publish(TopicArn=topic, Message=f"m{i}", MessageGroupId="g")
    _, arn = fifo_queue(sqs, unique("q") + ".fifo")
    sub = _subscribe(sns, topic, arn, ReplayPolicy=json.dumps({"PointType": "Timestamp", "StartingPoint": _ts(start)}))
    assert _wait_status(sns, sub) == ["Pending", "In progress", "Completed"]


def test_filter_policy_and_raw_delivery_apply_to_replayed_messages(sns, sqs, unique):
    topic = _topic(sns, unique)
    start = _now()
    for n, kind in enumerate(("claim", "quote", "claim")):
        sns.publish(
            TopicArn=topic, Message=f"{kind} {n}", MessageGroupId="g",
            MessageAttributes={"kind": {"DataType": "String", "StringValue": kind}},
        )  # fmt: skip
    url, arn = fifo_queue(sqs, unique("q") + ".fifo")
    sub = _subscribe(
        sns, topic, arn, RawMessageDelivery="true", FilterPolicy=json.dumps({"kind": ["claim"]}),
        ReplayPolicy=json.dumps({"PointType": "Timestamp", "StartingPoint": _ts(start)}),
    )  # fmt: skip
    _wait_status(sns, sub)
    got = drain(sqs, url, 2)
    assert [m["Body"] for m in got] == ["claim 0", "claim 2"]
    assert all(m["MessageAttributes"]["kind"]["StringValue"] == "claim" for m in got)


def test_ending_point_pauses_until_a_policy_without_ending_point(sns, sqs, unique):
    topic = _topic(sns, unique)
    url, arn = fifo_queue(sqs, unique("q") + ".fifo")
    sub = _subscribe(sns, topic, arn)
    start = _now()
    sns.publish(TopicArn=topic, Message="m1", MessageGroupId="g")
    sns.publish(TopicArn=topic, Message="m2", MessageGroupId="g")
    time.sleep(0.01)
    end = _now()
    time.sleep(0.01)
    sns.publish(TopicArn=topic, Message="m3", MessageGroupId="g")
    assert [json.loads(m["Body"])["Message"] for m in drain(sqs, url, 3)] == ["m1", "m2", "m3"]

    # failed consumer: replay the window m1..m2 to the same queue
    window = {"PointType": "Timestamp", "StartingPoint": _ts(start), "EndingPoint": _ts(end)}
    sns.set_subscription_attributes(SubscriptionArn=sub, AttributeName="ReplayPolicy", AttributeValue=json.dumps(window))
    assert _wait_status(sns, sub)[-1] == "Completed"
    got = [json.loads(m["Body"]) for m in drain(sqs, url, 2)]
    assert [g["Message"] for g in got] == ["m1", "m2"] and all(g["Replayed"] for g in got)

    # paused: a live message does not arrive
    sns.publish(TopicArn=topic, Message="m4", MessageGroupId="g")
    assert drain(sqs, url, 0, timeout=1.0) == []

    # resume from the previous ending point: m3 and the held-back m4, then live again
    resume = {"PointType": "Timestamp", "StartingPoint": _ts(end)}
    sns.set_subscription_attributes(SubscriptionArn=sub, AttributeName="ReplayPolicy", AttributeValue=json.dumps(resume))
    _wait_status(sns, sub)
    assert [json.loads(m["Body"])["Message"] for m in drain(sqs, url, 2)] == ["m3", "m4"]
    sns.publish(TopicArn=topic, Message="m5", MessageGroupId="g")
    (live,) = drain(sqs, url, 1)
    assert json.loads(live["Body"])["Message"] == "m5" and "Replayed" not in json.loads(live["Body"])


def test_new_policy_replaces_replay_in_progress(sns, sqs, unique, control):
    control(pending_seconds=1.0)
    topic = _topic(sns, unique)
    start = _now()
    sns.publish(TopicArn=topic, Message="m1", MessageGroupId="g")
    time.sleep(0.01)
    middle = _now()
    sns.publish(TopicArn=topic, Message="m2", MessageGroupId="g")
    url, arn = fifo_queue(sqs, unique("q") + ".fifo")
    sub = _subscribe(sns, topic, arn, ReplayPolicy=json.dumps({"PointType": "Timestamp", "StartingPoint": _ts(start)}))
    assert _status(sns, sub) == "Pending"
    newer = json.dumps({"PointType": "Timestamp", "StartingPoint": _ts(middle)})
    sns.set_subscription_attributes(SubscriptionArn=sub, AttributeName="ReplayPolicy", AttributeValue=newer)
    _wait_status(sns, sub)
    assert sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]["ReplayPolicy"] == newer
    assert [json.loads(m["Body"])["Message"] for m in drain(sqs, url, 1)] == ["m2"]


def test_replay_fails_when_the_queue_vanished(sns, sqs, unique):
    topic = _topic(sns, unique)
    start = _now()
    sns.publish(TopicArn=topic, Message="m1", MessageGroupId="g")
    url, arn = fifo_queue(sqs, unique("q") + ".fifo")
    sub = _subscribe(sns, topic, arn)
    sqs.delete_queue(QueueUrl=url)
    sns.set_subscription_attributes(
        SubscriptionArn=sub, AttributeName="ReplayPolicy",
        AttributeValue=json.dumps({"PointType": "Timestamp", "StartingPoint": _ts(start)}),
    )  # fmt: skip
    assert _wait_status(sns, sub)[-1] == "Failed"


def _policy(start=None, **extra):
    return json.dumps({"PointType": "Timestamp", "StartingPoint": _ts(start or _now()), **extra})


@pytest.mark.parametrize(
    "make_value",
    [
        lambda b: "not json",
        lambda b: json.dumps({"PointType": "SequenceNumber", "StartingPoint": _ts(b)}),
        lambda b: json.dumps({"PointType": "Timestamp"}),
        lambda b: json.dumps({"PointType": "Timestamp", "StartingPoint": "yesterday"}),
        lambda b: _policy(b - timedelta(seconds=2)),  # before BeginningArchiveTime
        lambda b: _policy(b, EndingPoint=_ts(b - timedelta(seconds=1))),  # ends before it starts
        lambda b: _policy(_now() + timedelta(hours=1)),  # in the future
    ],
    ids=["json", "point-type", "no-start", "bad-start", "before-archive", "end-before-start", "future"],
)
def test_invalid_replay_policies_are_refused(sns, sqs, unique, make_value):
    topic = _topic(sns, unique)
    beginning = datetime.fromisoformat(
        sns.get_topic_attributes(TopicArn=topic)["Attributes"]["BeginningArchiveTime"].replace("Z", "+00:00")
    )
    _, arn = fifo_queue(sqs, unique("q") + ".fifo")
    sub = _subscribe(sns, topic, arn)
    value = make_value(beginning)
    with pytest.raises(ClientError) as exc:
        sns.set_subscription_attributes(SubscriptionArn=sub, AttributeName="ReplayPolicy", AttributeValue=value)
    assert _error(exc) == ("InvalidParameter", 400)
    assert "ReplayStatus" not in sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]

    # Subscribe refuses it too, without creating the subscription
    _, other = fifo_queue(sqs, unique("q2") + ".fifo")
    with pytest.raises(ClientError) as exc:
        _subscribe(sns, topic, other, ReplayPolicy=value)
    assert _error(exc) == ("InvalidParameter", 400)
    endpoints = [s["Endpoint"] for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]]
    assert other not in endpoints


def test_replay_needs_an_archive_and_an_sqs_subscription(sns, sqs, unique):
    no_archive = _topic(sns, unique, archive_days=0)
    _, arn = fifo_queue(sqs, unique("q") + ".fifo")
    sub = _subscribe(sns, no_archive, arn)
    with pytest.raises(ClientError) as exc:
        sns.set_subscription_attributes(SubscriptionArn=sub, AttributeName="ReplayPolicy", AttributeValue=_policy())
    assert _error(exc) == ("InvalidParameter", 400)

    topic = _topic(sns, unique)
    http_sub = sns.subscribe(TopicArn=topic, Protocol="http", Endpoint="http://127.0.0.1:9/hook", ReturnSubscriptionArn=True)[
        "SubscriptionArn"
    ]
    with pytest.raises(ClientError) as exc:
        sns.set_subscription_attributes(SubscriptionArn=http_sub, AttributeName="ReplayPolicy", AttributeValue=_policy())
    assert _error(exc) == ("InvalidParameter", 400)


def test_too_many_concurrent_replays(sns, sqs, unique, control):
    control(pending_seconds=3.0, max_concurrent_replays=1)
    topic = _topic(sns, unique)
    start = _now()
    _, arn_a = fifo_queue(sqs, unique("a") + ".fifo")
    _, arn_b = fifo_queue(sqs, unique("b") + ".fifo")
    sub_a = _subscribe(sns, topic, arn_a, ReplayPolicy=_policy(start))
    sub_b = _subscribe(sns, topic, arn_b)
    with pytest.raises(ClientError) as exc:
        sns.set_subscription_attributes(SubscriptionArn=sub_b, AttributeName="ReplayPolicy", AttributeValue=_policy(start))
    assert _error(exc) == ("ReplayLimitExceeded", 403)
    # replacing the running replay of the same subscription is not an extra replay
    sns.set_subscription_attributes(SubscriptionArn=sub_a, AttributeName="ReplayPolicy", AttributeValue=_policy(start))
    assert _status(sns, sub_a) == "Pending"


def test_messages_older_than_the_retention_period_drop_out(sns, sqs, unique, control):
    topic = _topic(sns, unique, archive_days=1)
    sns.publish(TopicArn=topic, Message="old", MessageGroupId="g")
    control(clock_offset_seconds=12 * 3600)
    sns.publish(TopicArn=topic, Message="recent", MessageGroupId="g")
    control(clock_offset_seconds=24 * 3600 + 65)  # a day and a minute later: "old" is past the 1-day retention
    beginning = sns.get_topic_attributes(TopicArn=topic)["Attributes"]["BeginningArchiveTime"]
    # the emulated clock reads now + 1 day + 65 s: the archive begins about a day before that
    assert _now() < datetime.fromisoformat(beginning.replace("Z", "+00:00")) < _now() + timedelta(seconds=70)
    url, arn = fifo_queue(sqs, unique("q") + ".fifo")
    sub = _subscribe(sns, topic, arn, ReplayPolicy=json.dumps({"PointType": "Timestamp", "StartingPoint": beginning}))
    _wait_status(sns, sub)
    assert [json.loads(m["Body"])["Message"] for m in drain(sqs, url, 1)] == ["recent"]


def test_empty_replay_policy_stops_the_replay_and_unpauses(sns, sqs, unique):
    """Emulator choice (the console's "Stop replay"; its API form is not documented): ``""``."""
    topic = _topic(sns, unique)
    url, arn = fifo_queue(sqs, unique("q") + ".fifo")
    sub = _subscribe(sns, topic, arn)
    start = _now()
    sns.publish(TopicArn=topic, Message="m1", MessageGroupId="g")
    time.sleep(0.01)
    sns.set_subscription_attributes(
        SubscriptionArn=sub, AttributeName="ReplayPolicy", AttributeValue=_policy(start, EndingPoint=_ts(_now()))
    )
    _wait_status(sns, sub)
    drain(sqs, url, 2)
    sns.set_subscription_attributes(SubscriptionArn=sub, AttributeName="ReplayPolicy", AttributeValue="")
    attrs = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    assert "ReplayPolicy" not in attrs and "ReplayStatus" not in attrs
    sns.publish(TopicArn=topic, Message="live", MessageGroupId="g")
    assert [json.loads(m["Body"])["Message"] for m in drain(sqs, url, 1)] == ["live"]
