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

Whether message attributes count toward SNS's limit is not stated by the API reference; they are
not counted here (the provider's hooks count them, which is the stricter reading).
"""

from __future__ import annotations

LIMIT = 262_144


def _bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def install(ctx) -> None:
    from moto.sns.exceptions import InvalidParameterValue, SNSException
    from moto.sns.models import SNSBackend

    class BatchRequestTooLong(SNSException):
        code = "BatchRequestTooLong"

    original_publish, original_batch = SNSBackend.publish, SNSBackend.publish_batch

    def publish(self, message, arn, phone_number=None, *args, **kwargs):
        if not phone_number and _bytes(message) > LIMIT:
            raise InvalidParameterValue("Invalid parameter: Message too long")
        return original_publish(self, message, arn, phone_number, *args, **kwargs)

    def publish_batch(self, topic_arn, publish_batch_request_entries):
        if sum(_bytes(e.get("Message", "")) for e in publish_batch_request_entries) > LIMIT:
            raise BatchRequestTooLong("The length of all the batch messages put together is more than the limit.")
        return original_batch(self, topic_arn, publish_batch_request_entries)

    SNSBackend.publish = publish
    SNSBackend.publish_batch = publish_batch
