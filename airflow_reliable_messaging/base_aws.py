"""One AWS base for this package's operators, sensors and triggers.

It follows the Amazon provider's contract (``AwsBaseOperator``): ``aws_conn_id``, ``region_name``,
``verify`` and ``botocore_config``, all templated, passed to every hook the task builds and
serialised by its triggers; ``deferrable`` defaults to ``[operators] default_deferrable``. The
provider's own base is not subclassed: importing it imports boto3, which DAG parsing must not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_reliable_messaging._compat import BaseOperator, BaseSensorOperator

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook

    Hook = TypeVar("Hook", bound=AwsGenericHook)
else:
    Hook = TypeVar("Hook")

AWS_FIELDS: tuple[str, ...] = ("aws_conn_id", "region_name", "verify", "botocore_config")

# The ``dry_run`` parameter (SNS and S3 replay, redrive, approval) is kept in the attribute
# ``is_dry_run``, the template field: an attribute ``dry_run`` would hide ``BaseOperator.dry_run()``,
# which ``airflow tasks test --dry-run`` and ``airflow dags backfill --dry-run`` call (Airflow 2).
# ``parameter_attributes`` maps such parameters to their attributes (docs/reference.md reads it).
DRY_RUN_FIELD = "is_dry_run"
DRY_RUN_PARAMETER = {"dry_run": DRY_RUN_FIELD}


def aws_template_fields(*fields: str) -> tuple[str, ...]:
    """``fields`` after the AWS connection fields, each once (as the provider's helper)."""
    return tuple(dict.fromkeys((*AWS_FIELDS, *fields)))


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` (False when unset), as the Amazon provider's operators."""
    from airflow.configuration import conf

    return conf.getboolean("operators", "default_deferrable", fallback=False)


@dataclass(frozen=True)
class AwsParams:
    """Where and how a task reaches AWS: what its hooks are built with and its triggers carry."""

    aws_conn_id: str | None = "aws_default"
    region_name: str | None = None
    verify: bool | str | None = None
    botocore_config: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        from airflow_reliable_messaging.exceptions import ConfigurationError

        if self.botocore_config is not None and not isinstance(self.botocore_config, dict):
            raise ConfigurationError("botocore_config", f"a dict of botocore Config arguments, not {type(self.botocore_config).__name__}")
        if self.verify is not None and not isinstance(self.verify, (bool, str)):
            raise ConfigurationError("verify", f"True, False or a CA bundle path, not {self.verify!r}")

    def hook(self, hook_class: type[Hook]) -> Hook:
        """An instance of ``hook_class`` (an AwsBaseHook) with these parameters."""
        return hook_class(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name or None,  # a rendered "" means the connection's region
            verify=self.verify,
            config=dict(self.botocore_config) if self.botocore_config else None,
        )

    def as_dict(self) -> dict[str, Any]:
        """The parameters as a trigger serialises them (JSON: the config stays a plain dict)."""
        return asdict(self)


class _AwsAccess:
    """What operators and sensors on AWS share once built: their parameters and their hooks.

    (No ``__init__`` here: Airflow's operator metaclass records a class's parameters — for
    ``default_args`` and ``.partial()`` — only from an ``__init__`` the class itself defines, so each
    base below defines its own.)"""

    aws_conn_id: str | None
    region_name: str | None
    verify: bool | str | None
    botocore_config: dict[str, Any] | None

    def _set_aws(self, aws_conn_id: str | None, region_name: str | None, verify: bool | str | None,
                 botocore_config: dict[str, Any] | None) -> None:  # fmt: skip
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    @property
    def aws(self) -> AwsParams:
        """The (rendered) AWS parameters; read at execute time, after templating."""
        return AwsParams(self.aws_conn_id, self.region_name, self.verify, self.botocore_config)

    def aws_hook(self, hook_class: type[Hook]) -> Hook:
        """The task's hook of ``hook_class``, built once per task execution."""
        hooks: dict[type, Any] = self.__dict__.setdefault("_aws_hooks", {})
        if hook_class not in hooks:
            hooks[hook_class] = self.aws.hook(hook_class)
        return hooks[hook_class]


class AwsBaseOperator(_AwsAccess, BaseOperator):
    """Base of this package's AWS operators: ``aws_conn_id``, ``region_name``, ``verify`` and
    ``botocore_config`` (templated), one hook per class from :meth:`aws_hook`."""

    template_fields: Sequence[str] = aws_template_fields()

    def __init__(
        self,
        *,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._set_aws(aws_conn_id, region_name, verify, botocore_config)


class AwsBaseSensor(_AwsAccess, BaseSensorOperator):
    """Base of this package's AWS sensors (the same parameters as :class:`AwsBaseOperator`)."""

    template_fields: Sequence[str] = aws_template_fields()

    def __init__(
        self,
        *,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._set_aws(aws_conn_id, region_name, verify, botocore_config)
