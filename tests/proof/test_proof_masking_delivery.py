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
