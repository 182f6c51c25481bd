"""Emulation of AWS behaviours the AWS emulator (moto) lacks, to AWS's documented semantics (and of
the few Snowflake statements fakesnow lacks, in the same local-cloud process).

Each module here is one AWS feature and exposes ``install(ctx)`` and ``wrap(app, ctx) -> app``:
``install`` may extend moto's backends inside the local-cloud process, ``wrap`` returns a WSGI
middleware in front of moto that answers the feature's API calls. Nothing here is imported by
the provider; the same operator code runs unchanged against real AWS.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

# Modules are registered by name so a missing one never breaks the others.
EMULATIONS: list[str] = [
    "sqs_message_move",
    "sqs_fifo_groups",
    "sqs_message_limits",
    "sns_archive_replay",
    "sns_sqs_delivery",
    "sns_message_limits",
    "s3_conditional_copy",
    "s3_conditional_writes",
    "s3_checksums",
    "s3_sse_kms",
    "sns_data_protection",
    "snowflake_drop_database",
    "moto_sqs_performance",
    "moto_request_performance",
    "aws_json_protocol",
]


@dataclass
class EmulationContext:
    """What an emulation may need from the local cloud."""

    region: str = "us-east-1"
    account_id: str = "123456789012"
    endpoint_url: str = ""
    state: dict[str, Any] = field(default_factory=dict)


_INSTALLED: set[str] = set()  # install() patches classes: once per process


def wrap_all(app, ctx: EmulationContext):
    for name in EMULATIONS:
        module = importlib.import_module(f"{__name__}.{name}")
        if hasattr(module, "install") and name not in _INSTALLED:
            module.install(ctx)
            _INSTALLED.add(name)
        if hasattr(module, "wrap"):
            app = module.wrap(app, ctx)
    return app
