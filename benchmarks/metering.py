"""Exact AWS request counting from botocore's event system.

Every botocore client (boto3's, and the one each Airflow AWS hook builds through its own
``boto3.session.Session``) is created by ``botocore.session.Session.create_client``. While
metering is installed, that method is wrapped so each new client gets three handlers on its
``client.meta.events``:

- ``before-call.<service>.<Operation>``: one API call (what the code asked for), per operation;
- ``before-send.<service>.<Operation>``: one HTTP request actually sent (retries included: what
  AWS bills);
- ``after-call.<service>.<Operation>``: the HTTP status (error answers) and the call's duration.

Requests that write the archive's transaction markers (``<prefix>/_transactions/...``: one
conditional PutObject per record with a producer transaction id) are also counted apart
(``Meter.markers``), so request figures can be read with and without them.

A Meter can also model the network: ``Meter(rtt_seconds=0.01)`` sleeps that long in
``before-send``, once per HTTP request, for every metered client alike — the round trip to AWS
that a loopback emulator does not have and that batching saves.

Counts go to the :class:`Meter` that is active when the request is made (process-wide, so the
archive's S3 writer threads are counted). Clients the benchmark itself uses for setup and checks
are created inside :func:`unmetered` and never counted.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_active: Meter | None = None
_creating_unmetered = threading.local()
_installed = False
_started = threading.local()  # per thread: start time of the API call in progress


class Meter:
    """API calls, HTTP requests and error answers per ``service.Operation`` while active."""

    def __init__(self, rtt_seconds: float = 0.0) -> None:
        self.rtt_seconds = rtt_seconds  # a modelled network round trip added to every HTTP request
        self.calls: Counter[str] = Counter()
        self.sends: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)  # wall time inside each operation
        self.last_delete_at: float | None = None  # perf_counter() when the last SQS delete returned
        self.markers = 0  # HTTP requests writing or reading a transaction marker (in ``sends`` too)

    def __enter__(self) -> Meter:
        global _active
        install()
        with _lock:
            if _active is not None:
                raise RuntimeError("a Meter is already active")
            _active = self
        return self

    def __exit__(self, *exc: Any) -> None:
        global _active
        with _lock:
            _active = None

    @property
    def requests(self) -> int:
        """HTTP requests sent (the billed unit; equals ``api_calls`` when nothing was retried)."""
        return sum(self.sends.values())

    @property
    def api_calls(self) -> int:
        return sum(self.calls.values())

    def by_operation(self) -> dict[str, int]:
        return dict(sorted(self.sends.items()))

    def latency_ms(self) -> dict[str, float]:
        """Mean milliseconds per API call of each operation (client side, retries included)."""
        return {op: round(1000 * self.seconds[op] / n, 2) for op, n in sorted(self.calls.items()) if n}

    def count(self, operation: str) -> int:
        """HTTP requests of one operation, ``"sqs.ReceiveMessage"`` or just ``"ReceiveMessage"``."""
        return sum(n for op, n in self.sends.items() if op == operation or op.endswith("." + operation))


DELETES = ("sqs.DeleteMessage", "sqs.DeleteMessageBatch")  # a message leaves its source queue


def _operation(event_name: str) -> str:
    # "before-call.sqs.ReceiveMessage" -> "sqs.ReceiveMessage"
    return event_name.split(".", 1)[1]


def _on_call(event_name: str = "", **_: Any) -> None:
    meter = _active
    _started.at = time.perf_counter()
    if meter is not None:
        with _lock:
            meter.calls[_operation(event_name)] += 1


MARKERS = "/_transactions/"  # (domain.archive_layout.TRANSACTIONS)


def _on_send(event_name: str = "", request: Any = None, **_: Any) -> None:
    meter = _active
    if meter is not None:
        with _lock:
            meter.sends[_operation(event_name)] += 1
            if MARKERS in str(getattr(request, "url", "")):
                meter.markers += 1
        if meter.rtt_seconds:
            time.sleep(meter.rtt_seconds)  # releases the GIL: concurrent requests overlap, as on a network


def _on_after_call(event_name: str = "", http_response: Any = None, **_: Any) -> None:
    meter = _active
    status = getattr(http_response, "status_code", 200)
    if meter is None:
        return
    elapsed = time.perf_counter() - getattr(_started, "at", time.perf_counter())
    operation = _operation(event_name)
    with _lock:
        meter.seconds[operation] += elapsed
        if status >= 400:
            meter.errors[operation] += 1
        elif operation in DELETES:
            meter.last_delete_at = time.perf_counter()


def meter_client(client: Any) -> Any:
    """Register the counting handlers on one client (done automatically once installed)."""
    events = client.meta.events
    events.register("before-call", _on_call, unique_id="bench-meter-call")
    events.register("before-send", _on_send, unique_id="bench-meter-send")
    events.register("after-call", _on_after_call, unique_id="bench-meter-after")
    return client


def install() -> None:
    """Wrap ``botocore.session.Session.create_client`` once per process."""
    global _installed
    if _installed:
        return
    import botocore.session

    original = botocore.session.Session.create_client

    def create_client(self, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        if not getattr(_creating_unmetered, "on", False):
            meter_client(client)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
    _installed = True


@contextmanager
def unmetered() -> Iterator[None]:
    """Clients created inside this block are never counted (setup, seeding, checks)."""
    previous = getattr(_creating_unmetered, "on", False)
    _creating_unmetered.on = True
    try:
        yield
    finally:
        _creating_unmetered.on = previous
