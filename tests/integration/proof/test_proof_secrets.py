"""Secrets: the operators run with recognisable secret values in their connections (AWS secret key
and session token, Snowflake password and extra) and in message payloads; none of them may appear
in task logs, XComs (return values), exception messages, SNS messages, emails or the manifests."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.proof.conftest import PREFIX

pytestmark = pytest.mark.localcloud

AWS_SECRET = "zz-AWS-SECRET-KEY-7f3a9c"
AWS_TOKEN = "zz-AWS-SESSION-TOKEN-1b2c3d"
SF_PASSWORD = "zz-SNOWFLAKE-PASSWORD-5e6f"
SF_EXTRA = "zz-SNOWFLAKE-PASSPHRASE-9a8b"
PAYLOAD = "zz-PAYLOAD-SECRET-4d4d"
SECRETS = (AWS_SECRET, AWS_TOKEN, SF_PASSWORD, SF_EXTRA, PAYLOAD)


def _leaks(where: str, text: str, secrets: tuple[str, ...] = SECRETS) -> list[str]:
    """Each secret found in ``text``, as is or base64-encoded."""
    variants = {s: (s, base64.b64encode(s.encode()).decode()[:16]) for s in secrets}
    return [f"{where}: {s}" for s, forms in variants.items() if any(f in text for f in forms)]


@pytest.fixture
def secret_connections(local_cloud, monkeypatch):
    conns = local_cloud.airflow_connections()
    aws = conns["aws_default"]
    aws["password"] = AWS_SECRET
    aws["extra"] = {**aws["extra"], "aws_session_token": AWS_TOKEN}
    sf = conns["snowflake_default"]
    sf["password"] = SF_PASSWORD
    sf["extra"] = {**sf["extra"], "private_key_passphrase_unused": SF_EXTRA}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(aws))
    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_DEFAULT", json.dumps(sf))
    return conns


def test_no_secret_reaches_logs_xcom_errors_notifications_or_email(
    secret_connections, pipeline, warehouse, aws, unique, caplog, capfd, local_cloud
):
    from airflow_reliable_messaging.exceptions import ReliableMessagingError
    from airflow_reliable_messaging.operators.archive_replay import S3ArchiveReplayOperator
    from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator
    from airflow_reliable_messaging.operators.audit_report import (
        AuditReconcileOperator,
        AuditReportOperator,
        EmailReportOperator,
        SnsReportPublishOperator,
    )
    from airflow_reliable_messaging.operators.dlq_redrive import DLQRedriveOperator
    from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator

    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="airflow_reliable_messaging")
    caplog.set_level(logging.DEBUG, logger="airflow.task")
    sqs, sns = aws("sqs"), aws("sns")
    when = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    payload = json.dumps({"card": PAYLOAD, "note": f"token {PAYLOAD}"}).encode()
    meta = {"messageType": "claim", "sourceSystemID": "claims", "dateTime": when}
    bodies = [
        json.dumps({"messageMetaData": {**meta, "sourceTransactionID": f"t{i}"}, "messagePayload": base64.b64encode(payload).decode()})
        for i in range(3)
    ] + [
        json.dumps({"text": PAYLOAD}),  # plain JSON record
        '{"messageMetaData": {"messageType": "x"}, "messagePayload": "' + base64.b64encode(payload).decode() + '"}',  # quarantined
        "{" + PAYLOAD,  # malformed JSON: quarantined with the parser's reason
        json.dumps(["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": pipeline.bucket, "s3Key": "missing"}]),
    ]
    for body in bodies:
        sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=body)

    xcoms, errors = [], []
    now = datetime.now(UTC)
    window = {"interval_start": (now - timedelta(days=1)).isoformat(), "interval_end": (now + timedelta(hours=1)).isoformat()}
    xcoms.append(
        AuditArchiveOperator(**pipeline.archive_kwargs(notifications="per_record", claim_check_buckets=pipeline.bucket)).execute({})
    )
    load = SnowflakeAuditLoadOperator(**warehouse.load_kwargs(**window)).execute({"run_id": "secrets"})
    xcoms.append(load)
    base = {"archive_bucket": pipeline.bucket, "archive_prefix": PREFIX, "snowflake_database": warehouse.database, **window}
    xcoms.append(AuditReconcileOperator(task_id="reconcile", load_report=load, **base).execute({"run_id": "secrets"}))
    report = AuditReportOperator(task_id="report", load_report=load, **base).execute({"run_id": "secrets", "dag": None})
    xcoms.append(report)
    topic = sns.create_topic(Name=unique("secret-report"))["TopicArn"]
    sub = sqs.create_queue(QueueName=unique("secret-sub"))["QueueUrl"]
    sub_arn = sqs.get_queue_attributes(QueueUrl=sub, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=sub_arn, Attributes={"RawMessageDelivery": "true"})
    xcoms.append(SnsReportPublishOperator(task_id="p", topic_arn=topic, report=report, marker_bucket=pipeline.bucket).execute({}))
    before = len(local_cloud.emails())
    xcoms.append(EmailReportOperator(task_id="e", to="ops@example.test", report=report, marker_bucket=pipeline.bucket).execute({}))
    target = sqs.create_queue(QueueName=unique("secret-replay"))["QueueUrl"]
    xcoms.append(S3ArchiveReplayOperator(
        task_id="replay", archive_bucket=pipeline.bucket, archive_prefix=PREFIX, target_queue=target, replay_id="secrets",
        start=(now - timedelta(hours=3)).isoformat(), end=now.isoformat(), max_messages_per_second=0,
    ).execute({}))  # fmt: skip
    xcoms.append(DLQRedriveOperator(task_id="r", dlq=pipeline.dlq_url, destination=target, mode="client").execute({"run_id": "s"}))

    # failures: their messages must not carry secrets either
    sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=bodies[0])
    for failing in (
        lambda: AuditArchiveOperator(**pipeline.archive_kwargs(bucket=unique("no-such-bucket"))).execute({}),
        lambda: DLQRedriveOperator(task_id="r", dlq=unique("no-such-dlq"), mode="client").execute({"run_id": "s"}),
        lambda: S3ArchiveReplayOperator(task_id="x", archive_bucket=pipeline.bucket, archive_prefix=PREFIX,
                                        target_queue=unique("no-such-queue"), replay_id="s2", start=now.isoformat()).execute({}),
    ):  # fmt: skip
        with pytest.raises(Exception) as exc:  # noqa: PT011 - any failure: its text is what is checked
            failing()
        errors.append(f"{type(exc.value).__name__}: {exc.value!s} {exc.value!r}")
        if isinstance(exc.value, ReliableMessagingError) or exc.value.__cause__ is not None:
            errors.append(repr(exc.value.__cause__))

    out, err = capfd.readouterr()  # Airflow 3 logs tasks through structlog to the console; 2.11 through logging
    logs = "\n".join((caplog.text, out, err))
    assert "Archive run done" in logs and "Loaded" in logs and "Redrive report" in logs  # the logs were captured
    assert _leaks("control", f"x {AWS_SECRET} y") and len(errors) >= 3  # the scan finds what it looks for
    leaks = []
    leaks += _leaks("task log", logs)
    leaks += _leaks("XCom", json.dumps(xcoms, default=str))
    leaks += _leaks("exception", "\n".join(errors))
    notes = pipeline.drain(pipeline.observer_url) + pipeline.drain(sub)
    assert notes
    leaks += _leaks("SNS message", "\n".join(json.dumps(n.get("MessageAttributes", {})) + n["Body"] for n in notes))
    mails = local_cloud.emails()[before:]
    assert mails
    leaks += _leaks("email", "\n".join(m.as_string() for m in mails))
    s3 = aws("s3")
    for key in pipeline.objects(f"{PREFIX}/_manifests/"):
        leaks += _leaks(f"manifest {key}", s3.get_object(Bucket=pipeline.bucket, Key=key)["Body"].read().decode("utf-8", "replace"))
    dead = pipeline.drain(pipeline.dlq_url)
    leaks += _leaks("DLQ failure attribute", "\n".join(json.dumps(m.get("MessageAttributes", {})) for m in dead))
    assert not leaks, leaks
    # the payload itself did reach where it belongs (the archive and the replay target)
    assert any(PAYLOAD in m["Body"] for m in pipeline.drain(target))
