"""The one AWS base of operators and sensors: the Amazon provider's parameters, templated, given to
every hook and carried by the triggers; ``deferrable`` from ``[operators] default_deferrable``."""

from __future__ import annotations

import pytest

from airflow_reliable_messaging.base_aws import AWS_FIELDS, AwsParams
from airflow_reliable_messaging.exceptions import ConfigurationError
from airflow_reliable_messaging.operators.dlq_redrive import DLQRedriveOperator
from airflow_reliable_messaging.sensors.redrive import MessageMoveTaskSensor
from airflow_reliable_messaging.sensors.replay import ReplayCompletedSensor

DLQ_ARN = "arn:aws:sqs:eu-west-1:123456789012:audit-dlq"
AWS = {"aws_conn_id": None, "region_name": "eu-west-1", "verify": False, "botocore_config": {"connect_timeout": 3}}


@pytest.mark.parametrize("task_class", [DLQRedriveOperator, MessageMoveTaskSensor, ReplayCompletedSensor])
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


@pytest.mark.parametrize(
    ("field", "value"), [("botocore_config", "{'retries': 3}"), ("botocore_config", ["retries"]), ("verify", 1)]
)
def test_a_malformed_parameter_is_refused_naming_it(field, value):
    with pytest.raises(ConfigurationError, match=field):
        AwsParams(**{**AWS, field: value})


@pytest.mark.parametrize("task_class", [DLQRedriveOperator, MessageMoveTaskSensor, ReplayCompletedSensor])
def test_default_args_and_partial_reach_the_aws_parameters(task_class):
    """Airflow's operator metaclass reads a class's parameters from the ``__init__`` the class
    itself defines: an AWS parameter declared only by a mixin is not applied from the DAG's
    ``default_args`` (the task would silently use aws_default) and ``.partial()`` refuses it."""
    from datetime import datetime

    from airflow_reliable_messaging._compat import DAG

    required = {DLQRedriveOperator: "dlq", MessageMoveTaskSensor: "source_arn", ReplayCompletedSensor: "subscription_arn"}[task_class]
    defaults = {"aws_conn_id": "audit_account", "region_name": "eu-west-1", "botocore_config": {"connect_timeout": 2}}
    with DAG("base_aws_defaults", schedule=None, start_date=datetime(2026, 1, 1), default_args=defaults):
        task = task_class(task_id="t", **{required: DLQ_ARN})
        mapped = task_class.partial(task_id="m", aws_conn_id="other", verify=False).expand(**{required: [DLQ_ARN]})
    assert (task.aws_conn_id, task.region_name, task.botocore_config) == ("audit_account", "eu-west-1", {"connect_timeout": 2})
    assert mapped.partial_kwargs["aws_conn_id"] == "other" and mapped.partial_kwargs["verify"] is False
