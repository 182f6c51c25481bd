"""Waits for an SQS message-move task (native DLQ redrive) in the triggerer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_reliable_messaging.domain.redrive import FINAL_TASK_STATUSES, find_task, task_summary
from airflow_reliable_messaging.triggers.base import AwsPollingTrigger


class MessageMoveTaskTrigger(AwsPollingTrigger):
    """Polls ``ListMessageMoveTasks`` until the task reaches COMPLETED, CANCELLED or FAILED.

    boto3 calls run in a worker thread (``asyncio.to_thread``): the event loop never blocks.
    ``on_kill`` (a user marking the deferred task failed/success or clearing it) cancels the task.

    :param source_arn: the DLQ's ARN (the move task's source).
    :param started_timestamp: the task's ``StartedTimestamp``, which identifies it.
    :param task_handle: the task's handle, to cancel it on kill (optional).
    :param aws_conn_id, region_name, verify, botocore_config: the deferring task's (see ``AwsPollingTrigger``).
    """

    def __init__(
        self,
        *,
        source_arn: str,
        started_timestamp: int | None,
        task_handle: str | None = None,
        poll_interval: float = 5.0,
        **aws: Any,
    ) -> None:
        super().__init__(**aws)
        self.source_arn = source_arn
        self.started_timestamp = started_timestamp
        self.task_handle = task_handle
        self.poll_interval = poll_interval

    def fields(self) -> dict[str, Any]:
        return {"source_arn": self.source_arn, "started_timestamp": self.started_timestamp,
                "task_handle": self.task_handle, "poll_interval": self.poll_interval}  # fmt: skip

    def _hook(self):
        from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

        return self.hook(SqsMessagingHook)

    def _poll(self, hook) -> dict | None:
        return find_task(hook.list_message_move_tasks(self.source_arn), self.started_timestamp, self.task_handle)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = await asyncio.to_thread(self._hook)
        last_moved = -1
        while True:
            try:
                task = await asyncio.to_thread(self._poll, hook)
            except Exception as exc:  # noqa: BLE001 - reported to the operator, which fails clearly
                yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})
                return
            if task is None:
                yield TriggerEvent({"status": "error", "message": f"message-move task of {self.source_arn} not found"})
                return
            if task.get("Status") in FINAL_TASK_STATUSES:
                yield TriggerEvent({"status": "done", "task": task_summary(task)})
                return
            moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
            if moved != last_moved:
                self.log.info(
                    "Message-move task %s: %s of %s moved", task.get("Status"), moved,
                    task.get("ApproximateNumberOfMessagesToMove"),
                )  # fmt: skip
                last_moved = moved
            await asyncio.sleep(self.poll_interval)

    async def on_kill(self) -> None:
        if not self.task_handle:
            return
        hook = await asyncio.to_thread(self._hook)
        try:
            moved = await asyncio.to_thread(hook.cancel_message_move_task, self.task_handle, self.source_arn)
            self.log.info("Cancelled message-move task on %s after %s messages", self.source_arn, moved)
        except Exception as exc:  # noqa: BLE001 - the task may have finished meanwhile
            self.log.warning("Could not cancel the message-move task on %s: %s", self.source_arn, exc)
