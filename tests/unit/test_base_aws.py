"""The one AWS base of operators and sensors: the Amazon provider's parameters, templated, given to
every hook and carried by the triggers; ``deferrable`` from ``[operators] default_deferrable``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from airflow_reliable_messaging import operators, sensors
from airflow_reliable_messaging.base_aws import AWS_FIELDS, AwsBaseOperator, AwsBaseSensor, AwsParams
from airflow_reliable_messaging.exceptions import ConfigurationError
from airflow_reliable_messaging.operators.archive_replay import S3ArchiveReplayOperator
from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator
from airflow_reliable_messaging.operators.audit_report import (
    AuditReconcileOperator,
    AuditReportOperator,
    EmailReportOperator,
    SnsReportPublishOperator,
)
from airflow_reliable_messaging.operators.dlq_redrive import DLQRedriveOperator
from airflow_reliable_messaging.operators.replay_request import ReplayRequestOperator
from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator
from airflow_reliable_messaging.operators.sns_replay import SnsReplayOperator
from airflow_reliable_messaging.sensors.redrive import MessageMoveTaskSensor
from airflow_reliable_messaging.sensors.replay import ReplayCompletedSensor

DLQ_ARN = "arn:aws:sqs:eu-west-1:123456789012:audit-dlq"
TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:audit.fifo"
AWS = {"aws_conn_id": None, "region_name": "eu-west-1", "verify": False, "botocore_config": {"connect_timeout": 3}}
REPORT = {"rows": [], "totals": {}, "report_id": "w"}
# Every task of the package that calls AWS, with what it requires besides.
AWS_TASKS = {
    DLQRedriveOperator: {"dlq": DLQ_ARN},
    MessageMoveTaskSensor: {"source_arn": DLQ_ARN},
    ReplayCompletedSensor: {"subscription_arn": DLQ_ARN},
    AuditArchiveOperator: {"queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/audit", "bucket": "archive"},
    S3ArchiveReplayOperator: {"archive_bucket": "archive", "start": "2026-11-16T00:00:00Z", "topic_arn": TOPIC_ARN},
    SnsReplayOperator: {"topic_arn": TOPIC_ARN, "subscription_arn": f"{TOPIC_ARN}:0f3b", "start": "2026-11-16T00:00:00Z"},
    ReplayRequestOperator: {},
    SnowflakeAuditLoadOperator: {"archive_bucket": "archive"},
    AuditReconcileOperator: {"archive_bucket": "archive"},
    AuditReportOperator: {"archive_bucket": "archive"},
    SnsReportPublishOperator: {"topic_arn": TOPIC_ARN, "report": REPORT, "marker_bucket": "markers"},
    EmailReportOperator: {"to": "audit@example.com", "report": REPORT, "marker_bucket": "markers"},
}


def _package_tasks() -> set[type]:
    found = set()
    for package in (operators, sensors):
        for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(info.name)
            found |= {c for _, c in inspect.getmembers(module, inspect.isclass)
                      if c.__module__ == module.__name__ and not c.__name__.startswith("_") and hasattr(c, "execute")}  # fmt: skip
    return {c for c in found if not any(o is not c and issubclass(o, c) for o in found)}  # bases aside


def test_every_task_that_calls_aws_is_on_the_one_aws_base():
    """A task whose module builds an AWS hook takes the AWS parameters from the base, not its own."""
    on_base = {c for c in _package_tasks() if issubclass(c, (AwsBaseOperator, AwsBaseSensor))}
    assert on_base == set(AWS_TASKS)
    for task_class in _package_tasks() - on_base:
        source = inspect.getsource(inspect.getmodule(task_class))
        assert "aws_conn_id" not in inspect.getsource(task_class), task_class
        assert not any(h in source for h in ("S3ArchiveHook", "SqsMessagingHook", "SnsMessagingHook")) or any(
            c.__module__ == task_class.__module__ for c in on_base
        ), task_class


@pytest.mark.parametrize("task_class", list(AWS_TASKS))
def test_the_aws_parameters_are_templated(task_class):
    assert set(AWS_FIELDS) <= set(task_class.template_fields)


def test_a_deferred_wait_hands_the_trigger_every_aws_parameter():
    try:
        from airflow.sdk.exceptions import TaskDeferred  # Airflow 3
    except ImportError:
        from airflow.exceptions import TaskDeferred

    sensor = MessageMoveTaskSensor(task_id="wait", source_arn=DLQ_ARN, started_timestamp="1764547200000",
                                   deferrable=True, **AWS)  # fmt: skip
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    _, kwargs = deferred.value.trigger.serialize()
    assert {k: kwargs[k] for k in AWS_FIELDS} == AWS and kwargs["started_timestamp"] == 1764547200000


@pytest.mark.parametrize(("configured", "expected"), [(None, False), ("true", True), ("false", False)])
def test_deferrable_follows_operators_default_deferrable(monkeypatch, configured, expected):
    """As the Amazon provider's operators: no setting means not deferrable."""
    if configured is None:
        monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", raising=False)
    else:
        monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", configured)
    assert MessageMoveTaskSensor(task_id="w", source_arn=DLQ_ARN).deferrable is expected
    assert ReplayCompletedSensor(task_id="r", subscription_arn=DLQ_ARN).deferrable is expected
    assert DLQRedriveOperator(task_id="d", dlq=DLQ_ARN).deferrable is expected
    assert MessageMoveTaskSensor(task_id="x", source_arn=DLQ_ARN, deferrable=not expected).deferrable is (not expected)


def test_a_sensor_builds_its_hooks_with_the_rendered_parameters():
    from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

    sensor = MessageMoveTaskSensor(task_id="wait", source_arn=DLQ_ARN, **{**AWS, "region_name": "{{ params.region }}"})
    sensor.region_name = "ap-southeast-2"  # as rendered
    hook = sensor.aws_hook(SqsMessagingHook)
    assert hook is sensor.aws_hook(SqsMessagingHook)  # built once per execution
    assert hook.region_name == "ap-southeast-2" and hook.verify is False and hook.config.connect_timeout == 3


@pytest.mark.parametrize(("field", "value"), [("botocore_config", "{'retries': 3}"), ("botocore_config", ["retries"]), ("verify", 1)])
def test_a_malformed_parameter_is_refused_naming_it(field, value):
    with pytest.raises(ConfigurationError, match=field):
        AwsParams(**{**AWS, field: value})


@pytest.mark.parametrize("task_class", list(AWS_TASKS))
def test_default_args_and_partial_reach_the_aws_parameters(task_class):
    """Airflow's operator metaclass reads a class's parameters from the ``__init__`` the class
    itself defines: an AWS parameter declared only by a mixin is not applied from the DAG's
    ``default_args`` (the task would silently use aws_default) and ``.partial()`` refuses it."""
    from datetime import datetime

    from airflow_reliable_messaging._compat import DAG

    required = AWS_TASKS[task_class]
    defaults = {"aws_conn_id": "audit_account", "region_name": "eu-west-1", "botocore_config": {"connect_timeout": 2}}
    with DAG("base_aws_defaults", schedule=None, start_date=datetime(2026, 1, 1), default_args=defaults):
        task = task_class(task_id="t", **required)
        mapped = task_class.partial(task_id="m", aws_conn_id="other", verify=False, **required).expand(
            region_name=["eu-west-1", "us-east-1"]
        )
    assert (task.aws_conn_id, task.region_name, task.botocore_config) == ("audit_account", "eu-west-1", {"connect_timeout": 2})
    assert mapped.partial_kwargs["aws_conn_id"] == "other" and mapped.partial_kwargs["verify"] is False
