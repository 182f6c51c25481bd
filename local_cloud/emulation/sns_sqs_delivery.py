"""SNS delivery to subscriptions: failed deliveries, subscription dead-letter queues, and the fields
of what an SQS subscriber receives. moto 5.2 stores a subscription's ``RedrivePolicy`` without
effect, fails the publisher's ``Publish`` with NonExistentQueue when a subscribed queue was
deleted, writes a made-up subscription ARN into the envelope's ``UnsubscribeURL``, and breaks
``ReceiveMessage`` on a raw delivery with a Binary message attribute.

Emulated to the SNS developer guide, "Amazon SNS dead-letter queues (DLQs)"
(https://docs.aws.amazon.com/sns/latest/dg/sns-dead-letter-queues.html) and "Configuring an
Amazon SNS dead-letter queue for a subscription"
(https://docs.aws.amazon.com/sns/latest/dg/sns-configure-dead-letter-queue.html):

- A delivery fails on a client-side error (the subscribed endpoint was deleted, e.g. an SQS queue
  deleted or never created, or it refuses SNS's request) or a server-side error past the retry
  policy. The guide: SNS "discards the message — unless a dead-letter queue is attached to the
  subscription"; "failed deliveries don't change the status of your subscriptions". Delivery is
  asynchronous to ``Publish``: the publisher's ``Publish``/``PublishBatch`` succeeds whatever
  happens to a subscriber. (SQS endpoints here fail only with client-side errors; server-side
  retries, up to 23 days on AWS, are not emulated.)
- A message a subscription's filter policy does not match is not delivered to it at all: it is
  no failure and never dead-lettered.
- ``RedrivePolicy`` ``{"deadLetterTargetArn": "<SQS queue ARN>"}``; a FIFO topic's FIFO
  subscription needs a FIFO DLQ. Refused values give ``InvalidParameter`` with AWS's messages
  ("RedrivePolicy: failed to parse JSON.", "RedrivePolicy: deadLetterTargetArn is an invalid
  arn", "RedrivePolicy: must use a FIFO queue as DLQ for a FIFO Subscription to a FIFO Topic.");
  ``""`` removes the policy.
- What lands in the DLQ is what the subscription would have received (the guide does not show
  it; the shapes below are AWS-recorded responses, LocalStack's AWS-validated snapshots
  ``test_redrive_policy_sqs_queue_subscription[True|False]`` and
  ``test_publish_fifo_messages_to_dlq[True|False]``, tests/aws/services/sns/test_sns.snapshot.json):
  raw delivery off: the JSON notification envelope (``Type`` ``Notification``, the published
  ``MessageId``, ``TopicArn``, ``Message``, ``Subject`` when given, ``MessageAttributes`` as
  ``{"Type", "Value"}``, ``UnsubscribeURL`` naming the failing subscription's ARN) and no SQS
  message attributes; raw delivery on: the published body with its message attributes as SQS
  message attributes. No error-describing attributes are added. FIFO: the message keeps its
  ``MessageGroupId`` and ``MessageDeduplicationId``, so a group dead-letters in order.
- A DLQ that cannot take the message (deleted, wrong type): the message is discarded (AWS counts
  it in ``NumberOfNotificationsFailedToRedriveToDlq``); logged here.

Also, as SNS does: the envelope's ``UnsubscribeURL`` is
``https://sns.<region>.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=<subscription ARN>``
(the same AWS-recorded responses); with raw delivery a Binary message attribute arrives as the
SQS Binary attribute it was published as ("Amazon SNS raw message delivery",
https://docs.aws.amazon.com/sns/latest/dg/sns-large-payload-raw-message-delivery.html: message
attributes are sent to SQS as SQS message attributes).

Not emulated: the DLQ's queue policy (AWS needs it to let ``sns.amazonaws.com`` send; moto enforces
no queue policies), KMS permissions of an encrypted DLQ.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import re

log = logging.getLogger(__name__)

SQS_ARN = re.compile(r"^arn:aws[\w-]*:sqs:[a-z0-9-]+:\d{12}:[\w-]{1,80}(\.fifo)?$")


def _invalid(message: str, subscribing: bool):
    from moto.sns.exceptions import SNSInvalidParameter

    prefix = "Invalid parameter: Attributes Reason: " if subscribing else "Invalid parameter: "
    return SNSInvalidParameter(prefix + message)


def validate_redrive_policy(value, topic_arn: str, endpoint: str, subscribing: bool = False) -> None:
    """Raises InvalidParameter for a value SNS refuses; ``""`` (no policy) passes."""
    if value in ("", None):
        return
    try:
        policy = json.loads(value)
    except (TypeError, ValueError):
        raise _invalid("RedrivePolicy: failed to parse JSON.", subscribing) from None
    target = policy.get("deadLetterTargetArn") if isinstance(policy, dict) else None
    if not isinstance(target, str) or not SQS_ARN.match(target):
        raise _invalid("RedrivePolicy: deadLetterTargetArn is an invalid arn", subscribing)
    if topic_arn.endswith(".fifo") and endpoint.endswith(".fifo") and not target.endswith(".fifo"):
        raise _invalid("RedrivePolicy: must use a FIFO queue as DLQ for a FIFO Subscription to a FIFO Topic.", subscribing)


def dead_letter_target(subscription) -> str | None:
    try:
        policy = json.loads(subscription.attributes.get("RedrivePolicy") or "{}")
    except ValueError:
        return None
    return policy.get("deadLetterTargetArn") if isinstance(policy, dict) else None


def _raw_binary(attributes: dict) -> dict:
    """Binary values as bytes: moto's raw delivery hands SNS's base64 text to SQS as the value."""
    return {
        name: {**value, "Value": base64.b64decode(value["Value"])}
        if str(value.get("Type", "")).startswith("Binary") and isinstance(value.get("Value"), str) else value
        for name, value in attributes.items()
    }  # fmt: skip


def install(ctx) -> None:
    from moto.sns import models, responses
    from moto.sns.exceptions import SNSException

    Subscription, Backend, Response = models.Subscription, models.SNSBackend, responses.SNSResponse
    original_publish = Subscription.publish

    def _redrive(subscription, dlq_arn: str, args, kwargs) -> None:
        """Send what the subscription would have received to its DLQ (same format, group, dedup id)."""
        into_dlq = copy.copy(subscription)
        into_dlq.endpoint, into_dlq.protocol = dlq_arn, "sqs"
        into_dlq._filter_policy_matcher = None  # the message already matched
        into_dlq.private_key = subscription.private_key  # reuse the signing key (one per subscription)
        try:
            original_publish(into_dlq, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - AWS: NumberOfNotificationsFailedToRedriveToDlq
            log.warning("SNS could not move a failed delivery of %s to its DLQ %s: %s", subscription.arn, dlq_arn, exc)

    def publish(self, message, message_id, *args, **kwargs):
        """Deliver; a failed delivery goes to the DLQ (or is discarded) and is returned, never raised."""
        args = (message, message_id, *args)
        if self.attributes.get("RawMessageDelivery") and kwargs.get("message_attributes"):
            kwargs["message_attributes"] = _raw_binary(kwargs["message_attributes"])
        try:
            return original_publish(self, *args, **kwargs)
        except SNSException:
            raise  # the publisher's own error (e.g. MessageStructure json without "default")
        except Exception as exc:  # noqa: BLE001 - any endpoint failure is a failed delivery
            dlq_arn = dead_letter_target(self)
            log.warning("SNS delivery to %s failed (%s): %s", self.endpoint, "dead-lettered" if dlq_arn else "discarded", exc)
            if dlq_arn:
                _redrive(self, dlq_arn, args, kwargs)
            return exc

    Subscription.publish = publish

    original_post_data = Subscription.get_post_data

    def get_post_data(self, *args, **kwargs):
        data = original_post_data(self, *args, **kwargs)
        region = self.topic.arn.split(":")[3]
        data["UnsubscribeURL"] = f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={self.arn}"
        return data

    Subscription.get_post_data = get_post_data

    original_set = Backend.set_subscription_attributes

    def set_subscription_attributes(self, arn, name, value):
        if name == "RedrivePolicy":
            subscription = self.subscriptions.get(arn)
            if subscription is not None:
                validate_redrive_policy(value, subscription.topic.arn, subscription.endpoint)
        original_set(self, arn, name, value)

    Backend.set_subscription_attributes = set_subscription_attributes

    original_subscribe = Response.subscribe

    def subscribe(self):
        attributes = self._get_param("Attributes", {}) or {}
        if "RedrivePolicy" in attributes:  # validated before the subscription exists
            validate_redrive_policy(
                attributes["RedrivePolicy"], self._get_param("TopicArn") or "", self._get_param("Endpoint") or "",
                subscribing=True,
            )  # fmt: skip
        return original_subscribe(self)

    Response.subscribe = subscribe
