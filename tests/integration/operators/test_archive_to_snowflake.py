"""The archive's manifests are what the Snowflake load reads: archive SQS → S3, then load."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator
from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator


def seed_message(n: int, when: datetime, payload: bytes, message_type: str) -> str:
    meta = {"messageType": message_type, "sourceSystemID": f"producer-{n % 3}", "sourceTransactionID": f"tx-{n}",
            "dateTime": when.strftime("%Y-%m-%d %H:%M:%S.%f")}  # fmt: skip
    return json.dumps({"messageMetaData": meta, "messagePayload": base64.b64encode(payload).decode()})


def test_archived_records_load_into_snowflake_with_their_metadata(audit_env, aws, unique):
    sqs = aws("sqs")
    queue = sqs.create_queue(QueueName=unique("audit-in"))["QueueUrl"]
    now = datetime.now(UTC).replace(microsecond=0)
    sent = {}
    for n in range(12):
        binary = n % 4 == 0
        payload = bytes([0x89, 0x50, 0x4E, 0x47, n]) * 50 if binary else json.dumps({"claim": n, "amount": n * 10}).encode()
        sent[f"tx-{n}"] = (payload, binary)
        sqs.send_message(
            QueueUrl=queue, MessageBody=seed_message(n, now - timedelta(minutes=n), payload, "imageB64" if binary else "claimJSON")
        )

    archived = AuditArchiveOperator(
        task_id="archive", queue_url=queue, bucket=audit_env.bucket, prefix=audit_env.prefix,
        notifications="none", max_run_seconds=30, wait_time_seconds=1,
    ).execute({"run_id": "archive_1"})  # fmt: skip
    assert archived["archived"] == 12

    report = SnowflakeAuditLoadOperator(
        **audit_env.load_kwargs(interval_start=(now - timedelta(days=1)).isoformat(), interval_end=(now + timedelta(hours=1)).isoformat())
    ).execute({"run_id": "load_1"})
    assert report["window"]["discovery"] == "manifests"
    assert report["records"]["inserted"] == 12 and report["records"]["failed"] == 0

    rows = audit_env.sql("SELECT SOURCE_TRANSACTION_ID, SOURCE_SYSTEM, SIZE_BYTES, SHA256, CONTENT_TYPE, ORIGIN FROM {ns}.AUDIT_RECORD")
    assert {r[0] for r in rows} == set(sent)
    import hashlib

    for tx, system, size, sha, _content_type, origin in rows:
        payload, binary = sent[tx]
        assert (size, sha, origin) == (len(payload), hashlib.sha256(payload).hexdigest(), "archive")
        assert system == f"producer-{int(tx[3:]) % 3}"
    payloads = audit_env.sql(
        "SELECT R.SOURCE_TRANSACTION_ID, P.PAYLOAD:claim::INT FROM {ns}.AUDIT_PAYLOAD P JOIN {ns}.AUDIT_RECORD R USING (MESSAGE_ID)"
    )
    assert {tx: claim for tx, claim in payloads} == {tx: int(tx[3:]) for tx, (_, binary) in sent.items() if not binary}


def test_the_load_and_the_weekly_report_count_unique_transactions_and_show_repeats_and_conflicts(audit_env, aws, unique):
    """Issue 13 (2): a transaction sent three times (twice the same bytes, once others) is one
    transaction with one repeat and one conflict in AUDIT_RECORD, the load's XCom and the report."""
    from airflow_reliable_messaging.operators.audit_report import AuditReportOperator

    sqs = aws("sqs")
    queue = sqs.create_queue(QueueName=unique("audit-in"))["QueueUrl"]
    now = datetime.now(UTC).replace(microsecond=0)
    same, other = json.dumps({"claim": 1}).encode(), json.dumps({"claim": 2}).encode()
    bodies = [seed_message(0, now, same, "claimJSON"), seed_message(3, now, b"single", "note")]  # producer-0: tx-0, tx-3
    archive = AuditArchiveOperator(task_id="archive", queue_url=queue, bucket=audit_env.bucket, prefix=audit_env.prefix,
                                   notifications="none", wait_time_seconds=0)  # fmt: skip
    for body in bodies:
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    archive.execute({})
    for payload in (same, other):  # later, in another run: the same transaction again, then with other bytes
        sqs.send_message(QueueUrl=queue, MessageBody=seed_message(0, now, payload, "claimJSON"))
    second = archive.execute({})
    assert (second["duplicates"], second["conflicts"]) == (1, 1)

    window = {"interval_start": (now - timedelta(days=1)).isoformat(), "interval_end": (now + timedelta(hours=1)).isoformat()}
    load = SnowflakeAuditLoadOperator(**audit_env.load_kwargs(**window)).execute({"run_id": "load_tx"})

    assert load["records"]["seen"] == 4 and load["records"]["inserted"] == 4
    assert (load["records"]["transactions"], load["records"]["repeats"], load["records"]["conflicts"]) == (2, 1, 1)
    rows = audit_env.sql("SELECT SOURCE_TRANSACTION_ID, TRANSACTION_STATUS, REPEAT_OF, S3_URI, MESSAGE_ID FROM {ns}.AUDIT_RECORD")
    by_status = sorted((tx, status) for tx, status, *_ in rows)
    assert by_status == [("tx-0", "conflict"), ("tx-0", "duplicate"), ("tx-0", "first"), ("tx-3", "first")]
    first = next(r for r in rows if r[1] == "first" and r[0] == "tx-0")
    duplicate = next(r for r in rows if r[1] == "duplicate")
    assert duplicate[2] == first[4] and duplicate[3] == first[3]  # it names the first copy and its object
    payloads = audit_env.sql("SELECT MESSAGE_ID FROM {ns}.AUDIT_PAYLOAD")
    assert duplicate[4] not in {p[0] for p in payloads} and first[4] in {p[0] for p in payloads}  # loaded once

    report = AuditReportOperator(task_id="report", archive_bucket=audit_env.bucket, archive_prefix=audit_env.prefix,
                                 snowflake_database=audit_env.database, **window).execute({"run_id": "r", "dag": None})  # fmt: skip
    (row,) = report["rows"]
    assert (row["SOURCE_SYSTEM"], row["RECORDS"], row["TRANSACTIONS"], row["REPEATS"], row["CONFLICTS"]) == ("producer-0", 4, 2, 1, 1)
    assert row["TOTAL_BYTES"] == len(same) + len(b"single") + len(other)  # the duplicate stored no bytes
    assert (report["totals"]["transactions"], report["totals"]["repeats"], report["totals"]["conflicts"]) == (2, 1, 1)
