"""The bad-input corpus (``tests/integration/proof/corpus/``): every hostile input gets a clear error or a
quarantine / DLQ entry with its reason; none crashes a batch; none is lost."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain.manifest import decode_manifest, encode_manifest
from airflow_reliable_messaging.exceptions import ConfigurationError, ReliableMessagingError
from tests.integration.proof.conftest import PREFIX

pytestmark = pytest.mark.localcloud

CORPUS = Path(__file__).with_name("corpus")
WHEN = "2021-07-03 16:21:12.357246"


def load(name: str) -> dict:
    return json.loads((CORPUS / name).read_text())


def test_corpus_is_versioned_and_ids_are_unique():
    readme = (CORPUS / "README.md").read_text()
    version = next(line.split(":", 1)[1].strip() for line in readme.splitlines() if line.lower().startswith("corpus version"))
    files = sorted(CORPUS.glob("*.json"))
    assert files
    for path in files:
        data = json.loads(path.read_text())
        assert str(data["version"]) == version, path.name
        ids = [c["id"] for c in data["cases"]]
        assert len(ids) == len(set(ids)), path.name


# -- archive: hostile SQS messages --------------------------------------------------------------------
def _seed(mid: str, payload_b64: str) -> str:
    meta = {"messageType": "t", "sourceSystemID": "s", "sourceTransactionID": mid, "dateTime": WHEN}
    return json.dumps({"messageID": mid, "messageMetaData": meta, "messagePayload": payload_b64})


def _body(case: dict, mid: str, bucket: str, s3) -> str:
    if "object" in case or "object_b64" in case:  # offloaded by an extended client: a pointer to the object
        data = (
            base64.b64decode(case["object_b64"])
            if "object_b64" in case
            else case["object"].replace("{id}", mid).replace("{when}", WHEN).encode()
        )
        s3.put_object(Bucket=bucket, Key=f"offloaded/{mid}", Body=data)
        return json.dumps(["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": bucket, "s3Key": f"offloaded/{mid}"}])
    gen = case.get("body_gen")
    if gen is None:
        return case["body"].replace("{id}", mid).replace("{when}", WHEN).replace("{bucket}", bucket)
    if "nested" in gen:
        return "[" * gen["nested"] + "]" * gen["nested"]
    if "nested_field" in gen:
        depth = gen["nested_field"]
        return f'{{"messageID": "{mid}", "messagePayload": {"[" * depth + "]" * depth}}}'
    if "payload_b64" in gen:
        return _seed(mid, gen["payload_b64"])
    if "oversize" in gen:
        return _seed(mid, base64.b64encode(b"A" * gen["oversize"]).decode())
    raise AssertionError(gen)


def test_archive_corpus_every_message_ends_in_exactly_one_place_with_its_reason(pipeline, aws, unique):
    from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator

    corpus = load("archive_messages.json")
    sqs, s3 = aws("sqs"), aws("s3")
    foreign = unique("foreign")
    s3.create_bucket(Bucket=foreign)
    sqs_ids: dict[str, str] = {}
    for n, case in enumerate(corpus["cases"]):
        mid = f"corpus-{n:02d}"
        attributes = {k: {"DataType": "String", "StringValue": v} for k, v in case.get("attributes", {}).items()}
        body = _body(case, mid, foreign, s3)
        sqs_ids[sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=body, MessageAttributes=attributes)["MessageId"]] = case["id"]
    for i in range(3):  # good records around the bad ones
        sqs_ids[sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=_seed(f"good-{i}", "eA=="))["MessageId"]] = f"good-{i}"

    report = AuditArchiveOperator(
        **pipeline.archive_kwargs(notifications="none", records_per_manifest=100, claim_check_buckets=foreign)
    ).execute({})
    total = len(corpus["cases"]) + 3
    assert report["received"] == total  # one run, no crash
    assert pipeline.depth(pipeline.queue_url) == 0

    places: dict[str, list[tuple[str, str]]] = {}
    for key in pipeline.objects():
        if layout.parse_archive_key(PREFIX, key):
            meta = s3.head_object(Bucket=pipeline.bucket, Key=key)["Metadata"]
            places.setdefault(sqs_ids[meta["sqs-message-id"]], []).append(("archived", key))
        elif key.startswith(f"{PREFIX}/{layout.QUARANTINE}/") and not key.endswith(".payload"):  # (a quarantined pointer's object)
            doc = json.loads(s3.get_object(Bucket=pipeline.bucket, Key=key)["Body"].read())
            places.setdefault(sqs_ids[doc["sqs_message_id"]], []).append(("quarantine", doc["reason"]))
    for message in pipeline.drain(pipeline.dlq_url):
        failure = json.loads(message["MessageAttributes"]["ArchiveFailure"]["StringValue"])
        places.setdefault(sqs_ids[failure["sqs_message_id"]], []).append(("dlq", failure["reason"]))

    problems = []
    for case in corpus["cases"]:
        got = places.get(case["id"], [])
        if len(got) != 1:
            problems.append(f"{case['id']}: in {len(got)} places {got}")
            continue
        where, detail = got[0]
        if where != case["expect"]:
            problems.append(f"{case['id']}: {where} ({detail[:160]}), expected {case['expect']}")
        elif case.get("reason") and case["reason"].lower() not in detail.lower():
            problems.append(f"{case['id']}: reason {detail[:160]!r} lacks {case['reason']!r}")
        elif case.get("key_hour") and f"/{case['key_hour']}/" not in detail:
            problems.append(f"{case['id']}: key {detail} not in hour {case['key_hour']}")
    assert not problems, "\n".join(problems)
    assert all(places[f"good-{i}"][0][0] == "archived" for i in range(3))
    assert report["archived"] + report["quarantined"] + report["dead_lettered"] == total


# -- operator parameters ------------------------------------------------------------------------------
OPERATORS = {
    "archive": ("airflow_reliable_messaging.operators.audit_archive", "AuditArchiveOperator",
                {"queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/q", "bucket": "archive-bucket"}),
    "replay": ("airflow_reliable_messaging.operators.archive_replay", "S3ArchiveReplayOperator",
               {"archive_bucket": "archive-bucket", "archive_prefix": "audit/v1", "start": "2026-01-01T00:00:00Z",
                "end": "2026-01-02T00:00:00Z", "target_queue": "q", "replay_id": "r1"}),
    "redrive": ("airflow_reliable_messaging.operators.dlq_redrive", "DLQRedriveOperator", {"dlq": "dlq"}),
    "load": ("airflow_reliable_messaging.operators.snowflake_audit_load", "SnowflakeAuditLoadOperator",
             {"archive_bucket": "archive-bucket", "archive_prefix": "audit/v1",
              "interval_start": "2026-01-01T00:00:00Z", "interval_end": "2026-01-08T00:00:00Z"}),
}  # fmt: skip


def _params_cases():
    return [pytest.param(c, id=c["id"]) for c in load("operator_params.json")["cases"]]


@pytest.mark.parametrize("case", _params_cases())
def test_bad_parameters_are_refused_naming_the_field_before_any_io(case, local_cloud, faults):
    import importlib

    module, name, base = OPERATORS[case["operator"]]
    cls = getattr(importlib.import_module(module), name)
    kwargs = {**base, **case["kwargs"], "task_id": "t"}
    for k, v in list(kwargs.items()):
        if v == "__unset__":
            kwargs.pop(k)
    # every AWS call would fail: a refusal must come from validation, not from AWS
    faults.set([{"fault": "5xx", "service": "*", "operation": "*", "status": 500}])
    with pytest.raises((ConfigurationError, ReliableMessagingError, ValueError, TypeError)) as exc:
        op = cls(**kwargs)
        op.execute({"run_id": "corpus"})
    calls = faults.stats()["calls"]
    assert not calls, f"{case['id']}: AWS was called before the refusal: {calls}"
    error = exc.value
    assert isinstance(error, ConfigurationError), f"{case['id']}: {type(error).__name__}: {error}"
    assert error.field == case["field"] or case["field"] in str(error), f"{case['id']}: {error.field}: {error}"
    assert "Traceback" not in str(error)


# -- load: hostile manifests ---------------------------------------------------------------------------
def _manifest_body(case: dict, n: int, bucket: str, uri: str, base: dict) -> bytes:
    """The case's manifest bytes (see the corpus notes: text, b64 or a line with fields replaced)."""
    if "b64" in case:
        return base64.b64decode(case["b64"])
    if "text" in case:
        return case["text"].encode()

    def fill(value):
        if isinstance(value, str):
            return value.replace("{archive_bucket}", bucket).replace("{prefix}", PREFIX).replace("{manifest}", uri)
        return value

    line = {**base, "message_id": f"corpus-line-{n:02d}", "manifest": uri}
    for name, value in case["line"].items():
        if value is None:
            line.pop(name, None)
        else:
            line[name] = fill(value)
    text = json.dumps(line)
    if case.get("raw_fields"):
        text = text[:-1] + ", " + case["raw_fields"] + "}"
    return (text + "\n").encode()


