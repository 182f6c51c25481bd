"""Report delivery operators against the local cloud: SNS (batched, FIFO, claim-check) and email."""

from __future__ import annotations

import json

import pytest

from airflow_reliable_messaging.domain import report as fmt
from airflow_reliable_messaging.domain.claim_check import POINTER_CLASS
from airflow_reliable_messaging.exceptions import ConfigurationError
from airflow_reliable_messaging.operators.audit_report import EmailReportOperator, SnsReportPublishOperator


def a_report(rows, report_id="rep-1"):
    return {"title": "Weekly audit archive report", "dag_id": "weekly_audit_load", "report_id": report_id,
            "interval": {"start": "2026-11-16T00:00:00.000000Z", "end": "2026-11-23T00:00:00.000000Z"},
            "totals": fmt.totals(rows), "rows": rows, "load": None}  # fmt: skip


def row(system, note=""):
    return {"SOURCE_SYSTEM": system, "RECORDS": 2, "TOTAL_BYTES": 10, "FAILED": 0, "NOTE": note}


def subscribed_queue(aws, unique, fifo=False):
    sns, sqs = aws("sns"), aws("sqs")
    suffix = ".fifo" if fifo else ""
    attrs = {"FifoTopic": "true", "ContentBasedDeduplication": "false"} if fifo else {}
    topic = sns.create_topic(Name=unique("report") + suffix, Attributes=attrs)["TopicArn"]
    qattrs = {"FifoQueue": "true"} if fifo else {}
    url = sqs.create_queue(QueueName=unique("sub") + suffix, Attributes=qattrs)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return topic, url


def received(sqs, url):
    out = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]).get(
        "Messages"
    ):
        out += batch
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


@pytest.fixture
def bucket(aws, unique):
    name = unique("reports")
    aws("s3").create_bucket(Bucket=name)
    return name


def test_large_messages_are_sent_as_extended_client_pointers(aws, unique, bucket):
    topic, url = subscribed_queue(aws, unique)
    report = a_report([row("small"), row("huge", "x" * 300_000)])
    result = SnsReportPublishOperator(task_id="p", topic_arn=topic, report=report, marker_bucket=bucket, marker_prefix="audit").execute({})
    assert result["published"] == 3 and result["offloaded"] == 1
    messages = received(aws("sqs"), url)
    pointers = [m for m in messages if m["Body"].startswith("[")]
    assert len(pointers) == 1
    kind, location = json.loads(pointers[0]["Body"])
    assert kind == POINTER_CLASS
    stored = json.loads(aws("s3").get_object(Bucket=location["s3BucketName"], Key=location["s3Key"])["Body"].read())
    assert stored["row"]["NOTE"] == "x" * 300_000
    assert int(pointers[0]["MessageAttributes"]["ExtendedPayloadSize"]["StringValue"]) > 256 * 1024


def test_fifo_topics_get_deterministic_dedup_ids_and_reruns_send_nothing(aws, unique, bucket):
    topic, url = subscribed_queue(aws, unique, fifo=True)
    report = a_report([row(f"system-{i}") for i in range(12)])
    op = SnsReportPublishOperator(task_id="p", topic_arn=topic, report=report, marker_bucket=bucket)
    first = op.execute({})
    assert first["published"] == 13 and first["requests"] == 2  # PublishBatch: 10 + 3
    parts = sorted(json.loads(m["Body"])["part"] for m in received(aws("sqs"), url))
    assert parts == list(range(1, 14))
    assert op.execute({})["already_published"] is True
    assert received(aws("sqs"), url) == []


def test_bad_inputs_are_rejected_naming_the_field(bucket):
    with pytest.raises(ConfigurationError, match="topic_arn"):
        SnsReportPublishOperator(
            task_id="p", topic_arn="arn:aws:sqs:us-east-1:123456789012:q", report=a_report([]), marker_bucket=bucket
        ).execute({})
    with pytest.raises(ConfigurationError, match="report"):
        SnsReportPublishOperator(
            task_id="p", topic_arn="arn:aws:sns:us-east-1:123456789012:t", report="not json", marker_bucket=bucket
        ).execute({})
    with pytest.raises(ConfigurationError, match="to"):
        EmailReportOperator(task_id="e", to="nobody", report=a_report([]), marker_bucket=bucket).execute({})
    # the report's id and DAG id name the delivery marker's key: nothing but one key segment each
    for forged in (a_report([], report_id="../../other-dag/rep"), {**a_report([]), "dag_id": "x/../y"}):
        with pytest.raises(ConfigurationError, match="report"):
            EmailReportOperator(task_id="e", to="a@example.test", report=forged, marker_bucket=bucket).execute({})


