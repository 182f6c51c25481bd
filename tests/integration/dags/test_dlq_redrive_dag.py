"""The manual redrive DAG end to end with dag.test() and run conf, on the local cloud."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

DAG_FILE = Path(__file__).resolve().parents[3] / "dags" / "dlq_redrive.py"


@pytest.fixture(autouse=True)
def _no_operations_table(monkeypatch):
    """The DAG's run monitoring (default_args callbacks) still runs after every task, with its
    Snowflake operations table off: a Snowflake session per task try adds up over these runs (the
    loop-guard tests make 25 task tries each). Recording is tested in tests/notifications and by the
    weekly DAG's test; the UI server turns it off the same way (tests/integration/ui/airflow_server.py)."""
    monkeypatch.setenv("AIRFLOW_VAR_ARM_MONITORING_RECORD", "false")


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
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])[
        "Attributes"
    ]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _xcom(dag_run, task_id: str):
    [ti] = [ti for ti in dag_run.get_task_instances() if ti.task_id == task_id]
    return ti.xcom_pull(task_ids=task_id)


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
    workers = dag.params.get_param("workers")  # client mode's workers: 1 by default, 1..10
    assert (workers.value, workers.schema["minimum"], workers.schema["maximum"]) == (1, 1, 10)
    assert dag.get_task("redrive").workers == "{{ params.workers }}"


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
    assert states["approve"] == "success"  # 6 messages: below the threshold, approved without asking
    assert _depth(sqs, src_url) == 6 and _visible(sqs, dlq_url) == 6


def test_native_redrive_end_to_end(airflow_db, local_cloud, aws, unique, monkeypatch):
    sqs = aws("sqs")
    bucket = unique("quarantine")
    aws("s3").create_bucket(Bucket=bucket)
    monkeypatch.setenv("AIRFLOW_VAR_REDRIVE_QUARANTINE_BUCKET", bucket)  # keeps the loop guard's ledger
    dlq_url, src_url = _dead_lettered(sqs, unique, 7)
    dag_run = _run(_load_dag(), {"dlq": dlq_url, "dry_run": False})
    states = _states(dag_run)
    assert states["wait"] == "success" and states["report"] == "success", states
    report = _xcom(dag_run, "report")
    assert report["mode"] == "native" and report["moved"] == 7 and report["guard"]["recorded"] == 7
    assert _depth(sqs, src_url) == 7 and _depth(sqs, dlq_url) == 0


def _always_failing(sqs, unique):
    """A source queue whose consumer always fails (maxReceiveCount 1) and its DLQ; one message."""
    dlq_url, dlq_arn = _queue(sqs, unique("poison-dlq"))
    src_url, _ = _queue(sqs, unique("poison-src"), RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"}))
    sqs.send_message(QueueUrl=src_url, MessageBody='{"order": "poison"}')
    return dlq_url, src_url


def _consume_and_fail(sqs, src_url) -> int:
    """The consumer receives and never deletes: what it received goes to the DLQ. How many it got."""
    got = 0
    for _ in range(3):
        while batch := sqs.receive_message(QueueUrl=src_url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", []):
            got += len(batch)
    return got


@pytest.mark.parametrize("quarantine", [True, False], ids=["quarantine-bucket", "no-quarantine-bucket"])
def test_the_loop_guard_holds_with_the_dag_defaults(airflow_db, local_cloud, aws, unique, monkeypatch, quarantine):
    """Five runs with the form's defaults (only the DLQ given and the dry run switched off) against
    a message its consumer always fails: it is redriven max_redrives (3) times, no more. With the
    Variable redrive_quarantine_bucket (the deployment's quarantine) auto moves it natively while
    the ledger counts, then quarantines it; without it auto keeps to client mode and holds it in
    the DLQ. (Before: auto picked a native move task, which adds no count: five runs, five redrives.)"""
    sqs, s3 = aws("sqs"), aws("s3")
    bucket = unique("quarantine")
    if quarantine:
        s3.create_bucket(Bucket=bucket)
        monkeypatch.setenv("AIRFLOW_VAR_REDRIVE_QUARANTINE_BUCKET", bucket)
    dlq_url, src_url = _always_failing(sqs, unique)
    dag = _load_dag()
    assert dag.params["max_redrives"] == 3 and dag.params["mode"] == "auto"
    deliveries, modes = _consume_and_fail(sqs, src_url), []
    for _ in range(5):
        dag_run = _run(dag, {"dlq": dlq_url, "dry_run": False})
        states = _states(dag_run)
        assert states["redrive"] == "success" and states["report"] == "success", states
        modes.append(_xcom(dag_run, "redrive")["mode"])
        deliveries += _consume_and_fail(sqs, src_url)
    assert deliveries == 1 + 3  # the first delivery, then three redrives
    assert modes[0] == ("native" if quarantine else "client")
    if quarantine:
        assert _depth(sqs, dlq_url) == 0
        parked = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="redrive/_quarantine/").get("Contents", [])]
        assert len(parked) == 1
        doc = json.loads(s3.get_object(Bucket=bucket, Key=parked[0])["Body"].read())
        assert doc["body"] == '{"order": "poison"}' and "max_redrives=3" in doc["reason"]
    else:
        assert _visible(sqs, dlq_url) == 1  # held in the DLQ, not redriven a fourth time


