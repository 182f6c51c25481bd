"""Exceptions raised by the provider. Messages name what is wrong and never carry secrets."""

from __future__ import annotations


class ReliableMessagingError(Exception):
    """Base class for this provider's errors."""


class ConfigurationError(ReliableMessagingError, ValueError):
    """A parameter, Param, Variable or connection value is missing or invalid.

    ``field`` names the offending setting so the UI / log message points at it.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class RecordError(ReliableMessagingError):
    """A single record cannot be processed; it goes to quarantine or a DLQ with this reason."""


class LoadError(ReliableMessagingError):
    """A Snowflake load step failed (a file was rejected, a reconciliation mismatched...)."""


class ReplayError(ReliableMessagingError):
    """A replay could not be started or did not complete (SNS refused it, it failed, targets failed)."""


class RedriveError(ReliableMessagingError):
    """The redrive could not finish (a failed move task, messages that could not be sent)."""


class QueueUnreachable(ReliableMessagingError):
    """SQS answered with an error when asked for a queue (gone, access denied): ``code`` is SQS's."""

    def __init__(self, queue: str, code: str | None) -> None:
        self.code = code
        super().__init__(f"{queue} cannot be reached ({code})")


class MessageMoveTaskRefused(ReliableMessagingError):
    """SQS answered ``StartMessageMoveTask`` with an error: no task was started. ``already_running``:
    a task runs on the source queue; ``unsupported``: SQS does not move these messages (e.g. a
    Region or SDK generation that refuses FIFO queues). The text is SQS's error."""

    def __init__(self, text: str, code: str | None, message: str | None, *, already_running: bool, unsupported: bool) -> None:
        self.code, self.message = code, message
        self.already_running, self.unsupported = already_running, unsupported
        super().__init__(text)


class ObjectUnreadable(ReliableMessagingError):
    """One S3 object cannot be read for a reason of its own (gone, in an archive storage class,
    access or KMS key denied, encrypted with a customer key): that object alone is reported."""

    def __init__(self, bucket: str, key: str, code: str) -> None:
        self.code = code
        super().__init__(f"s3://{bucket}/{ascii(key)[1:-1]} cannot be read ({code})")
