"""Secrets in whole DAG runs: the example DAGs run end to end (dag.test) with recognisable secret
values in their connections (AWS secret key and session token, Snowflake password, SMTP password;
AIRFLOW_CONN_* env) and in message payloads. None may appear in the task logs (log files under
the test's base_log_folder, log records, console), the XComs in the metadata DB, the exceptions of
a failing task (its log), the SNS messages (through a subscribed queue), the emails, or the
run-monitoring rows in Snowflake."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from local_cloud import dag_runner
from local_cloud.dag_runner import run_dag
from local_cloud.dag_runner import task_states as states
from tests.integration.dags.conftest import DAGS, weekly_load_pipeline  # noqa: F401 - the DAG tests' fixture, reused
from tests.integration.proof.test_proof_secrets import AWS_SECRET, AWS_TOKEN, PAYLOAD, SF_PASSWORD, _leaks

pytestmark = [pytest.mark.localcloud, pytest.mark.dag]

SMTP_PASSWORD = "zz-SMTP-PASSWORD-2c2c"
SECRETS = (AWS_SECRET, AWS_TOKEN, SF_PASSWORD, SMTP_PASSWORD, PAYLOAD)
WEEK_START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday; not the DAG tests' weeks (dag.test on 2.11 replaces a run of the same date)


def leaks(where: str, text: str) -> list[str]:
    return _leaks(where, text, SECRETS)


@pytest.fixture
def secret_connections(local_cloud, monkeypatch):
    """aws_default, snowflake_default and smtp_default (with a login) carrying the secrets."""
    conns = local_cloud.airflow_connections()
    conns["aws_default"]["password"] = AWS_SECRET
    conns["aws_default"]["extra"] = {**conns["aws_default"]["extra"], "aws_session_token": AWS_TOKEN}
    conns["snowflake_default"]["password"] = SF_PASSWORD
    conns["smtp_default"].update(login="reports", password=SMTP_PASSWORD)
    for conn_id, conn in conns.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conns


def _log_folder() -> Path:
    from airflow.configuration import conf

    return Path(conf.get("logging", "base_log_folder"))


def _log_files_text(since: float) -> tuple[str, int]:
    """Text of every task log file written since ``since`` (epoch seconds), and how many."""
    files = [p for p in _log_folder().rglob("*") if p.is_file() and p.stat().st_mtime >= since]
    return "\n".join(p.read_text(errors="replace") for p in files), len(files)


def _xcoms(dag_run) -> list:
    """Every XCom (all keys) of the run as stored in the metadata DB: (task_id, key, value)."""
    from airflow.utils.session import create_session

    try:
        from airflow.models.xcom import XComModel as XCom  # Airflow 3
    except ImportError:
        from airflow.models.xcom import XCom  # Airflow 2.11
    with create_session() as session:
        rows = session.query(XCom).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        return [(row.task_id, row.key, _stored(row.value)) for row in rows]


def _stored(value):
    """A stored XCom value, decoded from JSON when it is text (2.11 keeps bytes or text)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _secret_archive(s3, bucket: str, prefix: str, when: datetime, count: int = 4) -> list[str]:
    """Records whose JSON payload carries the payload secret, in the archive's layout."""
    from airflow_reliable_messaging.domain import archive_layout as layout

    ids = []
    for i in range(count):
        message_id = f"secret-{i}"
        body = json.dumps({"card": PAYLOAD, "note": f"token {PAYLOAD}", "n": i}).encode()
        s3.put_object(
            Bucket=bucket, Key=layout.archive_key(prefix, when + timedelta(minutes=i), message_id), Body=body,
            ContentType="application/json",
            Metadata={"source-system": "claims", "message-type": "claim", "message-id": message_id},
        )  # fmt: skip
        ids.append(message_id)
    return ids


def _drain(sqs, url: str) -> list[dict]:
    out = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]).get(
        "Messages"
    ):
        out.extend(batch)
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def _task_logs(started: float, caplog, capfd) -> tuple[str, int]:
    """Task log files under base_log_folder written since ``started`` (dag.test writes none on
    either line: it logs to the console), the raw log records (before Airflow's secrets masker:
    stricter than a task log file) and the console (Airflow 3's structlog output)."""
    files_text, files = _log_files_text(started)
    out, err = capfd.readouterr()
    return "\n".join((files_text, caplog.text, out, err)), files


def _log_levels(caplog) -> None:
    """Airflow's configured level (INFO) everywhere, DEBUG for this provider and the task logger.
    (Third-party DEBUG logging, e.g. botocore's request headers, is out of scope: the raw records
    caplog sees are not yet through Airflow's secrets masker.)"""
    import logging

    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="airflow_reliable_messaging")
    caplog.set_level(logging.DEBUG, logger="airflow.task")


