"""De-identification wired into report delivery: SNS publish and email apply a data protection
policy; the publish operator can also set it on the topic (PutDataProtectionPolicy)."""

from __future__ import annotations

import json

import pytest

from airflow_reliable_messaging.domain import report as fmt
from airflow_reliable_messaging.exceptions import ConfigurationError
from airflow_reliable_messaging.operators.audit_report import EmailReportOperator, SnsReportPublishOperator

pytestmark = pytest.mark.localcloud

CARD, EMAIL, EMPLOYEE = "4539894458086459", "jane.doe@example.com", "EID-123456789-US"
POLICY = {
    "Name": "report-protection",
    "Version": "2021-06-01",
    "Configuration": {"CustomDataIdentifier": [{"Name": "EmployeeId", "Regex": r"EID-\d{9}-US"}]},
    "Statement": [
        {"DataIdentifier": ["arn:aws:dataprotection::aws:data-identifier/CreditCardNumber", "EmployeeId"],
         "DataDirection": "Inbound", "Operation": {"Deidentify": {"MaskConfig": {"MaskWithCharacter": "#"}}}},
        {"DataIdentifier": ["arn:aws:dataprotection::aws:data-identifier/EmailAddress"],
         "DataDirection": "Inbound", "Operation": {"Deidentify": {"RedactConfig": {}}}},
    ],
}  # fmt: skip


def _report(report_id: str) -> dict:
    rows = [{"SOURCE_SYSTEM": "claims", "RECORDS": 2, "TOTAL_BYTES": 10, "FAILED": 1,
             "NOTE": f"card {CARD} approved by {EMPLOYEE}, contact {EMAIL}"}]  # fmt: skip
    return {"title": "Weekly audit archive report", "dag_id": "weekly_audit_load", "report_id": report_id,
            "interval": {"start": "2026-11-16T00:00:00.000000Z", "end": "2026-11-23T00:00:00.000000Z"},
            "totals": fmt.totals(rows), "rows": rows, "load": None}  # fmt: skip


@pytest.fixture
def bucket(aws, unique):
    name = unique("reports")
    aws("s3").create_bucket(Bucket=name)
    return name


