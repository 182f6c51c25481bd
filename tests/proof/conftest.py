"""Fixtures of the proof suite: the fault injector, boto3 clients without retries."""

from __future__ import annotations

import pytest

from local_cloud.faults_client import FaultInjector


@pytest.fixture
def faults(local_cloud):
    """The local cloud's fault injector; every rule is removed after the test."""
    injector = FaultInjector(local_cloud.aws_endpoint_url)
    injector.reset()
    yield injector
    injector.reset()


@pytest.fixture
def raw_client(local_cloud):
    """``raw_client("sqs")``: a boto3 client that does not retry (faults are seen as they come)."""
    import boto3
    from botocore.config import Config

    def make(service: str, **config):
        cfg = Config(retries={"total_max_attempts": 1}, **config)
        return boto3.session.Session().client(service, config=cfg, **local_cloud.boto3_kwargs())

    return make
