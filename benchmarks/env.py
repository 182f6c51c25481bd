"""The benchmark's process setup: an isolated Airflow home and the local cloud's connections.

Airflow reads its configuration at import, so :func:`prepare_airflow_home` runs before anything
imports Airflow (``benchmarks.run`` calls it first; the pytest smoke test relies on
``tests/conftest.py`` doing the same).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from benchmarks import metering

REPO_ROOT = Path(__file__).resolve().parents[1]


def prepare_airflow_home() -> Path:
    if os.environ.get("BENCH_AIRFLOW_HOME"):
        return Path(os.environ["BENCH_AIRFLOW_HOME"])
    home = Path(tempfile.mkdtemp(prefix="arm-bench-airflow-"))
    os.environ.update(
        BENCH_AIRFLOW_HOME=str(home),
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO_ROOT / "dags"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="ERROR",
    )
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):  # never reach real AWS by accident
        os.environ.pop(var, None)
    return home


class Cloud:
    """The running local cloud plus unmetered boto3 clients for setup and checks."""

    def __init__(self, local_cloud: Any) -> None:
        self.lc = local_cloud
        self._clients: dict[str, Any] = {}
        os.environ.update(local_cloud.airflow_environ())

    def client(self, service: str) -> Any:
        """A boto3 client whose requests are never counted (seeding, verification)."""
        if service not in self._clients:
            import boto3
            from botocore.config import Config

            with metering.unmetered():
                self._clients[service] = boto3.session.Session().client(
                    service, config=Config(max_pool_connections=20), **self.lc.boto3_kwargs()
                )
        return self._clients[service]

    def metered_client(self, service: str) -> Any:
        """A fresh boto3 client for a naive baseline (counted while a Meter is active)."""
        import boto3

        metering.install()
        return boto3.session.Session().client(service, **self.lc.boto3_kwargs())

    @staticmethod
    def unique(stem: str) -> str:
        return f"{stem}-{uuid.uuid4().hex[:10]}".lower()

    # -- setup helpers ---------------------------------------------------------------------------
    def bucket(self, stem: str) -> str:
        name = self.unique(stem)
        self.client("s3").create_bucket(Bucket=name)
        return name

    def queue(self, stem: str, **attributes: str) -> str:
        return self.client("sqs").create_queue(QueueName=self.unique(stem), Attributes=attributes)["QueueUrl"]

    def topic(self, stem: str) -> str:
        return self.client("sns").create_topic(Name=self.unique(stem))["TopicArn"]

    def queue_arn(self, url: str) -> str:
        return self.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def depth(self, url: str) -> int:
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return sum(int(v) for v in attrs.values())

    def send_all(self, url: str, entries: list[dict]) -> None:
        """SendMessageBatch in chunks of 10 (and < 1 MiB); fails loudly on any Failed entry."""
        sqs = self.client("sqs")
        chunk: list[dict] = []
        size = 0
        for entry in entries:
            n = len(entry["MessageBody"]) + 512
            if chunk and (len(chunk) == 10 or size + n > 900_000):
                self._send(sqs, url, chunk)
                chunk, size = [], 0
            chunk.append(entry)
            size += n
        if chunk:
            self._send(sqs, url, chunk)

    @staticmethod
    def _send(sqs: Any, url: str, chunk: list[dict]) -> None:
        batch = [{"Id": str(i), **e} for i, e in enumerate(chunk)]
        failed = sqs.send_message_batch(QueueUrl=url, Entries=batch).get("Failed")
        if failed:
            raise RuntimeError(f"seeding {url} failed: {failed[:3]}")
