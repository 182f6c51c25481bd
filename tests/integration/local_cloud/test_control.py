"""The local cloud answers as the real services do, through the real clients."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import pytest


def test_aws_emulator_serves_s3_sqs_sns(aws, unique):
    s3, sqs, sns = aws("s3"), aws("sqs"), aws("sns")
    bucket = unique("bucket")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    queue_url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    topic = sns.create_topic(Name=unique("t"))["TopicArn"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    sns.publish(TopicArn=topic, Message="hello")
    messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=2)["Messages"]
    assert [m["Body"] for m in messages] == ["hello"]


def test_snowflake_emulator_copies_from_the_aws_emulator(local_cloud, aws, unique):
    import snowflake.connector

    bucket = unique("stage")
    aws("s3").create_bucket(Bucket=bucket)
    aws("s3").put_object(Bucket=bucket, Key="in/a.jsonl", Body=b'{"id": 1}\n{"id": 2}\n')
    db = unique("db").replace("-", "_").upper()
    with snowflake.connector.connect(**local_cloud.snowflake_connect_kwargs()) as conn:
        cur = conn.cursor()
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE SCHEMA {db}.S")
        cur.execute(f"USE SCHEMA {db}.S")
        cur.execute("CREATE TABLE T (V VARIANT)")
        cur.execute(f"CREATE STAGE ST URL='s3://{bucket}/in/'")
        cur.execute("COPY INTO T FROM @ST FILES=('a.jsonl') FILE_FORMAT=(TYPE=JSON)")
        assert cur.fetchall()[0][1] == "LOADED"
        cur.execute("SELECT V:id::int FROM T ORDER BY 1")
        assert cur.fetchall() == [(1,), (2,)]


def test_smtp_sink_keeps_what_it_receives(local_cloud):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@x.test", "b@x.test", "sink check"
    msg.set_content("body")
    before = len(local_cloud.emails())
    with smtplib.SMTP(local_cloud.state["smtp"]["host"], local_cloud.state["smtp"]["port"]) as smtp:
        smtp.send_message(msg)
    received = local_cloud.emails()
    assert len(received) == before + 1
    assert received[-1]["Subject"] == "sink check"


@pytest.mark.localcloud  # starts a local cloud of its own
def test_the_servers_stop_when_the_process_that_started_them_is_killed(tmp_path):
    """A test process killed with SIGKILL cannot stop its local cloud: the server sees it was
    re-parented and stops itself instead of running on."""
    import json
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    launcher = (
        "import os, signal, sys\n"
        "from local_cloud.control import LocalCloud\n"
        "cloud = LocalCloud(workdir=sys.argv[1]).start()\n"
        "print(cloud.state['pid'], flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    repo = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, "-c", launcher, str(tmp_path)], cwd=repo, capture_output=True, text=True, timeout=120)
    assert out.returncode == -9, out.stderr[-2000:]
    server_pid = int(out.stdout.split()[-1])
    assert json.loads((tmp_path / "state.json").read_text())["pid"] == server_pid

    def running(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        return state not in ("Z", "X")  # a zombie has exited (nobody may reap it in a container)

    deadline = time.monotonic() + 20
    while running(server_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        assert not running(server_pid), "the local cloud kept running after its parent was killed"
    finally:
        if running(server_pid):
            os.kill(server_pid, 9)


def test_a_default_local_cloud_attaches_to_the_running_one_named_by_local_cloud_attach(local_cloud, aws, unique, monkeypatch):
    """How the docs' examples run on the test session's cloud (tests/integration/docs): ``LocalCloud()`` with
    ``LOCAL_CLOUD_ATTACH`` uses that cloud's endpoints, starts no server and, at the end of its
    ``with`` block, leaves the running cloud serving."""
    from local_cloud.control import ATTACH_ENV, LocalCloud

    monkeypatch.setenv(ATTACH_ENV, str(local_cloud.state_file))
    bucket = unique("attached")
    with LocalCloud() as attached:
        assert attached.state == local_cloud.state and attached._proc is None
        import boto3

        boto3.client("s3", **attached.boto3_kwargs()).create_bucket(Bucket=bucket)
    assert bucket in {b["Name"] for b in aws("s3").list_buckets()["Buckets"]}  # the same servers, still up