@pytest.mark.parametrize("conf", [{"jmespath_filter": "body.[["}, {"destination": "arn:aws:s3:::nope"}])
def test_invalid_input_fails_before_touching_the_dlq(airflow_db, local_cloud, aws, unique, conf):
    sqs = aws("sqs")
    dlq_url, _ = _dead_lettered(sqs, unique, 3)
    dag_run = _run(_load_dag(), {"dlq": dlq_url, "dry_run": False, **conf})
    states = _states(dag_run)
    assert states["inspect"] == "failed" and states["redrive"] != "success", states
    assert _visible(sqs, dlq_url) == 3


def _answer_when_asked(dag_id: str, task_id: str, option: str, timeout: float = 120.0):
    """A human answering the approval, as the HITL REST API of an api-server sharing the metadata
    DB does (dag.test() waits for such an answer): a thread that calls the API route's function."""
    import threading
    import time

    def answer():
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        class Reviewer:
            def get_id(self):
                return "reviewer"

            def get_name(self):
                return "Reviewer"

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with create_session() as session:
                ti = session.query(TaskInstance).filter_by(dag_id=dag_id, task_id=task_id, state=TaskInstanceState.AWAITING_INPUT).first()
                if ti is not None:
                    update_hitl_detail(dag_id, ti.run_id, task_id, UpdateHITLDetailPayload(chosen_options=[option]),
                                       user=Reviewer(), session=session)  # fmt: skip
                    return
            time.sleep(0.5)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(300)  # dag.test() waits for the answer as long as it takes
@pytest.mark.parametrize("answer", ["Reject", "Approve"])
def test_above_the_threshold_a_human_decides(airflow_db, local_cloud, aws, unique, answer):
    """Airflow 3.1+: more messages than ``approval_threshold`` wait for a human in the UI's
    Required Actions: Reject skips the redrive (the DLQ keeps everything), Approve lets it run.
    Before 3.1 (2.11, 3.0) there is no human-in-the-loop operator: above the threshold the run stops before anything
    moves, naming approval_threshold; the same run triggered with a higher threshold redrives.
    (Before, 2.11 ignored the threshold and redrove everything.)"""
    from airflow_reliable_messaging._compat import AIRFLOW_V_3_1_PLUS

    dag = _load_dag()
    sqs = aws("sqs")
    dlq_url, src_url = _dead_lettered(sqs, unique, 5)
    if not AIRFLOW_V_3_1_PLUS:
        conf = {"dlq": dlq_url, "dry_run": False, "mode": "client", "approval_threshold": 2}
        states = _states(_run(dag, conf))
        assert states["inspect"] == "success" and states["approve"] == "failed", states
        assert states["redrive"] == "upstream_failed", states
        assert _visible(sqs, dlq_url) == 5 and _depth(sqs, src_url) == 0
        if answer == "Approve":
            states = _states(_run(dag, {**conf, "approval_threshold": 5}))
            assert states["approve"] == "success" and states["redrive"] == "success", states
            assert _depth(sqs, dlq_url) == 0 and _depth(sqs, src_url) == 5
        return
    human = _answer_when_asked(dag.dag_id, "approve", answer)
    dag_run = _run(dag, {"dlq": dlq_url, "dry_run": False, "mode": "client", "approval_threshold": 2})
    human.join(timeout=5)
    states = _states(dag_run)
    assert states["inspect"] == "success" and states["approve"] == "success", states
    if answer == "Reject":
        assert states["redrive"] == "skipped", states
        assert _visible(sqs, dlq_url) == 5 and _depth(sqs, src_url) == 0
    else:
        assert states["redrive"] == "success" and states["report"] == "success", states
        assert _depth(sqs, dlq_url) == 0 and _depth(sqs, src_url) == 5
