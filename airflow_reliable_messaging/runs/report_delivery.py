"""Delivering the weekly report once per edition: published to SNS or emailed (the work of
SnsReportPublishOperator and EmailReportOperator). It takes settings (built by the operator from its
validated, rendered parameters), the report (the ``AuditReportOperator``'s XCom, validated) and the
hooks; it never sees the operator.

Once, by construction: the delivery is claimed with an atomic S3 write first. Two publish (or
email) tasks for one report started together would each find no delivery marker and both deliver
(the marker is written after delivering). So before delivering, a task creates
``<marker>.claim.json`` with ``If-None-Match: *``: S3 lets exactly one of concurrent writers
create it (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html), and
only that one delivers. The others report the delivery as taken, naming the run that holds it.

Who may deliver despite an existing claim:

- a retry of the same DAG run (same ``run_id``): it is that delivery's own retry (a try that
  crashed midway may have sent part of it: SNS FIFO topics drop the repeats by deduplication id;
  standard topics and email may repeat what the crashed try had sent);
- anyone, once the claim has expired (``CLAIM_EXPIRY`` after it was taken, with no delivery marker
  written): its holder crashed and was not retried. The expired claim is replaced with
  ``If-Match`` on its ETag, so of several runs finding it expired exactly one takes it over;
- ``force=True``, which ignores markers and claims alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging.domain import delivery_claim as dc
from airflow_reliable_messaging.domain import report as fmt
from airflow_reliable_messaging.domain.claim_check import MESSAGE_SIZE_LIMIT, S3Pointer, size_attribute
from airflow_reliable_messaging.domain.identifiers import is_fifo_name
from airflow_reliable_messaging.domain.manifest import isoformat
from airflow_reliable_messaging.exceptions import LoadError

if TYPE_CHECKING:
    from airflow_reliable_messaging.domain.masking import DataProtectionPolicy
    from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook
    from airflow_reliable_messaging.hooks.smtp import ReportSmtpHook
    from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

CLAIM_EXPIRY = dc.CLAIM_EXPIRY


@dataclass(frozen=True)
class DeliverySettings:
    """One report edition's delivery: where it is marked delivered, by which DAG run."""

    marker_bucket: str
    marker_key: str  # the edition's delivery marker (its claim beside it: domain/delivery_claim.py)
    run_id: str  # the DAG run delivering it
    force: bool  # deliver even when the marker or a claim says it was (or is being) delivered
    kms_key_id: str | None = None  # SSE-KMS key of the claim, the marker (and, publishing, the offloaded messages)


@dataclass(frozen=True)
class PublishSettings:
    delivery: DeliverySettings
    topic_arn: str
    policy: DataProtectionPolicy | None  # applied to every message before it is published
    apply_policy_to_topic: bool  # also set it on the topic


@dataclass(frozen=True)
class EmailSettings:
    delivery: DeliverySettings
    recipients: tuple[str, ...]
    subject: str | None  # None: the report's title and interval
    policy: DataProtectionPolicy | None  # applied to the report before it is rendered, then to what is sent


def claim_delivery(settings: DeliverySettings, s3: S3ArchiveHook, report_id: str, log: Any) -> dict[str, Any] | None:
    """None when this run delivers the report; else why not: ``{"claimed_by": run id or None
    (delivered, claim unknown), "claimed_at": ..., "delivered": ...}``."""
    if settings.force:
        return None
    bucket, marker = settings.marker_bucket, settings.marker_key
    if s3.head_object_info(bucket, marker) is not None:
        return {"claimed_by": None, "claimed_at": None, "delivered": True}
    now = datetime.now(UTC)
    key = dc.claim_key(marker)
    mine = dc.claim_document(settings.run_id, now)
    existing = s3.put_marker_if_absent(bucket, key, mine, kms_key_id=settings.kms_key_id)
    if existing is None:
        return None
    held = dc.parse_claim(existing)
    if held.get("run_id") == settings.run_id:
        log.info("Delivery of report %s was claimed by this DAG run's earlier try: resuming it", report_id)
        return None
    if dc.claim_expires_at(held) <= now:
        info = s3.head_object_info(bucket, key)
        if info is not None and s3.replace_marker_if_unchanged(bucket, key, mine, info.etag, kms_key_id=settings.kms_key_id):
            log.warning("Took over the expired delivery claim of run %r on report %s", held.get("run_id"), report_id)
            return None
    log.info("Report %s is being (or was) delivered by run %r (claimed %s): not delivering twice.",
             report_id, held.get("run_id"), held.get("claimed_at"))  # fmt: skip
    return {"claimed_by": held.get("run_id"), "claimed_at": held.get("claimed_at"), "delivered": False}


