"""The manual replay DAG's own steps: validate the form, route by source, report the outcome."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging._compat import BaseBranchOperator, BaseOperator, Variable
from airflow_reliable_messaging.base_aws import AwsBaseOperator

if TYPE_CHECKING:
    from airflow_reliable_messaging._compat import Context

ARCHIVE_BUCKET_VARIABLE = "audit_archive_bucket"
ARCHIVE_PREFIX_VARIABLE = "audit_archive_prefix"
DEFAULT_ARCHIVE_PREFIX = "audit"  # the audit_archive DAG's, when neither its form nor the Variable gives one


class ReplayRequestOperator(AwsBaseOperator):
    """Validate the run's Params and push the normalised request to XCom.

    Fails with a ``ConfigurationError`` naming the Param at fault: first every check that needs no
    AWS call (formats, the window, at most 365 days back for an SNS archive); then, for an SNS
    archive replay, one read of the topic (``GetTopicAttributes``): FIFO, an archive policy, and a
    window starting at or after its ``BeginningArchiveTime`` — an older window is refused naming
    ``start``, pointing to the S3 archive source. Nothing is changed anywhere. An empty
    ``archive_bucket`` / ``archive_prefix`` falls back to the Variables ``audit_archive_bucket`` /
    ``audit_archive_prefix`` (read here, at run time), and an unset Variable to ``audit``: where the
    ``audit_archive`` DAG writes with the same settings.

    The topic is read with the AWS parameters of :class:`~airflow_reliable_messaging.base_aws.AwsBaseOperator`.
    """

    ui_color = "#e0e0e0"

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_reliable_messaging.domain import replay as rp

        params = dict(context["params"])
        if params.get("source") == "s3_archive":
            if not params.get("archive_bucket"):
                params["archive_bucket"] = Variable.get(ARCHIVE_BUCKET_VARIABLE, None)
            if not params.get("archive_prefix"):
                params["archive_prefix"] = Variable.get(ARCHIVE_PREFIX_VARIABLE, DEFAULT_ARCHIVE_PREFIX)
        request = rp.validate_request(params, datetime.now(UTC))
        if request["source"] == "sns_archive":
            from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

            attributes = self.aws_hook(SnsMessagingHook).topic_attributes(request["topic_arn"])
            _, beginning = rp.archive_of(attributes, request["topic_arn"])
            rp.check_within_archive(rp.Window(rp.parse_instant(request["start"], "start")), beginning)
        self.log.info("Replay request: %s", request)
        return request


class ReplaySourceBranchOperator(BaseBranchOperator):
    """Choose the path of the request's source: native SNS replay (or its dry run) or S3 archive.

    :param request_task_id / sns_task_id / sns_plan_task_id / s3_task_id: task ids of the request
        validation and of the three paths in the DAG.
    """

    def __init__(self, *, request_task_id: str = "validate", sns_task_id: str = "sns_replay",
                 sns_plan_task_id: str = "sns_plan", s3_task_id: str = "s3_replay", **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.request_task_id = request_task_id
        self.sns_task_id, self.sns_plan_task_id, self.s3_task_id = sns_task_id, sns_plan_task_id, s3_task_id

    def choose_branch(self, context: Context) -> str:
        request = context["ti"].xcom_pull(task_ids=self.request_task_id)
        if request["source"] == "s3_archive":
            return self.s3_task_id
        return self.sns_plan_task_id if request["dry_run"] else self.sns_task_id


class ReplayReportOperator(BaseOperator):
    """The run's report: what was replayed (count, window, target), logged and returned to XCom.

    :param request_task_id / sns_task_id / wait_task_id / sns_plan_task_id / s3_task_id: task ids
        whose XComs the report reads (validation, SNS replay, its wait, SNS dry run, S3 replay).
    """

    ui_color = "#c4e0f5"

    def __init__(self, *, request_task_id: str = "validate", sns_task_id: str = "sns_replay",
                 wait_task_id: str = "sns_wait", sns_plan_task_id: str = "sns_plan", s3_task_id: str = "s3_replay",
                 **kwargs: Any) -> None:  # fmt: skip
        kwargs.setdefault("trigger_rule", "none_failed_min_one_success")
        super().__init__(**kwargs)
        self.request_task_id = request_task_id
        self.sns_task_id, self.wait_task_id = sns_task_id, wait_task_id
        self.sns_plan_task_id, self.s3_task_id = sns_plan_task_id, s3_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        request = ti.xcom_pull(task_ids=self.request_task_id) or {}
        report: dict[str, Any] = {"source": request.get("source"), "window": request.get("window"),
                                  "dry_run": bool(request.get("dry_run"))}  # fmt: skip
        if request.get("source") == "s3_archive":
            result = ti.xcom_pull(task_ids=self.s3_task_id) or {}
            report.update(
                target=result.get("target"), replay_id=result.get("replay_id"), selected=result.get("selected"),
                count=result.get("would_send") if report["dry_run"] else result.get("sent_this_run"),
                total_sent=result.get("sent"), pointers=result.get("pointers"), filters=result.get("filters"),
                checkpoint=result.get("checkpoint"),
            )  # fmt: skip
        else:
            started = ti.xcom_pull(task_ids=self.sns_plan_task_id if report["dry_run"] else self.sns_task_id) or {}
            waited = ti.xcom_pull(task_ids=self.wait_task_id) or {}
            report.update(
                target=started.get("subscription_arn") or started.get("queue_arn"), topic_arn=started.get("topic_arn"),
                queue_arn=started.get("queue_arn"), replay_policy=started.get("replay_policy"),
                replay_status=waited.get("replay_status"), paused=waited.get("paused"),
                resumed_with=waited.get("resumed_with"),
                # SNS does not count through its API: CloudWatch NumberOfReplayedNotificationsDelivered does
                count=None,
            )  # fmt: skip
        verb = "would replay" if report["dry_run"] else "replayed"
        count = "an SNS-counted number of" if report.get("count") is None else report["count"]
        self.log.info("Replay report: %s %s messages of %s..%s to %s | %s", verb, count,
                      (report["window"] or {}).get("start"), (report["window"] or {}).get("end"),
                      report.get("target"), report)  # fmt: skip
        return report
