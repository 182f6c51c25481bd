"""Deliver the weekly report once per edition: SnsReportPublishOperator and EmailReportOperator.

A marker in S3 per report (DAG + data interval) and edition — provisional while the week does not
reconcile, then final — claimed before sending, keeps reruns and re-triggers from sending twice."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging.base_aws import AwsBaseOperator, aws_template_fields
from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain.identifiers import optional_kms_key, topic_arn
from airflow_reliable_messaging.exceptions import ConfigurationError
from airflow_reliable_messaging.links.aws import SnsTopicLink
from airflow_reliable_messaging.operators.report_base import report_folder

if TYPE_CHECKING:
    from airflow_reliable_messaging._compat import Context
    from airflow_reliable_messaging.domain.masking import DataProtectionPolicy
    from airflow_reliable_messaging.runs.report_delivery import DeliverySettings

# The run (runs.report_delivery: the claim, the publish, the email) is imported by execute(): DAG
# files that only declare the operators do not pay for it at parse time.


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

    def delivery(self, report: dict[str, Any], context: Context, kms_key_id: str | None = None) -> DeliverySettings:
        """This edition's delivery: its marker, the DAG run delivering it."""
        from airflow_reliable_messaging.runs.report_delivery import DeliverySettings

        run_id = str((context.get("run_id") if hasattr(context, "get") else None) or "unknown run")
        return DeliverySettings(self.marker_bucket, self.marker_key(report), run_id, self.force, kms_key_id)


class SnsReportPublishOperator(_MarkedDelivery):
    """Publish the report to an SNS topic as JSON: a summary and one message per source system,
    with PublishBatch (10 per call). A message above the SNS limit goes to S3 and is sent as an
    extended-client pointer. FIFO topics get deterministic deduplication ids.

    :param topic_arn: the SNS topic to publish to (templated).
    """

    template_fields: Sequence[str] = aws_template_fields(
        "topic_arn", "report", "marker_bucket", "marker_prefix", "kms_key_id", "data_protection_policy",
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
        from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook
        from airflow_reliable_messaging.hooks.sns import SnsMessagingHook
        from airflow_reliable_messaging.runs.report_delivery import PublishSettings, publish_report

        arn = topic_arn(self.topic_arn, "topic_arn")
        SnsTopicLink.persist(context, self, region_name=arn.region, aws_partition=arn.partition, topic_arn=self.topic_arn)
        report = self.report_dict()
        policy = _policy(self.data_protection_policy)
        settings = PublishSettings(
            delivery=self.delivery(report, context, optional_kms_key(self.kms_key_id)),
            topic_arn=self.topic_arn,
            policy=policy,
            apply_policy_to_topic=self.apply_policy_to_topic,
        )
        return publish_report(settings, report, self.aws_hook(S3ArchiveHook), self.aws_hook(SnsMessagingHook), self.log)

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

    :param to: recipient address or addresses (a list, or one string separated by commas or
        semicolons; each entry exactly one address) (templated); an address with a line break or
        another control character is refused before anything is claimed or sent (header injection).
    :param subject: the subject; default: the report's title (on one line) and interval
        (templated). A subject with a line break or another control character is refused before
        anything is claimed or sent.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "to", "subject", "report", "marker_bucket", "marker_prefix", "smtp_conn_id", "kms_key_id", "data_protection_policy",
    )  # fmt: skip
    marker_name = "emailed"

    def __init__(
        self,
        *,
        to: str | list[str],
        subject: str | None = None,
        smtp_conn_id: str = "smtp_default",
        kms_key_id: str | None = None,
        data_protection_policy: dict | str | None = None,
        **kwargs: Any,
    ) -> None:
        """:param kms_key_id: SSE-KMS key of the delivery claim and marker in ``marker_bucket``
            (default: the bucket's default encryption), as the SNS publisher's.
        :param data_protection_policy: an SNS data protection policy (JSON shape; give it the
            one the SNS publisher has) applied to the report before it is rendered — so to the
            chart and the image's alt text too — and again to the subject and both bodies (see
            ``domain/masking.py``)."""
        super().__init__(**kwargs)
        self.to = to
        self.subject = subject
        self.smtp_conn_id = smtp_conn_id
        self.kms_key_id = kms_key_id
        self.data_protection_policy = data_protection_policy

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook
        from airflow_reliable_messaging.hooks.smtp import ReportSmtpHook
        from airflow_reliable_messaging.runs.report_delivery import EmailSettings, email_report

        # commas or semicolons (as some mail clients write lists) between the addresses of a string
        recipients = [a.strip() for a in (re.split("[,;]", self.to) if isinstance(self.to, str) else self.to) if a.strip()]
        # a line break in a header value starts another header (Bcc:, Subject:...): refused before
        # any I/O, the value not echoed
        if any(_CONTROL.search(a) for a in recipients):
            raise ConfigurationError("to", "an address holds a line break or another control character")
        if not recipients or any("@" not in a for a in recipients):
            raise ConfigurationError("to", f"{self.to!r} is not a list of email addresses")
        for address in recipients:  # SMTP sends to what parses out of To: each entry exactly one address
            if not _one_address(address):
                raise ConfigurationError("to", f"{address!r} is not one email address (separate addresses with commas)")
        if self.subject is not None and _CONTROL.search(str(self.subject)):
            raise ConfigurationError("subject", "holds a line break or another control character (a header is one line)")
        report = self.report_dict()
        policy = _policy(self.data_protection_policy)
        delivery = self.delivery(report, context, optional_kms_key(self.kms_key_id))
        settings = EmailSettings(delivery=delivery, recipients=tuple(recipients), subject=self.subject, policy=policy)
        smtp = ReportSmtpHook(smtp_conn_id=self.smtp_conn_id)
        return email_report(settings, report, self.aws_hook(S3ArchiveHook), smtp, self.log)


_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")  # control characters, every line break str.splitlines knows


def _one_address(text: str) -> bool:
    """``text`` parses as exactly one address (``a@example.com``, ``Name <a@example.com>``), as
    the email package parses the ``To`` header the SMTP client takes the recipients from."""
    from email.errors import NonASCIILocalPartDefect
    from email.policy import default

    header = default.header_factory("To", text)
    defects = [d for d in header.defects if not isinstance(d, NonASCIILocalPartDefect)]
    return not defects and len(header.addresses) == 1 and "@" in header.addresses[0].addr_spec


def _policy(policy: dict | str | None) -> DataProtectionPolicy | None:
    """The parsed data protection policy (validated before any I/O), or None."""
    if policy in (None, "", "None", {}):
        return None
    from airflow_reliable_messaging.domain.masking import DataProtectionPolicy

    return DataProtectionPolicy.parse(policy, "data_protection_policy")
