"""DLQRedriveOperator's settings: invalid input is refused (naming the field) before any AWS call,
and the approval step never passes without a dry run to compare. No server: the connection named
does not exist, so a call would fail differently. (The runs against the local cloud:
tests/integration/operators/test_dlq_redrive.py.)"""

from __future__ import annotations

import pytest

from airflow_reliable_messaging.exceptions import ConfigurationError
from airflow_reliable_messaging.operators.dlq_redrive import DLQRedriveOperator


class _Ti:
    def __init__(self) -> None:
        self.xcom: dict = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value


def _context():
    return {"run_id": "test-run", "ti": _Ti()}


def _op(**kwargs) -> DLQRedriveOperator:
    kwargs.setdefault("task_id", "redrive")
    kwargs.setdefault("poll_interval", 0.1)
    kwargs.setdefault("deferrable", True)  # the triggerer path, as MWAA runs it
    return DLQRedriveOperator(**kwargs)


# -- validation --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dlq": ""}, "dlq"),
        ({"dlq": "arn:aws:sns:us-east-1:123456789012:t"}, "dlq"),
        ({"dlq": "q", "mode": "fast"}, "mode"),
        ({"dlq": "q", "jmespath_filter": "body.[["}, "jmespath_filter"),
        ({"dlq": "q", "max_messages": "lots"}, "max_messages"),
        ({"dlq": "q", "rate_per_second": -1}, "rate_per_second"),
        ({"dlq": "q", "quarantine_bucket": "Bad_Bucket"}, "quarantine_bucket"),
        ({"dlq": "q", "destination": "arn:aws:s3:::bucket"}, "destination"),
        # AWS formats (SQS CreateQueue, SNS CreateTopic, KMS key ids), checked without a call
        ({"dlq": "orders dlq"}, "dlq"),
        ({"dlq": "q" * 81}, "dlq"),
        ({"dlq": "https://sqs.us-east-1.amazonaws.com/orders-dlq"}, "dlq"),
        ({"dlq": "q", "destination": "arn:aws:sns:us-east-1:123456789012:bad/topic"}, "destination"),
        ({"dlq": "q", "destination": "not/a/queue"}, "destination"),
        ({"dlq": "q", "kms_key_id": "my key"}, "kms_key_id"),
        # SQS message attribute names (SendMessage API reference): no AWS./Amazon. prefix, no "..", <= 256
        ({"dlq": "q", "message_attribute_filter": {"AWS.trace": "x"}}, "message_attribute_filter"),
        ({"dlq": "q", "message_attribute_filter": {"a..b": "x"}}, "message_attribute_filter"),
        ({"dlq": "q", "message_attribute_filter": {"t" * 257: "x"}}, "message_attribute_filter"),
        ({"dlq": "q", "min_age_seconds": 14 * 24 * 3600 + 1}, "min_age_seconds"),  # SQS keeps 14 days at most
        ({"dlq": "q", "poll_interval": 0}, "poll_interval"),
        # a safety is switched off only explicitly (None): never by a templated value that rendered
        # empty, 0 or not-a-number (before: "" and None ran for real, "" turned the loop guard off,
        # 0 lifted max_messages, rate 0 and "nan" lifted the rate limit, "nan" ages let every message through)
        ({"dlq": "q", "dry_run": ""}, "dry_run"),
        ({"dlq": "q", "dry_run": None}, "dry_run"),
        ({"dlq": "q", "dry_run": "maybe"}, "dry_run"),
        ({"dlq": "q", "max_redrives": ""}, "max_redrives"),
        ({"dlq": "q", "max_redrives": 0}, "max_redrives"),
        ({"dlq": "q", "max_redrives": "0"}, "max_redrives"),
        ({"dlq": "q", "max_redrives": "1.5"}, "max_redrives"),
        ({"dlq": "q", "max_messages": 0}, "max_messages"),
        ({"dlq": "q", "max_messages": "0"}, "max_messages"),
        ({"dlq": "q", "max_messages": ""}, "max_messages"),
        ({"dlq": "q", "max_messages": True}, "max_messages"),
        ({"dlq": "q", "approved_messages": ""}, "approved_messages"),
        ({"dlq": "q", "approved_messages": -1}, "approved_messages"),
        ({"dlq": "q", "rate_per_second": 0}, "rate_per_second"),
        ({"dlq": "q", "rate_per_second": "nan"}, "rate_per_second"),
        ({"dlq": "q", "rate_per_second": "inf"}, "rate_per_second"),
        ({"dlq": "q", "min_age_seconds": "nan"}, "min_age_seconds"),
        ({"dlq": "q", "max_age_seconds": "nan"}, "max_age_seconds"),
        ({"dlq": "q", "max_age_seconds": "inf"}, "max_age_seconds"),
        # client workers: 1..10 threads of the task (botocore's 10 connections per client)
        ({"dlq": "q", "workers": 0}, "workers"),
        ({"dlq": "q", "workers": 11}, "workers"),
        ({"dlq": "q", "workers": "two"}, "workers"),
        ({"dlq": "q", "workers": True}, "workers"),
        ({"dlq": "q", "workers": ""}, "workers"),
    ],
)
def test_invalid_input_is_rejected_before_any_aws_call(kwargs, field):
    op = _op(aws_conn_id="no_such_connection", **kwargs)
    with pytest.raises(ConfigurationError) as excinfo:
        op.execute(_context())
    assert excinfo.value.field == field


def test_the_approval_never_passes_without_an_inspection_to_compare():
    from airflow_reliable_messaging.domain.redrive import needs_approval

    for inspection in ({}, {"dry_run_summary": None}, {"dry_run_summary": {"would_redrive": 0}}):
        with pytest.raises(ConfigurationError) as exc:
            needs_approval(inspection, 1000, "False")
        assert exc.value.field == "inspect_task_id"
    assert needs_approval({}, 1000, "True") is None  # a dry run moves nothing
