"""SQS dead-letter queue redrive: ``StartMessageMoveTask``, ``ListMessageMoveTasks``,
``CancelMessageMoveTask`` (moto 5.2 answers them with NotImplemented).

Emulated to the SQS API reference and developer guide:

- The source must be the dead-letter queue of at least one SQS queue, else
  ``InvalidParameterValue`` "Source queue must be configured as a Dead Letter Queue.".
  Unknown queues: ``ResourceNotFoundException``.
- No ``DestinationArn``: each message goes back to the queue it was dead-lettered from (recorded
  in the message system attribute ``DeadLetterQueueSourceArn`` when moto moves a message to its
  DLQ, which ``ReceiveMessage`` also returns on request, as SQS does). A message without that
  record (sent straight to the DLQ) goes to the DLQ's only source queue; with several sources the
  task fails (``FailureReason`` ``AWS.SimpleQueueService.InvalidParameterValue``).
- ``MaxNumberOfMessagesPerSecond`` 1..500; unset, SQS "optimises" the rate: the emulation moves
  ``DEFAULT_RATE`` (50) messages per second.
- One active (RUNNING or CANCELLING) task per source, else ``InvalidParameterValue``
  "There is already a task running. Only one active task is allowed for a source queue arn at a
  given time.".
- ``ApproximateNumberOfMessagesToMove`` is the DLQ's depth (visible + in flight) when the task
  starts; the task moves those messages, oldest first, and completes when each of them was moved
  or deleted by someone else (in-flight ones are moved once visible again).
- Moved messages get a new message id and enqueue time (sent through moto's backend), keep body,
  message attributes, ``AWSTraceHeader``, and on FIFO queues group and deduplication ids. FIFO
  sources need a FIFO destination and standard sources a standard one.
- A destination deleted mid-task: status ``FAILED``, ``FailureReason``
  ``AWS.SimpleQueueService.NonExistentQueue``; unmoved messages stay in the DLQ.
- ``TaskHandle`` is listed only while RUNNING; ``CancelMessageMoveTask`` only accepts a RUNNING
  task (``ResourceNotFoundException`` otherwise), answers ``ApproximateNumberOfMessagesMoved``,
  goes CANCELLING then CANCELLED; moved messages stay moved.
- ``StartedTimestamp`` in epoch milliseconds; ``ListMessageMoveTasks`` returns the most recent
  ``MaxResults`` (1..10, default 1) tasks, newest first.

Also, as SQS does: a message moved from a FIFO queue to its FIFO DLQ has its deduplication id
replaced by its message id.
"""

from __future__ import annotations

import base64
import contextvars
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

DEFAULT_RATE = 50  # messages/s when MaxNumberOfMessagesPerSecond is unset
MAX_RATE = 500
SOURCE_ATTRIBUTE = "DeadLetterQueueSourceArn"
ACTIONS = ("StartMessageMoveTask", "ListMessageMoveTasks", "CancelMessageMoveTask")
TICK = 0.05  # seconds between two bursts of moves

_dead_lettering_from: contextvars.ContextVar[str | None] = contextvars.ContextVar("dlq_source", default=None)
_received = threading.local()  # per request thread: the messages the backend's receive returned


class SqsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400, query_code: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.query_code = query_code or code


def _invalid(message: str) -> SqsError:
    return SqsError("InvalidParameterValue", message)


def _not_found(message: str) -> SqsError:
    return SqsError("ResourceNotFoundException", message, query_code="ResourceNotFoundException")


