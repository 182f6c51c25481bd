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
        sqs.send_message(QueueUrl=queue, MessageBody=seed_message(n, now - timedelta(minutes=n), payload, "imageB64" if binary else "claimJSON"))

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

    for tx, system, size, sha, content_type, origin in rows:
        payload, binary = sent[tx]
        assert (size, sha, origin) == (len(payload), hashlib.sha256(payload).hexdigest(), "archive")
        assert system == f"producer-{int(tx[3:]) % 3}"
    payloads = audit_env.sql("SELECT R.SOURCE_TRANSACTION_ID, P.PAYLOAD:claim::INT FROM {ns}.AUDIT_PAYLOAD P JOIN {ns}.AUDIT_RECORD R USING (MESSAGE_ID)")
    assert {tx: claim for tx, claim in payloads} == {tx: int(tx[3:]) for tx, (_, binary) in sent.items() if not binary}
