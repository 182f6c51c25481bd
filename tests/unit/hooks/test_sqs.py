"""SqsMessagingHook on its real boto3 clients answered by Stubbers: the requests it makes (batches
within SQS's limits, entry shapes), what it reports of partial failures, and which Region's client
a queue's calls go to."""

from __future__ import annotations

import pytest

from airflow_reliable_messaging.domain.outgoing import OutgoingMessage

ACCOUNT = "123456789012"
URL = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/audit"
WEST_ARN = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:audit-west"
WEST_URL = f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/audit-west"
KIB = 1024


@pytest.fixture
def hook():
    from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

    return SqsMessagingHook(aws_conn_id="aws_default")


def _ok(*ids: str) -> dict:
    return {"Successful": [{"Id": i, "MessageId": f"mid-{i}", "MD5OfMessageBody": "0" * 32} for i in ids], "Failed": []}


def _sent(stubber, entries: list[dict], queue: str = URL) -> None:
    stubber.add_response("send_message_batch", _ok(*(e["Id"] for e in entries)), {"QueueUrl": queue, "Entries": entries})


def test_send_messages_sends_body_attributes_trace_header_and_fifo_ids_ten_at_a_time(hook, stub):
    """SendMessageBatch takes at most 10 entries; a FIFO queue needs ``MessageGroupId`` and takes
    ``MessageDeduplicationId``; ``AWSTraceHeader`` is the one system attribute it accepts
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatchRequestEntry.html)."""
    attrs = {"source": {"DataType": "String", "StringValue": "orders"}}
    messages = {f"e{i:02}": OutgoingMessage(f"body {i}", attrs, group_id=f"g{i % 3}", deduplication_id=f"d{i}") for i in range(12)}
    messages["e00"] = OutgoingMessage("traced", {}, trace_header="Root=1-5759e988-bd862e3fe1be46a994272793")
    expected = [{"Id": i, "MessageAttributes": m.attributes, "MessageBody": m.body} for i, m in messages.items()]
    expected[0]["MessageSystemAttributes"] = {
        "AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-5759e988-bd862e3fe1be46a994272793"}
    }
    for entry, i in zip(expected[1:], range(1, 12), strict=True):
        entry |= {"MessageGroupId": f"g{i % 3}", "MessageDeduplicationId": f"d{i}"}
    with stub(hook.get_conn()) as stubber:
        _sent(stubber, expected[:10])
        _sent(stubber, expected[10:])
        result = hook.send_messages(URL, messages)
    assert list(result.successful) == list(messages) and not result.failed and result.requests == 2


@pytest.mark.parametrize(("count", "chunks"), [(4, [4]), (5, [4, 1])])
def test_send_batch_fills_a_request_up_to_one_mib(hook, stub, count, chunks):
    """SQS takes up to 1 MiB (1,048,576 bytes) per message and per batch, the sum of the batched
    messages (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html;
    raised from 256 KiB in August 2025): four 256 KiB messages are one request, not four."""
    entries = [{"Id": f"e{i}", "MessageBody": "x" * (256 * KIB)} for i in range(count)]
    with stub(hook.get_conn()) as stubber:
        start = 0
        for size in chunks:
            _sent(stubber, entries[start : start + size])
            start += size
        result = hook.send_batch(URL, entries)
    assert result.requests == len(chunks) and len(result.successful) == count


def test_message_attributes_count_toward_the_one_mib(hook, stub):
    """A message attribute's name, type and value count toward the message size
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html):
    four 256 KiB bodies with an attribute each pass 1 MiB together."""
    attrs = {"k": {"DataType": "String", "StringValue": "v"}}
    messages = {f"e{i}": OutgoingMessage("x" * (256 * KIB), attrs) for i in range(4)}
    entries = [{"Id": i, "MessageAttributes": attrs, "MessageBody": m.body} for i, m in messages.items()]
    with stub(hook.get_conn()) as stubber:
        _sent(stubber, entries[:3])
        _sent(stubber, entries[3:])
        assert hook.send_messages(URL, messages).requests == 2


