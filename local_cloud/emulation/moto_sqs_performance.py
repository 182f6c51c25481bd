"""Keep moto's SQS ``ReceiveMessage`` cost independent of the queue depth (same semantics).

moto 5.2.5 checks each received message's retention through ``get_queue_attributes``, which
recounts every message of the queue (``ApproximateNumberOfMessages`` and friends), and its
``visible``/``delayed`` checks build datetimes per message: a receive of 10 from a queue of
1,000 took ~0.8 s, growing with the depth — an emulator artefact that would swamp any timing of
batched consumers (benchmarks/). Patched inside the local-cloud process:

- the retention check reads the queue's ``MessageRetentionPeriod`` directly (the same value);
- ``Message.visible`` / ``Message.delayed`` compare with ``time.time()`` in milliseconds, the
  same instant moto's ``unix_time_millis()`` computes (no clock mocking runs in server mode);
- sending a message reads ``ContentBasedDeduplication`` from ``Queue.attributes``, which also
  recounts the whole queue three times (``ApproximateNumberOf*``) for every message sent, so a
  send cost grew with the depth of the destination queue: while a send (and its validation and
  enqueueing) runs, those three counts, which it never reads, are not computed (0 in that
  thread only; GetQueueAttributes and every other caller still count);
- ``DeleteMessageBatch`` deleted entry by entry, each scanning the whole queue twice (10,000
  deep: 42 ms per batch of 10 against 8 ms at 1,000): the batch is now matched against the queue
  in one pass. Outcomes are SQS's: each entry succeeds when its receipt handle (current or an
  earlier one of the message) is valid or was already deleted, else fails with
  ``ReceiptHandleIsInvalid``.
"""

from __future__ import annotations

import functools
import threading
import time


def install(ctx) -> None:
    from moto.sqs.models import Message, SQSBackend

    def is_message_valid_based_on_retention_period(self, queue_name: str, message) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return retention + message.sent_timestamp / 1000 > time.time()

    def visible(self) -> bool:
        return time.time() * 1000.0 > self.visible_at

    def delayed(self) -> bool:
        return time.time() * 1000.0 < self.delayed_until

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    Message.visible = property(visible)
    Message.delayed = property(delayed)

    from moto.sqs.models import Queue

    for name in ("approximate_number_of_messages", "approximate_number_of_messages_delayed",
                 "approximate_number_of_messages_not_visible"):  # fmt: skip
        setattr(Queue, name, _uncounted_while_sending(getattr(Queue, name)))
    SQSBackend.delete_message_batch = _delete_message_batch
    SQSBackend.send_message = _sending(SQSBackend.send_message)
    SQSBackend._validate_message = _sending(SQSBackend._validate_message)
    Queue.add_message = _sending(Queue.add_message)


_send = threading.local()


def _sending(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        previous = getattr(_send, "active", False)
        _send.active = True
        try:
            return method(*args, **kwargs)
        finally:
            _send.active = previous

    return wrapper


def _uncounted_while_sending(prop: property) -> property:
    def get(self):
        return 0 if getattr(_send, "active", False) else prop.fget(self)

    return property(get)


def _delete_message_batch(self, queue_name: str, receipts: list[dict]) -> tuple[list[str], list[dict[str, str]]]:
    queue = self.get_queue(queue_name)
    wanted = {entry["ReceiptHandle"] for entry in receipts} - queue.deleted_messages
    if wanted:
        with queue._messages_lock:  # the lock moto's add_message holds: a message sent meanwhile is kept
            kept = []
            for message in queue._messages:
                handles = message.all_receipt_handles
                if wanted.isdisjoint(handles):
                    kept.append(message)
                else:
                    queue.pending_messages.discard(message)
                    queue.deleted_messages.update(handles)
            queue._messages = kept
    succeeded, failed = [], []
    for entry in receipts:
        if entry["ReceiptHandle"] in queue.deleted_messages:
            succeeded.append(entry["Id"])
        else:
            failed.append({
                "Id": entry["Id"], "SenderFault": True, "Code": "ReceiptHandleIsInvalid",
                "Message": f'The input receipt handle "{entry["ReceiptHandle"]}" is not a valid receipt handle.',
            })  # fmt: skip
    return succeeded, failed
