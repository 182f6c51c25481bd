"""Name checks of domain/identifiers.py at their edges."""

import pytest

from airflow_reliable_messaging.domain.identifiers import (
    bucket_name,
    optional_kms_key,
    queue_arn,
    queue_reference,
    snowflake_identifier,
    topic_arn,
)
from airflow_reliable_messaging.exceptions import ConfigurationError


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


@pytest.mark.parametrize("unset", [None, "", "None", "  "])
def test_an_unset_kms_key_is_none(unset):
    assert optional_kms_key(unset) is None


@pytest.mark.parametrize("key", [
    "1234abcd-12ab-34cd-56ef-1234567890ab", "alias/audit", "arn:aws:kms:us-east-1:123456789012:alias/audit",
    "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
])  # fmt: skip
def test_a_kms_key_by_id_arn_or_alias_is_kept(key):
    assert optional_kms_key(f" {key} ") == key


@pytest.mark.parametrize("bad", ["{{ var.value.get('audit_kms_key_id', '') or None }}", "alias/a b", "key; rm -rf"])
def test_anything_else_is_refused_naming_the_field(bad):
    """An unrendered template (an argument missing from template_fields) must not reach S3."""
    with pytest.raises(ConfigurationError, match="kms_key_id"):
        optional_kms_key(bad)
