"""Every trigger serialises what it was built with — its own arguments and the deferring task's
AWS parameters — so the triggerer rebuilds the same trigger and reaches AWS as the worker did.

Compared with the constructor's inputs, never with the trigger's own output: a field dropped by
``serialize`` (as ``verify`` and ``botocore_config`` once were) fails here.
"""

from __future__ import annotations

import json

import pytest

from airflow_reliable_messaging.triggers.redrive import MessageMoveTaskTrigger
from airflow_reliable_messaging.triggers.replay import ReplayStatusTrigger

AWS = {"aws_conn_id": None, "region_name": "eu-west-1", "verify": "/etc/ssl/custom-ca.pem",
       "botocore_config": {"retries": {"mode": "standard", "max_attempts": 3}, "read_timeout": 7}}  # fmt: skip
SUB = "arn:aws:sns:eu-west-1:123456789012:audit.fifo:0a1b2c3d-0000-4000-8000-000000000000"

CASES = [
    pytest.param(
        MessageMoveTaskTrigger,
        {
            "source_arn": "arn:aws:sqs:eu-west-1:123456789012:audit-dlq",
            "started_timestamp": 1764547200000,
            "task_handle": "eyJ0YXNrSWQiOiAiMSJ9",
            "poll_interval": 2.5,
        },
        id="MessageMoveTaskTrigger",
    ),  # fmt: skip
    pytest.param(
        ReplayStatusTrigger,
        {"subscription_arn": SUB, "poll_interval": 9.0, "missing_status_grace": 60.0},
        id="ReplayStatusTrigger",
    ),
]


@pytest.mark.parametrize(("trigger_class", "own"), CASES)
def test_serialize_returns_the_constructor_inputs_and_the_aws_parameters(trigger_class, own):
    path, kwargs = trigger_class(**own, **AWS).serialize()

    assert path == f"{trigger_class.__module__}.{trigger_class.__qualname__}"
    assert kwargs == {**own, **AWS}


@pytest.mark.parametrize(("trigger_class", "own"), CASES)
def test_the_triggerer_rebuilds_it_from_json_and_its_hook_gets_verify_and_the_config(trigger_class, own):
    """The triggerer stores the kwargs as JSON (Airflow's serialisation) and calls the class with them."""
    from airflow.serialization.serialized_objects import BaseSerialization

    from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

    path, kwargs = trigger_class(**own, **AWS).serialize()
    stored = json.loads(json.dumps(BaseSerialization.serialize(kwargs)))
    rebuilt = trigger_class(**BaseSerialization.deserialize(stored))

    assert rebuilt.serialize() == (path, {**own, **AWS})
    hook = rebuilt.hook(SqsMessagingHook)
    assert hook.region_name == "eu-west-1" and hook.verify == "/etc/ssl/custom-ca.pem"
    assert hook.config.retries == {"mode": "standard", "max_attempts": 3} and hook.config.read_timeout == 7


@pytest.mark.parametrize(("trigger_class", "own"), CASES)
def test_defaults_are_the_amazon_providers(trigger_class, own):
    """A trigger serialised before it carried verify/botocore_config (aws_conn_id and region only)
    is still rebuilt, with the provider's defaults for the rest."""
    _, kwargs = trigger_class(**own, aws_conn_id="aws_default", region_name=None).serialize()
    assert {k: kwargs[k] for k in AWS} == {"aws_conn_id": "aws_default", "region_name": None, "verify": None, "botocore_config": None}
