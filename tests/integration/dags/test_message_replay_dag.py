"""The manual replay DAG end to end with dag.test() and a run conf, on both Airflow lines."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airflow_reliable_messaging.exceptions import ConfigurationError
from airflow_reliable_messaging.hooks.sns import SnsMessagingHook
from airflow_reliable_messaging.operators.replay_request import ReplayRequestOperator
from tests.integration.operators.test_archive_replay import PREFIX, T0, _archive
from tests.messaging import drain, fifo_queue, now_ms

pytestmark = [pytest.mark.localcloud, pytest.mark.dag]

DAG_FILE = Path(__file__).resolve().parents[3] / "dags" / "message_replay.py"


def _load_dag():
    spec = importlib.util.spec_from_file_location("message_replay_dag", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.dag
    dag.get_task("sns_wait").poke_interval = 0.2  # seconds, not the production 30
    return dag


LINKS: dict = {}


def _run(dag, conf: dict):
    """dag.test with a run conf; {task_id: (state, xcom return value)}. Console-link fields the
    tasks stored land in ``LINKS[task_id]``."""
    run = dag.test(run_conf=conf)  # the keyword is run_conf on 2.11 and 3.x alike
    out = {}
    LINKS.clear()
    for ti in run.get_task_instances():
        value = ti.xcom_pull(task_ids=ti.task_id) if str(ti.state) == "success" else None
        out[ti.task_id] = (str(ti.state).rsplit(".", 1)[-1].lower(), value)
        for key in ("arm_sns_topic", "arm_sns_subscription", "arm_sqs_queue"):
            stored = ti.xcom_pull(task_ids=ti.task_id, key=key) if str(ti.state) == "success" else None
            if stored:
                LINKS.setdefault(ti.task_id, {})[key] = stored
    return out


def test_sns_archive_replay_to_existing_subscription(airflow_db, sns, sqs, unique):
    topic = sns.create_topic(Name=unique("claims") + ".fifo", Attributes={"FifoTopic": "true",
                             "ContentBasedDeduplication": "true"})["TopicArn"]  # fmt: skip
    SnsMessagingHook().set_archive_policy(topic, {"MessageRetentionPeriod": "30"})
    url, arn = fifo_queue(sqs, unique("consumer") + ".fifo")
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True)["SubscriptionArn"]
    start = now_ms()
    ids = [sns.publish(TopicArn=topic, Message=f"claim {i}", MessageGroupId="g")["MessageId"] for i in range(3)]
    drain(sqs, url, 3)  # the consumer lost them
    conf = {"source": "sns_archive", "topic_arn": topic, "subscription_arn": sub, "start": start.isoformat(),
            "dry_run": False}  # fmt: skip

    dag = _load_dag()
    plan = _run(dag, {**conf, "dry_run": True})
    assert plan["sns_plan"][0] == "success" and plan["sns_replay"][0] == "skipped"
    assert plan["report"][1]["dry_run"] is True and plan["report"][1]["target"] == sub
    assert drain(sqs, url, 0, timeout=0.5) == []  # a dry run replays nothing

    states = _run(dag, conf)
    assert {t: s for t, (s, _) in states.items()} == {
        "validate": "success", "route": "success", "sns_replay": "success", "sns_wait": "success",
        "sns_plan": "skipped", "s3_replay": "skipped", "report": "success",
    }  # fmt: skip
    report = states["report"][1]
    assert report["source"] == "sns_archive" and report["replay_status"] == "Completed"
    assert report["target"] == sub and report["window"]["start"] == conf["start"].replace("+00:00", "Z")[:23] + "Z"
    assert [json.loads(m["Body"])["MessageId"] for m in drain(sqs, url, 3)] == ids
    links = LINKS["sns_replay"]
    assert links["arm_sns_subscription"]["subscription_arn"] == sub
    assert links["arm_sns_topic"]["topic_arn"] == topic and links["arm_sns_topic"]["aws_domain"] == "aws.amazon.com"
    from airflow_reliable_messaging.links.aws import SnsSubscriptionLink

    assert SnsSubscriptionLink().format_link(**links["arm_sns_subscription"]).endswith("#/subscription/" + sub)


def test_s3_archive_replay_dag(airflow_db, s3, sqs, unique):
    bucket = unique("archive")
    s3.create_bucket(Bucket=bucket)
    _archive(s3, bucket, [(f"m-{i}", i, f'{{"n": {i}}}'.encode(), "claims" if i % 2 else "quotes", "t") for i in range(12)])
    url = sqs.create_queue(QueueName=unique("target"))["QueueUrl"]
    conf = {
        "source": "s3_archive", "archive_bucket": bucket, "archive_prefix": PREFIX, "target_queue": url,
        "start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat(), "source_systems": ["claims"],
        "max_messages_per_second": 0, "dry_run": False,
    }  # fmt: skip
    states = _run(_load_dag(), conf)
    assert states["s3_replay"][0] == "success" and states["sns_replay"][0] == "skipped"
    report = states["report"][1]
    assert (report["source"], report["count"], report["target"]) == ("s3_archive", 6, url)
    assert report["window"] == {"start": T0.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                                "end": (T0 + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}  # fmt: skip
    got = drain(sqs, url, 6)
    assert sorted(json.loads(m["Body"])["n"] for m in got) == [1, 3, 5, 7, 9, 11]


def test_invalid_params_fail_validate_before_any_aws_call(airflow_db, sqs, unique):
    queue = unique("never-created") + ".fifo"
    conf = {"source": "sns_archive", "topic_arn": "arn:aws:sns:us-east-1:123456789012:claims.fifo",
            "target_queue": queue, "create_queue": True, "start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z",
            "dry_run": False}  # fmt: skip
    states = _run(_load_dag(), conf)
    assert states["validate"][0] == "failed"
    assert all(states[t][0] in ("upstream_failed", "none", "skipped") for t in ("route", "sns_replay", "report"))
    assert queue not in json.dumps(sqs.list_queues(QueueNamePrefix=queue.split("-")[0]))


def test_form_rejects_what_is_not_a_date_time(airflow_db):
    """The Params schema (format date-time) refuses it at trigger time on 2.11; on 3.x validate does."""
    from airflow.exceptions import ParamValidationError

    conf = {"source": "sns_archive", "topic_arn": "arn:aws:sns:us-east-1:123456789012:c.fifo", "target_queue": "q",
            "start": "not-a-date"}  # fmt: skip
    try:
        states = _run(_load_dag(), conf)
    except ParamValidationError as exc:
        assert "param start" in str(exc)
    else:
        assert states["validate"][0] == "failed" and states["route"][0] != "success"


RECENT = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")  # within any SNS archive's reach


@pytest.mark.parametrize(
    ("conf", "field"),
    [
        ({"source": "kafka"}, "source"),
        ({"source": "sns_archive", "start": "2024-13-01"}, "start"),
        ({"source": "sns_archive", "start": "2024-01-01T00:00:00Z", "end": "2023-01-01T00:00:00Z"}, "end"),
        ({"source": "sns_archive", "start": RECENT}, "topic_arn"),
        ({"source": "sns_archive", "start": RECENT, "topic_arn": "arn:aws:sns:us-east-1:123456789012:std"},
         "topic_arn"),
        ({"source": "sns_archive", "start": RECENT, "topic_arn": "arn:aws:sns:us-east-1:123456789012:c.fifo"},
         "subscription_arn"),
        ({"source": "sns_archive", "start": RECENT, "topic_arn": "arn:aws:sns:us-east-1:123456789012:c.fifo",
          "target_queue": "q", "message_ids": ["x"]}, "message_ids"),
        ({"source": "sns_archive", "start": "2016-01-01T00:00:00Z", "topic_arn": "arn:aws:sns:us-east-1:123456789012:c.fifo",
          "target_queue": "q"}, "start"),
        ({"source": "sns_archive", "start": RECENT, "topic_arn": "arn:aws:sns:us-east-1:123456789012:c.fifo",
          "target_queue": "https://sqs.us-east-1.amazonaws.com/q"}, "target_queue"),
        ({"source": "s3_archive", "start": "2024-01-01T00:00:00Z", "archive_bucket": "Bad_Bucket", "target_queue": "q"},
         "archive_bucket"),
        ({"source": "s3_archive", "start": "2024-01-01T00:00:00Z", "archive_bucket": "good-bucket"}, "topic_arn"),
        ({"source": "s3_archive", "start": "2024-01-01T00:00:00Z", "archive_bucket": "good-bucket", "target_queue": "q",
          "max_messages_per_second": -1}, "max_messages_per_second"),
        ({"source": "s3_archive", "start": "2024-01-01T00:00:00Z", "archive_bucket": "good-bucket", "target_queue": "q",
          "replay_id": "has space"}, "replay_id"),
    ],
)  # fmt: skip
def test_validate_names_the_field(conf, field):
    with pytest.raises(ConfigurationError) as exc:
        ReplayRequestOperator(task_id="validate").execute({"params": conf})
    assert exc.value.field == field
    assert str(exc.value).startswith(f"{field}: ")


def test_s3_request_fixes_an_open_end():
    before = datetime.now(UTC)
    request = ReplayRequestOperator(task_id="validate").execute(
        {"params": {"source": "s3_archive", "start": "2024-01-01T00:00:00Z", "archive_bucket": "good-bucket", "target_queue": "q"}}
    )
    end = datetime.fromisoformat(request["end"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= end <= datetime.now(UTC)


def test_a_window_before_the_archive_fails_validate_naming_start(airflow_db, sns, sqs, unique):
    """The validate task reads the topic (nothing else) and refuses a window that starts before
    its BeginningArchiveTime, naming start and pointing to the S3 archive source; nothing runs
    after it. (Before, validate passed and the replay task failed at SNS.)"""
    topic = sns.create_topic(Name=unique("claims") + ".fifo", Attributes={"FifoTopic": "true",
                             "ContentBasedDeduplication": "true"})["TopicArn"]  # fmt: skip
    SnsMessagingHook().set_archive_policy(topic, {"MessageRetentionPeriod": "30"})
    beginning = sns.get_topic_attributes(TopicArn=topic)["Attributes"]["BeginningArchiveTime"]
    _, arn = fifo_queue(sqs, unique("consumer") + ".fifo")
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True)["SubscriptionArn"]
    early = datetime.fromisoformat(beginning.replace("Z", "+00:00")) - timedelta(days=2)
    conf = {"source": "sns_archive", "topic_arn": topic, "subscription_arn": sub, "start": early.isoformat(), "dry_run": False}
    with pytest.raises(ConfigurationError) as exc:
        ReplayRequestOperator(task_id="validate").execute({"params": conf})
    assert exc.value.field == "start" and "BeginningArchiveTime" in str(exc.value) and "source s3_archive" in str(exc.value)
    states = _run(_load_dag(), conf)
    assert states["validate"][0] == "failed"
    assert all(states[t][0] in ("upstream_failed", "none", "skipped") for t in ("route", "sns_replay", "sns_wait", "report"))
    assert "ReplayPolicy" not in sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]


def test_the_form_sets_the_s3_replays_workers():
    """The S3 archive's *Workers* (1 by default, 1..10) reach the replay task; the SNS path has none."""
    dag = _load_dag()
    workers = dag.params.get_param("workers")
    assert (workers.value, workers.schema["minimum"], workers.schema["maximum"]) == (1, 1, 10)
    assert dag.get_task("s3_replay").workers == "{{ params.workers }}"


