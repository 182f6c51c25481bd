"""The archive DAG: parse-time hygiene, schedule and asset, and a run with dag.test() on the local cloud."""

from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DAG_FILE = REPO / "dags" / "audit_archive.py"


def _load_dag():
    spec = importlib.util.spec_from_file_location("audit_archive_dag_under_test", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def _states(dag_run) -> dict[str, str]:
    """State per task id, a mapped task's instances as ``task_id[map_index]``."""
    return {
        ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(getattr(ti.state, "value", ti.state))
        for ti in dag_run.get_task_instances()
    }


def _asset_event_extras(uri: str) -> list[dict]:
    """Extras of the asset (dataset) events recorded for ``uri``, oldest first."""
    from airflow.utils.session import create_session

    from airflow_reliable_messaging._compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.asset import AssetEvent as Event
        from airflow.models.asset import AssetModel as Model

        key = Event.asset_id
    else:
        from airflow.models.dataset import DatasetEvent as Event
        from airflow.models.dataset import DatasetModel as Model

        key = Event.dataset_id
    with create_session() as session:
        rows = session.query(Event).join(Model, Model.id == key).filter(Model.uri == uri).order_by(Event.id).all()
        return [dict(r.extra or {}) for r in rows]


def _declare_alias_on_2_11() -> None:
    """2.11's dag.test() does not sync datasets or aliases (the DAG processor does), and an event
    through an alias unknown to the metadata DB fails to flush."""
    from airflow.utils.session import create_session

    from airflow_reliable_messaging._compat import AIRFLOW_V_3_0_PLUS
    from airflow_reliable_messaging.assets import ARCHIVE_ALIAS

    if AIRFLOW_V_3_0_PLUS:
        return
    from airflow.models.dataset import DatasetAliasModel

    with create_session() as session:
        if not session.query(DatasetAliasModel).filter(DatasetAliasModel.name == ARCHIVE_ALIAS).first():
            session.add(DatasetAliasModel(name=ARCHIVE_ALIAS))


def test_parsing_does_no_io_and_imports_no_hook(tmp_path):
    """The hooks, boto3 and the Snowflake connector load only when the task runs (the outlet is an
    asset alias: no s3:// URI for Airflow to normalise with the Amazon provider at parse time)."""
    probe = (
        "import importlib.util, sys, socket\n"
        "def no_network(*a, **k): raise AssertionError('network access at parse time')\n"
        "socket.socket.connect = no_network\n"
        f"spec = importlib.util.spec_from_file_location('d', {str(DAG_FILE)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "heavy = ('airflow_reliable_messaging.hooks.s3', 'airflow_reliable_messaging.hooks.sqs',\n"
        "         'airflow_reliable_messaging.hooks.sns', 'snowflake.connector', 'boto3', 'botocore')\n"
        "print(sorted(n for n in heavy if n in sys.modules))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite://"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_schedule_runs_and_asset(monkeypatch):
    monkeypatch.setenv("AUDIT_ARCHIVE_SCHEDULE", "*/10 * * * *")
    dag = _load_dag()
    assert dag.max_active_runs == 1 and not dag.catchup
    assert "*/10 * * * *" in str(getattr(dag.timetable, "summary", "")) or "*/10" in repr(dag.timetable)
    assert sorted(t.task_id for t in dag.tasks) == ["announce", "archive", "plan_workers"]
    task = dag.get_task("archive")
    assert dag.get_task("plan_workers") in task.upstream_list  # mapped over the workers' shares
    from airflow_reliable_messaging._compat import AssetAlias

    # One unmapped task announces for all workers: mapped workers finishing together each creating
    # the alias's asset the first time raced in Airflow's API server (UNIQUE constraint failed:
    # asset.name, asset.uri) and the loser was set to failed after its archive had succeeded.
    announcers = [t for t in dag.tasks if t.outlets]
    assert [t.task_id for t in announcers] == ["announce"]
    assert [(type(o).__name__, o.name) for o in announcers[0].outlets] == [(AssetAlias.__name__, "audit-archive")]
    assert task in announcers[0].upstream_list and not task.outlets
    assert announcers[0].trigger_rule == "all_success"  # a failed worker fails the run, nothing announced
    assert {"queue_url", "bucket", "prefix", "topic_arn", "aws_conn_id"} <= set(task.template_fields)
    assert dag.params.get_param("notifications").schema["enum"] == ["", "per_record", "per_batch", "none"]
    assert dag.params["workers"] == 0  # the Variable, else 1: one worker, as before mapping


def _queue_of_records(aws, unique, monkeypatch, count: int) -> tuple[str, str]:
    sqs, s3 = aws("sqs"), aws("s3")
    queue = sqs.create_queue(QueueName=unique("dag-audit"))["QueueUrl"]
    bucket = unique("dag-archive")
    s3.create_bucket(Bucket=bucket)
    for i in range(count):
        body = {
            "messageMetaData": {"messageType": "textB64", "sourceSystemID": "dag", "sourceTransactionID": f"t{i}",
                                "dateTime": "2024-05-06 07:08:09.000010"},
            "messagePayload": base64.b64encode(f"record {i}".encode()).decode(),
        }  # fmt: skip
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(body))
    monkeypatch.setenv("AIRFLOW_VAR_AUDIT_ARCHIVE_QUEUE_URL", queue)
    monkeypatch.setenv("AIRFLOW_VAR_AUDIT_ARCHIVE_BUCKET", bucket)
    monkeypatch.setenv("AIRFLOW_VAR_AUDIT_ARCHIVE_NOTIFICATIONS", "none")
    return queue, bucket


def test_archive_run_reads_variables_at_run_time_and_params_override(airflow_db, local_cloud, aws, unique, monkeypatch):
    sqs, s3 = aws("sqs"), aws("s3")
    queue, bucket = _queue_of_records(aws, unique, monkeypatch, 3)

    _declare_alias_on_2_11()
    dag_run = _load_dag().test(run_conf={"prefix": "from-form", "max_run_seconds": 30})

    assert _states(dag_run) == {"plan_workers": "success", "archive[0]": "success", "announce": "success"}
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    data = [k for k in keys if k.startswith("from-form/2024/05/06/07/08/09/")]
    assert len(data) == 3 and any(k.startswith("from-form/_manifests/batches/") for k in keys)
    ti = next(t for t in dag_run.get_task_instances() if t.task_id == "archive")
    assert ti.xcom_pull(task_ids="archive", map_indexes=0)["archived"] == 3
    # The archive announced the location it wrote to (through the alias), with the counts.
    assert [e["archived"] for e in _asset_event_extras(f"s3://{bucket}/from-form")] == [3]
    assert int(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"]) == 0  # fmt: skip


def test_claim_check_pointers_are_followed_only_to_the_buckets_the_variable_names(airflow_db, local_cloud, aws, unique, monkeypatch):
    """By default (no Variable) a pointer is quarantined unread, naming the setting and the bucket;
    the Variable, read when the task runs, lets the producers' offload bucket be read."""
    sqs, s3 = aws("sqs"), aws("s3")
    queue = sqs.create_queue(QueueName=unique("dag-pointers"))["QueueUrl"]
    bucket, payloads = unique("dag-archive"), unique("dag-payloads")
    for name in (bucket, payloads):
        s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=payloads, Key="offloaded/1", Body=b"x" * 300_000)
    pointer = json.dumps(["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": payloads, "s3Key": "offloaded/1"}])
    monkeypatch.setenv("AIRFLOW_VAR_AUDIT_ARCHIVE_QUEUE_URL", queue)
    monkeypatch.setenv("AIRFLOW_VAR_AUDIT_ARCHIVE_BUCKET", bucket)
    monkeypatch.setenv("AIRFLOW_VAR_AUDIT_ARCHIVE_NOTIFICATIONS", "none")
    _declare_alias_on_2_11()
    dag = _load_dag()

    sqs.send_message(QueueUrl=queue, MessageBody=pointer)
    first = dag.test(run_conf={"max_run_seconds": 30})
    ti = next(t for t in first.get_task_instances() if t.task_id == "archive")
    report = ti.xcom_pull(task_ids="archive", map_indexes=0)
    assert (report["quarantined"], report["archived"]) == (1, 0), report
    (doc_key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="audit/_quarantine/")["Contents"]]
    reason = json.loads(s3.get_object(Bucket=bucket, Key=doc_key)["Body"].read())["reason"]
    assert "claim_check_buckets" in reason and payloads in reason and "not read" in reason

    monkeypatch.setenv("AIRFLOW_VAR_AUDIT_ARCHIVE_CLAIM_CHECK_BUCKETS", f"other-bucket, {payloads}")
    sqs.send_message(QueueUrl=queue, MessageBody=pointer)
    second = _load_dag().test(run_conf={"max_run_seconds": 30})
    ti = next(t for t in second.get_task_instances() if t.task_id == "archive")
    assert ti.xcom_pull(task_ids="archive", map_indexes=0)["archived"] == 1


