"""SNS message size limits in bytes, to the SNS API reference (moto 5.2.5 counts characters and
has no ``PublishBatch`` total).

- ``Publish``: "messages must be UTF-8 encoded strings and at most 256 KB in size (262,144 bytes,
  not 262,144 characters)" (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html), else
  ``InvalidParameter`` "Invalid parameter: Message too long"; a ``PublishBatch`` entry over it
  fails alone (in ``Failed``, as moto reports its other entry errors).
- ``PublishBatch``: "the maximum total payload size (the sum of the individual lengths of all of
  the batched messages)" is 256 KB too
  (https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html), else
  ``BatchRequestTooLong`` "The length of all the batch messages put together is more than the
  limit." for the whole request.

Message attributes count: "All parts of the message attribute, including name, type, and value,
are included in the message size restriction, which is 256 KiB (262,144 bytes)"
(https://docs.aws.amazon.com/sns/latest/api/API_MessageAttributeValue.html) — name, data type and
value in UTF-8 bytes, a Binary value by its decoded length.
"""

from __future__ import annotations

import base64
import json

LIMIT = 262_144


def _bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _attribute_bytes(attributes: dict | None) -> int:
    """Name + type + value of each attribute, in moto's parsed form ``{"Type", "Value"}`` (Binary as base64)."""
    total = 0
    for name, value in (attributes or {}).items():
        data_type, data = str(value.get("Type", "")), value.get("Value", "")
        if data_type.startswith("Binary") and isinstance(data, str):
            size = len(base64.b64decode(data))
        else:
            size = _bytes(data if isinstance(data, str) else json.dumps(data))
        total += _bytes(name) + _bytes(data_type) + size
    return total


def message_bytes(message: str, attributes: dict | None) -> int:
    return _bytes(message) + _attribute_bytes(attributes)


def install(ctx) -> None:
    from moto.sns.exceptions import InvalidParameterValue, SNSException
    from moto.sns.models import SNSBackend

    class BatchRequestTooLong(SNSException):
        code = "BatchRequestTooLong"

    original_publish, original_batch = SNSBackend.publish, SNSBackend.publish_batch

    def publish(self, message, arn, phone_number=None, *args, **kwargs):
        attributes = kwargs.get("message_attributes", args[1] if len(args) > 1 else None)
        if not phone_number and message_bytes(message, attributes) > LIMIT:
            raise InvalidParameterValue("Invalid parameter: Message too long")
        return original_publish(self, message, arn, phone_number, *args, **kwargs)

    def publish_batch(self, topic_arn, publish_batch_request_entries):
        if sum(message_bytes(e.get("Message", ""), e.get("MessageAttributes")) for e in publish_batch_request_entries) > LIMIT:
            raise BatchRequestTooLong("The length of all the batch messages put together is more than the limit.")
        return original_batch(self, topic_arn, publish_batch_request_entries)

    SNSBackend.publish = publish
    SNSBackend.publish_batch = publish_batch
