"""The local cloud's S3 conditional writes are atomic, as AWS documents them.

https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html: "If multiple
conditional writes occur for the same object name, the first write operation to finish succeeds.
Amazon S3 then fails subsequent writes with a 412 Precondition Failed response" (a 409
ConditionalRequestConflict may answer a write while another one is in flight; the caller retries).
This holds for PutObject, CompleteMultipartUpload and CopyObject with ``If-None-Match: *``.
moto 5.2.5 checks the condition and then writes, without holding anything in between: two
concurrent writers could both be told they created the object, the second silently replacing the
first. These tests were written from the documentation above, not from the archive's behaviour.
"""

from __future__ import annotations

import threading

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

WRITERS = 8
ROUNDS = 25  # (without the emulation, a round lets two writers "create" the key often enough for every test to see it)


@pytest.fixture
def s3(local_cloud, unique):
    import boto3

    # one client per writer thread, no retries: every answer is seen as S3 gave it
    clients = [
        boto3.session.Session().client("s3", config=Config(retries={"total_max_attempts": 1}), **local_cloud.boto3_kwargs())
        for _ in range(WRITERS)
    ]
    bucket = unique("cond-writes")
    clients[0].create_bucket(Bucket=bucket)
    return clients, bucket


def _race(clients, write) -> list[tuple[int, object]]:
    """Run ``write(clients[n], n)`` in WRITERS threads released together; (writer, outcome) each."""
    barrier = threading.Barrier(WRITERS)
    outcomes: list[tuple[int, object]] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        barrier.wait()
        try:
            write(clients[n], n)
            outcome: object = "created"
        except ClientError as exc:
            outcome = exc.response["Error"]["Code"]
        with lock:
            outcomes.append((n, outcome))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def _check_one_winner(outcomes, stored: bytes, body_of) -> None:
    winners = [n for n, outcome in outcomes if outcome == "created"]
    assert len(winners) == 1, outcomes
    assert all(outcome in ("PreconditionFailed", "ConditionalRequestConflict") for n, outcome in outcomes if n != winners[0]), outcomes
    assert stored == body_of(winners[0])  # the one told "created" is the one S3 keeps


def test_concurrent_put_object_if_none_match_has_exactly_one_winner(s3):
    clients, bucket = s3
    reader = clients[0]
    for r in range(ROUNDS):
        key = f"marker-{r}"
        body = lambda n: f"writer {n} ".encode() * 200_000  # noqa: E731 - big enough to take moments to store
        outcomes = _race(clients, lambda c, n: c.put_object(Bucket=bucket, Key=key, Body=body(n), IfNoneMatch="*"))
        _check_one_winner(outcomes, reader.get_object(Bucket=bucket, Key=key)["Body"].read(), body)


def test_concurrent_complete_multipart_upload_if_none_match_has_exactly_one_winner(s3):
    clients, bucket = s3
    reader = clients[0]
    for r in range(ROUNDS):
        key = f"parts-{r}"
        uploads = {}
        for n in range(WRITERS):
            upload = reader.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
            etag = reader.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=f"writer {n} ".encode() * 50_000)["ETag"]
            uploads[n] = (upload, etag)

        def complete(c, n):
            upload, etag = uploads[n]
            c.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, IfNoneMatch="*",
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})  # fmt: skip

        outcomes = _race(clients, complete)
        _check_one_winner(outcomes, reader.get_object(Bucket=bucket, Key=key)["Body"].read(), lambda n: f"writer {n} ".encode() * 50_000)


def test_concurrent_copy_object_if_none_match_has_exactly_one_winner(s3):
    clients, bucket = s3
    reader = clients[0]
    for n in range(WRITERS):
        reader.put_object(Bucket=bucket, Key=f"src-{n}", Body=f"source {n}".encode() * 1000)
    for r in range(ROUNDS):
        key = f"copy-{r}"
        outcomes = _race(clients, lambda c, n: c.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": f"src-{n}"},
                                                                 IfNoneMatch="*"))  # fmt: skip
        _check_one_winner(outcomes, reader.get_object(Bucket=bucket, Key=key)["Body"].read(), lambda n: f"source {n}".encode() * 1000)


def test_unconditional_writes_still_overwrite(s3):
    clients, bucket = s3
    c = clients[0]
    c.put_object(Bucket=bucket, Key="k", Body=b"one", IfNoneMatch="*")
    with pytest.raises(ClientError) as info:
        c.put_object(Bucket=bucket, Key="k", Body=b"two", IfNoneMatch="*")
    assert info.value.response["Error"]["Code"] == "PreconditionFailed"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    c.put_object(Bucket=bucket, Key="k", Body=b"three")  # without the header S3 overwrites
    assert c.get_object(Bucket=bucket, Key="k")["Body"].read() == b"three"
