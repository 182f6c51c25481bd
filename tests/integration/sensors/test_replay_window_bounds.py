"""The replay operator and sensor lose nothing whichever way SNS treats a message stamped exactly at
a replay window's bound.

AWS documents that a replay with an ``EndingPoint`` leaves the subscription receiving no newly
published messages once ``Completed``
(https://docs.aws.amazon.com/sns/latest/api/API_GetSubscriptionAttributes.html, ReplayStatus) and
that replayed messages keep their ``MessageId``
(https://docs.aws.amazon.com/sns/latest/dg/message-archiving-and-replay-subscriber.html), but not
whether ``StartingPoint`` and ``EndingPoint`` are inclusive. The local cloud's replay can take
either choice for each bound (its ``start_inclusive`` / ``end_inclusive`` knobs); the pause,
resume and live delivery are checked under all four.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from airflow_reliable_messaging.domain import replay as rp
from airflow_reliable_messaging.hooks.sns import SnsMessagingHook
from airflow_reliable_messaging.operators.sns_replay import SnsReplayOperator
from airflow_reliable_messaging.sensors.replay import ReplayCompletedSensor
from tests.messaging import drain, fifo_queue

pytestmark = pytest.mark.localcloud


@pytest.mark.parametrize("start_inclusive", [1, 0], ids=["start-in", "start-out"])
@pytest.mark.parametrize("end_inclusive", [1, 0], ids=["end-in", "end-out"])
def test_resuming_after_an_ending_point_loses_nothing_at_the_bound(sns, sqs, unique, replay_control, start_inclusive, end_inclusive):
    replay_control(start_inclusive=start_inclusive, end_inclusive=end_inclusive, pending_seconds=0.05)
    topic = sns.create_topic(Name=unique("bounds") + ".fifo", Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "true"})[
        "TopicArn"
    ]
    SnsMessagingHook().set_archive_policy(topic, {"MessageRetentionPeriod": "1"})
    url, arn = fifo_queue(sqs, unique("consumer") + ".fifo")
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True)["SubscriptionArn"]

    ids = [sns.publish(TopicArn=topic, Message=f"m{i}", MessageGroupId="g")["MessageId"] for i in (1, 2)]
    live = {json.loads(m["Body"])["MessageId"]: json.loads(m["Body"])["Timestamp"] for m in drain(sqs, url, 2)}
    # the consumer lost m1 and m2; replay exactly [m1's timestamp, m2's timestamp]
    start = rp.parse_instant(live[ids[0]], "t")
    end = rp.parse_instant(live[ids[1]], "t")
    if end == start:
        end += timedelta(milliseconds=1)  # an EndingPoint must be after the StartingPoint
    SnsReplayOperator(task_id="r", topic_arn=topic, subscription_arn=sub, start=start, end=end).execute({})
    paused = sns.publish(TopicArn=topic, Message="while paused", MessageGroupId="g")["MessageId"]
    ReplayCompletedSensor(task_id="w", subscription_arn=sub, deferrable=False, poke_interval=0.05, resume_live_delivery=True).execute({})
    got = [json.loads(m["Body"]) for m in drain(sqs, url, 2)]
    # wait for the resumed replay to complete, then live traffic flows
    ReplayCompletedSensor(task_id="w2", subscription_arn=sub, deferrable=False, poke_interval=0.05).execute({})
    after = sns.publish(TopicArn=topic, Message="live", MessageGroupId="g")["MessageId"]
    got += [json.loads(m["Body"]) for m in drain(sqs, url, 1)]

    delivered = [m["MessageId"] for m in got]
    assert paused in delivered and after in delivered  # nothing published while paused or since is lost
    if live[ids[1]] == rp.format_instant(end):
        assert ids[1] in delivered  # the message stamped exactly at EndingPoint is not lost either
    # at most a message stamped in the window's last millisecond comes twice, with its MessageId
    doubled = {i for i in delivered if delivered.count(i) > 1}
    assert doubled <= {ids[1]}, got