def test_workers_from_the_variable_split_the_budget_and_archive_each_record_once(airflow_db, local_cloud, aws, unique, monkeypatch):
    sqs, s3 = aws("sqs"), aws("s3")
    queue, bucket = _queue_of_records(aws, unique, monkeypatch, 12)
    monkeypatch.setenv("AIRFLOW_VAR_AUDIT_ARCHIVE_WORKERS", "3")

    _declare_alias_on_2_11()
    dag_run = _load_dag().test(run_conf={"prefix": "mapped", "max_run_seconds": 30, "max_messages": 10})

    assert _states(dag_run) == {"plan_workers": "success", **{f"archive[{i}]": "success" for i in range(3)}, "announce": "success"}
    ti = next(t for t in dag_run.get_task_instances() if t.task_id == "plan_workers")
    assert ti.xcom_pull(task_ids="plan_workers") == [4, 3, 3]  # max_messages shared: 10 in all
    data = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="mapped/2024/").get("Contents", [])]
    assert len(data) == len(set(data)) == 10
    extras = _asset_event_extras(f"s3://{bucket}/mapped")
    assert [(e["archived"], e["workers"]) for e in extras] == [(10, 3)]  # one event for the run, counts summed
    assert int(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"]) == 2  # fmt: skip


def test_missing_configuration_fails_naming_the_setting(airflow_db, local_cloud, monkeypatch):
    monkeypatch.delenv("AIRFLOW_VAR_AUDIT_ARCHIVE_QUEUE_URL", raising=False)
    monkeypatch.setenv("AIRFLOW_VAR_AUDIT_ARCHIVE_BUCKET", "some-bucket")
    dag = _load_dag()
    dag.get_task("archive").partial_kwargs["retries"] = 0
    try:
        dag_run = dag.test(run_conf={"max_run_seconds": 5})
    except Exception as exc:  # noqa: BLE001 - some lines raise from dag.test, others mark the task failed
        assert "queue_url" in str(exc)
        return
    assert _states(dag_run) == {"plan_workers": "success", "archive[0]": "failed", "announce": "upstream_failed"}


@pytest.fixture(autouse=True)
def _no_stray_variables(monkeypatch):
    for name in ("TOPIC_ARN", "DLQ_URL", "KMS_KEY_ID", "PREFIX", "CLAIM_CHECK_BUCKETS"):
        monkeypatch.delenv(f"AIRFLOW_VAR_AUDIT_ARCHIVE_{name}", raising=False)
