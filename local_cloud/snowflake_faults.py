"""Fault injection in front of the Snowflake emulator: throttling, 5xx, timeouts, dropped
connections and statement errors, at a rate or at a chosen call, for chosen statements.

An ASGI middleware (outermost around fakesnow's app) on the Snowflake connector's HTTP protocol
(``/session/v1/login-request``, ``/queries/v1/query-request?requestId=...``, ``/session``...).
Per rule it answers a matching request with the fault instead of (``when: "before"``, default:
the statement never ran) or after (``when: "after"``: the statement ran, its answer is lost)
fakesnow:

- ``throttle``: HTTP 429 (the connector retries queries and logins, with backoff).
- ``5xx``: HTTP ``status`` (default 503; 500/502/504 too), retried by the connector.
- ``delay``: sleep ``delay`` seconds, then answer normally (a client whose ``socket_timeout`` is
  shorter sees a read timeout and retries while the statement runs).
- ``drop``: the TCP connection is closed without an answer (the connector retries, as after a
  timeout or a reset).
- ``error``: a Snowflake error answer (HTTP 200, ``success: false``, ``code`` default ``000603``
  "SQL execution internal error") that the connector does not retry: the statement fails.

A rule: ``{"fault": "5xx", "statement": "^\\s*MERGE\\s+INTO", "nth": 1}``. ``endpoint`` is
``query`` (default), ``login``, ``session``, ``*`` or a list; ``statement`` a regular expression
searched (case-insensitive) in the query's SQL text; ``rate`` (seeded per rule), ``nth`` (int or
list, 1-based, over the rule's matching requests), ``every`` and ``max_faults`` choose the
requests, as in ``local_cloud.faults``; ``retries: false`` lets only first attempts match.

Retried requests: the connector resends a query with the same ``requestId`` and a
``retryCount``. Snowflake documents that a resubmitted request with the same request id is not
executed again once executed (SQL API: ``requestId`` + ``retry=true``); with ``dedupe`` on (the
default) the middleware does the same: a retry of an executed (or still executing) request gets
that execution's answer. ``{"dedupe": false}`` emulates a server that runs it again.

Control (emulator only, not a Snowflake API), on the Snowflake endpoint: ``POST
/_localcloud/faults`` with ``{"rules": [...], "seed": 7, "dedupe": true}`` replaces the rules and
zeroes the counters; ``{"reset": true}`` removes them; ``GET`` returns the rules, per-endpoint
call counts, statements by first keyword, retries seen, retries answered from a previous
execution and the injected faults.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import re
import threading
import uuid
from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qs

from local_cloud.faults import fires

CONTROL_PATH = "/_localcloud/faults"
FAULTS = ("throttle", "5xx", "delay", "drop", "error")
ENDPOINTS = {
    "/session/v1/login-request": "login",
    "/queries/v1/query-request": "query",
    "/queries/v1/abort-request": "abort",
    "/session/heartbeat": "heartbeat",
    "/session": "session",
}
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
MAX_REMEMBERED = 500  # executed requests kept for answering retries
_REASONS = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}  # fmt: skip


class _Execution:
    """One executed (or executing) query request, by request id."""

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.response: tuple[int, list, bytes] | None = None


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self, rules: list[dict] | None = None, seed: int = 0, dedupe: bool = True) -> None:
        self.rules = [_validate(r) for r in (rules or [])]
        self.patterns = [re.compile(r["statement"], re.IGNORECASE | re.DOTALL) if r.get("statement") else None for r in self.rules]
        self.seed = int(seed)
        self.dedupe = bool(dedupe)
        self.randoms = [random.Random(self.seed * 1000 + i) for i in range(len(self.rules))]
        self.matched = [0] * len(self.rules)
        self.fired = [0] * len(self.rules)
        self.calls: dict[str, int] = {}
        self.statements: dict[str, int] = {}
        self.retries = 0
        self.deduplicated = 0
        self.injected: list[dict] = []
        self.executions: OrderedDict[str, _Execution] = OrderedDict()

    def snapshot(self) -> dict:
        return {
            "seed": self.seed,
            "dedupe": self.dedupe,
            "rules": [{**r, "matched": m, "fired": f} for r, m, f in zip(self.rules, self.matched, self.fired, strict=True)],
            "calls": dict(self.calls),
            "statements": dict(self.statements),
            "retries": self.retries,
            "deduplicated": self.deduplicated,
            "injected": list(self.injected[-1000:]),
            "injected_total": len(self.injected),
        }

    def choose(self, endpoint: str, sql: str | None, retry: bool, request_id: str | None) -> dict | None:
        """Count the request and return the first rule that fires for it."""
        with self.lock:
            self.calls[endpoint] = self.calls.get(endpoint, 0) + 1
            if sql is not None:
                keyword = (_COMMENTS.sub(" ", sql).split(None, 1) or ["?"])[0].upper()
                self.statements[keyword] = self.statements.get(keyword, 0) + 1
            if retry:
                self.retries += 1
            chosen = None
            for i, rule in enumerate(self.rules):
                if not _matches(rule, self.patterns[i], endpoint, sql, retry):
                    continue
                self.matched[i] += 1
                n = self.matched[i]
                if fires(rule, n, self.fired[i], self.randoms[i]) and chosen is None:
                    self.fired[i] += 1
                    chosen = rule
                    self.injected.append({
                        "call": endpoint, "n": n, "fault": rule["fault"], "when": rule.get("when", "before"), "rule": i,
                        "statement": (sql or "")[:160], "request_id": request_id, "retry": retry,
                    })  # fmt: skip
            return chosen

    def execution(self, request_id: str) -> _Execution | None:
        with self.lock:
            return self.executions.get(request_id)

    def start_execution(self, request_id: str) -> _Execution:
        with self.lock:
            execution = self.executions[request_id] = _Execution()
            while len(self.executions) > MAX_REMEMBERED:
                self.executions.popitem(last=False)
            return execution


STATE = _State()


def _validate(rule: dict) -> dict:
    if not isinstance(rule, dict) or rule.get("fault") not in FAULTS:
        raise ValueError(f"a rule needs fault in {FAULTS}: {rule!r}")
    if rule.get("when", "before") not in ("before", "after"):
        raise ValueError(f"when is 'before' or 'after': {rule!r}")
    if rule.get("statement"):
        re.compile(rule["statement"])
    return dict(rule)


def _matches(rule: dict, pattern, endpoint: str, sql: str | None, retry: bool) -> bool:
    wanted = rule.get("endpoint", "query")
    options = wanted if isinstance(wanted, list) else [wanted]
    if "*" not in options and endpoint not in options:
        return False
    if pattern is not None and (sql is None or not pattern.search(sql)):
        return False
    if retry and rule.get("retries") is False:
        return False
    return True


# -- ASGI plumbing ------------------------------------------------------------------------------
async def _read_body(receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _sql_text(scope: dict, body: bytes) -> str | None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    try:
        raw = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
        return str(json.loads(raw).get("sqlText"))
    except (OSError, ValueError, AttributeError):
        return None


async def _run(app, scope: dict, body: bytes) -> tuple[int, list, bytes]:
    """Call the app with the buffered request body; capture its whole answer."""
    delivered = False
    captured: dict[str, Any] = {"status": 500, "headers": [], "body": []}

    async def receive():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            captured["status"], captured["headers"] = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            captured["body"].append(message.get("body", b""))

    await app(scope, receive, send)
    return captured["status"], captured["headers"], b"".join(captured["body"])


async def _answer(send, status: int, headers: list, body: bytes) -> None:
    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"] + [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _json(status: int, payload: dict) -> tuple[int, list, bytes]:
    return status, [(b"content-type", b"application/json")], json.dumps(payload).encode()


def _fault_response(rule: dict) -> tuple[int, list, bytes]:
    if rule["fault"] == "error":
        code = str(rule.get("code", "000603"))
        message = rule.get("message", "SQL execution internal error: Processing aborted due to error 300010. (injected)")
        data = {"errorCode": code, "sqlState": rule.get("sql_state", "XX000"), "queryId": str(uuid.uuid4())}
        return _json(200, {"data": data, "code": code, "message": message, "success": False})
    status = 429 if rule["fault"] == "throttle" else int(rule.get("status", 503))
    return _json(status, {"data": None, "code": str(status), "message": f"{_REASONS.get(status, 'Error')} (injected)",
                          "success": False, "headers": None})  # fmt: skip


async def _drop(send) -> None:
    """Close the client's connection without an answer (uvicorn's transport, reached through
    the protocol's bound ``send``); an empty 500 stands in if the transport is out of reach."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        await _answer(send, 500, [], b"")
        return
    transport.abort()
    for _ in range(3):  # let the protocol see the connection lost (so it sends no 500 after us)
        await asyncio.sleep(0)


