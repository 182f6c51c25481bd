"""Deliver the weekly report once per edition: SnsReportPublishOperator and EmailReportOperator.

A marker in S3 per report (DAG + data interval) and edition — provisional while the week does not
reconcile, then final — claimed before sending, keeps reruns and re-triggers from sending twice."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging.base_aws import AwsBaseOperator, aws_template_fields
from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain.claim_check import MESSAGE_SIZE_LIMIT, S3Pointer, size_attribute
from airflow_reliable_messaging.domain.identifiers import blank_to_none, is_fifo_name, topic_arn
from airflow_reliable_messaging.domain.manifest import isoformat
from airflow_reliable_messaging.exceptions import ConfigurationError, LoadError
from airflow_reliable_messaging.links.aws import SnsTopicLink
from airflow_reliable_messaging.operators._delivery_claim import claim_delivery
from airflow_reliable_messaging.operators.report_base import report_folder

if TYPE_CHECKING:
    from airflow_reliable_messaging._compat import Context


class _MarkedDelivery(AwsBaseOperator):
    """Shared by publish and email: a marker object per report (DAG + data interval) and edition
    keeps reruns and re-triggers of the same week from sending twice; ``force`` sends anyway. A
    report that does not reconcile goes out as the ``provisional`` edition; once a rerun reconciles,
    the ``final`` one goes out too (once).

    :param report: the ``AuditReportOperator``'s XCom (templated).
    :param marker_bucket: bucket of the once-only delivery markers (templated).
    :param marker_prefix: key prefix of the markers (templated).
    :param force: deliver even when the marker says it was delivered.
    """

    marker_name = "delivered"

    def __init__(
        self,
        *,
        report: Any,
        marker_bucket: str,
        marker_prefix: str = "",
        force: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.report = report
        self.marker_bucket = marker_bucket
        self.marker_prefix = marker_prefix
        self.force = force

    def marker_key(self, report: dict[str, Any]) -> str:
        from airflow_reliable_messaging.domain.report import FINAL, edition

        prefix = layout.normalize_prefix(self.marker_prefix, "marker_prefix")
        name = self.marker_name if edition(report) == FINAL else f"{self.marker_name}-{edition(report)}"
        return f"{report_folder(prefix, report.get('dag_id') or 'audit_report', report['report_id'])}/{name}.json"

    def report_dict(self) -> dict[str, Any]:
        report = self.report
        if isinstance(report, str):
            try:
                report = json.loads(report)
            except ValueError:
                report = None
        if not isinstance(report, dict) or not {"rows", "totals", "report_id"} <= set(report):
            raise ConfigurationError("report", "expects the AuditReportOperator's XCom (a dict with rows and totals)")
        for name in ("report_id", "dag_id"):  # they name the marker's key: one segment each, nothing else
            try:
                layout.validate_message_id(report.get(name) or "audit_report")
            except ValueError:
                raise ConfigurationError("report", f"its {name} {layout.printable(report.get(name))} is not a key segment") from None
        return report


class SnsReportPublishOperator(_MarkedDelivery):
    """Publish the report to an SNS topic as JSON: a summary and one message per source system,
    with PublishBatch (10 per call). A message above the SNS limit goes to S3 and is sent as an
    extended-client pointer. FIFO topics get deterministic deduplication ids.

    :param topic_arn: the SNS topic to publish to (templated).
    """

    template_fields: Sequence[str] = aws_template_fields(
        "topic_arn", "report", "marker_bucket", "marker_prefix", "data_protection_policy",
    )  # fmt: skip
    marker_name = "sns-published"
    operator_extra_links = (SnsTopicLink(),)

    def __init__(
        self,
        *,
        topic_arn: str,
        kms_key_id: str | None = None,
        data_protection_policy: dict | str | None = None,
        apply_policy_to_topic: bool = False,
        **kwargs: Any,
    ) -> None:
        """:param data_protection_policy: an SNS data protection policy (JSON shape) applied to every
            message before it is published (see ``domain/masking.py``).
        :param apply_policy_to_topic: also set it on the topic (``PutDataProtectionPolicy``)."""
        super().__init__(**kwargs)
        self.topic_arn = topic_arn
        self.kms_key_id = kms_key_id
        self.data_protection_policy = data_protection_policy
        self.apply_policy_to_topic = apply_policy_to_topic

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_reliable_messaging.domain import report as fmt
        from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook
        from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

        arn = topic_arn(self.topic_arn, "topic_arn")
        SnsTopicLink.persist(context, self, region_name=arn.region, aws_partition=arn.partition, topic_arn=self.topic_arn)
        report = self.report_dict()
        policy = _policy(self.data_protection_policy)
        s3 = self.aws_hook(S3ArchiveHook)
        marker = self.marker_key(report)
        if (taken := claim_delivery(self, s3, report, context)) is not None:
            return {"published": 0, "already_published": True, "topic_arn": self.topic_arn, **taken}
        fifo = is_fifo_name(self.topic_arn)
        entries, offloaded = [], 0
        if policy is not None and self.apply_policy_to_topic:
            self.aws_hook(SnsMessagingHook).put_data_protection_policy(self.topic_arn, policy.document)
        for message in fmt.report_messages(report):
            body = fmt.dumps(message if policy is None else policy.apply_json(fmt.json_safe(message)))  # masked as JSON
            attrs = {"report_id": {"DataType": "String", "StringValue": report["report_id"]}}
            if len(body.encode()) > MESSAGE_SIZE_LIMIT - 4096:
                key = marker.rsplit("/", 1)[0] + f"/message-{message['part']}.json"
                s3.put_bytes(
                    self.marker_bucket, key, body.encode(), content_type="application/json", kms_key_id=blank_to_none(self.kms_key_id)
                )
                attrs.update(size_attribute(len(body.encode())))
                body, offloaded = S3Pointer(self.marker_bucket, key).to_body(), offloaded + 1
            entry = {"Id": str(message["part"]), "Message": body, "MessageAttributes": attrs}
            if fifo:
                entry["MessageGroupId"] = f"report-{report['report_id']}"
                final = message["edition"] == fmt.FINAL  # a provisional edition is another message
                entry["MessageDeduplicationId"] = f"{report['report_id']}-{'' if final else message['edition'] + '-'}{message['part']}"
            entries.append(entry)
        result = self.aws_hook(SnsMessagingHook).publish_batch(self.topic_arn, entries)
        if result.failed:
            reasons = {e.get("Code", "?") for e in result.failed.values()}
            raise LoadError(
                f"{len(result.failed)} of {len(entries)} report message(s) were not published ({', '.join(sorted(reasons))}); rerun to retry"
            )
        s3.put_bytes(
            self.marker_bucket,
            marker,
            fmt.dumps({"published_at": isoformat(datetime.now(UTC)), "messages": len(entries)}).encode(),
            content_type="application/json",
            kms_key_id=blank_to_none(self.kms_key_id),
        )
        self.log.info(
            "Published report %s to %s: %d message(s) in %d request(s), %d offloaded to S3",
            report["report_id"],
            self.topic_arn,
            len(entries),
            result.requests,
            offloaded,
        )
        return {
            "published": len(entries),
            "requests": result.requests,
            "offloaded": offloaded,
            "topic_arn": self.topic_arn,
            "already_published": False,
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the report (its S3 copy, if it was offloaded) in; the SNS topic out."""
        from airflow_reliable_messaging import lineage

        result, inputs = lineage.result_of(self, task_instance), []
        try:
            uri = self.report_dict().get("full_report_uri")
        except ConfigurationError:
            uri = None
        if uri:
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            inputs.append(lineage.s3(bucket, key))
        topic = lineage.with_statistics(lineage.sns(self.topic_arn), result.get("published"))
        return lineage.operator_lineage(inputs=inputs, outputs=[topic])