def test_email_is_multipart_and_sent_once(local_cloud, bucket):
    before = len(local_cloud.emails())
    op = EmailReportOperator(task_id="e", to=["a@example.test", "b@example.test"], report=a_report([row("claims")]), marker_bucket=bucket)
    assert op.execute({})["sent"] is True
    assert op.execute({})["already_sent"] is True
    mails = local_cloud.emails()[before:]
    assert len(mails) == 1
    assert {p.get_content_type() for p in mails[0].walk() if not p.is_multipart()} == {"text/plain", "text/html"}
    assert mails[0]["X-Audit-Report-Id"] == "rep-1"


@pytest.mark.parametrize("delivery", ["sns", "email"])
def test_the_delivery_claim_and_marker_are_encrypted_with_the_given_kms_key(local_cloud, aws, unique, bucket, delivery):
    """A bucket policy that requires SSE-KMS refuses a PutObject without it
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/specifying-kms-encryption.html): both
    delivery operators write their claim with the key they are given."""
    key_id = aws("kms").create_key()["KeyMetadata"]["KeyId"]
    report = a_report([row("claims")], report_id=f"rep-kms-{delivery}")
    if delivery == "sns":
        topic, _ = subscribed_queue(aws, unique)
        op = SnsReportPublishOperator(task_id="p", topic_arn=topic, report=report, marker_bucket=bucket, kms_key_id=key_id)
    else:
        op = EmailReportOperator(task_id="e", to="a@example.test", report=report, marker_bucket=bucket, kms_key_id=key_id)
    op.execute({})
    keys = [o["Key"] for o in aws("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys
    for key in keys:
        head = aws("s3").head_object(Bucket=bucket, Key=key)
        assert head.get("ServerSideEncryption") == "aws:kms" and key_id in head.get("SSEKMSKeyId", ""), key


def test_an_unreachable_aws_endpoint_fails_clearly_after_retries(monkeypatch, bucket):
    from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator

    dead = {"conn_type": "aws", "login": "x", "password": "y",
            "extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1",
                      "config_kwargs": {"retries": {"mode": "standard", "max_attempts": 2}, "connect_timeout": 1}}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEAD", json.dumps(dead))
    op = SnowflakeAuditLoadOperator(task_id="l", archive_bucket=bucket, aws_conn_id="aws_dead",
                                    interval_start="2026-11-16T00:00:00Z", interval_end="2026-11-23T00:00:00Z")  # fmt: skip
    from botocore.exceptions import EndpointConnectionError

    with pytest.raises(EndpointConnectionError, match="127.0.0.1:9"):
        op.execute({"run_id": "r"})


# -- reconciliation never passes vacuously (issue 13) --------------------------------------------------
from datetime import UTC, datetime, timedelta  # noqa: E402

from airflow_reliable_messaging.domain import archive_layout as layout  # noqa: E402
from airflow_reliable_messaging.exceptions import LoadError  # noqa: E402

WEEK = (datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC))


def _load(env, run_id="scheduled__w47", **kwargs):
    from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator

    interval = {"interval_start": WEEK[0].isoformat(), "interval_end": WEEK[1].isoformat()}
    return SnowflakeAuditLoadOperator(**env.load_kwargs(**interval, **kwargs)).execute({"run_id": run_id})


def _reconcile(env, load_report, **kwargs):
    from airflow_reliable_messaging.operators.audit_report import AuditReconcileOperator

    kw = env.load_kwargs(task_id="reconcile", interval_start=WEEK[0].isoformat(), interval_end=WEEK[1].isoformat())
    return AuditReconcileOperator(**kw, load_report=load_report, **kwargs).execute({})


def _seed(aws, env, count=12):
    from local_cloud.sample_archive import seed_sample_archive

    return seed_sample_archive(aws("s3"), env.bucket, env.prefix, *WEEK, count=count, large=0, malformed=0)


def test_reconcile_compares_what_the_load_saw_although_it_was_archived_just_now(audit_env, aws):
    """The demo's case: an old week archived minutes before the load (a backfill): with the
    operator's default settle, every object the load saw is compared, and deleted rows fail it."""
    seeded = _seed(aws, audit_env)
    load = _load(audit_env)
    result = _reconcile(audit_env, load)
    assert result["s3_objects"] == 12
    assert (result["compared"], result["matched"], result["missing"]) == (12, 12, 0)
    assert result["excluded"] == {} and result["warnings"] == []

    gone = sorted(s.message_id for s in seeded[:2])
    audit_env.sql("DELETE FROM {ns}.AUDIT_RECORD WHERE MESSAGE_ID IN (%s, %s)", gone)
    with pytest.raises(LoadError, match="2 archived record\\(s\\) missing") as failure:
        _reconcile(audit_env, load)
    assert all(m in str(failure.value) for m in gone)


def test_reconcile_fails_when_it_compares_nothing_while_snowflake_has_rows(audit_env, aws):
    seeded = _seed(aws, audit_env, count=5)
    load = _load(audit_env)
    for s in seeded:  # the archive's objects are gone (a wrong prefix, an expired bucket...)
        aws("s3").delete_object(Bucket=audit_env.bucket, Key=s.key)
    with pytest.raises(LoadError, match="compared nothing"):
        _reconcile(audit_env, load)


def test_reconcile_reports_what_it_excluded_and_why(audit_env, aws):
    _seed(aws, audit_env, count=4)
    load = _load(audit_env)
    late_key = layout.archive_key(audit_env.prefix, WEEK[0] + timedelta(days=2), "archived-after-the-load")
    aws("s3").put_object(Bucket=audit_env.bucket, Key=late_key, Body=b'{"late": 1}')
    result = _reconcile(audit_env, load)
    assert result["s3_objects"] == 5
    assert result["compared"] == 4
    assert result["excluded"] == {"archived_after_the_load_looked": 1}
    assert any("1 archived object(s) not compared" in w for w in result["warnings"]), result["warnings"]


def test_reconcile_counts_and_reports_keys_outside_the_layout(audit_env, aws):
    _seed(aws, audit_env, count=3)
    load = _load(audit_env, on_bad_file="quarantine")
    hour = layout.data_hour_prefix(audit_env.prefix, WEEK[0] + timedelta(hours=4))
    odd = [f"{hour}00/00/m1/extra", f"{hour}00/00/x'; DROP TABLE T; --", f"{hour}extra/00/00/m2"]
    for key in odd:
        aws("s3").put_object(Bucket=audit_env.bucket, Key=key, Body=b"{}")
    result = _reconcile(audit_env, load)
    assert result["compared"] == 3
    assert result["not_in_layout"] == 3
    assert {k["key"] for k in result["not_in_layout_keys"]} == set(odd)
    assert any("not in the archive layout" in w for w in result["warnings"]), result["warnings"]


def test_reconcile_of_an_empty_week_says_it_compared_nothing(audit_env):
    result = _reconcile(audit_env, _load(audit_env))
    assert result["compared"] == 0
    assert any("compared nothing" in w for w in result["warnings"]), result
    with pytest.raises(LoadError, match="compared nothing"):  # ... but not when the load took records of the week
        _reconcile(audit_env, {"expected_before": "2026-12-01T00:00:00Z", "records": {"in_interval": 3}})


def test_the_report_never_says_no_records_when_the_load_took_some(audit_env):
    from airflow_reliable_messaging.operators.audit_report import AuditReportOperator

    kw = audit_env.load_kwargs(task_id="report", interval_start=WEEK[0].isoformat(), interval_end=WEEK[1].isoformat())
    with pytest.raises(LoadError, match="no rows"):
        AuditReportOperator(**kw, load_report={"records": {"in_interval": 3, "seen": 3}}).execute({})


def test_values_as_native_rendering_gives_them_are_taken_as_text_would_be(audit_env, aws):
    """A DAG with ``render_template_as_native_obj=True`` renders ``{{ data_interval_start }}`` to a
    pendulum DateTime and a Variable holding ``2024`` to an int. pendulum drops a stdlib zone in
    arithmetic, so ``not_after - settle`` became naive: "can't compare offset-naive and
    offset-aware datetimes"."""
    import time

    import pendulum

    from airflow_reliable_messaging.operators.audit_report import AuditReconcileOperator
    from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator

    _seed(aws, audit_env, count=3)
    native = {"interval_start": pendulum.instance(WEEK[0]), "interval_end": pendulum.instance(WEEK[1]).in_tz("Europe/Paris")}
    load = SnowflakeAuditLoadOperator(**audit_env.load_kwargs(**native)).execute({"run_id": "native"})
    assert load["records"]["in_interval"] == 3
    looked = pendulum.now("Europe/Paris")
    time.sleep(1.1)  # LastModified counts whole seconds
    late_key = layout.archive_key(audit_env.prefix, WEEK[0] + timedelta(days=1), "archived-after-not-after")
    aws("s3").put_object(Bucket=audit_env.bucket, Key=late_key, Body=b"{}")
    result = AuditReconcileOperator(**audit_env.load_kwargs(task_id="reconcile", **native), not_after=looked).execute({})
    assert (result["compared"], result["matched"], result["excluded"]) == (3, 3, {"archived_after_the_load_looked": 1})
    numeric = SnowflakeAuditLoadOperator(**audit_env.load_kwargs(archive_prefix=2024, snowflake_database=2024))
    with pytest.raises(ConfigurationError, match="snowflake_database"):  # an int, not a crash on .strip()
        numeric.target()
    assert SnowflakeAuditLoadOperator(**audit_env.load_kwargs(archive_prefix=2024)).target().prefix == "2024"


# -- delivered once, by construction (issue 17) ----------------------------------------------------
def _deliver_after_barrier(make_op, run_id, barrier, results):
    op = make_op()
    barrier.wait(timeout=60)
    try:
        results.put((run_id, op.execute({"run_id": run_id})))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put((run_id, {"error": f"{type(exc).__name__}: {exc}"}))


def _two_at_once(make_op) -> dict[str, dict]:
    """Two tasks delivering one report, in separate processes released together by a barrier."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    runs = ["scheduled__week", "manual__again"]
    procs = [ctx.Process(target=_deliver_after_barrier, args=(make_op, r, barrier, results)) for r in runs]
    for p in procs:
        p.start()
    out = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    return out


def test_two_publishers_started_together_on_a_standard_topic_publish_the_report_once(aws, unique, bucket):
    """Both used to find no marker and publish (26 messages instead of 13). The claim is an
    If-None-Match PutObject, which S3 lets exactly one concurrent writer win:
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html"""
    topic, url = subscribed_queue(aws, unique)
    report = a_report([row(f"system-{i}") for i in range(12)])
    outcomes = _two_at_once(lambda: SnsReportPublishOperator(task_id="p", topic_arn=topic, report=report, marker_bucket=bucket))
    assert all("error" not in o for o in outcomes.values()), outcomes
    parts = sorted(json.loads(m["Body"])["part"] for m in received(aws("sqs"), url))
    assert parts == list(range(1, 14))  # one report at the subscriber, each part once
    won = [r for r, o in outcomes.items() if not o["already_published"]]
    lost = [r for r, o in outcomes.items() if o["already_published"]]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert outcomes[won[0]]["published"] == 13
    assert outcomes[lost[0]]["published"] == 0 and outcomes[lost[0]]["claimed_by"] in (won[0], None)


def test_two_email_tasks_started_together_send_one_email(local_cloud, bucket):
    before = len(local_cloud.emails())
    report = a_report([row("claims")], report_id="rep-mail-race")
    outcomes = _two_at_once(lambda: EmailReportOperator(task_id="e", to="a@example.test", report=report, marker_bucket=bucket))
    assert all("error" not in o for o in outcomes.values()), outcomes
    assert sorted(o["already_sent"] for o in outcomes.values()) == [False, True], outcomes
    mails = [m for m in local_cloud.emails()[before:] if m["X-Audit-Report-Id"] == "rep-mail-race"]
    assert len(mails) == 1


def test_a_claim_left_by_a_crashed_publisher_holds_until_it_expires_and_its_own_retry_resumes(aws, unique, bucket):
    from datetime import UTC, datetime, timedelta

    topic, url = subscribed_queue(aws, unique)
    s3 = aws("s3")
    op = SnsReportPublishOperator(task_id="p", topic_arn=topic, report=a_report([row("a")]), marker_bucket=bucket)
    claim = op.marker_key(a_report([row("a")])).removesuffix(".json") + ".claim.json"

    def crashed(run_id, claimed_ago):
        at = datetime.now(UTC) - claimed_ago
        body = {"run_id": run_id, "claimed_at": at.isoformat(), "expires_at": (at + timedelta(hours=1)).isoformat()}
        s3.put_object(Bucket=bucket, Key=claim, Body=json.dumps(body).encode())

    crashed("scheduled__crashed", timedelta(minutes=5))
    other = op.execute({"run_id": "manual__other"})
    assert other["already_published"] is True and other["claimed_by"] == "scheduled__crashed"
    assert received(aws("sqs"), url) == []
    retry = op.execute({"run_id": "scheduled__crashed"})  # the crashed run's own retry resumes it
    assert retry["already_published"] is False and retry["published"] == 2

    topic2, url2 = subscribed_queue(aws, unique)
    op2 = SnsReportPublishOperator(task_id="p", topic_arn=topic2, report=a_report([row("b")], report_id="rep-2"), marker_bucket=bucket)
    claim = op2.marker_key(a_report([row("b")], report_id="rep-2")).removesuffix(".json") + ".claim.json"
    crashed("scheduled__gone", timedelta(hours=2))  # expired: taken over once
    taken = op2.execute({"run_id": "manual__after"})
    assert taken["already_published"] is False and len(received(aws("sqs"), url2)) == 2
    assert json.loads(s3.get_object(Bucket=bucket, Key=claim)["Body"].read())["run_id"] == "manual__after"


@pytest.mark.parametrize(("field", "kwargs"), [
    ("to", {"to": "ops@example.test\r\nBcc: evil@example.org"}),
    ("to", {"to": ["ops@example.test", "x@example.test\nSubject: forged"]}),
    ("subject", {"subject": "Weekly report\r\nBcc: evil@example.org"}),
    ("subject", {"subject": "Weekly report\nX-Injected: 1"}),
    ("subject", {"subject": "Weekly report\u2028X-Injected: 1"}),
])  # fmt: skip
def test_a_header_injection_in_recipients_or_subject_is_refused_before_the_delivery_is_claimed(local_cloud, aws, bucket, field, kwargs):
    """A newline in a header value would start another header (RFC 5322 section 2.2: a header
    field is one line, folding aside). Before: the operator took the delivery's claim in S3 first,
    then Python's email package raised a bare ValueError while building the message: no field
    named, and the claim held the edition for an hour (CLAIM_EXPIRY) against a corrected run."""
    before = len(local_cloud.emails())
    report = a_report([row("claims")], report_id="rep-inject")
    kwargs = {"to": "ops@example.test", **kwargs}
    with pytest.raises(ConfigurationError) as exc:
        EmailReportOperator(task_id="e", report=report, marker_bucket=bucket, **kwargs).execute({})
    assert exc.value.field == field
    assert "evil@example.org" not in str(exc.value) and "forged" not in str(exc.value) and "X-Injected" not in str(exc.value)
    assert aws("s3").list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # no claim, no marker
    assert local_cloud.emails()[before:] == []


def test_a_report_title_with_a_newline_still_gives_a_one_line_subject(local_cloud, bucket):
    """The default subject is the report's title and interval: a title with a line break (a
    multi-line Jinja or YAML value) is sent on one line, not refused after the claim."""
    before = len(local_cloud.emails())
    report = {**a_report([row("claims")], report_id="rep-title-nl"), "title": "Weekly audit\r\nreport\n"}
    assert EmailReportOperator(task_id="e", to="ops@example.test", report=report, marker_bucket=bucket).execute({})["sent"] is True
    [mail] = [m for m in local_cloud.emails()[before:] if m["X-Audit-Report-Id"] == "rep-title-nl"]
    assert str(mail["Subject"]) == "[NOT RECONCILED] Weekly audit report: 2026-11-16 to 2026-11-23"


def test_each_edition_keeps_its_own_offloaded_messages(aws, unique, bucket):
    """A provisional edition, then the final one once a rerun reconciles: both are published, a
    part above the SNS limit (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html: 262,144
    bytes) as a pointer to S3. Before: both editions wrote that part to the same key
    (``message-<part>.json``), so the provisional pointer a subscriber had not read yet (or read
    again from a replay) fetched the final edition's body."""
    topic, url = subscribed_queue(aws, unique)
    provisional = a_report([row("huge", "p" * 300_000)], report_id="rep-editions")
    final = {**a_report([row("huge", "f" * 300_000)], report_id="rep-editions"),
             "status": fmt.reconcile_status({"status": fmt.RECONCILED, "compared": 1})}  # fmt: skip
    for report in (provisional, final):
        result = SnsReportPublishOperator(task_id="p", topic_arn=topic, report=report, marker_bucket=bucket).execute({})
        assert result["published"] == 2 and result["offloaded"] == 1
    pointers = [json.loads(m["Body"])[1] for m in received(aws("sqs"), url) if m["Body"].startswith("[")]
    assert len(pointers) == 2
    stored = [json.loads(aws("s3").get_object(Bucket=p["s3BucketName"], Key=p["s3Key"])["Body"].read()) for p in pointers]
    assert sorted((s["edition"], s["row"]["NOTE"][0]) for s in stored) == [("final", "f"), ("provisional", "p")]


