"""The example S3 lifecycle configuration of the bundle layout (docs/operators/archive_lifecycle.json)
targets the archive's own prefixes and is accepted by S3's PutBucketLifecycleConfiguration."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from airflow_reliable_messaging.domain import archive_layout as layout

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "operators" / "archive_lifecycle.json"


def test_the_lifecycle_example_moves_the_archive_prefix_bundles_and_large_records(aws, unique):
    config = json.loads(EXAMPLE.read_text())
    rules = {r["ID"]: r for r in config["Rules"]}
    hour = datetime(2026, 11, 30, 10, tzinfo=UTC)
    bundle_prefix = rules["audit-bundles-to-glacier"]["Filter"]["Prefix"]
    assert layout.bundle_key("audit", hour, "bundle-x").startswith(bundle_prefix)
    records = rules["audit-records-to-glacier"]["Filter"]["And"]
    assert layout.archive_key("audit", hour, "m1").startswith(records["Prefix"])
    assert not layout.batch_manifest_key("audit", hour, "b").startswith((bundle_prefix, records["Prefix"]))
    assert all(t["StorageClass"] in ("GLACIER_IR", "DEEP_ARCHIVE") for r in rules.values() for t in r.get("Transitions", []))

    # Summary claims (domain/batch_claims.py) are control markers, expired — and only they. A claim
    # matters while a copy of its batch's messages can still be received: SQS keeps a message at most
    # 14 days (MessageRetentionPeriod,
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html),
    # and a FIFO queue's dead-letter queue counts its retention again from the move (standard ones
    # from the original enqueue,
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/setting-up-dead-letter-queue-retention.html):
    # 28 days at most, so the claims must live longer than that.
    expiring = [r for r in rules.values() if "Expiration" in r]
    assert [r["ID"] for r in expiring] == ["audit-summary-claims-expire"]
    claims = expiring[0]
    assert layout.notification_claim_key("audit", "b" * 64).startswith(claims["Filter"]["Prefix"])
    for kept in (layout.bundle_key("audit", hour, "bundle-x"), layout.archive_key("audit", hour, "m1"),
                 layout.batch_manifest_key("audit", hour, "b")):  # fmt: skip
        assert not kept.startswith(claims["Filter"]["Prefix"])
    assert claims["Expiration"]["Days"] > 28

    s3 = aws("s3")
    bucket = unique("lifecycle")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=config)
    assert {r["ID"] for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]} == set(rules)
