"""The AWS emulator keeps HTTP/1.1 connections open between requests, as AWS endpoints do
(local_cloud/keepalive.py), without letting one request's unread body leak into the next."""

from __future__ import annotations

import http.client
from urllib.parse import urlparse

import boto3
import pytest

from local_cloud.faults_client import server_error

pytestmark = pytest.mark.localcloud


def _connection(local_cloud) -> http.client.HTTPConnection:
    url = urlparse(local_cloud.aws_endpoint_url)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=10)


def test_requests_share_one_connection(local_cloud):
    conn = _connection(local_cloud)
    sockets = []
    for _ in range(3):
        conn.request("GET", "/moto-api/")
        response = conn.getresponse()
        response.read()
        assert response.status == 200 and (response.getheader("Connection") or "").lower() != "close"
        sockets.append(conn.sock)
    assert sockets[0] is not None and all(s is sockets[0] for s in sockets)  # never reconnected


def test_an_unread_request_body_does_not_leak_into_the_next_request(local_cloud, faults, unique):
    """The fault middleware answers a PutObject with a 500 without reading its body: the next
    request on the same connection is still read from its own first byte."""
    bucket = unique("keepalive")
    boto3.client("s3", **local_cloud.boto3_kwargs()).create_bucket(Bucket=bucket)
    conn = _connection(local_cloud)
    body = b"GET /moto-api/ HTTP/1.1\r\nHost: x\r\n\r\n" * 50  # would parse as requests if it leaked
    with faults.injecting([server_error("s3", "PutObject")]):
        headers = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKIA/20261202/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x",
                   "Content-Length": str(len(body))}  # fmt: skip
        conn.request("PUT", f"/{bucket}/key", body=body, headers=headers)
        first = conn.getresponse()
        first.read()
        assert first.status == 500
    sock = conn.sock
    conn.request("GET", f"/{bucket}?list-type=2", headers={"Authorization": headers["Authorization"]})
    second = conn.getresponse()
    assert second.status == 200 and b"ListBucketResult" in second.read()
    assert conn.sock is sock


def test_a_chunked_request_closes_its_connection_as_before(local_cloud):
    conn = _connection(local_cloud)
    conn.request("POST", "/moto-api/", body=iter([b"a=1"]), encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    response = conn.getresponse()
    response.read()
    assert (response.getheader("Connection") or "").lower() == "close"


def test_boto3_clients_reuse_their_connections(local_cloud, unique):
    """botocore keeps a pool per client: many calls, few TCP connections (counted at the client)."""
    import urllib3.connection

    made = []
    original = urllib3.connection.HTTPConnection._new_conn

    def counting(self):
        made.append(1)
        return original(self)

    urllib3.connection.HTTPConnection._new_conn = counting
    try:
        sqs = boto3.client("sqs", **local_cloud.boto3_kwargs())
        url = sqs.create_queue(QueueName=unique("keepalive"))["QueueUrl"]
        for n in range(20):
            sqs.send_message(QueueUrl=url, MessageBody=str(n))
    finally:
        urllib3.connection.HTTPConnection._new_conn = original
    assert len(made) == 1, len(made)
