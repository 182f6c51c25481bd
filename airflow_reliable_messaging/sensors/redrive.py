"""MessageMoveTaskSensor: wait for a native DLQ redrive (SQS message-move task) to end."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging.base_aws import AwsBaseSensor, aws_template_fields, default_deferrable
from airflow_reliable_messaging.exceptions import ReliableMessagingError

if TYPE_CHECKING:
    from airflow_reliable_messaging._compat import Context


class MessageMoveTaskSensor(AwsBaseSensor):
    """Wait until the message-move task started at ``started_timestamp`` on ``source_arn`` is
    COMPLETED (fails on FAILED / CANCELLED, with SQS's ``FailureReason``).

    With no ``source_arn`` (a client-mode redrive, already done) it returns at once. Deferrable
    (``deferrable=True``): the polling runs in the triggerer. Returns the task as listed (JSON).

    :param source_arn: the DLQ's ARN (templated), e.g.
        ``"{{ (ti.xcom_pull(task_ids='redrive') or {}).get('task', {}).get('SourceArn') }}"``.
    :param started_timestamp: the task's ``StartedTimestamp`` (templated).
    :param task_handle: the task's handle, to cancel it when a user kills the wait (optional).
    :param deferrable: wait on the triggerer (default: ``[operators] default_deferrable``).
    :param aws_conn_id, region_name, verify, botocore_config: how to reach AWS (templated; as the
        Amazon provider's operators), carried by the trigger.
    """

    template_fields: Sequence[str] = aws_template_fields("source_arn", "started_timestamp", "task_handle")
    ui_color = "#f5d7c4"

    def __init__(
        self,
        *,
        source_arn: str | None,
        started_timestamp: int | str | None = None,
        task_handle: str | None = None,
        deferrable: bool | None = None,
        poke_interval: float = 5,
        timeout: float = 12 * 60 * 60,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.source_arn = source_arn
        self.started_timestamp = started_timestamp
        self.task_handle = task_handle
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self._result: dict | None = None

    def _started(self) -> int | None:
        return int(self.started_timestamp) if self.started_timestamp not in (None, "", "None") else None

    def _handle(self) -> str | None:
        return self.task_handle if self.task_handle not in (None, "", "None") else None

    def _check(self, task: dict) -> dict:
        from airflow_reliable_messaging.domain.redrive import task_summary

        summary = task_summary(task)
        if summary.get("Status") != "COMPLETED":
            raise ReliableMessagingError(
                f"message-move task on {self.source_arn} ended {summary.get('Status')}"
                + (f": {summary['FailureReason']}" if summary.get("FailureReason") else "")
                + f" after moving {summary.get('ApproximateNumberOfMessagesMoved', 0)} of "
                f"{summary.get('ApproximateNumberOfMessagesToMove', '?')}"
            )
        return summary

    def poke(self, context: Context) -> bool:
        from airflow_reliable_messaging.domain.redrive import FINAL_TASK_STATUSES, find_task
        from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

        hook = self.aws_hook(SqsMessagingHook)
        task = find_task(hook.list_message_move_tasks(str(self.source_arn)), self._started(), self._handle())
        if task is None:
            raise ReliableMessagingError(f"no message-move task of {self.source_arn} started at {self.started_timestamp}")
        self.log.info(
            "Message-move task %s: %s of %s moved", task.get("Status"), task.get("ApproximateNumberOfMessagesMoved"),
            task.get("ApproximateNumberOfMessagesToMove"),
        )  # fmt: skip
        if task.get("Status") in FINAL_TASK_STATUSES:
            self._result = self._check(task)
            return True
        return False

    def execute(self, context: Context) -> dict | None:
        if not self.source_arn or self.source_arn == "None":
            self.log.info("No message-move task to wait for (client-mode redrive or dry run)")
            return None
        if self.deferrable:
            from airflow_reliable_messaging.triggers.redrive import MessageMoveTaskTrigger

            self.defer(
                trigger=MessageMoveTaskTrigger(
                    source_arn=self.source_arn,
                    started_timestamp=self._started(),
                    task_handle=self._handle(),
                    poll_interval=self.poke_interval,
                    **self.aws.as_dict(),
                ),  # fmt: skip
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout),
            )
        super().execute(context)
        return self._result

    def on_kill(self) -> None:
        handle = self._handle()
        if not handle:
            return
        from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

        try:
            hook = self.aws_hook(SqsMessagingHook)
            self.log.info("Cancelled the message-move task after %s messages", hook.cancel_message_move_task(handle, self.source_arn))
        except Exception as exc:  # noqa: BLE001 - it may have finished meanwhile
            self.log.warning("Could not cancel the message-move task: %s", exc)

    def execute_complete(self, context: Context, event: dict) -> dict:
        if event.get("status") != "done":
            raise ReliableMessagingError(f"waiting for the message-move task failed: {event.get('message')}")
        return self._check(event["task"])