def test_sns_publish_masks_and_sets_the_topic_policy(aws, unique, bucket):
    sns, sqs = aws("sns"), aws("sqs")
    topic = sns.create_topic(Name=unique("report"))["TopicArn"]
    url = sqs.create_queue(QueueName=unique("sub"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    result = SnsReportPublishOperator(
        task_id="p", topic_arn=topic, report=_report("mask-1"), marker_bucket=bucket,
        data_protection_policy=json.dumps(POLICY), apply_policy_to_topic=True,
    ).execute({})  # fmt: skip
    assert result["published"] >= 1
    bodies = []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
        bodies += [m["Body"] for m in got]
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    text = "\n".join(bodies)
    assert bodies and CARD not in text and EMPLOYEE not in text and EMAIL not in text
    assert "#" * 16 in text  # masked, same length
    for body in bodies:
        json.loads(body)  # still valid JSON
    stored = json.loads(sns.get_data_protection_policy(ResourceArn=topic)["DataProtectionPolicy"])
    assert stored == POLICY


def test_email_masks_subject_and_both_parts(local_cloud, bucket):
    before = len(local_cloud.emails())
    report = _report("mask-2")
    report["title"] = f"Audit of card {CARD} ({EMPLOYEE})"  # rendered in both parts
    EmailReportOperator(
        task_id="e", to="ops@example.test", report=report, marker_bucket=bucket,
        subject=f"Report for {EMAIL}", data_protection_policy=POLICY,
    ).execute({})  # fmt: skip
    [mail] = local_cloud.emails()[before:]
    parts = [p.get_content() for p in mail.walk() if not p.is_multipart()]
    assert len(parts) == 2
    for content in [*parts, str(mail["Subject"])]:
        assert CARD not in content and EMPLOYEE not in content and EMAIL not in content
    assert all("#" * 16 in p for p in parts)


def test_a_bad_policy_is_refused_before_anything_is_sent(bucket, faults):
    faults.set([{"fault": "5xx", "status": 500}])
    with pytest.raises(ConfigurationError) as exc:
        SnsReportPublishOperator(
            task_id="p", topic_arn="arn:aws:sns:us-east-1:123456789012:t", report=_report("mask-3"),
            marker_bucket=bucket, data_protection_policy={"Statement": [{"DataIdentifier": ["Nope"], "Operation": {"Audit": {}}}]},
        ).execute({})  # fmt: skip
    assert exc.value.field == "data_protection_policy"
    assert faults.stats()["calls"] == {}


def test_the_topic_policy_api_answers_like_sns(aws, unique):
    from botocore.exceptions import ClientError

    sns = aws("sns")
    topic = sns.create_topic(Name=unique("dp"))["TopicArn"]
    assert sns.get_data_protection_policy(ResourceArn=topic).get("DataProtectionPolicy", "") == ""
    with pytest.raises(ClientError) as exc:
        sns.put_data_protection_policy(ResourceArn=topic + "-missing", DataProtectionPolicy=json.dumps(POLICY))
    assert exc.value.response["Error"]["Code"] == "NotFound"
    with pytest.raises(ClientError) as exc:
        sns.put_data_protection_policy(ResourceArn=topic, DataProtectionPolicy="[not a policy")
    assert exc.value.response["Error"]["Code"] == "InvalidParameter"


def _received(sqs, url) -> list[str]:
    bodies = []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
        bodies += [m["Body"] for m in got]
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
    return bodies


@pytest.mark.parametrize("operation", [{"MaskConfig": {"MaskWithCharacter": "#"}}, {"RedactConfig": {}}], ids=["mask", "redact"])
def test_a_finding_that_is_a_json_number_leaves_valid_json(aws, unique, bucket, operation):
    """A report value that is a JSON number and a finding (here a Luhn-valid 16-digit byte count):
    every subscriber still receives JSON, the masked number as a string. (Before: the policy ran on
    the serialized text, so subscribers received "bytes":################ or, redacted, "bytes":, .)"""
    sns, sqs = aws("sns"), aws("sqs")
    topic = sns.create_topic(Name=unique("report"))["TopicArn"]
    url = sqs.create_queue(QueueName=unique("sub"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    report = _report("mask-number-" + next(iter(operation)))
    report["rows"][0]["TOTAL_BYTES"] = int(CARD)
    report["totals"] = fmt.totals(report["rows"])
    policy = {"Version": "2021-06-01", "Statement": [{"DataIdentifier": [
        "arn:aws:dataprotection::aws:data-identifier/CreditCardNumber"], "Operation": {"Deidentify": operation}}]}  # fmt: skip
    SnsReportPublishOperator(task_id="p", topic_arn=topic, report=report, marker_bucket=bucket,
                             data_protection_policy=policy).execute({})  # fmt: skip
    bodies = _received(sqs, url)
    assert len(bodies) == 2 and all(CARD not in b for b in bodies)
    documents = [json.loads(b) for b in bodies]  # every one is JSON
    masked = "#" * 16 if "MaskConfig" in operation else ""
    summary = next(d for d in documents if d["kind"] == "summary")
    row = next(d for d in documents if d["kind"] == "source_system")["row"]
    assert summary["totals"]["bytes"] == masked and row["TOTAL_BYTES"] == masked
    assert row["RECORDS"] == 2 and summary["totals"]["records"] == 2  # other numbers stay numbers


def test_the_email_html_stays_valid_markup(local_cloud, bucket):
    """The HTML part is masked in its text and content attributes, never its markup: a mask
    character that is markup ("<"), a custom identifier whose pattern matches tag names and CSS, and
    a finding the HTML escaping splits (an apostrophe in an email address) leave the same elements,
    attribute names and styles, and leak nothing."""
    from html.parser import HTMLParser

    class Tags(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.text = [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(("start", tag, tuple(attrs)))

        def handle_endtag(self, tag):
            self.tags.append(("end", tag))

        def handle_data(self, data):
            self.text.append(data)

    def parsed(html):
        parser = Tags()
        parser.feed(html)
        return parser

    before = len(local_cloud.emails())
    report = _report("mask-html")
    report["rows"][0]["SOURCE_SYSTEM"] = "owner o'brien@example.com, td-style EID-123456789-US"  # a rendered column
    policy = {"Version": "2021-06-01",
              "Configuration": {"CustomDataIdentifier": [{"Name": "Markup", "Regex": r"td|style|padding"},
                                                         {"Name": "EmployeeId", "Regex": r"EID-\d{9}-US"}]},
              "Statement": [{"DataIdentifier": ["arn:aws:dataprotection::aws:data-identifier/EmailAddress", "Markup", "EmployeeId"],
                             "Operation": {"Deidentify": {"MaskConfig": {"MaskWithCharacter": "<"}}}}]}  # fmt: skip
    EmailReportOperator(task_id="e", to="ops@example.test", report=report, marker_bucket=bucket,
                        data_protection_policy=policy).execute({})  # fmt: skip
    [mail] = local_cloud.emails()[before:]
    html = next(p.get_content() for p in mail.walk() if p.get_content_type() == "text/html")
    plain = fmt.render_html(report)

    def layout(tags):  # elements, nesting, attribute names, and the presentation attributes' values
        return [(t[0], t[1], tuple((k, v if k in ("style", "class") else "") for k, v in t[2])) if t[0] == "start" else t
                for t in tags]  # fmt: skip

    assert layout(parsed(html).tags) == layout(parsed(plain).tags)  # the same elements, attributes and nesting
    text = "".join(parsed(html).text)
    assert "brien@example.com" not in text and "EID-123456789-US" not in text and "o'" not in text.split("owner ")[1][:3]
    assert "<" * len("o'brien@example.com") in text  # masked, as text (escaped in the markup)


DENY_EMAIL = {"Version": "2021-06-01", "Statement": [{
    "DataIdentifier": ["arn:aws:dataprotection::aws:data-identifier/EmailAddress"], "Operation": {"Deny": {}}}]}  # fmt: skip


@pytest.mark.parametrize("operator", ["sns", "email"])
def test_a_report_the_policy_denies_is_refused_before_its_delivery_is_claimed(aws, unique, bucket, local_cloud, operator):
    """A ``Deny`` statement refuses the report (SNS: "the message is not delivered",
    https://docs.aws.amazon.com/sns/latest/dg/sns-message-data-protection-operations.html). Before:
    the delivery was claimed in S3 first, then the masking raised; a run with a corrected policy
    (another DAG run) found the claim and returned ``already_published``/``already_sent`` — a
    success — for an hour (CLAIM_EXPIRY) while nothing had been delivered."""
    from airflow_reliable_messaging.domain.masking import SensitiveDataDenied

    report = _report(f"deny-{operator}")
    if operator == "sns":
        topic = aws("sns").create_topic(Name=unique("report"))["TopicArn"]
        make = lambda policy: SnsReportPublishOperator(  # noqa: E731
            task_id="p", topic_arn=topic, report=report, marker_bucket=bucket, data_protection_policy=policy
        )
    else:
        make = lambda policy: EmailReportOperator(  # noqa: E731
            task_id="e", to="ops@example.test", report=report, marker_bucket=bucket, data_protection_policy=policy
        )
    with pytest.raises(SensitiveDataDenied) as exc:
        make(DENY_EMAIL).execute({"run_id": "scheduled__1"})
    assert EMAIL not in str(exc.value)
    assert aws("s3").list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # nothing claimed
    result = make(POLICY).execute({"run_id": "manual__2"})  # the corrected policy, another run
    assert result.get("published", 0) >= 1 or result.get("sent") is True, result


def test_a_custom_identifier_matching_the_reports_own_field_names_does_not_empty_the_email(local_cloud, bucket):
    """A custom identifier for internal codes (``[A-Z]{2,}_[A-Z]{2,}``, e.g. ``PRJ_FALCON``) also
    matches the report's column names (``SOURCE_SYSTEM``, ``TOTAL_BYTES``), which are never shown.
    Before: the report was masked keys and all before rendering, so every row lost its columns and
    the email listed producer "None" with blank sizes (a report field such as ``totals`` matched
    made rendering fail outright). The values are masked, the names the renderer reads are kept;
    what is rendered is masked again (subject, text, HTML)."""
    before = len(local_cloud.emails())
    report = _report("mask-field-names")
    report["rows"][0]["SOURCE_SYSTEM"] = "PRJ_FALCON"  # a value: masked
    report["rows"].append({"SOURCE_SYSTEM": "claims", "RECORDS": 7, "TOTAL_BYTES": 2048, "FAILED": 0})
    report["totals"] = fmt.totals(report["rows"])
    report["title"] = f"Audit for {EMAIL}"
    policy = {"Version": "2021-06-01",
              "Configuration": {"CustomDataIdentifier": [{"Name": "ProjectCode", "Regex": r"\b[A-Z]{2,}_[A-Z]{2,}\b"}]},
              "Statement": [{"DataIdentifier": ["ProjectCode", "arn:aws:dataprotection::aws:data-identifier/EmailAddress"],
                             "Operation": {"Deidentify": {"MaskConfig": {"MaskWithCharacter": "#"}}}}]}  # fmt: skip
    EmailReportOperator(task_id="e", to="ops@example.test", report=report, marker_bucket=bucket, data_protection_policy=policy).execute({})
    [mail] = [m for m in local_cloud.emails()[before:] if m["X-Audit-Report-Id"] == "mask-field-names"]
    text = mail.get_body(("plain",)).get_content()
    assert "PRJ_FALCON" not in text and EMAIL not in text and EMAIL not in str(mail["Subject"])
    assert "None" not in text
    assert any(line.split()[:2] == ["claims", "7"] and "2.0 KiB" in line for line in text.splitlines()), text
    assert any(line.startswith("#" * 10) for line in text.splitlines()), text  # the masked producer's row
