"""Hooks on their real boto3 clients, answered by botocore's Stubber: no server, no network.

The connection comes from the environment (``AIRFLOW_CONN_AWS_DEFAULT``: us-east-1, dummy keys, no
endpoint), so a hook builds its clients as it does on MWAA. A Stubber answers the calls a test
expects, checks their parameters and raises on any other; a request that would leave the process
anyway (a client no Stubber covers) fails the test."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def aws_default(monkeypatch):
    """The connection every hook here uses; endpoints and profiles of the environment removed
    (the local cloud's variables, when the whole suite runs in one process)."""
    import os

    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
            monkeypatch.delenv(name)
    connection = {"conn_type": "aws", "login": "AKIDUNITTEST", "password": "unit-test-secret", "extra": {"region_name": REGION}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session", autouse=True)
def one_botocore_loader():
    """Every botocore session of these tests reads the service models through one loader, which
    keeps what it read: a hook builds a boto3 session, and each new session would parse the
    models' JSON again (a third of a second for S3's). The models are data, the same either way."""
    from botocore import loaders, session

    loader = loaders.create_loader()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(session, "create_loader", lambda search_paths=None: loader)
        yield


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """A request that reaches botocore's HTTP layer (no Stubber answered it) fails the test at once."""
    from botocore.httpsession import URLLib3Session

    def refuse(self, request):
        raise AssertionError(f"a unit test sent a request over the network: {request.method} {request.url}")

    monkeypatch.setattr(URLLib3Session, "send", refuse)


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Every ``time.sleep`` of the test recorded instead of slept (the hooks' backoffs)."""
    import time

    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


@contextmanager
def _stubbed(client) -> Iterator:
    from botocore.stub import Stubber

    stubber = Stubber(client)
    with stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def stub():
    """``with stub(client) as stubber:`` a Stubber on ``client``; on leaving the block, every answer
    it was given must have been asked for (and any call beyond them has already failed)."""
    return _stubbed


@pytest.fixture
def streaming():
    """``streaming(b"...")``: a GetObject ``Body`` as botocore hands it."""
    from botocore.response import StreamingBody

    return lambda body: StreamingBody(io.BytesIO(body), len(body))