def test_every_recipient_given_receives_the_report_or_the_list_is_refused(local_cloud, aws, bucket):
    """An SMTP client sends to the addresses it parses from ``To`` (Python's ``send_message``;
    RFC 5322 section 3.4: an address list is separated by commas). Before: ``"ops@example.test;
    dev@example.test"`` (the separator some mail clients show) and ``"ops@example.test
    dev@example.test"`` passed the operator's check (each entry holds an "@"), parsed as one address,
    and dev@example.test silently got nothing while the task reported the email sent."""
    before = len(local_cloud.emails())
    report = a_report([row("claims")], report_id="rep-recipients")
    op = EmailReportOperator(task_id="e", to="ops@example.test; dev@example.test", report=report, marker_bucket=bucket)
    assert op.execute({})["recipients"] == 2
    [mail] = [m for m in local_cloud.emails()[before:] if m["X-Audit-Report-Id"] == "rep-recipients"]
    assert sorted(a.strip() for a in str(mail["X-Envelope-To"]).split(",")) == ["dev@example.test", "ops@example.test"]
    for to in ("ops@example.test dev@example.test", ["ops@example.test <dev@example.test>"], ["ops@@example.test"]):
        with pytest.raises(ConfigurationError) as exc:
            EmailReportOperator(task_id="e", to=to, report=a_report([row("claims")], report_id="rep-recipients-2"),
                                marker_bucket=bucket).execute({})  # fmt: skip
        assert exc.value.field == "to"
    assert not [k for k in (aws("s3").list_objects_v2(Bucket=bucket).get("Contents") or []) if "rep-recipients-2" in k["Key"]]


