"""The AWS fault injection's ``path`` option (local_cloud/faults.py): a rule restricted to some S3
objects fails their calls and no other's — how a test fails one write of several in flight."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local_cloud.faults_client import server_error

pytestmark = pytest.mark.localcloud


def test_a_rule_with_a_path_fails_only_the_objects_it_names(local_cloud, faults, unique):
    s3 = boto3.client("s3", config=Config(retries={"total_max_attempts": 1}), **local_cloud.boto3_kwargs())
    bucket = unique("faultpaths")
    s3.create_bucket(Bucket=bucket)
    with faults.injecting([server_error("s3", "PutObject", path=r"/_manifests/")]):
        s3.put_object(Bucket=bucket, Key="audit/2026/record", Body=b"kept")
        with pytest.raises(ClientError) as failed:
            s3.put_object(Bucket=bucket, Key="audit/_manifests/batch.jsonl", Body=b"lost")
        assert failed.value.response["Error"]["Code"] == "InternalError"
        stats = faults.stats()
    assert [i["call"] for i in stats["injected"]] == ["s3:PutObject"]
    assert s3.get_object(Bucket=bucket, Key="audit/2026/record")["Body"].read() == b"kept"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="audit/_manifests/")