def test_an_s3_replay_without_a_prefix_reads_where_the_archive_dag_writes(monkeypatch):
    """The archive DAG (and the weekly load, the Snowflake setup) default the archive prefix to
    ``audit`` when neither the form nor the Variable ``audit_archive_prefix`` gives one; the replay
    form fell back to ``""`` — the bucket's root, where nothing is archived: a replay with the
    defaults found no record and reported the window replayed (0 messages). Now the same
    default: form, else Variable, else ``audit``."""
    monkeypatch.delenv("AIRFLOW_VAR_AUDIT_ARCHIVE_PREFIX", raising=False)
    params = {"source": "s3_archive", "start": "2024-01-01T00:00:00Z", "archive_bucket": "good-bucket", "target_queue": "q"}
    for form in ({}, {"archive_prefix": ""}, {"archive_prefix": None}):
        assert ReplayRequestOperator(task_id="validate").execute({"params": {**params, **form}})["archive_prefix"] == "audit"
    monkeypatch.setenv("AIRFLOW_VAR_AUDIT_ARCHIVE_PREFIX", "claims/v2")
    assert ReplayRequestOperator(task_id="validate").execute({"params": params})["archive_prefix"] == "claims/v2"
    form = {**params, "archive_prefix": "other"}
    assert ReplayRequestOperator(task_id="validate").execute({"params": form})["archive_prefix"] == "other"
