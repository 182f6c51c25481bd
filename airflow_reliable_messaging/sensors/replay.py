"""ReplayCompletedSensor: wait for an SNS replay to reach ``Completed``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging.base_aws import AwsBaseSensor, aws_template_fields, default_deferrable
from airflow_reliable_messaging.exceptions import ConfigurationError, ReplayError
from airflow_reliable_messaging.links.aws import SnsSubscriptionLink

if TYPE_CHECKING:
    from airflow_reliable_messaging._compat import Context
    from airflow_reliable_messaging.hooks.sns import SnsMessagingHook


class ReplayCompletedSensor(AwsBaseSensor):
    """Wait until the subscription's ``ReplayStatus`` is ``Completed``; fail at once on ``Failed``.

    Accepts every spelling of the in-progress status. Deferrable (``deferrable=True``, or
    ``[operators] default_deferrable``): the polling runs on the triggerer and frees the worker slot. A replay with an ``EndingPoint`` leaves the
    subscription paused (no live messages); ``resume_live_delivery=True`` then applies a policy
    without ``EndingPoint`` starting one millisecond before the previous ``EndingPoint``: messages
    published meanwhile are delivered, then live traffic. (AWS does not document whether a message
    stamped exactly at ``EndingPoint`` was replayed; starting a millisecond early loses none either
    way, and one stamped in that millisecond may come twice, with its original ``MessageId``.)

    Returns ``{"subscription_arn", "replay_status", "replay_policy", "paused", "resumed_with"}``.

    :param subscription_arn: the replaying subscription (templated), e.g.
        ``"{{ ti.xcom_pull(task_ids='replay')['subscription_arn'] }}"``.
    :param resume_live_delivery: resume a subscription paused by an ``EndingPoint``.
    :param deferrable: wait on the triggerer (default: ``[operators] default_deferrable``).
    :param aws_conn_id, region_name, verify, botocore_config: how to reach AWS (templated; as the
        Amazon provider's operators), carried by the trigger.
    """

    template_fields: Sequence[str] = aws_template_fields("subscription_arn", "resume_live_delivery")
    operator_extra_links = (SnsSubscriptionLink(),)
    ui_color = "#f9e1a3"

    def __init__(
        self,
        *,
        subscription_arn: str,
        resume_live_delivery: bool = False,
        deferrable: bool | None = None,
        poke_interval: float = 30,
        timeout: float = 6 * 60 * 60,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.subscription_arn = subscription_arn
        self.resume_live_delivery = resume_live_delivery
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self._result: dict[str, Any] | None = None

    @property
    def hook(self) -> SnsMessagingHook:
        from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

        return self.aws_hook(SnsMessagingHook)

    def _check_arn(self) -> None:
        if not isinstance(self.subscription_arn, str) or not self.subscription_arn.startswith("arn:"):
            raise ConfigurationError("subscription_arn", f"{self.subscription_arn!r} is not a subscription ARN")

    def execute(self, context: Context) -> dict[str, Any] | None:
        from airflow_reliable_messaging.domain.templated import as_bool

        self._check_arn()
        as_bool(self.resume_live_delivery, "resume_live_delivery")  # refused before waiting, not after
        self._persist_link(context)
        if not self.deferrable:
            super().execute(context)
            return self._result
        if self.poke(context):  # already done: no need to defer
            return self._result
        from airflow_reliable_messaging.triggers.replay import ReplayStatusTrigger

        self.defer(
            trigger=ReplayStatusTrigger(
                subscription_arn=self.subscription_arn,
                poll_interval=self.poke_interval,
                **self.aws.as_dict(),
            ),  # fmt: skip
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )
        return None

    def poke(self, context: Context) -> bool:
        from airflow_reliable_messaging.domain import replay as rp

        status, policy = self.hook.replay_status(self.subscription_arn)
        state = rp.replay_state(status)
        if state is None:
            if policy is None:
                raise ReplayError(f"{self.subscription_arn} has no ReplayPolicy: no replay was started on it")
            self.log.info("Replay on %s has no status yet", self.subscription_arn)
            return False
        if state is rp.ReplayState.FAILED:
            raise ReplayError(self._failure(policy))
        if state is rp.ReplayState.COMPLETED:
            self._result = self._completed(status, policy)  # type: ignore[arg-type]
            return True
        if state is rp.ReplayState.UNKNOWN:
            self.log.warning("Replay on %s reports an unknown status %r; waiting", self.subscription_arn, status)
        else:
            self.log.info("Replay on %s is %s (policy %s)", self.subscription_arn, status, policy)
        return False

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        event = event or {}
        if event.get("status") == "completed":
            return self._completed(event.get("replay_status", "Completed"), event.get("replay_policy"))
        if event.get("status") == "failed":
            raise ReplayError(self._failure(event.get("replay_policy")))
        raise ReplayError(f"Waiting for the replay on {self.subscription_arn} stopped: {event.get('message', event)}")

    # -- outcomes ----------------------------------------------------------------------------------
    def _completed(self, status: str, policy: dict | None) -> dict[str, Any]:
        from airflow_reliable_messaging.domain import replay as rp
        from airflow_reliable_messaging.domain.templated import as_bool

        paused = bool(policy and policy.get("EndingPoint"))
        resumed_with = None
        self.log.info("Replay on %s completed (%s)", self.subscription_arn, policy)
        if paused:
            if as_bool(self.resume_live_delivery, "resume_live_delivery"):
                resumed_with = rp.resume_policy(policy)  # type: ignore[arg-type]
                self.hook.set_replay_policy(self.subscription_arn, resumed_with)  # type: ignore[arg-type]
                self.log.info(
                    "Resumed live delivery on %s from %s (messages published since then follow)",
                    self.subscription_arn, resumed_with["StartingPoint"],  # type: ignore[index]
                )  # fmt: skip
            else:
                self.log.warning(
                    "The replay had an EndingPoint (%s): %s is now PAUSED and receives no new messages until a "
                    "ReplayPolicy without EndingPoint is applied (resume_live_delivery=True does that, from %s)",
                    policy["EndingPoint"], self.subscription_arn, policy["EndingPoint"],  # type: ignore[index]
                )  # fmt: skip
        return {
            "subscription_arn": self.subscription_arn,
            "replay_status": status,
            "replay_policy": policy,
            "paused": paused and resumed_with is None,
            "resumed_with": resumed_with,
        }

    def _failure(self, policy: dict | None) -> str:
        reason = "SNS reports ReplayStatus Failed"
        try:
            attrs = self.hook.subscription_attributes(self.subscription_arn)
            endpoint = attrs.get("Endpoint", "")
            if attrs.get("Protocol") == "sqs" and endpoint:
                from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

                sqs = self.aws_hook(SqsMessagingHook)
                try:
                    sqs.resolve_queue_url(endpoint)
                    reason += (
                        f"; the queue {endpoint} exists: check that its access policy lets the topic send "
                        "(sqs:SendMessage, aws:SourceArn) and, if encrypted, that SNS may use its KMS key"
                    )
                except Exception:  # noqa: BLE001 — the queue is gone: that is the reason
                    reason += f"; the subscribed queue {endpoint} does not exist"
        except Exception as exc:  # noqa: BLE001 — diagnosis is best effort
            self.log.warning("Could not diagnose the failed replay: %s", exc)
        return f"Replay on {self.subscription_arn} failed ({policy}): {reason}"

    def _persist_link(self, context: Context) -> None:
        parts = self.subscription_arn.split(":")
        if len(parts) >= 6:
            SnsSubscriptionLink.persist(context, self, region_name=parts[3], aws_partition=parts[1], subscription_arn=self.subscription_arn)
