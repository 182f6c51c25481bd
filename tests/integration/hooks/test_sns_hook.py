"""SnsMessagingHook's client: the form body it sends is the one plain botocore sends."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.localcloud


def _bodies(client, topic_arn: str, signed: list | None = None) -> list[bytes]:
    sent: list[bytes] = []
    if signed is not None:  # what the signer hashes: a dict botocore re-encodes, or our encoded form
        client.meta.events.register_last("before-sign.sns", lambda request=None, **_: signed.append(type(request.data)))
    client.meta.events.register("before-send.sns.PublishBatch", lambda request=None, **_: sent.append(request.body))
    entries = [
        {"Id": f"e{i}", "Message": f"ünïcödé & = + % / {i} 🙂", "Subject": "a b",
         "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v=1&w=2"}}}
        for i in range(10)
    ]  # fmt: skip
    client.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=entries)
    return sent


def test_the_form_body_is_encoded_once_and_identical_to_botocore(local_cloud, aws, unique):
    from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

    plain = aws("sns")
    topic = plain.create_topic(Name=unique("form"))["TopicArn"]
    ours = SnsMessagingHook(aws_conn_id="aws_default").get_conn()
    ours_signed, plain_signed = [], []
    body = _bodies(ours, topic, ours_signed)
    assert body == _bodies(plain, topic, plain_signed)
    assert ours_signed == [str] and plain_signed == [dict]  # encoded before signing, once