def test_send_batch_resends_only_the_entries_sqs_failed_without_the_senders_fault(hook, stub, sleeps):
    """A partial failure of SendMessageBatch (HTTP 200, entries in ``Failed``): the internal error is
    sent again to the same queue, the successful entry never (a duplicate), the sender's fault never
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html)."""
    entries = [{"Id": i, "MessageBody": i} for i in ("a", "b", "c")]
    failed_c = {"Id": "c", "Code": "InvalidMessageContents", "Message": "bad character", "SenderFault": True}
    with stub(hook.get_conn()) as stubber:
        stubber.add_response(
            "send_message_batch",
            {"Successful": _ok("a")["Successful"], "Failed": [{"Id": "b", "Code": "InternalError", "SenderFault": False}, failed_c]},
            {"QueueUrl": URL, "Entries": entries},
        )
        _sent(stubber, entries[1:2])
        result = hook.send_batch(URL, entries)
    assert sorted(result.successful) == ["a", "b"] and result.failed == {"c": failed_c}


def test_delete_batch_reports_the_receipts_it_could_not_delete_ten_at_a_time(hook, stub):
    """DeleteMessageBatch: 10 entries per request; an entry SQS refuses (``ReceiptHandleIsInvalid``,
    the sender's fault) is reported, not sent again — the message will be received again, and the
    caller must know it was not deleted
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessageBatch.html)."""
    receipts = {f"r{i:02}": f"handle-{i}" for i in range(11)}
    entries = [{"Id": i, "ReceiptHandle": r} for i, r in receipts.items()]
    refused = {"Id": "r03", "Code": "ReceiptHandleIsInvalid", "Message": "The receipt handle is not valid", "SenderFault": True}
    with stub(hook.get_conn()) as stubber:
        stubber.add_response(
            "delete_message_batch",
            {"Successful": [{"Id": e["Id"]} for e in entries[:10] if e["Id"] != "r03"], "Failed": [refused]},
            {"QueueUrl": URL, "Entries": entries[:10]},
        )
        stubber.add_response(
            "delete_message_batch", {"Successful": [{"Id": "r10"}], "Failed": []}, {"QueueUrl": URL, "Entries": entries[10:]}
        )
        result = hook.delete_batch(URL, receipts)
    assert result.failed == {"r03": refused}
    assert set(result.successful) == set(receipts) - {"r03"} and result.requests == 2


def test_change_visibility_batch_sends_the_timeout_with_every_entry(hook, stub):
    """ChangeMessageVisibilityBatch: each entry carries its ``VisibilityTimeout`` (0 releases the message)
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibilityBatchRequestEntry.html)."""
    with stub(hook.get_conn()) as stubber:
        stubber.add_response(
            "change_message_visibility_batch",
            {"Successful": [{"Id": "a"}], "Failed": [{"Id": "b", "Code": "MessageNotInflight", "SenderFault": True}]},
            {
                "QueueUrl": URL,
                "Entries": [
                    {"Id": "a", "ReceiptHandle": "ha", "VisibilityTimeout": 0},
                    {"Id": "b", "ReceiptHandle": "hb", "VisibilityTimeout": 0},
                ],
            },
        )
        result = hook.change_visibility_batch(URL, {"a": "ha", "b": "hb"}, 0)
    assert list(result.successful) == ["a"] and list(result.failed) == ["b"]


def test_receive_batch_asks_for_every_attribute_and_at_most_ten_messages(hook, stub):
    """ReceiveMessage takes 1 to 10 for ``MaxNumberOfMessages``
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html)."""
    asked = {"QueueUrl": URL, "WaitTimeSeconds": 0, "MessageSystemAttributeNames": ["All"], "MessageAttributeNames": ["All"]}
    with stub(hook.get_conn()) as stubber:
        stubber.add_response(
            "receive_message", {"Messages": [{"MessageId": "m", "Body": "b"}]}, asked | {"MaxNumberOfMessages": 10, "VisibilityTimeout": 30}
        )
        stubber.add_response("receive_message", {}, asked | {"MaxNumberOfMessages": 1})
        assert hook.receive_batch(URL, max_messages=50, visibility_timeout=30) == [{"MessageId": "m", "Body": "b"}]
        assert hook.receive_batch(URL, max_messages=0) == []  # an empty queue: no Messages at all