def publish_report(settings: PublishSettings, report: dict[str, Any], s3: S3ArchiveHook, sns: SnsMessagingHook, log: Any) -> dict[str, Any]:
    """Publish the report to the topic (once per edition): a summary and one message per source
    system, with PublishBatch; a message above the SNS limit goes to S3 and is sent as a pointer."""
    d, topic, policy = settings.delivery, settings.topic_arn, settings.policy
    # masked before the claim: a report the policy denies (SensitiveDataDenied) claims nothing
    messages = fmt.report_messages(report)
    bodies = [fmt.dumps(m if policy is None else policy.apply_json(fmt.json_safe(m))) for m in messages]  # masked as JSON
    if (taken := claim_delivery(d, s3, report["report_id"], log)) is not None:
        return {"published": 0, "already_published": True, "topic_arn": topic, **taken}
    fifo = is_fifo_name(topic)
    entries, offloaded = [], 0
    if policy is not None and settings.apply_policy_to_topic:
        sns.put_data_protection_policy(topic, policy.document)
    for message, body in zip(messages, bodies, strict=True):
        attrs = {"report_id": {"DataType": "String", "StringValue": report["report_id"]}}
        if len(body.encode()) > MESSAGE_SIZE_LIMIT - 4096:
            # one key per edition: the provisional pointer must not fetch the final edition's body
            edition = "" if message["edition"] == fmt.FINAL else f"{message['edition']}-"
            key = d.marker_key.rsplit("/", 1)[0] + f"/message-{edition}{message['part']}.json"
            s3.put_bytes(d.marker_bucket, key, body.encode(), content_type="application/json", kms_key_id=d.kms_key_id)
            attrs.update(size_attribute(len(body.encode())))
            body, offloaded = S3Pointer(d.marker_bucket, key).to_body(), offloaded + 1
        entry = {"Id": str(message["part"]), "Message": body, "MessageAttributes": attrs}
        if fifo:
            entry["MessageGroupId"] = f"report-{report['report_id']}"
            final = message["edition"] == fmt.FINAL  # a provisional edition is another message
            entry["MessageDeduplicationId"] = f"{report['report_id']}-{'' if final else message['edition'] + '-'}{message['part']}"
        entries.append(entry)
    result = sns.publish_batch(topic, entries)
    if result.failed:
        reasons = {e.get("Code", "?") for e in result.failed.values()}
        raise LoadError(
            f"{len(result.failed)} of {len(entries)} report message(s) were not published ({', '.join(sorted(reasons))}); rerun to retry"
        )
    s3.put_bytes(
        d.marker_bucket,
        d.marker_key,
        fmt.dumps({"published_at": isoformat(datetime.now(UTC)), "messages": len(entries)}).encode(),
        content_type="application/json",
        kms_key_id=d.kms_key_id,
    )
    log.info(
        "Published report %s to %s: %d message(s) in %d request(s), %d offloaded to S3",
        report["report_id"],
        topic,
        len(entries),
        result.requests,
        offloaded,
    )
    return {"published": len(entries), "requests": result.requests, "offloaded": offloaded, "topic_arn": topic, "already_published": False}


def email_report(settings: EmailSettings, report: dict[str, Any], s3: S3ArchiveHook, smtp: ReportSmtpHook, log: Any) -> dict[str, Any]:
    """Email the report (once per edition): HTML with the chart inline, and plain text."""
    d, policy, recipients = settings.delivery, settings.policy, settings.recipients
    mask = (lambda text: text) if policy is None else policy.apply
    mask_html = (lambda html: html) if policy is None else policy.apply_html  # text and attribute values, never tags
    # rendered and masked before the claim: a report the policy denies (SensitiveDataDenied) claims nothing
    # every value rendered is masked; the keys are the report's field names the renderer reads
    # (never shown), and what is rendered is masked again below
    shown = report if policy is None else policy.apply_json(fmt.json_safe(report), keys=False)
    body = fmt.render_email(shown, cid=f"daily-volume.{report['report_id']}@audit-report")
    title = " ".join(str(report["title"]).split())  # one line: a line break would start another header
    subject = settings.subject or f"{title}: {report['interval']['start'][:10]} to {report['interval']['end'][:10]}"
    if fmt.edition(report) != fmt.FINAL and not settings.subject:
        subject = f"[NOT RECONCILED] {subject}"
    message = EmailMessage()
    message["To"] = ", ".join(recipients)
    message["Subject"] = mask(subject)
    message["X-Audit-Report-Id"] = report["report_id"]
    message["X-Audit-Report-Edition"] = fmt.edition(report)
    message.set_content(mask(body.text))
    message.add_alternative(mask_html(body.html), subtype="html")
    *_, html = message.iter_parts()  # the HTML alternative, last
    for image in body.images:  # multipart/related: the HTML's cid: images
        html.add_related(image.data, maintype="image", subtype="png", cid=f"<{image.cid}>", filename=image.filename, disposition="inline")
    if (taken := claim_delivery(d, s3, report["report_id"], log)) is not None:
        return {"sent": False, "already_sent": True, **taken}
    with smtp:  # SmtpHook.__enter__ logs in and returns the hook itself
        smtp.send_message(message)
    s3.put_bytes(
        d.marker_bucket,
        d.marker_key,
        fmt.dumps({"sent_at": isoformat(datetime.now(UTC)), "to": len(recipients)}).encode(),
        content_type="application/json",
        kms_key_id=d.kms_key_id,
    )
    log.info("Emailed report %s (%s edition) to %d recipient(s)", report["report_id"], fmt.edition(report), len(recipients))
    return {"sent": True, "recipients": len(recipients), "already_sent": False, "edition": fmt.edition(report),
            "images": len(body.images)}  # fmt: skip