@dataclass
class MoveTask:
    task_id: str
    source_arn: str
    destination_arn: str | None
    rate: int | None
    started_ms: int
    to_move: list  # moto Message objects, oldest first
    status: str = "RUNNING"
    moved: int = 0
    failure_reason: str | None = None
    cancel_requested: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def handle(self) -> str:
        raw = json.dumps({"taskId": self.task_id, "sourceArn": self.source_arn}, separators=(",", ":"))
        return base64.b64encode(raw.encode()).decode()

    def entry(self) -> dict:
        out: dict = {
            "Status": self.status,
            "SourceArn": self.source_arn,
            "ApproximateNumberOfMessagesMoved": self.moved,
            "ApproximateNumberOfMessagesToMove": len(self.to_move),
            "StartedTimestamp": self.started_ms,
        }
        if self.status == "RUNNING":
            out["TaskHandle"] = self.handle
        if self.destination_arn:
            out["DestinationArn"] = self.destination_arn
        if self.rate is not None:
            out["MaxNumberOfMessagesPerSecond"] = self.rate
        if self.failure_reason:
            out["FailureReason"] = self.failure_reason
        return out


class MessageMoveService:
    """The three actions, over moto's in-process SQS backends."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.tasks: dict[str, list[MoveTask]] = {}  # source ARN -> tasks, oldest first
        self.lock = threading.Lock()

    # -- moto access ---------------------------------------------------------------------------
    @staticmethod
    def _parse_arn(arn, field_name: str) -> tuple[str, str, str]:
        parts = arn.split(":") if isinstance(arn, str) else []
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not parts[5]:
            raise _invalid(f"Value {arn} for parameter {field_name} is invalid. Reason: Invalid queue ARN.")
        return parts[4], parts[3], parts[5]  # account, region, name

    def _queue(self, arn: str, field_name: str = "SourceArn"):
        from moto.sqs.exceptions import QueueDoesNotExist
        from moto.sqs.models import sqs_backends

        account, region, name = self._parse_arn(arn, field_name)
        try:
            return sqs_backends[account][region].get_queue(name)
        except QueueDoesNotExist:
            raise _not_found("The resource that you specified for the " + field_name + " parameter does not exist.") from None

    def _queue_or_none(self, arn: str):
        try:
            return self._queue(arn)
        except SqsError:
            return None

    @staticmethod
    def _backend(queue):
        from moto.sqs.models import sqs_backends

        return sqs_backends[queue.account_id][queue.region]

    def _sources_of(self, dlq) -> list:
        return self._backend(dlq).list_dead_letter_source_queues(dlq.name)

    # -- actions -------------------------------------------------------------------------------
    def start(self, params: dict) -> dict:
        source_arn = params.get("SourceArn")
        if not source_arn:
            raise SqsError("MissingParameter", "The request must contain the parameter SourceArn.")
        source = self._queue(source_arn)
        if not self._sources_of(source):
            raise _invalid("Source queue must be configured as a Dead Letter Queue.")
        rate = params.get("MaxNumberOfMessagesPerSecond")
        if rate is not None and (not isinstance(rate, int) or isinstance(rate, bool) or not 1 <= rate <= MAX_RATE):
            raise _invalid(
                f"Value {rate} for parameter MaxNumberOfMessagesPerSecond is invalid. Reason: Must be an integer between 1 and {MAX_RATE}."
            )
        destination_arn = params.get("DestinationArn") or None
        if destination_arn:
            destination = self._queue(destination_arn, "DestinationArn")
            if destination is source:
                raise _invalid("Source queue and destination queue cannot be the same queue.")
            if bool(destination.fifo_queue) != bool(source.fifo_queue):
                raise _invalid("The source queue and the destination queue must be of the same queue type.")
        with self.lock:
            history = self.tasks.setdefault(source.queue_arn, [])
            if any(t.status in ("RUNNING", "CANCELLING") for t in history):
                raise _invalid("There is already a task running. Only one active task is allowed for a source queue arn at a given time.")
            snapshot = sorted(list(source._messages), key=lambda m: m.sent_timestamp or 0)
            task = MoveTask(
                task_id=str(uuid.uuid4()),
                source_arn=source.queue_arn,
                destination_arn=destination_arn,
                rate=rate,
                started_ms=int(time.time() * 1000),
                to_move=snapshot,
            )
            history.append(task)
        threading.Thread(target=self._run, args=(task,), name=f"message-move-{task.task_id}", daemon=True).start()
        return {"TaskHandle": task.handle}

    def list(self, params: dict) -> dict:
        source_arn = params.get("SourceArn")
        if not source_arn:
            raise SqsError("MissingParameter", "The request must contain the parameter SourceArn.")
        source = self._queue(source_arn)
        max_results = params.get("MaxResults", 1)
        if max_results is None:
            max_results = 1
        if not isinstance(max_results, int) or not 1 <= max_results <= 10:
            raise _invalid(f"Value {max_results} for parameter MaxResults is invalid. Reason: Must be between 1 and 10.")
        with self.lock:
            history = list(self.tasks.get(source.queue_arn, []))
        return {"Results": [t.entry() for t in reversed(history)][:max_results]}

    def cancel(self, params: dict) -> dict:
        handle = params.get("TaskHandle")
        if not handle:
            raise SqsError("MissingParameter", "The request must contain the parameter TaskHandle.")
        try:
            decoded = json.loads(base64.b64decode(handle, validate=True))
            task_id, source_arn = decoded["taskId"], decoded["sourceArn"]
        except (ValueError, KeyError, TypeError):
            raise _invalid(f"Value {handle} for parameter TaskHandle is invalid.") from None
        with self.lock:
            task = next((t for t in self.tasks.get(source_arn, []) if t.task_id == task_id), None)
            if task is None or task.status != "RUNNING":
                raise _not_found("Task does not exist, or it is not in the RUNNING status.")
            task.status = "CANCELLING"
            task.cancel_requested = True
            return {"ApproximateNumberOfMessagesMoved": task.moved}

    # -- the mover -----------------------------------------------------------------------------
    def _run(self, task: MoveTask) -> None:
        rate = task.rate or DEFAULT_RATE
        pending = list(task.to_move)
        allowance, last = 0.0, time.monotonic()
        try:
            while pending:
                if task.cancel_requested:
                    task.status = "CANCELLED"
                    return
                now = time.monotonic()
                allowance = min(allowance + (now - last) * rate, max(rate * TICK * 2, 1.0))
                last = now
                source = self._queue_or_none(task.source_arn)
                if source is None:
                    self._fail(task, "AWS.SimpleQueueService.NonExistentQueue")
                    return
                present = {id(m) for m in list(source._messages)}
                still = []
                for message in pending:
                    if id(message) not in present:
                        continue  # deleted (or moved) by someone else: nothing to move
                    if allowance < 1 or not message.visible:
                        still.append(message)
                        continue
                    reason = self._move(task, source, message)
                    if reason:
                        self._fail(task, reason)
                        return
                    allowance -= 1
                pending = still
                if pending:
                    time.sleep(TICK)
            task.status = "COMPLETED"
        except Exception:  # noqa: BLE001 - an emulator bug must show as a failed task, not a hang
            log.exception("message move task %s crashed", task.task_id)
            self._fail(task, "AWS.SimpleQueueService.InternalError")

    @staticmethod
    def _fail(task: MoveTask, reason: str) -> None:
        task.failure_reason = reason
        task.status = "FAILED"

    def _move(self, task: MoveTask, source, message) -> str | None:
        """Move one message; the failure reason when the task cannot go on."""
        destination_arn = task.destination_arn or (message.system_attributes or {}).get(SOURCE_ATTRIBUTE)
        if not destination_arn:
            sources = self._sources_of(source)
            if len(sources) != 1:
                return "AWS.SimpleQueueService.InvalidParameterValue"
            destination_arn = sources[0].queue_arn
        destination = self._queue_or_none(destination_arn)
        if destination is None:
            return "AWS.SimpleQueueService.NonExistentQueue"
        system = {k: v for k, v in (message.system_attributes or {}).items() if k != SOURCE_ATTRIBUTE}
        self._backend(destination).send_message(
            destination.name,
            message.body,
            message_attributes=message.message_attributes or None,
            delay_seconds=0,
            deduplication_id=message.deduplication_id if destination.fifo_queue else None,
            group_id=message.group_id if destination.fifo_queue else None,
            system_attributes=system or None,
        )
        with source._messages_lock:
            try:
                source._messages.remove(message)
            except ValueError:
                pass
            source.pending_messages.discard(message)
            source.deleted_messages.update(h for h in message.all_receipt_handles if h)
        task.moved += 1
        return None


# -- moto patches: remember where a dead-lettered message came from --------------------------------
def install(ctx) -> None:
    """Record ``DeadLetterQueueSourceArn`` when moto dead-letters a message, and return it."""
    from moto.sqs.models import Queue, SQSBackend
    from moto.sqs.responses import SQSResponse

    original_receive = SQSBackend.receive_message
    original_add = Queue.add_message
    original_response = SQSResponse.receive_message

    def receive_message(self, queue_name, *args, **kwargs):
        token = _dead_lettering_from.set(self.get_queue(queue_name).queue_arn)
        try:
            received = original_receive(self, queue_name, *args, **kwargs)
        finally:
            _dead_lettering_from.reset(token)
        _received.messages = received  # the response below reads their system attributes
        return received

    def add_message(self, message):
        source_arn = _dead_lettering_from.get()
        if source_arn and source_arn != self.queue_arn:  # moto is moving it to this DLQ
            message.system_attributes = dict(message.system_attributes or {})
            message.system_attributes[SOURCE_ATTRIBUTE] = source_arn
            if self.fifo_queue:
                message.deduplication_id = message.id
        token = _dead_lettering_from.set(None)
        try:
            return original_add(self, message)
        finally:
            _dead_lettering_from.reset(token)

    def response_receive_message(self):
        _received.messages = None
        result = original_response(self)
        received, _received.messages = getattr(_received, "messages", None), None
        wanted = set(self._get_param("AttributeNames", []) or []) | set(self._get_param("MessageSystemAttributeNames", []) or [])
        if not wanted & {"All", SOURCE_ATTRIBUTE}:
            return result
        messages = (result.result or {}).get("Messages") if isinstance(result.result, dict) else None
        if messages:
            if received is not None:  # the messages this request received (not a scan of the queue)
                by_id = {m.id: m for m in received}
            else:
                queue = self.sqs_backend.get_queue(self._get_queue_name())
                by_id = {m.id: m for m in list(queue._messages)}
            for msg in messages:
                origin = (getattr(by_id.get(msg["MessageId"]), "system_attributes", None) or {}).get(SOURCE_ATTRIBUTE)
                if origin:
                    msg.setdefault("Attributes", {})[SOURCE_ATTRIBUTE] = origin
        return result

    SQSBackend.receive_message = receive_message
    Queue.add_message = add_message
    SQSResponse.receive_message = response_receive_message


# -- the WSGI middleware -------------------------------------------------------------------------
def wrap(app, ctx):
    service = MessageMoveService(ctx)
    ctx.state["sqs_message_move"] = service
    handlers = {
        "AmazonSQS.StartMessageMoveTask": service.start,
        "AmazonSQS.ListMessageMoveTasks": service.list,
        "AmazonSQS.CancelMessageMoveTask": service.cancel,
    }

    def middleware(environ, start_response):
        handler = handlers.get(environ.get("HTTP_X_AMZ_TARGET", ""))
        if handler is None:
            return app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else b""
            params = json.loads(raw or b"{}")
            status, body, headers = 200, handler(params), []
        except SqsError as err:
            status = err.status
            body = {"__type": f"com.amazonaws.sqs#{err.code}", "message": err.message}
            headers = [("x-amzn-query-error", f"{err.query_code};Sender")]
        except ValueError:
            status, body, headers = 400, {"__type": "com.amazonaws.sqs#SerializationException"}, []
        payload = json.dumps(body).encode()
        headers += [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("Content-Length", str(len(payload))),
            ("x-amzn-RequestId", str(uuid.uuid4())),
        ]
        start_response(f"{status} {'OK' if status == 200 else 'Bad Request'}", headers)
        return [payload]

    return middleware
