"""AWS JSON protocol requests take the action from the ``X-Amz-Target`` header; the body is data.

AWS: "Making query API requests using AWS JSON protocol in Amazon SQS"
(https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-making-api-requests-json.html):
a request is ``POST /`` with ``X-Amz-Target: AmazonSQS.<operationName>``,
``Content-Type: application/x-amz-json-1.0`` and its parameters as a JSON body. A message body or
attribute that looks like a query string (``...&Action=Unsubscribe``, as in an SNS envelope's
``UnsubscribeURL`` or any URL a producer sends) is sent as it is. Secrets Manager speaks the same
protocol (``application/x-amz-json-1.1``, ``X-Amz-Target: secretsmanager.<operation>``).
"""

from __future__ import annotations

import json

import pytest

QUERYISH = [
    "https://example.com/?a=1&Action=Unsubscribe&SubscriptionArn=x",
    "x&Action=PurgeQueue&QueueUrl=y",
    "&Action=DeleteQueue",
    json.dumps({"UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?x=1&Action=Unsubscribe&SubscriptionArn=a"}),
]


def _receive(sqs, url, count):
    got = []
    while len(got) < count:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get("Messages", [])
        assert messages, "a message was lost"
        got += messages
    return got


@pytest.mark.parametrize("body", QUERYISH)
def test_a_body_that_looks_like_a_query_string_is_sent_as_data(sqs, unique, body):
    url = sqs.create_queue(QueueName=unique("json-protocol"))["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=body)
    batch = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": body}])
    assert not batch.get("Failed") and len(batch["Successful"]) == 1
    assert [m["Body"] for m in _receive(sqs, url, 2)] == [body, body]
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]  # still there


def test_a_message_attribute_that_looks_like_a_query_string_is_sent_as_data(sqs, unique):
    url = sqs.create_queue(QueueName=unique("json-protocol"))["QueueUrl"]
    link = "https://x/?b=2&Action=GetQueueUrl&QueueName=other"
    sqs.send_message(QueueUrl=url, MessageBody="m", MessageAttributes={"link": {"DataType": "String", "StringValue": link}})
    [message] = _receive(sqs, url, 1)
    assert message["Body"] == "m" and message["MessageAttributes"]["link"]["StringValue"] == link


def test_a_parameter_inside_a_json_value_is_not_a_parameter(aws, unique):
    """Secrets Manager (JSON protocol, read from ``querystring`` by moto): a secret's value holding
    ``&SecretId=<another>`` is stored in the secret named by ``SecretId``, not in the other one."""
    secrets = aws("secretsmanager")
    mine, other = unique("secret-mine"), unique("secret-other")
    secrets.create_secret(Name=other, SecretString="untouched")
    secrets.create_secret(Name=mine, SecretString="first")
    value = f"x&SecretId={other}&y"
    secrets.put_secret_value(SecretId=mine, SecretString=value)
    assert secrets.get_secret_value(SecretId=mine)["SecretString"] == value
    assert secrets.get_secret_value(SecretId=other)["SecretString"] == "untouched"
