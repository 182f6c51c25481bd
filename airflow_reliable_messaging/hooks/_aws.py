"""What the AWS hooks share: the retry policy used when neither hook nor connection sets one,
clients for the Region a resource lives in, and building their clients up front."""

from __future__ import annotations

import threading
from typing import Any

from botocore.config import Config

# botocore's "standard" mode retries throttling (ThrottlingException, RequestThrottled, SlowDown),
# 5xx and connection errors with jittered exponential backoff. A ``config`` given to the hook, or
# ``config_kwargs.retries`` in the connection's extra, wins over this default.
DEFAULT_RETRIES = {"mode": "standard", "max_attempts": 8}


class DefaultRetriesMixin:
    """Mixed into AwsBaseHook subclasses: adds DEFAULT_RETRIES to a config that has no retries."""

    @property
    def config(self) -> Config:
        config = self.conn_config.botocore_config or Config()  # type: ignore[attr-defined]
        if not getattr(config, "retries", None):
            config = config.merge(Config(retries=dict(DEFAULT_RETRIES)))
        return config


class RegionalClientsMixin:
    """Mixed into AwsBaseHook subclasses: a client for the Region a resource lives in.

    An SNS or SQS call is answered only by the endpoint of the Region the topic or queue lives in
    (https://docs.aws.amazon.com/general/latest/gr/sns.html); its ARN names that Region
    (``arn:partition:service:region:account:resource``,
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html). Without a ``region_name``
    given to the hook (the task's ``region_name``), a call on a resource of another Region than the
    connection's goes to a client of that Region — one per Region, built once, shared by threads.
    A ``region_name`` given explicitly that is not the resource's is an error naming both, raised
    before any call (AWS would answer NotFound)."""

    def client_in(self, region: str | None, resource: str):
        """The client for a call on ``resource``, which lives in ``region`` (None/"": unknown — the
        hook's own client)."""
        default = self.get_conn()  # type: ignore[attr-defined]
        if not region or region == default.meta.region_name:
            return default
        explicit = getattr(self, "_region_name", None)
        if explicit:
            from airflow_reliable_messaging.exceptions import ConfigurationError

            raise ConfigurationError(
                "region_name",
                f"{resource} is in Region {region}, but region_name is {explicit}: AWS answers a call on it only "
                f"in {region} — leave region_name unset (the resource's Region is then used) or set it to {region}",
            )
        lock = self.__dict__.setdefault("_regional_lock", threading.Lock())
        with lock:
            clients: dict[str, Any] = self.__dict__.setdefault("_regional_clients", {})
            if region not in clients:
                clients[region] = self.prepare_client(self.get_client_type(region_name=region))  # type: ignore[attr-defined]
            return clients[region]

    def prepare_client(self, client: Any) -> Any:
        """What the hook adds to each client it builds (event handlers); the client."""
        return client


def build_clients(*hooks: Any) -> None:
    """Build each hook's client now (None entries skipped): before threads share a hook, so they
    share one client rather than race to create several."""
    for hook in hooks:
        if hook is not None:
            hook.get_conn()