def test_hostile_manifests_are_reported_and_the_rest_is_loaded(pipeline, warehouse, aws):
    """Every hostile manifest is refused with its reason and quarantined; nothing it names lands in
    Snowflake (objects outside the archive exist, so only the check keeps them out); the rest loads."""
    import hashlib

    from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator

    corpus = load("load_manifests.json")
    s3 = aws("s3")
    now = datetime.now(UTC).replace(microsecond=0)
    good_body = b'{"ok": true}'
    good_key = layout.archive_key(PREFIX, now - timedelta(hours=2), "good-1")
    s3.put_object(Bucket=pipeline.bucket, Key=good_key, Body=good_body)
    secret = b'{"secret": "payroll"}'
    for key in ("private/payroll.json", f"{PREFIX}/../private/payroll.json", f"{PREFIX}/_quarantine/2026/01/01/00/q1"):
        s3.put_object(Bucket=pipeline.bucket, Key=key, Body=secret)

    good = {"message_id": "good-1", "bucket": pipeline.bucket, "key": good_key, "size": len(good_body),
            "sha256": hashlib.sha256(good_body).hexdigest(), "content_type": "application/json",
            "event_time": (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "archived_at": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "s3_uri": layout.s3_uri(pipeline.bucket, good_key), "manifest_version": 1}  # fmt: skip
    bad_keys = {}
    for n, case in enumerate(corpus["cases"]):
        key = layout.batch_manifest_key(PREFIX, now - timedelta(hours=1), f"corpus-{n:02d}")
        s3.put_object(
            Bucket=pipeline.bucket, Key=key, Body=_manifest_body(case, n, pipeline.bucket, layout.s3_uri(pipeline.bucket, key), good)
        )
        bad_keys[layout.s3_uri(pipeline.bucket, key)] = case
    good_manifest = layout.batch_manifest_key(PREFIX, now - timedelta(hours=1), "good")
    record = decode_manifest((json.dumps(good) + "\n").encode())[0]
    body = encode_manifest([record], layout.s3_uri(pipeline.bucket, good_manifest))
    s3.put_object(Bucket=pipeline.bucket, Key=good_manifest, Body=body)

    op = SnowflakeAuditLoadOperator(**warehouse.load_kwargs(
        interval_start=(now - timedelta(days=1)).isoformat(), interval_end=(now + timedelta(minutes=5)).isoformat(),
        on_bad_file="quarantine"))  # fmt: skip
    report = op.execute({"run_id": "corpus"})
    assert warehouse.sql("SELECT MESSAGE_ID, S3_URI FROM {ns}.AUDIT_RECORD") == [("good-1", layout.s3_uri(pipeline.bucket, good_key))]
    assert warehouse.sql("SELECT COUNT(*) FROM {ns}.AUDIT_PAYLOAD WHERE PAYLOAD:secret IS NOT NULL") == [(0,)]
    assert report["files"]["failed_count"] == len(bad_keys), report["files"]
    # Every refused manifest is kept in the quarantine with its URI and the reason (the XCom lists 20).
    failed = {}
    for key in pipeline.objects(f"{PREFIX}/{layout.QUARANTINE}/"):
        meta = s3.head_object(Bucket=pipeline.bucket, Key=key)["Metadata"]
        if "original-uri" in meta:
            failed[meta["original-uri"]] = meta["quarantine-reason"]
    problems = []
    for uri, case in bad_keys.items():
        if uri not in failed:
            problems.append(f"{case['id']}: not quarantined")
        elif case.get("reason") and case["reason"].lower() not in failed[uri].lower():
            problems.append(f"{case['id']}: reason {failed[uri][:200]!r} lacks {case['reason']!r}")
    assert not problems, "\n".join(problems)
