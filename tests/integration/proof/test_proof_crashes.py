"""Crash tests: the task process is SIGKILLed after its N-th AWS API call (N sampled every
``STEP`` calls from 1 until a run completes without reaching N), rerun to completion, and then:

- every input message is in exactly one of {archived/delivered, DLQ, quarantine} — a repeated
  producer transaction as one object and one duplicate naming it (never both, never none, never a
  duplicate of itself: a kill between the transaction marker and the payload loses nothing);
- no S3 object is duplicated or partial (each record in one key, bytes as sent);
- Snowflake rows are unique per message id (the load runs over every archive crash's output);
- downstream duplicates (notifications, redriven or replayed messages) are bounded by one batch
  and are the same message (same body, same replay / deduplication identifiers).

The runner (``crash_runner.py``) imports Airflow once and forks one child per run. While a killed
point's messages wait out their visibility timeout, the next point runs (``sample_crash_points``).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain import replay as rp
from airflow_reliable_messaging.domain.manifest import decode_manifest
from tests.integration.proof.conftest import PREFIX

pytestmark = pytest.mark.localcloud

STEP = int(os.environ.get("PROOF_CRASH_STEP", "3"))
RECORDS = 20
BATCH = 10
ARCHIVE = "airflow_reliable_messaging.operators.audit_archive:AuditArchiveOperator"
REDRIVE = "airflow_reliable_messaging.operators.dlq_redrive:DLQRedriveOperator"
REPLAY = "airflow_reliable_messaging.operators.archive_replay:S3ArchiveReplayOperator"
TRIED: Counter = Counter()  # crash points tried per operator (printed at the end of each test)


class Runner:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log = open(workdir / "runner.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("crash_runner.py"))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, env=dict(os.environ),
        )  # fmt: skip
        ready = self.proc.stdout.readline()
        assert json.loads(ready).get("ready"), ready
        self.n = 0

    def run(self, operator: str, kwargs: dict, kill_after: int | None = None, context: dict | None = None) -> dict:
        self.n += 1
        result = self.workdir / f"result-{self.n}.json"
        request = {"operator": operator, "kwargs": kwargs, "context": context or {}, "kill_after": kill_after, "result": str(result)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if result.exists():
            answer["result"] = json.loads(result.read_text())
        return answer

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def runner(local_cloud, tmp_path_factory):
    r = Runner(tmp_path_factory.mktemp("crash"))
    yield r
    r.close()


def crash_points(step: int = STEP):
    n = 1
    while True:
        yield n
        n += step


def sample_crash_points(start, finish, wait: float, step: int = STEP) -> list[tuple[int, dict]]:
    """Crash points 1, 1+step, ... until one's first run completes without being killed:
    ``start(n)`` sets point n up (its own queues) and runs it killed after call n, returning
    ``(first answer, state)``; ``finish(n, first, state)`` reruns it to completion and checks it.
    Pipelined: while a killed point's messages wait out their visibility timeout (``wait`` s), the
    next point is set up and run — the runs never overlap (one runner), each point's checks are its
    own. Returns (n, first answer) of every point, in order."""
    outcomes: list[tuple[int, dict]] = []
    waiting = None  # (n, first, state, visible again at)
    for n in crash_points(step):
        first, state = start(n)
        outcomes.append((n, first))
        if first["outcome"] != "killed":
            assert first["outcome"] == "completed", first
        if waiting is not None:
            time.sleep(max(0.0, waiting[3] - time.monotonic()))
            finish(*waiting[:3])
        waiting = (n, first, state, time.monotonic() + (wait if first["outcome"] == "killed" else 0.0))
        if first["outcome"] != "killed":
            break
    assert waiting is not None
    time.sleep(max(0.0, waiting[3] - time.monotonic()))
    finish(*waiting[:3])
    return outcomes


def _drain_all(sqs, url: str) -> list[dict]:
    out = []
    while got := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
    ).get("Messages", []):  # fmt: skip
        out += got
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
    return out


def _depth(sqs, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])[
        "Attributes"
    ]
    return sum(int(v) for v in attrs.values())


def _rerun_until_empty(runner, operator, kwargs, sqs, url, wait: float, context=None, rounds: int = 6) -> list[dict]:
    answers = []
    for _ in range(rounds):
        answers.append(runner.run(operator, kwargs, context=context))
        assert answers[-1]["outcome"] == "completed", answers[-1]
        if _depth(sqs, url) == 0:
            return answers
        time.sleep(wait)
    raise AssertionError(f"{url} not drained after {rounds} reruns: {answers}")


# -- archive ------------------------------------------------------------------------------------------
def _seed(mid: str, txn: str, payload: bytes, when: str) -> str:
    return json.dumps({"messageID": mid, "messageMetaData": {"messageType": "claim", "sourceSystemID": "claims",
                       "sourceTransactionID": txn, "dateTime": when}, "messagePayload": base64.b64encode(payload).decode()})  # fmt: skip


def _archive_inputs(tag: str, payload_bucket: str, s3=None) -> dict[str, tuple[str, str, bytes | None]]:
    """my id -> (expected place, body, payload when archived). Places: "archived" (its own object),
    "repeat" (a second copy of a transaction: its own object when it claimed the transaction first,
    else a duplicate line naming the other's; which one is first depends on timing), "quarantine", "dlq".
    With ``s3``: also a seed request offloaded to ``payload_bucket`` (read in a stream)."""
    when = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    inputs: dict[str, tuple[str, str, bytes | None]] = {}
    for i in range(RECORDS):
        mid = f"{tag}-{i:02d}"
        payload = json.dumps({"n": i, "tag": tag}).encode()
        inputs[mid] = ("archived", _seed(mid, mid, payload, when), payload)
    for mid in (f"{tag}-r1", f"{tag}-r2"):  # one transaction sent twice: one object, one duplicate
        inputs[mid] = ("repeat", _seed(mid, f"{tag}-twice", b"the same bytes", when), b"the same bytes")
    for mid, payload in ((f"{tag}-k1", b"first bytes"), (f"{tag}-k2", b"other bytes")):  # a conflict: both kept
        inputs[mid] = ("archived", _seed(mid, f"{tag}-conflict", payload, when), payload)
    if s3 is not None:
        mid = f"{tag}-ptr"
        s3.put_object(Bucket=payload_bucket, Key=f"seed/{tag}", Body=_seed(mid, mid, b"offloaded " * 1000, when).encode())
        pointer = json.dumps(
            ["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": payload_bucket, "s3Key": f"seed/{tag}"}]
        )
        inputs[mid] = ("archived", pointer, b"offloaded " * 1000)
    bad_base64 = {"messageID": f"{tag}-bad64", "messageMetaData": {"messageType": "claim", "sourceSystemID": "claims",
                  "sourceTransactionID": "x", "dateTime": when}, "messagePayload": "***not base64***"}  # fmt: skip
    inputs[f"{tag}-bad64"] = ("quarantine", json.dumps(bad_base64), None)
    inputs[f"{tag}-nometa"] = ("quarantine", json.dumps({"messageID": f"{tag}-nometa", "messageMetaData": {}, "messagePayload": ""}), None)
    pointer = json.dumps(["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": payload_bucket, "s3Key": f"gone/{tag}"}])
    inputs[f"{tag}-gone"] = ("dlq", pointer, None)
    return inputs


def _check_archive_point(aws, pipeline, tag, inputs, sent_ids, queue, dlq, observer) -> set[str]:
    sqs, s3 = aws("sqs"), aws("s3")
    assert _depth(sqs, queue) == 0
    by_sqs = {v: k for k, v in sent_ids.items()}
    # archived: one key per record, bytes as sent
    archived: Counter = Counter()
    for key in pipeline.objects():
        parsed = layout.parse_archive_key(PREFIX, key)
        if parsed and key.rsplit("/", 1)[-1].startswith(f"{tag}-"):
            mid = key.rsplit("/", 1)[-1]
            archived[mid] += 1
            assert s3.get_object(Bucket=pipeline.bucket, Key=key)["Body"].read() == inputs[mid][2], key
    assert all(c == 1 for c in archived.values()), archived
    # manifest lines: each message has one standing in its transaction, whatever crashed and was redone
    standing: dict[str, set] = {}
    for key in pipeline.objects(f"{PREFIX}/{layout.BATCH_MANIFESTS}/"):
        for line in decode_manifest(s3.get_object(Bucket=pipeline.bucket, Key=key)["Body"].read()):
            if line.message_id.startswith(f"{tag}-"):
                standing.setdefault(line.message_id, set()).add((line.transaction_status, line.repeat_of, line.key))
    assert all(len(v) == 1 for v in standing.values()), standing
    duplicates = {mid for mid, v in standing.items() if next(iter(v))[0] == "duplicate"}
    repeats = sorted(mid for mid, spec in inputs.items() if spec[0] == "repeat")
    assert len(duplicates) == 1 and duplicates < set(repeats), standing  # never both, never none
    (duplicate,) = duplicates
    (first,) = set(repeats) - duplicates
    assert next(iter(standing[duplicate]))[1:] == (
        first,
        layout.archive_key(PREFIX, layout.parse_archive_key(PREFIX, next(iter(standing[duplicate]))[2]).event_time, first),
    )
    assert archived[first] == 1 and duplicate not in archived  # the copy it names exists; no second object
    assert sorted(next(iter(standing[m]))[0] for m in (f"{tag}-k1", f"{tag}-k2")) == ["conflict", "first"]
    # dead-lettered (at-least-once: a resend after a crash is bounded by one batch)
    dlq_msgs = _drain_all(sqs, dlq)
    dead = Counter(by_sqs[json.loads(m["MessageAttributes"]["ArchiveFailure"]["StringValue"])["sqs_message_id"]] for m in dlq_msgs)
    assert sum(dead.values()) - len(dead) <= BATCH
    # quarantined: one document per message, naming the reason
    quarantined = Counter()
    for key in pipeline.objects(f"{PREFIX}/{layout.QUARANTINE}/"):
        doc = json.loads(s3.get_object(Bucket=pipeline.bucket, Key=key)["Body"].read())
        if doc["sqs_message_id"] in by_sqs:
            quarantined[by_sqs[doc["sqs_message_id"]]] += 1
            assert doc["reason"]
    assert all(c == 1 for c in quarantined.values()), quarantined
    places = {}
    for mid in inputs:
        found = [p for p, c in (("archived", archived), ("repeat", duplicates), ("dlq", dead), ("quarantine", quarantined)) if mid in c]
        assert len(found) == 1, (mid, found)
        places[mid] = "repeat" if mid in repeats else found[0]
    assert places == {mid: spec[0] for mid, spec in inputs.items()}
    # notifications: every record announced (a duplicate as one); repeats bounded by one manifest batch
    notes = _drain_all(sqs, observer)
    per_record = Counter()
    events: dict[str, set] = {}
    for note in notes:
        body = json.loads(note["Body"])
        per_record[body["messageID"]] += 1
        events.setdefault(body["messageID"], set()).add(body["event"])
    assert set(archived) | duplicates <= set(per_record), (set(archived) | duplicates) - set(per_record)
    assert "duplicate" in events[duplicate] and "archive_stored" not in events[duplicate]
    assert all("duplicate" not in events[m] for m in archived)  # no record is a duplicate of itself
    extra = sum(per_record.values()) - 4 * (len(archived) + len(duplicates)) - 1  # (the conflict's own event)
    assert 0 <= extra <= 5 * BATCH, per_record
    return set(archived) | duplicates


def test_archive_survives_sigkill_at_every_sampled_call(runner, pipeline, warehouse, aws, unique):
    from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator

    sqs, sns = aws("sqs"), aws("sns")
    payload_bucket = unique("payloads")
    aws("s3").create_bucket(Bucket=payload_bucket)
    every_archived: set[str] = set()

    def start(n):
        tag = f"c{n:03d}"
        queue = sqs.create_queue(QueueName=unique("crash-in"))["QueueUrl"]
        dlq = sqs.create_queue(QueueName=unique("crash-dlq"))["QueueUrl"]
        topic = sns.create_topic(Name=unique("crash-events"))["TopicArn"]
        observer = sqs.create_queue(QueueName=unique("crash-obs"))["QueueUrl"]
        obs_arn = sqs.get_queue_attributes(QueueUrl=observer, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=obs_arn, Attributes={"RawMessageDelivery": "true"})
        inputs = _archive_inputs(tag, payload_bucket, aws("s3"))
        sent_ids = {mid: sqs.send_message(QueueUrl=queue, MessageBody=spec[1])["MessageId"] for mid, spec in inputs.items()}
        kwargs = pipeline.archive_kwargs(queue_url=queue, dead_letter_queue_url=dlq, topic_arn=topic, visibility_timeout=2,
                                         records_per_manifest=BATCH, notifications="per_record",
                                         claim_check_buckets=payload_bucket)  # fmt: skip
        return runner.run(ARCHIVE, kwargs, kill_after=n), (tag, inputs, sent_ids, queue, dlq, observer, kwargs)

    def finish(n, first, state):
        tag, inputs, sent_ids, queue, dlq, observer, kwargs = state
        TRIED["archive"] += first["outcome"] == "killed"
        _rerun_until_empty(runner, ARCHIVE, kwargs, sqs, queue, wait=2.2)
        every_archived.update(_check_archive_point(aws, pipeline, tag, inputs, sent_ids, queue, dlq, observer))

    outcomes = sample_crash_points(start, finish, wait=2.2)  # what a killed run received is visible again after 2 s
    first = outcomes[-1][1]
    print(f"archive: {TRIED['archive']} crash points tried (step {STEP}); run length {first.get('calls')} calls")
    assert TRIED["archive"] >= 5, [(n, a["outcome"]) for n, a in outcomes]

    now = datetime.now(UTC)
    load = SnowflakeAuditLoadOperator(**warehouse.load_kwargs(
        interval_start=(now - timedelta(days=1)).isoformat(), interval_end=(now + timedelta(hours=1)).isoformat()))  # fmt: skip
    report = load.execute({"run_id": "after-crashes"})
    assert report["records"]["failed"] == 0
    rows = warehouse.sql("SELECT MESSAGE_ID, COUNT(*) FROM {ns}.AUDIT_RECORD GROUP BY MESSAGE_ID")
    assert {mid for mid, _ in rows} == every_archived
    assert all(count == 1 for _, count in rows)  # unique per message id despite repeated manifest lines


def test_bundle_layout_survives_sigkill_at_every_call(runner, pipeline, warehouse, aws, unique):
    """Issue 19: layout="bundle", SIGKILL after each AWS call of a run (receives, the bundle's
    PutObject, the manifest's, the deletes), then reruns: every record is in a bundle a manifest
    lists, at most one bundle more than needed per crash, and Snowflake holds each record once with
    its exact bytes (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html:
    a message not deleted comes back after its visibility timeout)."""
    from airflow_reliable_messaging.domain import bundle
    from airflow_reliable_messaging.operators.audit_report import AuditReconcileOperator
    from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator

    sqs, s3 = aws("sqs"), aws("s3")
    sent: dict[str, bytes] = {}

    def start(n):
        queue = sqs.create_queue(QueueName=unique("bundle-in"))["QueueUrl"]
        bodies = [json.dumps({"n": i, "point": n}) for i in range(RECORDS)]
        bodies.append(json.dumps({"n": "large", "pad": "x" * 5000}))  # above bundle_record_bytes: an object of its own
        mine = {}
        for body in bodies:
            mine[sqs.send_message(QueueUrl=queue, MessageBody=body)["MessageId"]] = body.encode()
        before = set(pipeline.objects(f"{PREFIX}/{layout.BUNDLES}/"))
        kwargs = pipeline.archive_kwargs(queue_url=queue, visibility_timeout=2, notifications="none", layout="bundle",
                                         bundle_record_bytes=1024, records_per_manifest=100)  # fmt: skip
        return runner.run(ARCHIVE, kwargs, kill_after=n), (queue, mine, before, kwargs)

    def finish(n, first, state):
        queue, mine, before, kwargs = state
        TRIED["bundle"] += first["outcome"] == "killed"
        _rerun_until_empty(runner, ARCHIVE, kwargs, sqs, queue, wait=2.2)
        new = {}  # this point's bundles (the next point's run may have written its own since `before`)
        for key in sorted(set(pipeline.objects(f"{PREFIX}/{layout.BUNDLES}/")) - before):
            lines = bundle.decode_bundle(s3.get_object(Bucket=pipeline.bucket, Key=key)["Body"].read(), f"s3://{pipeline.bucket}/{key}")
            if any(r.message_id in mine for r, _ in lines.values()):
                new[key] = lines
        assert 1 <= len(new) <= 2, (n, sorted(new))  # the bundle, and at most one more after a crash
        listed = {}
        for key in pipeline.objects(f"{PREFIX}/{layout.BATCH_MANIFESTS}/"):
            for line in decode_manifest(s3.get_object(Bucket=pipeline.bucket, Key=key)["Body"].read()):
                if line.message_id in mine:
                    listed.setdefault(line.message_id, set()).add(line.key)
        assert set(listed) == set(mine), (n, set(mine) - set(listed))
        for message_id, keys in listed.items():  # every listed copy holds the exact bytes
            for key in keys:
                if key in new:
                    assert any(r.message_id == message_id and r.body == mine[message_id] for r, _ in new[key].values())
        sent.update(mine)

    outcomes = sample_crash_points(start, finish, wait=2.2, step=1)
    first = outcomes[-1][1]
    print(f"bundle layout: {TRIED['bundle']} crash points tried; run length {first.get('calls')} calls")
    assert TRIED["bundle"] >= 6, [(n, a["outcome"]) for n, a in outcomes]

    now = datetime.now(UTC)
    window = {"interval_start": (now - timedelta(days=1)).isoformat(), "interval_end": (now + timedelta(hours=1)).isoformat()}
    report = SnowflakeAuditLoadOperator(**warehouse.load_kwargs(**window)).execute({"run_id": "after-bundle-crashes"})
    assert report["records"]["failed"] == 0 and report["files"]["failed_count"] == 0
    rows = warehouse.sql("SELECT MESSAGE_ID, COUNT(*) FROM {ns}.AUDIT_RECORD GROUP BY MESSAGE_ID")
    assert dict(rows) == dict.fromkeys(sent, 1)  # each record once, whatever was archived twice
    payloads = dict(warehouse.sql("SELECT MESSAGE_ID, PAYLOAD:n::VARCHAR FROM {ns}.AUDIT_PAYLOAD"))
    assert payloads == {m: str(json.loads(b)["n"]) for m, b in sent.items()}
    reconciled = AuditReconcileOperator(task_id="reconcile", load_report=report, archive_bucket=pipeline.bucket, archive_prefix=PREFIX,
                                        snowflake_database=warehouse.database, **window).execute({})  # fmt: skip
    assert reconciled["matched"] == len(sent) and reconciled["missing"] == 0


# -- client redrive -----------------------------------------------------------------------------------
def test_client_redrive_survives_sigkill_at_every_sampled_call(runner, aws, unique):
    sqs = aws("sqs")

    def start(n):
        dlq = sqs.create_queue(QueueName=unique("rd-dlq"))["QueueUrl"]
        target = sqs.create_queue(QueueName=unique("rd-target"))["QueueUrl"]
        bodies = [f"r{n}-{i:02d}" for i in range(RECORDS + 5)]
        for k in range(0, len(bodies), 10):
            sqs.send_message_batch(QueueUrl=dlq, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[k : k + 10])])
        kwargs = {"task_id": "redrive", "dlq": dlq, "destination": target, "mode": "client", "visibility_timeout": 1}
        return runner.run(REDRIVE, kwargs, kill_after=n, context={"run_id": f"crash-{n}"}), (dlq, target, bodies, kwargs)

    def finish(n, first, state):
        dlq, target, bodies, kwargs = state
        TRIED["redrive"] += first["outcome"] == "killed"
        _rerun_until_empty(runner, REDRIVE, kwargs, sqs, dlq, wait=1.2, context={"run_id": f"crash-{n}"})
        delivered = Counter(m["Body"] for m in _drain_all(sqs, target))
        assert set(delivered) == set(bodies)  # every message delivered; none left in the DLQ
        assert sum(delivered.values()) - len(bodies) <= BATCH, delivered  # repeats: one batch at most

    outcomes = sample_crash_points(start, finish, wait=1.2, step=max(1, STEP - 1))  # a short run (about 14 calls): sample more densely
    first = outcomes[-1][1]
    print(f"client redrive: {TRIED['redrive']} crash points tried (step {max(1, STEP - 1)}); run length {first.get('calls')} calls")
    assert TRIED["redrive"] >= 5, [(n, a["outcome"]) for n, a in outcomes]


def test_fifo_client_redrive_resend_carries_the_same_deduplication_id(runner, aws, unique):
    """A crash between send and delete: the rerun sends the batch again with the same
    MessageDeduplicationId, so the FIFO destination keeps one copy."""
    sqs = aws("sqs")
    dlq = sqs.create_queue(QueueName=unique("rdf-dlq") + ".fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    target = sqs.create_queue(QueueName=unique("rdf-target") + ".fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    for i in range(10):
        sqs.send_message(QueueUrl=dlq, MessageBody=f"f{i}", MessageGroupId="g", MessageDeduplicationId=f"d{i}")
    kwargs = {"task_id": "redrive", "dlq": dlq, "destination": target, "mode": "client", "visibility_timeout": 1}
    # the calls of a run: GetQueueUrl?, GetQueueAttributes, ListDeadLetterSourceQueues, Receive (peek),
    # ChangeMessageVisibilityBatch (release), Receive, SendMessageBatch <- killed here, before the delete
    probe = runner.run(REDRIVE, {**kwargs, "dry_run": True}, context={"run_id": "probe"})
    assert probe["outcome"] == "completed"
    calls = []
    answer = None
    for n in range(3, 12):
        trial_dlq = sqs.create_queue(QueueName=unique("rdf-dlq") + ".fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        trial_target = sqs.create_queue(QueueName=unique("rdf-t") + ".fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        for i in range(10):
            sqs.send_message(QueueUrl=trial_dlq, MessageBody=f"f{i}", MessageGroupId="g", MessageDeduplicationId=f"d{i}")
        trial = {**kwargs, "dlq": trial_dlq, "destination": trial_target}
        answer = runner.run(REDRIVE, trial, kill_after=n, context={"run_id": "fifo"})
        sent = _depth(sqs, trial_target)
        if answer["outcome"] == "killed" and sent == 10 and _depth(sqs, trial_dlq) == 10:
            dlq, target = trial_dlq, trial_target
            calls.append(n)
            break
    assert calls, "no crash point between SendMessageBatch and DeleteMessageBatch was found"
    time.sleep(1.2)
    _rerun_until_empty(runner, REDRIVE, {**kwargs, "dlq": dlq, "destination": target}, sqs, dlq, wait=1.2, context={"run_id": "fifo"})
    got = _drain_all(sqs, target)
    assert sorted(m["Body"] for m in got) == [f"f{i}" for i in range(10)]  # the resend was deduplicated
    assert {m["Attributes"]["MessageDeduplicationId"] for m in got} == {f"d{i}" for i in range(10)}


def test_native_redrive_with_the_loop_guard_survives_sigkill_at_every_sampled_call(runner, aws, unique):
    """Native mode with the loop guard (ledger) killed at every sampled call, then rerun (attaching
    to a task a killed run started): every message ends in its source queue or, the one already
    redriven max_redrives times, in the quarantine — never both — and every message the task moved
    is counted by a ledger entry written before the task started (a crash may count it twice: the
    safe side), never by none."""
    from airflow_reliable_messaging.domain import redrive as rd

    sqs, s3 = aws("sqs"), aws("s3")

    def start(n):
        dlq = sqs.create_queue(QueueName=unique("rn-dlq"))["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"})
        source = sqs.create_queue(QueueName=unique("rn-src"), Attributes={"RedrivePolicy": policy})["QueueUrl"]
        bucket = unique("rn-quarantine")
        s3.create_bucket(Bucket=bucket)
        bodies = [f"n{n}-{i:02d}" for i in range(RECORDS)]
        for k in range(0, len(bodies), 10):
            sqs.send_message_batch(QueueUrl=source, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[k : k + 10])])
        sqs.send_message(QueueUrl=source, MessageBody=f"poison-{n}", MessageAttributes=rd.RedriveState(3).to_attribute())
        for _ in range(3):  # its consumer fails every message: all dead-lettered (maxReceiveCount 1)
            while sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages"):
                pass
        kwargs = {"task_id": "redrive", "dlq": dlq, "mode": "native", "quarantine_bucket": bucket, "visibility_timeout": 1,
                  "deferrable": False, "poll_interval": 0.1, "rate_per_second": 500, "on_task_running": "attach"}  # fmt: skip
        return runner.run(REDRIVE, kwargs, kill_after=n, context={"run_id": f"crash-{n}"}), (dlq, source, bucket, bodies, kwargs)

    def finish(n, first, state):
        dlq, source, bucket, bodies, kwargs = state
        TRIED["native-redrive"] += first["outcome"] == "killed"
        _rerun_until_empty(runner, REDRIVE, kwargs, sqs, dlq, wait=1.2, context={"run_id": f"crash-{n}"})
        moved = Counter(m["Body"] for m in _drain_all(sqs, source))
        assert moved == Counter(bodies), moved  # each once (a move task never doubles), the poison not at all
        parked = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="redrive/_quarantine/").get("Contents", [])]
        assert len(parked) == 1 and json.loads(s3.get_object(Bucket=bucket, Key=parked[0])["Body"].read())["body"] == f"poison-{n}"
        counted: Counter = Counter()
        for obj in s3.list_objects_v2(Bucket=bucket, Prefix="redrive/_redrive-ledger/").get("Contents", []):
            counted.update(json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())["fingerprints"])
        prints = {rd.fingerprint(rd.parse_message({"MessageId": "x", "ReceiptHandle": "r", "Body": b})): b for b in bodies}
        assert all(1 <= counted[f] <= 2 for f in prints), {prints[f]: counted[f] for f in prints}

    outcomes = sample_crash_points(start, finish, wait=1.2)
    first = outcomes[-1][1]
    print(f"native redrive: {TRIED['native-redrive']} crash points tried (step {STEP}); run length {first.get('calls')} calls")
    assert TRIED["native-redrive"] >= 5, [(n, a["outcome"]) for n, a in outcomes]


# -- S3 archive replay --------------------------------------------------------------------------------
def test_archive_replay_survives_sigkill_at_every_sampled_call(runner, pipeline, aws, unique):
    from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator

    sqs = aws("sqs")
    inputs = _archive_inputs("rp", unique("nobucket"))
    good = {mid: spec for mid, spec in inputs.items() if spec[0] == "archived"}
    for spec in good.values():
        sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=spec[1])
    report = AuditArchiveOperator(**pipeline.archive_kwargs(notifications="none")).execute({})
    assert report["archived"] == len(good)
    now = datetime.now(UTC)
    outcomes = []
    for n in crash_points():
        target = sqs.create_queue(QueueName=unique("rp-target"))["QueueUrl"]
        kwargs = {"task_id": "replay", "archive_bucket": pipeline.bucket, "archive_prefix": PREFIX, "target_queue": target,
                  "start": (now - timedelta(hours=3)).isoformat(), "end": now.isoformat(), "replay_id": f"crash-{n}",
                  "max_messages_per_second": 0}  # fmt: skip
        first = runner.run(REPLAY, kwargs, kill_after=n)
        outcomes.append((n, first["outcome"]))
        if first["outcome"] == "killed":
            TRIED["replay"] += 1
        else:
            assert first["outcome"] == "completed", first
        again = runner.run(REPLAY, kwargs)
        assert again["outcome"] == "completed", again
        assert again["result"]["report"]["sent"] >= len(good)
        got = _drain_all(sqs, target)
        by_id: dict[str, list[dict]] = {}
        for m in got:
            by_id.setdefault(m["MessageAttributes"]["replayed_message_id"]["StringValue"], []).append(m)
        assert set(by_id) == set(good)
        assert len(got) - len(good) <= BATCH  # a batch sent but not checkpointed is sent again, no more
        for copies in by_id.values():  # repeats are the same message, with the same replay identifiers
            assert len({(c["Body"], c["MessageAttributes"]["replay_id"]["StringValue"]) for c in copies}) == 1
        ck = aws("s3").get_object(Bucket=pipeline.bucket, Key=rp.checkpoint_key(PREFIX, f"crash-{n}"))
        assert json.loads(ck["Body"].read())["completed"] is True  # never partial
        if first["outcome"] != "killed":
            break
    print(f"archive replay: {TRIED['replay']} crash points tried (step {STEP}); run length {first.get('calls')} calls")
    assert TRIED["replay"] >= 5, outcomes
