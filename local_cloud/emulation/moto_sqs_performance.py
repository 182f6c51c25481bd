"""Keep moto's SQS ``ReceiveMessage`` cost independent of the queue depth (same semantics).

moto 5.2.5 checks each received message's retention through ``get_queue_attributes``, which
recounts every message of the queue (``ApproximateNumberOfMessages`` and friends), and its
``visible``/``delayed`` checks build datetimes per message: a receive of 10 from a queue of
1,000 took ~0.8 s, growing with the depth — an emulator artefact that would swamp any timing of
batched consumers (benchmarks/). Patched inside the local-cloud process:

- the retention check reads the queue's ``MessageRetentionPeriod`` directly (the same value);
- ``Message.visible`` / ``Message.delayed`` compare with ``time.time()`` in milliseconds, the
  same instant moto's ``unix_time_millis()`` computes (no clock mocking runs in server mode).
"""

from __future__ import annotations

import time

_installed = False


def install(ctx) -> None:
    global _installed
    if _installed:
        return
    _installed = True
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
