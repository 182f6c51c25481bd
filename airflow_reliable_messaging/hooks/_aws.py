"""What the AWS hooks share: the retry policy used when neither hook nor connection sets one, and
building their clients up front."""

from __future__ import annotations

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


def build_clients(*hooks: Any) -> None:
    """Build each hook's client now (None entries skipped): before threads share a hook, so they
    share one client rather than race to create several."""
    for hook in hooks:
        if hook is not None:
            hook.get_conn()
