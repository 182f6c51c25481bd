"""The manual redrive DAG end to end with dag.test() and run conf, on the local cloud."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "dlq_redrive.py"


def _load_dag():
    spec = importlib.util.spec_from_file_location("dlq_redrive_dag_under_test", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def _run(dag, conf: dict):
    return dag.test(run_conf=conf)  # the same keyword on 2.11 and 3.x


def _states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}


def _queue(sqs, name, **attributes):
    url = sqs.create_queue(QueueName=name, Attributes={k: str(v) for k, v in attributes.items()})["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _dead_lettered(sqs, unique, count):
    dlq_url, dlq_arn = _queue(sqs, unique("dag-dlq"))
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"})
    src_url, _ = _queue(sqs, unique("dag-src"), RedrivePolicy=policy)
    for i in range(count):
        sqs.send_message(
            QueueUrl=src_url, MessageBody=json.dumps({"n": i}),
            MessageAttributes={"tenant": {"DataType": "String", "StringValue": "acme" if i % 2 else "other"}},
        )  # fmt: skip
    for _ in range(3):
        while sqs.receive_message(QueueUrl=src_url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages"):
            pass
    return dlq_url, src_url


def _depth(sqs, url) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _visible(sqs, url) -> int:
    return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
        "ApproximateNumberOfMessages"
    ])  # fmt: skip


def test_dag_parses_without_io_and_has_the_form(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", "aws://unreachable")
    dag = _load_dag()
    assert type(dag.timetable).__name__ == "NullTimetable"  # schedule=None: manual only
    assert {"inspect", "redrive", "wait", "report"} <= set(dag.task_ids)
    assert dag.params.get_param("mode").schema["enum"] == ["auto", "native", "client"]
    assert dag.max_active_runs == 1


def test_dry_run_leaves_the_dlq_unchanged(airflow_db, local_cloud, aws, unique):
    sqs = aws("sqs")
    dlq_url, src_url = _dead_lettered(sqs, unique, 12)
    dag_run = _run(_load_dag(), {"dlq": dlq_url, "dry_run": True})
    states = _states(dag_run)
    assert states["inspect"] == "success" and states["report"] == "success", states
    assert _visible(sqs, dlq_url) == 12 and _depth(sqs, src_url) == 0


def test_client_redrive_with_filter_end_to_end(airflow_db, local_cloud, aws, unique):
    sqs = aws("sqs")
    dlq_url, src_url = _dead_lettered(sqs, unique, 12)
    dag_run = _run(
        _load_dag(),
        {"dlq": dlq_url, "dry_run": False, "mode": "auto", "message_attribute_filter": {"tenant": "acme"}},
    )
    states = _states(dag_run)
    assert all(states[t] == "success" for t in ("inspect", "redrive", "wait", "report")), states
    if "approve" in states:
        assert states["approve"] == "success"  # 6 messages: below the threshold, approved without asking
    assert _depth(sqs, src_url) == 6 and _visible(sqs, dlq_url) == 6


def test_native_redrive_end_to_end(airflow_db, local_cloud, aws, unique):
    sqs = aws("sqs")
    dlq_url, src_url = _dead_lettered(sqs, unique, 7)
    dag_run = _run(_load_dag(), {"dlq": dlq_url, "dry_run": False})
    states = _states(dag_run)
    assert states["wait"] == "success" and states["report"] == "success", states
    assert _depth(sqs, src_url) == 7 and _depth(sqs, dlq_url) == 0


@pytest.mark.parametrize("conf", [{"jmespath_filter": "body.[["}, {"destination": "arn:aws:s3:::nope"}])
def test_invalid_input_fails_before_touching_the_dlq(airflow_db, local_cloud, aws, unique, conf):
    sqs = aws("sqs")
    dlq_url, _ = _dead_lettered(sqs, unique, 3)
    dag_run = _run(_load_dag(), {"dlq": dlq_url, "dry_run": False, **conf})
    states = _states(dag_run)
    assert states["inspect"] == "failed" and states["redrive"] != "success", states
    assert _visible(sqs, dlq_url) == 3