def test_a_repeat_of_a_transaction_first_archived_the_week_before_is_not_an_object_missing_from_s3(audit_env, aws):
    """A producer retry that straddles the week boundary: the first copy (Sunday 23:59:59) is
    archived under last week's time folders, its repeat (Monday, another message id) is a
    ``duplicate`` with no object of its own — its row's S3_URI is the first copy's. Reconciling the
    repeat's week must neither call that object "no longer in the archive" nor fail as having
    compared nothing while Snowflake has a row: the object is there, in the week it was filed in."""
    import hashlib

    from airflow_reliable_messaging.domain.manifest import ArchivedRecord, encode_manifest, isoformat

    s3 = aws("s3")
    body = b'{"claim": 1}'
    first_at = WEEK[0] - timedelta(seconds=1)
    key = layout.archive_key(audit_env.prefix, first_at, "first-copy")
    s3.put_object(Bucket=audit_env.bucket, Key=key, Body=body)
    common = {"bucket": audit_env.bucket, "key": key, "size": len(body), "sha256": hashlib.sha256(body).hexdigest(),
              "content_type": "application/json", "source_system": "claims", "source_transaction_id": "tx-1"}  # fmt: skip
    first = ArchivedRecord(message_id="first-copy", event_time=isoformat(first_at), archived_at=isoformat(first_at),
                           transaction_status="first", **common)  # fmt: skip
    repeat = ArchivedRecord(message_id="repeat", event_time=isoformat(WEEK[0] + timedelta(seconds=5)),
                            archived_at=isoformat(WEEK[0] + timedelta(seconds=6)), transaction_status="duplicate",
                            repeat_of="first-copy", **common)  # fmt: skip
    manifest = layout.batch_manifest_key(audit_env.prefix, WEEK[0] + timedelta(minutes=1), "straddle")
    s3.put_object(Bucket=audit_env.bucket, Key=manifest, Body=encode_manifest([first, repeat], f"s3://{audit_env.bucket}/{manifest}"))

    load = _load(audit_env)
    assert load["records"]["seen"] == 2 and load["records"]["in_interval"] == 1

    result = _reconcile(audit_env, load)
    assert not any("no longer in the archive" in w for w in result["warnings"]), result["warnings"]
    assert result["not_in_s3"] == 0 and result["status"] == "reconciled"
    assert (result["compared"], result["matched"]) == (1, 1)  # the repeat's row against its first copy's object

    aws("s3").delete_object(Bucket=audit_env.bucket, Key=key)  # now it is gone: that is still found
    with pytest.raises(LoadError, match="compared nothing"):
        _reconcile(audit_env, load)
