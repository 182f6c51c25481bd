"""The base of this package's triggers: the task's AWS parameters travel with the trigger."""

from __future__ import annotations

from typing import Any

from airflow.triggers.base import BaseTrigger

from airflow_reliable_messaging.base_aws import AwsParams, Hook


class AwsPollingTrigger(BaseTrigger):
    """A trigger that polls AWS with the deferring task's ``aws_conn_id``, ``region_name``,
    ``verify`` and ``botocore_config``: all four are serialised, so the triggerer reaches AWS
    exactly as the worker did (a custom endpoint's CA bundle, a retry policy, a Region).

    Subclasses return their own arguments from ``fields``; ``serialize`` returns them with the AWS
    parameters, so ``type(t)(**t.serialize()[1])`` rebuilds the trigger.
    """

    def __init__(
        self,
        *,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.aws = AwsParams(aws_conn_id, region_name, verify, botocore_config)

    def fields(self) -> dict[str, Any]:
        """The trigger's own constructor arguments, as given."""
        raise NotImplementedError

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {**self.fields(), **self.aws.as_dict()}

    def hook(self, hook_class: type[Hook]) -> Hook:
        """A hook of ``hook_class`` built with the task's AWS parameters."""
        return self.aws.hook(hook_class)