def test_a_queue_url_is_used_as_given_and_a_name_is_resolved_in_the_connections_region(hook, stub):
    with stub(hook.get_conn()) as stubber:
        assert hook.resolve_queue_url(URL) == URL  # no call
        stubber.add_response("get_queue_url", {"QueueUrl": URL}, {"QueueName": "audit"})
        assert hook.resolve_queue_url("audit") == URL


def test_a_queue_arn_is_resolved_in_its_region_and_later_calls_on_its_url_stay_there(hook, stub):
    """An ARN names the queue's Region and account (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html);
    SQS answers for a queue only in its Region (https://docs.aws.amazon.com/general/latest/gr/sqs-service.html).
    A URL that names no Region (a VPC endpoint's) found for the ARN is called in the ARN's Region too."""
    vpce_url = f"https://vpce-0123-abcd.sqs.eu-west-1.vpce.amazonaws.com/{ACCOUNT}/audit-west"
    default = hook.get_conn()
    west = hook.client_for(WEST_ARN)
    assert default.meta.region_name == "us-east-1" and west.meta.region_name == "eu-west-1"
    with stub(default), stub(west) as stubber:  # the default client's Stubber answers nothing: any call there fails
        stubber.add_response("get_queue_url", {"QueueUrl": vpce_url}, {"QueueName": "audit-west", "QueueOwnerAWSAccountId": ACCOUNT})
        stubber.add_response(
            "get_queue_attributes",
            {"Attributes": {"QueueArn": WEST_ARN, "FifoQueue": "false"}},
            {"QueueUrl": vpce_url, "AttributeNames": ["QueueArn", "FifoQueue"]},
        )
        assert hook.queue_identity(WEST_ARN) == (vpce_url, WEST_ARN, False)
        _sent(stubber, [{"Id": "a", "MessageAttributes": {}, "MessageBody": "m"}], queue=vpce_url)
        assert not hook.send_messages(vpce_url, {"a": OutgoingMessage("m", {})}).failed


@pytest.mark.parametrize(
    ("queue", "region"),
    [
        (WEST_URL, "eu-west-1"),
        (f"https://eu-west-1.queue.amazonaws.com/{ACCOUNT}/audit-west", "eu-west-1"),  # the legacy endpoint
        (f"https://sqs.cn-north-1.amazonaws.com.cn/{ACCOUNT}/audit", "cn-north-1"),
        (URL, "us-east-1"),
        (f"http://127.0.0.1:5000/{ACCOUNT}/audit", "us-east-1"),  # names no Region: the connection's
    ],
)
def test_calls_on_a_queue_url_go_to_the_client_of_the_region_its_host_names(hook, stub, queue, region):
    """A queue URL's host names its Region (``sqs.<region>.amazonaws.com``, legacy ``<region>.queue.amazonaws.com``,
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-queue-message-identifiers.html)."""
    client = hook.client_for(queue)
    assert client.meta.region_name == region
    assert (client is hook.get_conn()) is (region == "us-east-1")
    assert hook.client_for(queue) is client  # one client per Region
    with stub(client) as stubber:
        stubber.add_response(
            "get_queue_attributes", {"Attributes": {"QueueArn": "arn"}}, {"QueueUrl": queue, "AttributeNames": ["QueueArn"]}
        )
        assert hook.queue_arn(queue) == "arn"


def test_an_explicit_region_that_is_not_the_queues_is_refused_before_any_call(stub):
    """With ``region_name`` set, a queue of another Region is a configuration error naming both (AWS
    would answer that the queue does not exist), raised before any request."""
    from airflow_reliable_messaging.exceptions import ConfigurationError
    from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

    hook = SqsMessagingHook(aws_conn_id="aws_default", region_name="us-east-1")
    with stub(hook.get_conn()):
        for queue in (WEST_URL, WEST_ARN):
            with pytest.raises(ConfigurationError, match="in Region eu-west-1, but region_name is us-east-1"):
                hook.reachable_queue(queue)
        with pytest.raises(ConfigurationError, match="region_name"):
            hook.send_messages(WEST_URL, {"a": OutgoingMessage("m", {})})
    agreeing = SqsMessagingHook(aws_conn_id="aws_default", region_name="eu-west-1")
    assert agreeing.client_for(WEST_ARN) is agreeing.get_conn()


