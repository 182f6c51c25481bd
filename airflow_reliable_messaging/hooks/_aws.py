"""What the AWS hooks share: the retry policy used when neither hook nor connection sets one."""

from __future__ import annotations

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
