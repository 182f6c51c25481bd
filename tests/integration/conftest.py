"""Fixtures of the integration tier (first written for the replay tests): SNS/SQS/S3 clients against the
local cloud, its SNS replay knobs, and ``run_deferred`` (an operator run as Airflow runs a deferral)."""

from __future__ import annotations

import pytest

from tests.messaging import replay_knobs


@pytest.fixture
def sns(aws):
    return aws("sns")


@pytest.fixture
def sqs(aws):
    return aws("sqs")


@pytest.fixture
def s3(aws):
    return aws("s3")


@pytest.fixture
def replay_control(local_cloud):
    """The local cloud's SNS replay knobs; reset afterwards."""
    post = replay_knobs(local_cloud)
    yield post
    post(reset=True)


def run_deferred(operator, context=None):
    """Run a deferrable operator as Airflow does: execute, run the trigger it defers to, resume."""
    import asyncio

    try:
        from airflow.sdk.exceptions import TaskDeferred  # Airflow 3
    except ImportError:  # Airflow 2.11
        from airflow.exceptions import TaskDeferred

    context = context if context is not None else {}
    try:
        return operator.execute(context)
    except TaskDeferred as deferred:
        trigger = deferred.trigger

        async def first_event():
            async for event in trigger.run():
                return event.payload

        payload = asyncio.run(asyncio.wait_for(first_event(), 30))
        return getattr(operator, deferred.method_name)(context, payload, **(deferred.kwargs or {}))