def test_weekly_audit_load_dag_leaks_no_secret(secret_connections, weekly_load_pipeline, aws, capfd, caplog):  # noqa: F811
    import time

    import snowflake.connector

    pipeline, cloud = weekly_load_pipeline, weekly_load_pipeline["cloud"]
    ids = _secret_archive(aws("s3"), pipeline["bucket"], "audit", WEEK_START + timedelta(days=2))
    mails_before, started = len(cloud.emails()), time.time() - 1
    _log_levels(caplog)
    run = run_dag(dag_runner.load_dag(DAGS / "weekly_audit_load.py"), WEEK_START + timedelta(days=7))
    assert set(states(run).values()) == {"success"}, states(run)

    # what is scanned really holds the run's output
    logs, files = _task_logs(started, caplog, capfd)
    xcoms = _xcoms(run)
    notes = _drain(aws("sqs"), pipeline["queue_url"])
    mails = cloud.emails()[mails_before:]
    assert "Loaded" in logs and "Reconciliation" in logs and xcoms and notes and len(mails) == 1
    assert leaks("control", f"x {AWS_SECRET} y {SMTP_PASSWORD}")  # the scan finds what it looks for
    load = next(v for t, k, v in xcoms if t == "load_week" and k == "return_value")
    assert (load["records"]["seen"], load["payloads"]["json_loaded"]) == (len(ids), len(ids))
    with snowflake.connector.connect(**cloud.snowflake_connect_kwargs(pipeline["database"], "RAW")) as conn:
        payloads = conn.cursor().execute("SELECT PAYLOAD::VARCHAR FROM AUDIT_PAYLOAD").fetchall()
        ops = conn.cursor().execute(f"SELECT * FROM {pipeline['database']}.OPS.ARM_OPERATION").fetchall()
    assert len(payloads) == len(ids) and all(PAYLOAD in p[0] for p in payloads)  # the payload got where it belongs
    assert ops  # run monitoring recorded the tries

    found = leaks(f"task logs ({files} files, records, console)", logs)
    found += leaks("XCom", json.dumps(xcoms, default=str))
    found += leaks("SNS message", "\n".join(json.dumps(n.get("MessageAttributes", {})) + n["Body"] for n in notes))
    found += leaks("email", "\n".join(m.as_string() for m in mails))
    found += leaks("operations table", json.dumps(ops, default=str))
    assert not found, found


def test_message_replay_dag_leaks_no_secret_also_when_a_task_fails(secret_connections, airflow_db, aws, unique, capfd, caplog):
    """The S3-archive replay of message_replay: a run that replays the secret payloads (they reach
    the target queue, where they belong) and a run whose replay task fails (a target queue that
    does not exist): neither puts a secret in the logs, the XComs or the failure."""
    import time

    _log_levels(caplog)
    s3, sqs = aws("s3"), aws("sqs")
    bucket = unique("secret-archive")
    s3.create_bucket(Bucket=bucket)
    when = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    ids = _secret_archive(s3, bucket, "audit/v1", when)
    target = sqs.create_queue(QueueName=unique("secret-replay"))["QueueUrl"]
    conf = {
        "source": "s3_archive", "archive_bucket": bucket, "archive_prefix": "audit/v1", "target_queue": target,
        "start": (when - timedelta(minutes=1)).isoformat(), "end": (when + timedelta(hours=1)).isoformat(),
        "max_messages_per_second": 0, "dry_run": False,
    }  # fmt: skip
    dag = dag_runner.load_dag(DAGS / "message_replay.py")
    started = time.time() - 1
    ok = run_dag(dag, conf=conf)
    assert states(ok)["s3_replay"] == "success", states(ok)
    failed = run_dag(dag, conf={**conf, "target_queue": unique("no-such-queue"), "replay_id": "secrets-2"})
    assert states(failed)["s3_replay"] == "failed", states(failed)

    logs, files = _task_logs(started, caplog, capfd)
    xcoms = _xcoms(ok) + _xcoms(failed)
    replayed = _drain(sqs, target)
    assert sorted(m["MessageAttributes"]["replayed_message_id"]["StringValue"] for m in replayed) == ids
    assert all(PAYLOAD in m["Body"] for m in replayed)
    assert "NonExistentQueue" in logs or "does not exist" in logs  # the failure is in the failed task's log
    found = leaks(f"task logs ({files} files, records, console)", logs)
    found += leaks("XCom", json.dumps(xcoms, default=str))
    assert not found, found
