"""SQS FIFO message groups: a group is held back only while one of its messages is in flight.

moto 5.2.5 holds a group back while any message it ever handed out is still listed as pending,
including messages whose visibility timeout expired. When several received messages of a group
time out together (a consumer that failed a batch), the later ones were no longer held behind the
earlier ones, so the group was handed out - and, past ``maxReceiveCount``, dead-lettered - out of
order (with ``maxReceiveCount`` 1 a group's c0, c1, c2, c3 reached the DLQ as c1, c3, c0, c2).

SQS developer guide, "FIFO queue delivery logic"
(https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-queues-understanding-logic.html):
messages of a group are received in the order they were sent; the knowledge-center article
"Why doesn't my Amazon SQS FIFO queue return all messages or messages in other message groups?"
(https://repost.aws/knowledge-center/sqs-fifo-messages-not-returned): "Inflight messages block
delivery of available messages within the same message group", and a message whose visibility
timeout expired is available again. A message over ``maxReceiveCount`` moves to the DLQ when it
would be received ("Using dead-letter queues in Amazon SQS"), so a group dead-letters in the
order it is handed out.
"""

from __future__ import annotations


def install(ctx) -> None:
    from moto.sqs.models import Queue

    def pending_message_groups(self) -> set[str]:
        return {m.group_id for m in self._pending_messages if m.group_id is not None and not m.visible}

    Queue.pending_message_groups = property(pending_message_groups)
