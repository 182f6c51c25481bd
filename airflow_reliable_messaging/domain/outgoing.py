"""A message to send to an SQS queue or publish to an SNS topic, before it is a batch entry (the
hooks write the entries: SQS and SNS name the same things differently)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OutgoingMessage:
    body: str
    attributes: dict  # message attributes as SQS and SNS spell them ({"name": {"DataType", "StringValue"}})
    subject: str | None = None  # SNS only
    trace_header: str | None = None  # SQS only: the AWSTraceHeader system attribute (X-Ray)
    group_id: str | None = None  # FIFO queues and topics
    deduplication_id: str | None = None  # FIFO queues and topics
