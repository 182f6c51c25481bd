"""Fixtures of the emulation tests: boto3 clients against the local cloud."""

from __future__ import annotations

import pytest


@pytest.fixture
def sns(aws):
    return aws("sns")


@pytest.fixture
def sqs(aws):
    return aws("sqs")
