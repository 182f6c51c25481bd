"""SQS message limits moto 5.2.5 does not enforce, to the SQS API reference and developer guide.

- At most 10 message attributes per message ("Each message can have up to 10 attributes",
  https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html),
  else ``InvalidParameterValue`` "Number of message attributes [N] exceeds the allowed maximum [10].".
- The size limit (the queue's ``MaximumMessageSize``, at most 1 MiB) counts UTF-8 bytes of the
  body *and* every component of every message attribute (name, type, value: "All components of a
  message attribute are included in the 1 MiB message size restriction", same page); moto counted
  the body's characters only. Over it: ``InvalidParameterValue`` "One or more parameters are
  invalid. Reason: Message must be shorter than N bytes.". ``SendMessageBatch``'s 1 MiB total
  (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html:
  "the sum of the individual lengths of all of the batched messages") counts the same way:
  ``BatchRequestTooLong``.
- A body (or String attribute value) with a character outside ``#x9 | #xA | #xD | #x20-#xD7FF |
  #xE000-#xFFFD | #x10000-#x10FFFF`` is refused with ``InvalidMessageContents``
  (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html).

Every message sent through moto's backend is checked, including what SNS delivers to a queue (a
raw delivery with more than 10 attributes fails there, as the SNS guide says it does:
https://docs.aws.amazon.com/sns/latest/dg/SNSMessageAttributes.html). A batch is checked whole
before any entry is sent, as moto checks its other rules (whether SQS refuses such an entry alone
in ``Failed`` instead is not documented).
"""

from __future__ import annotations

import re

MAX_ATTRIBUTES = 10
_INVALID_CHAR = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def message_bytes(body: str, attributes: dict | None) -> int:
    """UTF-8 bytes of the body plus each attribute's name, type and value."""
    size = len(body.encode("utf-8", "surrogatepass"))
    for name, attr in (attributes or {}).items():
        value = attr.get("StringValue", attr.get("BinaryValue", b""))
        value_size = len(value) if isinstance(value, bytes) else len(str(value).encode("utf-8", "surrogatepass"))
        size += len(name.encode()) + len(str(attr.get("DataType", "")).encode()) + value_size
    return size


def _invalid_contents(message: str):
    from moto.sqs.exceptions import SQSException

    class InvalidMessageContents(SQSException):
        code = "InvalidMessageContents"

    return InvalidMessageContents(message)


def check(queue, body: str, attributes: dict | None) -> None:
    from moto.sqs.exceptions import InvalidParameterValue

    attributes = attributes or {}
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidParameterValue(f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].")
    limit = int(queue.maximum_message_size)
    if message_bytes(body, attributes) > limit:
        raise InvalidParameterValue(f"One or more parameters are invalid. Reason: Message must be shorter than {limit} bytes.")
    texts = [body] + [str(a["StringValue"]) for a in attributes.values() if "StringValue" in a]
    for text in texts:
        bad = _INVALID_CHAR.search(text)
        if bad:
            raise _invalid_contents(
                f"Invalid binary character '#x{ord(bad.group()):X}' was found in the message body, the set of "
                "allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"
            )


def install(ctx) -> None:
    from moto.sqs.exceptions import BatchRequestTooLong
    from moto.sqs.models import MAXIMUM_MESSAGE_LENGTH, SQSBackend

    original_send, original_batch = SQSBackend.send_message, SQSBackend.send_message_batch

    def send_message(self, queue_name, message_body, message_attributes=None, *args, **kwargs):
        check(self.get_queue(queue_name), message_body, message_attributes)
        return original_send(self, queue_name, message_body, message_attributes, *args, **kwargs)

    def send_message_batch(self, queue_name, entries):
        queue = self.get_queue(queue_name)
        total = sum(message_bytes(e["MessageBody"], e.get("MessageAttributes")) for e in entries.values())
        if total > MAXIMUM_MESSAGE_LENGTH:
            raise BatchRequestTooLong(total)
        for entry in entries.values():
            check(queue, entry["MessageBody"], entry.get("MessageAttributes"))
        return original_batch(self, queue_name, entries)

    SQSBackend.send_message = send_message
    SQSBackend.send_message_batch = send_message_batch