async def _control(scope, receive, send) -> None:
    try:
        if scope.get("method") == "POST":
            update = json.loads(await _read_body(receive) or b"{}")
            with STATE.lock:
                if update.get("reset"):
                    STATE.reset()
                else:
                    STATE.reset(update.get("rules") or [], update.get("seed", 0), update.get("dedupe", True))
        with STATE.lock:
            status, payload = 200, STATE.snapshot()
    except (ValueError, TypeError, re.error) as exc:
        status, payload = 400, {"error": str(exc)}
    await _answer(send, *_json(status, payload))


def wrap(app):
    """The middleware around the Snowflake emulator's ASGI app."""

    async def middleware(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        path = scope.get("path", "")
        if path == CONTROL_PATH:
            return await _control(scope, receive, send)
        endpoint = ENDPOINTS.get(path, "other")
        if endpoint not in ("query", "login") and not STATE.rules:
            return await app(scope, receive, send)

        body = await _read_body(receive)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        request_id = (query.get("requestId") or [None])[0] if endpoint == "query" else None
        retry = int((query.get("retryCount") or ["0"])[0] or 0) > 0
        sql = _sql_text(scope, body) if endpoint == "query" else None
        rule = STATE.choose(endpoint, sql, retry, request_id)
        when = (rule or {}).get("when", "before")

        if rule is not None and when == "before" and rule["fault"] != "delay":
            if rule["fault"] == "drop":
                return await _drop(send)
            return await _answer(send, *_fault_response(rule))

        response = None
        if request_id and retry and STATE.dedupe and (previous := STATE.execution(request_id)) is not None:
            await previous.done.wait()  # executed already (or executing): its answer, no second run
            if previous.response is not None and previous.response[0] == 200:  # a server error: run again
                with STATE.lock:
                    STATE.deduplicated += 1
                response = previous.response
        if response is None:
            execution = STATE.start_execution(request_id) if request_id else None
            try:
                if rule is not None and rule["fault"] == "delay" and when == "before":
                    await asyncio.sleep(float(rule.get("delay", 1.0)))
                response = await _run(app, scope, body)
            finally:
                if execution is not None:
                    execution.response = response
                    execution.done.set()

        if rule is not None and when == "after":
            if rule["fault"] == "delay":
                await asyncio.sleep(float(rule.get("delay", 1.0)))
            elif rule["fault"] == "drop":
                return await _drop(send)
            else:
                return await _answer(send, *_fault_response(rule))
        return await _answer(send, *response)

    return middleware