class EmailReportOperator(_MarkedDelivery):
    """Email the report through the SMTP connection: HTML (the status line first, producers with
    their week-over-week change, silent and new ones, a chart of daily volume as an inline PNG
    attachment, failures by reason with links) and a plain-text part with the same facts. No
    external image, style or script. A provisional edition's subject starts with ``[NOT RECONCILED]``.

    :param to: recipient address or addresses (templated).
    :param subject: the subject; default: the report's title and interval (templated).
    """

    template_fields: Sequence[str] = aws_template_fields(
        "to", "subject", "report", "marker_bucket", "marker_prefix", "smtp_conn_id", "data_protection_policy",
    )  # fmt: skip
    marker_name = "emailed"

    def __init__(
        self,
        *,
        to: str | list[str],
        subject: str | None = None,
        smtp_conn_id: str = "smtp_default",
        data_protection_policy: dict | str | None = None,
        **kwargs: Any,
    ) -> None:
        """:param data_protection_policy: an SNS data protection policy (JSON shape; give it the
        one the SNS publisher has) applied to the report before it is rendered — so to the
        chart and the image's alt text too — and again to the subject and both bodies (see
        ``domain/masking.py``)."""
        super().__init__(**kwargs)
        self.to = to
        self.subject = subject
        self.smtp_conn_id = smtp_conn_id
        self.data_protection_policy = data_protection_policy

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_reliable_messaging.domain import report as fmt
        from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook
        from airflow_reliable_messaging.hooks.smtp import ReportSmtpHook

        recipients = [a.strip() for a in (self.to.split(",") if isinstance(self.to, str) else self.to) if a.strip()]
        if not recipients or any("@" not in a for a in recipients):
            raise ConfigurationError("to", f"{self.to!r} is not a list of email addresses")
        report = self.report_dict()
        policy = _policy(self.data_protection_policy)
        mask = (lambda text: text) if policy is None else policy.apply
        mask_html = (lambda html: html) if policy is None else policy.apply_html  # text and attribute values, never tags
        s3 = self.aws_hook(S3ArchiveHook)
        marker = self.marker_key(report)
        if (taken := claim_delivery(self, s3, report, context)) is not None:
            return {"sent": False, "already_sent": True, **taken}
        shown = report if policy is None else policy.apply_json(fmt.json_safe(report))  # everything rendered is masked
        body = fmt.render_email(shown, cid=f"daily-volume.{report['report_id']}@audit-report")
        subject = self.subject or f"{report['title']}: {report['interval']['start'][:10]} to {report['interval']['end'][:10]}"
        if fmt.edition(report) != fmt.FINAL and not self.subject:
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
            html.add_related(
                image.data, maintype="image", subtype="png", cid=f"<{image.cid}>", filename=image.filename, disposition="inline"
            )
        with ReportSmtpHook(smtp_conn_id=self.smtp_conn_id) as smtp:
            smtp.send_message(message)  # type: ignore[attr-defined]  # SmtpHook.__enter__ is typed as returning SmtpHook
        s3.put_bytes(
            self.marker_bucket,
            marker,
            fmt.dumps({"sent_at": isoformat(datetime.now(UTC)), "to": len(recipients)}).encode(),
            content_type="application/json",
        )
        self.log.info("Emailed report %s (%s edition) to %d recipient(s)", report["report_id"], fmt.edition(report), len(recipients))
        return {"sent": True, "recipients": len(recipients), "already_sent": False, "edition": fmt.edition(report),
                "images": len(body.images)}  # fmt: skip


def _policy(policy: dict | str | None):
    """The parsed data protection policy (validated before any I/O), or None."""
    if policy in (None, "", "None", {}):
        return None
    from airflow_reliable_messaging.domain.masking import DataProtectionPolicy

    return DataProtectionPolicy.parse(policy, "data_protection_policy")