def test_an_unreachable_queue_is_reported_with_sqs_error_code(hook, stub):
    """GetQueueUrl of a deleted queue answers ``QueueDoesNotExist``
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_GetQueueUrl.html)."""
    from airflow_reliable_messaging.exceptions import QueueUnreachable

    with stub(hook.get_conn()) as stubber:
        stubber.add_client_error("get_queue_url", service_error_code="AWS.SimpleQueueService.NonExistentQueue", http_status_code=400)
        with pytest.raises(QueueUnreachable, match="NonExistentQueue"):
            hook.reachable_queue("gone")


@pytest.mark.parametrize(
    ("code", "message", "already_running", "unsupported"),
    [
        (
            "InvalidParameterValue",
            "There is already a task running. Only one active task is allowed for each source queue arn at a given time.",
            True,
            True,
        ),
        ("UnsupportedOperation", "Source queue must be configured as a Dead Letter Queue.", False, True),
        ("AccessDenied", "Access to the resource is denied.", False, False),
    ],
)
def test_start_message_move_task_classifies_a_refusal(hook, stub, code, message, already_running, unsupported):
    """StartMessageMoveTask documents no code for "a task already runs on the source queue"
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_StartMessageMoveTask.html):
    SQS's text tells it; the call goes to the source queue's Region."""
    from airflow_reliable_messaging.exceptions import MessageMoveTaskRefused

    west = hook.client_for(WEST_ARN)
    with stub(hook.get_conn()), stub(west) as stubber:
        stubber.add_client_error("start_message_move_task", service_error_code=code, service_message=message, http_status_code=400)
        with pytest.raises(MessageMoveTaskRefused) as refused:
            hook.start_message_move_task(WEST_ARN, max_per_second=5)
    assert (refused.value.code, refused.value.already_running, refused.value.unsupported) == (code, already_running, unsupported)
    with stub(west) as stubber:
        stubber.add_response("start_message_move_task", {"TaskHandle": "h"}, {"SourceArn": WEST_ARN, "MaxNumberOfMessagesPerSecond": 5})
        assert hook.start_message_move_task(WEST_ARN, max_per_second=5) == "h"


def test_dead_letter_source_queues_reads_every_page(hook, stub):
    """ListDeadLetterSourceQueues pages with ``NextToken``
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ListDeadLetterSourceQueues.html)."""
    with stub(hook.get_conn()) as stubber:
        stubber.add_response("list_dead_letter_source_queues", {"queueUrls": ["u1", "u2"], "NextToken": "t"}, {"QueueUrl": URL})
        stubber.add_response("list_dead_letter_source_queues", {"queueUrls": ["u3"]}, {"QueueUrl": URL, "NextToken": "t"})
        assert hook.dead_letter_source_queues(URL) == ["u1", "u2", "u3"]


def test_a_queue_without_a_policy_has_none(hook, stub):
    """SQS leaves an unset attribute, and then ``Attributes`` itself, out of GetQueueAttributes' answer
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_GetQueueAttributes.html)."""
    with stub(hook.get_conn()) as stubber:
        stubber.add_response("get_queue_attributes", {}, {"QueueUrl": URL, "AttributeNames": ["Policy"]})
        assert hook.queue_policy(URL) is None


def test_a_message_move_task_is_cancelled_in_its_source_queues_region(hook, stub):
    """A message-move task lives in its source queue's Region, and its ``TaskHandle`` is opaque
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CancelMessageMoveTask.html):
    the cancel of a task on a DLQ of another Region goes to that Region's client, given the source
    ARN (on the connection's Region SQS would answer ResourceNotFoundException, and the killed
    redrive would go on moving messages)."""
    west = hook.client_for(WEST_ARN)
    with stub(hook.get_conn()) as default_stubber, stub(west) as stubber:
        stubber.add_response("cancel_message_move_task", {"ApproximateNumberOfMessagesMoved": 7}, {"TaskHandle": "h-west"})
        assert hook.cancel_message_move_task("h-west", WEST_ARN) == 7
        default_stubber.add_response("cancel_message_move_task", {"ApproximateNumberOfMessagesMoved": 2}, {"TaskHandle": "h"})
        assert hook.cancel_message_move_task("h") == 2  # no source known: the connection's Region
