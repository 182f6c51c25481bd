"""The archive DAG scaled out under a real scheduler: mapped archive tasks run at the same time on
a parallel executor (LocalExecutor) and archive every record exactly once.

``dag.test()`` runs mapped tasks one after the other, so only a scheduler shows them overlapping.
Airflow 2.11 cannot: with sqlite its only executor is the SequentialExecutor (LocalExecutor needs
Postgres or MySQL there); Airflow 3 runs LocalExecutor on sqlite (tasks use the execution API).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from datetime import datetime

import pytest

from tests.integration.ui.airflow_server import _airflow_major

pytestmark = [
    pytest.mark.localcloud,
    pytest.mark.dag,
    pytest.mark.skipif(_airflow_major() < 3, reason="Airflow 2.11 on sqlite has only the SequentialExecutor: no parallel tasks"),
]

RECORDS = 300
WORKERS = 3


def _seed(i: int) -> str:
    return json.dumps({
        "messageMetaData": {"messageType": "textB64", "sourceSystemID": "scale", "sourceTransactionID": f"s{i}",
                            "dateTime": "2024-05-06 07:08:09.000010"},
        "messagePayload": base64.b64encode(f"record {i}".encode()).decode(),
    })  # fmt: skip


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_mapped_archive_workers_overlap_under_the_scheduler_and_archive_each_record_once(airflow_server, aws, unique):
    sqs, s3, sns = aws("sqs"), aws("s3"), aws("sns")
    queue = sqs.create_queue(QueueName=unique("scale-in"))["QueueUrl"]
    bucket = unique("scale-archive")
    s3.create_bucket(Bucket=bucket)
    topic = sns.create_topic(Name=unique("scale-events"))["TopicArn"]
    observer = sqs.create_queue(QueueName=unique("scale-observer"))["QueueUrl"]
    observer_arn = sqs.get_queue_attributes(QueueUrl=observer, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=observer_arn, Attributes={"RawMessageDelivery": "true"})
    for start in range(0, RECORDS, 10):
        sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": _seed(i)} for i in range(start, start + 10)])
    server = airflow_server  # the session's Airflow (tests/conftest.py): Variables through its API
    variables = {"queue_url": queue, "bucket": bucket, "prefix": "scaled", "topic_arn": topic,
                 "notifications": "per_batch", "workers": str(WORKERS)}  # fmt: skip
    for name, value in variables.items():
        server.request("POST", "/variables", {"key": f"audit_archive_{name}", "value": value})
    try:
        before = set(server.runs("audit_archive"))
        server.unpause("audit_archive")  # catchup=False: the scheduler makes one run for the latest interval
        run_id = server.wait_for_new_run("audit_archive", before, timeout=120)
        state = server.wait_for_run_end("audit_archive", run_id, timeout=600)
        quoted = urllib.parse.quote(run_id, safe="")
        tis = server.request("GET", f"/dags/audit_archive/dagRuns/{quoted}/taskInstances?limit=100")["task_instances"]
        events = server.request("GET", f"/assets/events?source_dag_id=audit_archive&source_run_id={quoted}")["asset_events"]
        logs = server.logs_tail()
        for ti in tis:  # a failed task's own log says why (the servers' tails rarely do)
            if ti["state"] != "success":
                logs += f"\n--- {ti['task_id']}[{ti['map_index']}] try {ti['try_number']} ---\n"
                logs += server.task_log("audit_archive", run_id, ti["task_id"], ti["try_number"], ti["map_index"])[-6000:]
    finally:  # the server outlives this test: no further scheduled runs, no Variables left
        server.request("PATCH", "/dags/audit_archive?update_mask=is_paused", {"is_paused": True})
        for name in variables:
            server.request("DELETE", f"/variables/audit_archive_{name}")

    assert state == "success", logs
    workers = sorted((ti for ti in tis if ti["task_id"] == "archive"), key=lambda ti: ti["map_index"])
    assert [ti["map_index"] for ti in workers] == list(range(WORKERS)) and {ti["state"] for ti in workers} == {"success"}
    starts, ends = [_instant(ti["start_date"]) for ti in workers], [_instant(ti["end_date"]) for ti in workers]
    assert max(starts) < min(ends), f"the mapped tasks ran one after another: {list(zip(starts, ends, strict=True))}"
    # one asset event for the run, from `announce`, with every worker's count
    assert [(e["source_task_id"], e["uri"], e["extra"]["archived"], e["extra"]["workers"]) for e in events] == [
        ("announce", f"s3://{bucket}/scaled", RECORDS, WORKERS)]  # fmt: skip

    # exactly once: every record one object, one manifest line; the queue empty; summaries add up
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="scaled/2024/")
            for o in page.get("Contents", [])]  # fmt: skip
    assert len(keys) == len(set(keys)) == RECORDS
    lines = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="scaled/_manifests/batches/"):
        for o in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode()
            lines += [json.loads(line) for line in body.splitlines() if line.strip()]
    assert len(lines) == RECORDS and len({line["message_id"] for line in lines}) == len({line["key"] for line in lines}) == RECORDS
    depth = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages",
                                                                      "ApproximateNumberOfMessagesNotVisible"])  # fmt: skip
    assert sum(int(v) for v in depth["Attributes"].values()) == 0
    summaries = []
    deadline = time.monotonic() + 30
    while sum(s["counts"]["archived"] for s in summaries) < RECORDS and time.monotonic() < deadline:
        for m in sqs.receive_message(QueueUrl=observer, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            summaries.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=observer, ReceiptHandle=m["ReceiptHandle"])
    assert {s["event"] for s in summaries} == {"batch_archived"}
    assert sum(s["counts"]["archived"] for s in summaries) == RECORDS  # one summary per batch, none twice
    assert len({s["batchID"] for s in summaries}) == len(summaries)
