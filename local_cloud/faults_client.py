"""Drive the local cloud's fault injection (``local_cloud/faults.py`` for AWS,
``local_cloud/snowflake_faults.py`` for Snowflake: same control shape) from any Python (stdlib only).

    faults = FaultInjector(cloud.aws_endpoint_url)
    with faults.injecting([throttle("sqs", rate=0.1)], seed=7):
        ...                      # calls through the emulator see the faults
    faults.stats()["calls"]      # {"sqs:ReceiveMessage": 12, ...}
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

CONTROL_PATH = "/_localcloud/faults"


class FaultInjector:
    def __init__(self, endpoint_url: str) -> None:
        self.url = endpoint_url.rstrip("/") + CONTROL_PATH

    def _post(self, payload: dict) -> dict:
        request = urllib.request.Request(
            self.url, data=json.dumps(payload).encode(), method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback emulator
            return json.loads(response.read())

    def set(self, rules: list[dict], seed: int = 0, **options) -> dict:
        """Replace every rule (counters start again from zero); ``options`` e.g. Snowflake's ``dedupe``."""
        return self._post({"rules": rules, "seed": seed, **options})

    def reset(self) -> dict:
        return self._post({"reset": True})

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())

    @contextmanager
    def injecting(self, rules: list[dict], seed: int = 0, **options) -> Iterator[FaultInjector]:
        self.set(rules, seed, **options)
        try:
            yield self
        finally:
            self.reset()


def rule(fault: str, service: str | list[str] = "*", operation: str | list[str] = "*", **options) -> dict:
    return {"fault": fault, "service": service, "operation": operation, **options}


def throttle(service="*", operation="*", **options) -> dict:
    return rule("throttle", service, operation, **options)


def server_error(service="*", operation="*", status: int = 500, **options) -> dict:
    return rule("5xx", service, operation, status=status, **options)


def delay(service="*", operation="*", seconds: float = 1.0, **options) -> dict:
    return rule("delay", service, operation, delay=seconds, **options)


def partial(service="*", operation="*", entries: float | int = 0.5, **options) -> dict:
    return rule("partial", service, operation, entries=entries, **options)


def mixed(rate: float, exclude_user_agent: str | None = "aiobotocore", services=("sqs", "sns", "s3")) -> list[dict]:
    """Faults on about ``rate`` of the calls: throttling, 5xx and partial batch failures, each
    with its own seeded draw (a batch call can draw several; the first listed wins)."""
    extra = {"exclude_user_agent": exclude_user_agent} if exclude_user_agent else {}
    share = rate / 3
    return [
        partial(list(services), rate=rate, entries=0.3, **extra),
        throttle(list(services), rate=share, **extra),
        server_error(list(services), status=500, rate=share, **extra),
        server_error(list(services), status=503, rate=share, **extra),
    ]


# -- Snowflake (local_cloud/snowflake_faults.py): FaultInjector(cloud.snowflake_endpoint_url) -----
def snowflake_fault(fault: str, statement: str | None = None, endpoint: str | list[str] = "query", **options) -> dict:
    """A Snowflake rule: ``fault`` in throttle / 5xx / delay / drop / error, for queries whose SQL
    matches the regular expression ``statement`` (all when None); ``when="after"`` lets the
    statement run and loses its answer; ``nth`` / ``rate`` / ``every`` / ``max_faults`` as above."""
    rule = {"fault": fault, "endpoint": endpoint, **options}
    if statement:
        rule["statement"] = statement
    return rule


def snowflake_mixed(rate: float, statement: str | None = None, endpoint=("login", "query")) -> list[dict]:
    """Faults on about ``rate`` of the Snowflake requests: 429, 503, 500 and dropped connections,
    half of them after the statement ran (its answer lost), each with its own seeded draw."""
    share = rate / 4
    return [
        snowflake_fault("throttle", statement, list(endpoint), rate=share),
        snowflake_fault("5xx", statement, list(endpoint), status=503, rate=share, when="after"),
        snowflake_fault("5xx", statement, list(endpoint), status=500, rate=share),
        snowflake_fault("drop", statement, list(endpoint), rate=share, when="after"),
    ]
