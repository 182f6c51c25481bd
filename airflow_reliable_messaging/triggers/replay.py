"""Trigger polling an SNS subscription's ``ReplayStatus`` on the triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_reliable_messaging.domain.replay import ReplayState, replay_state
from airflow_reliable_messaging.triggers.base import AwsPollingTrigger


class ReplayStatusTrigger(AwsPollingTrigger):
    """Fires once the replay is ``Completed`` or ``Failed`` (or the status cannot be read).

    The SNS call is the sync hook's, run in a worker thread (``asyncio.to_thread``): aiobotocore
    is in MWAA's constraints but not installed with the provider, and one call per poll is cheap.
    Event: ``{"status": "completed"|"failed"|"error", "replay_status", "replay_policy", "message"}``.

    :param subscription_arn: the subscription whose ``ReplayStatus`` is polled.
    :param missing_status_grace: seconds a missing ``ReplayStatus`` is tolerated before it is an error.
    :param aws_conn_id, region_name, verify, botocore_config: the deferring task's (see ``AwsPollingTrigger``).
    """

    def __init__(
        self,
        subscription_arn: str,
        poll_interval: float = 30.0,
        missing_status_grace: float = 300.0,
        **aws: Any,
    ) -> None:
        super().__init__(**aws)
        self.subscription_arn = subscription_arn
        self.poll_interval = poll_interval
        self.missing_status_grace = missing_status_grace

    def fields(self) -> dict[str, Any]:
        return {"subscription_arn": self.subscription_arn, "poll_interval": self.poll_interval,
                "missing_status_grace": self.missing_status_grace}  # fmt: skip

    def _read(self) -> tuple[str | None, dict | None]:
        from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

        return self.hook(SnsMessagingHook).replay_status(self.subscription_arn)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = time.monotonic()
        last = None
        while True:
            try:
                status, policy = await asyncio.to_thread(self._read)
            except Exception as exc:  # noqa: BLE001 — reported to the task, which fails with it
                yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})
                return
            state = replay_state(status)
            if status != last:
                self.log.info("Replay on %s: %s (%.0fs)", self.subscription_arn, status or "no status yet",
                              time.monotonic() - started)  # fmt: skip
                last = status
            if state in (ReplayState.COMPLETED, ReplayState.FAILED):
                yield TriggerEvent({
                    "status": "completed" if state is ReplayState.COMPLETED else "failed",
                    "replay_status": status, "replay_policy": policy,
                })  # fmt: skip
                return
            if state is None and (policy is None or time.monotonic() - started > self.missing_status_grace):
                yield TriggerEvent({
                    "status": "error", "replay_status": status, "replay_policy": policy,
                    "message": "the subscription has no ReplayPolicy" if policy is None else "no ReplayStatus reported",
                })  # fmt: skip
                return
            await asyncio.sleep(self.poll_interval)
