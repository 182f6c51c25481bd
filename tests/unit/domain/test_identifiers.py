"""Name checks of domain/identifiers.py at their edges."""

import pytest

from airflow_reliable_messaging.domain.identifiers import bucket_name, queue_arn, queue_reference, snowflake_identifier, topic_arn


@pytest.mark.parametrize(
    "check",
    [
        lambda: bucket_name("audit-bucket\n"),
        lambda: snowflake_identifier("AUDIT\n", "database"),
        lambda: topic_arn("arn:aws:sns:us-east-1:123456789012:topic\n"),
        lambda: queue_arn("arn:aws:sqs:us-east-1:123456789012:queue\n"),
    ],
)
def test_a_trailing_newline_is_not_a_valid_name(check):
    """Python's ``$`` also matches before a final newline: ``^[a-z]+$`` accepts "queue\\n"."""
    with pytest.raises(ValueError):
        check()


def test_a_queue_reference_is_read_without_surrounding_whitespace():
    assert queue_reference(" queue\n", "queue") == "queue"
