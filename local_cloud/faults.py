"""Fault injection in front of the AWS emulator: throttling, 5xx, slow answers, partial batches.

A WSGI middleware (outermost in the local cloud's app chain) that, per rule, answers a matching
call with the fault instead of (or after) moto, in the wire shape of the service's protocol:

- SQS (JSON protocol, query-compatible): ``{"__type": "com.amazonaws.sqs#RequestThrottled"}`` with
  ``x-amzn-query-error: RequestThrottled;Sender`` (botocore reports the code ``RequestThrottled``).
- SNS (query protocol): ``<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>...``.
- S3 (REST-XML): ``<Error><Code>SlowDown</Code>...`` with status 503 (no body for HEAD).

Fault kinds (``fault``): ``throttle`` (the service's throttling error; ``code``/``status`` override),
``5xx`` (``InternalError`` 500, or ``status`` 502/503/504), ``delay`` (sleep ``delay`` seconds, then
answer normally: a client with a shorter read timeout sees a timeout while the call took effect),
``partial`` (SendMessageBatch / DeleteMessageBatch / ChangeMessageVisibilityBatch / PublishBatch:
``entries`` of the batch — a fraction < 1 or a count — are removed from the request before moto
sees it and reported ``Failed`` with ``SenderFault: false``; the rest go through).

A rule: ``{"service": "sqs", "operation": "SendMessageBatch", "fault": "throttle", "rate": 0.1}``;
``service``/``operation`` may be ``"*"`` or a list; ``rate`` (seeded: the state's ``seed`` plus the
rule's index) or ``nth`` (an int or list: the rule's N-th matching call, 1-based) or ``every``
(each N-th matching call) chooses the calls; ``max_faults`` caps a rule; ``when: "after"`` answers
the error after moto ran the call (the call took effect, the client is told it failed);
``user_agent`` / ``exclude_user_agent`` (substrings) restrict the rule to some clients (the
Snowflake emulator reads stages through s3fs, whose user agent names aiobotocore); ``path`` (a
regular expression searched in the request path, for S3 ``/<bucket>/<key>``) to some objects.

Control (emulator only, not an AWS API), on the AWS endpoint: ``POST /_localcloud/faults`` with
``{"rules": [...], "seed": 7}`` replaces the rules and zeroes the counters; ``{"reset": true}``
removes them; ``GET`` returns the rules, per ``service:Operation`` call counts and injected faults.
"""

from __future__ import annotations

import io
import json
import random
import re
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode

CONTROL_PATH = "/_localcloud/faults"
FAULTS = ("throttle", "5xx", "delay", "partial")
BATCH_OPERATIONS = {
    ("sqs", "SendMessageBatch"), ("sqs", "DeleteMessageBatch"), ("sqs", "ChangeMessageVisibilityBatch"),
    ("sns", "PublishBatch"),
}  # fmt: skip
THROTTLE = {  # service -> (code, HTTP status)
    "sqs": ("RequestThrottled", 400),
    "sns": ("Throttling", 400),
    "s3": ("SlowDown", 503),
}
DEFAULT_THROTTLE = ("ThrottlingException", 400)
SQS_QUERY_CODES = {"RequestThrottled": "RequestThrottled", "InternalError": "InternalError", "ServiceUnavailable": "ServiceUnavailable"}
_REASONS = {400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}  # fmt: skip
_CREDENTIAL = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_MEMBER = re.compile(r"^PublishBatchRequestEntries\.member\.(\d+)\.(.+)$")


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self, rules: list[dict] | None = None, seed: int = 0) -> None:
        self.rules = [_validate(r) for r in (rules or [])]
        self.seed = int(seed)
        self.randoms = [random.Random(self.seed * 1000 + i) for i in range(len(self.rules))]
        self.matched = [0] * len(self.rules)
        self.fired = [0] * len(self.rules)
        self.calls: dict[str, int] = {}
        self.injected: list[dict] = []

    def snapshot(self) -> dict:
        return {
            "seed": self.seed,
            "rules": [{**r, "matched": m, "fired": f} for r, m, f in zip(self.rules, self.matched, self.fired, strict=True)],
            "calls": dict(self.calls),
            "injected": list(self.injected[-1000:]),
            "injected_total": len(self.injected),
        }

    def choose(self, service: str, operation: str, user_agent: str, path: str = "") -> dict | None:
        """Count the call and return the first rule that fires for it (each rule counts its matches)."""
        with self.lock:
            name = f"{service}:{operation}"
            self.calls[name] = self.calls.get(name, 0) + 1
            chosen = None
            for i, rule in enumerate(self.rules):
                if not _matches(rule, service, operation, user_agent, path):
                    continue
                self.matched[i] += 1
                n = self.matched[i]
                if fires(rule, n, self.fired[i], self.randoms[i]) and chosen is None:
                    self.fired[i] += 1
                    chosen = {**rule, "_index": i, "_random": self.randoms[i]}
                    self.injected.append({"call": name, "n": n, "fault": rule["fault"], "rule": i})
            return chosen


STATE = _State()


def fires(rule: dict, n: int, fired: int, rng: random.Random) -> bool:
    """Whether a rule fires on its ``n``-th matching call, having fired ``fired`` times: at the
    chosen calls (``nth``), every k-th (``every``) or at a ``rate``, at most ``max_faults`` times.
    Shared by the AWS and the Snowflake fault middlewares."""
    if rule.get("max_faults") is not None and fired >= int(rule["max_faults"]):
        return False
    if "nth" in rule:
        nth = rule["nth"] if isinstance(rule["nth"], list) else [rule["nth"]]
        return n in {int(x) for x in nth}
    if "every" in rule:
        return n % int(rule["every"]) == 0
    return rng.random() < float(rule.get("rate", 1.0))


def _validate(rule: dict) -> dict:
    if not isinstance(rule, dict) or rule.get("fault") not in FAULTS:
        raise ValueError(f"a rule needs fault in {FAULTS}: {rule!r}")
    return dict(rule)


def _matches(rule: dict, service: str, operation: str, user_agent: str, path: str = "") -> bool:
    for key, value in (("service", service), ("operation", operation)):
        wanted = rule.get(key, "*")
        options = wanted if isinstance(wanted, list) else [wanted]
        if "*" not in options and value not in options:
            return False
    if rule.get("user_agent") and rule["user_agent"] not in user_agent:
        return False
    if rule.get("exclude_user_agent") and rule["exclude_user_agent"] in user_agent:
        return False
    if rule.get("path") and not re.search(rule["path"], path):
        return False
    if rule["fault"] == "partial" and (service, operation) not in BATCH_OPERATIONS:
        return False
    return True


# -- identifying the call ---------------------------------------------------------------------------
def service_of(environ: dict) -> str:
    match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", "")) or _CREDENTIAL.search(
        "Credential=" + parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential", [""])[0]
    )
    if match:
        return match.group(1)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    return "sqs" if target.startswith("AmazonSQS.") else "unknown"


def s3_operation(environ: dict) -> str:
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "/").lstrip("/")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    has_key = "/" in path and path.split("/", 1)[1] != ""
    if not path:
        return "ListBuckets"
    if has_key:
        if "uploadId" in query or "uploads" in query:
            return {"POST": "CompleteMultipartUpload" if "uploadId" in query else "CreateMultipartUpload",
                    "PUT": "UploadPart", "DELETE": "AbortMultipartUpload", "GET": "ListParts"}.get(method, method)  # fmt: skip
        if "tagging" in query:
            return {"GET": "GetObjectTagging", "PUT": "PutObjectTagging", "DELETE": "DeleteObjectTagging"}.get(method, method)
        if method == "PUT":
            return "CopyObject" if "HTTP_X_AMZ_COPY_SOURCE" in environ else "PutObject"
        return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, method)
    if method == "GET":
        if "list-type" in query:
            return "ListObjectsV2"
        for sub, op in (("location", "GetBucketLocation"), ("versioning", "GetBucketVersioning"),
                        ("policy", "GetBucketPolicy"), ("encryption", "GetBucketEncryption")):  # fmt: skip
            if sub in query:
                return op
        return "ListObjects"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method, method)


def _read_body(environ: dict) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def identify(environ: dict) -> tuple[str, str]:
    """(service, Operation) of an AWS request; the body is read and put back when needed."""
    service = service_of(environ)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return service, target.rsplit(".", 1)[-1]
    if service == "s3":
        return service, s3_operation(environ)
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if not action and environ.get("REQUEST_METHOD") == "POST" and "form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        action = parse_qs(_read_body(environ).decode("utf-8", "replace")).get("Action")
    return service, (action[0] if action else environ.get("REQUEST_METHOD", "?"))


# -- fault responses --------------------------------------------------------------------------------
def error_response(service: str, code: str, status: int, message: str, head: bool = False) -> tuple[int, list, bytes]:
    request_id = str(uuid.uuid4())
    if service == "sqs":
        body = json.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": message}).encode()
        fault = "Sender" if status < 500 else "Receiver"
        headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", request_id),
                   ("x-amzn-query-error", f"{SQS_QUERY_CODES.get(code, code)};{fault}")]  # fmt: skip
    elif service == "s3":
        body = (
            b""
            if head
            else (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
                f"<RequestId>{request_id}</RequestId><HostId>localcloud</HostId></Error>"
            ).encode()
        )
        headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
    else:  # query protocol (SNS and the others)
        kind = "Sender" if status < 500 else "Receiver"
        xmlns = f"http://{service}.amazonaws.com/doc/2010-03-31/" if service == "sns" else ""
        body = (
            f'<ErrorResponse xmlns="{xmlns}"><Error><Type>{kind}</Type><Code>{code}</Code>'
            f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    headers.append(("Content-Length", str(len(body))))
    return status, headers, body


def _fault_error(service: str, rule: dict, head: bool) -> tuple[int, list, bytes]:
    if rule["fault"] == "throttle":
        code, status = THROTTLE.get(service, DEFAULT_THROTTLE)
        message = "Please reduce your request rate." if service == "s3" else "Rate exceeded"
    else:
        status = int(rule.get("status", 500))
        code = {500: "InternalError", 503: "ServiceUnavailable"}.get(status, "InternalError")
        message = "We encountered an internal error. Please try again."
    return error_response(service, rule.get("code", code), int(rule.get("status", status)), f"{message} (injected)", head)


def _respond(start_response, status: int, headers: list, body: bytes):
    start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
    return [body]


def _call(app, environ) -> tuple[str, list, bytes]:
    captured: dict[str, Any] = {}

    def start_response(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, list(headers)
        return lambda data: None

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    return captured["status"], captured["headers"], body


def _with_length(headers: list, body: bytes) -> list:
    return [(k, v) for k, v in headers if k.lower() != "content-length"] + [("Content-Length", str(len(body)))]


# -- partial batch failures ---------------------------------------------------------------------------
def _pick(ids: list[str], rule: dict) -> list[str]:
    want = rule.get("entries", 0.5)
    count = max(1, round(len(ids) * float(want))) if float(want) < 1 else int(want)
    return sorted(rule["_random"].sample(ids, min(count, len(ids))), key=ids.index)


def _failed_entry(entry_id: str) -> dict:
    return {"Id": entry_id, "SenderFault": False, "Code": "InternalError", "Message": "injected partial failure"}


def _partial_sqs(app, environ, start_response, rule: dict):
    request = json.loads(_read_body(environ) or b"{}")
    entries = request.get("Entries") or []
    failing = set(_pick([e["Id"] for e in entries], rule))
    kept = [e for e in entries if e["Id"] not in failing]
    if kept:
        request["Entries"] = kept
        raw = json.dumps(request).encode()
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(raw), str(len(raw))
        status, headers, body = _call(app, environ)
        if not status.startswith("200"):
            start_response(status, headers)
            return [body]
        response = json.loads(body or b"{}")
    else:
        status, headers, response = "200 OK", [("Content-Type", "application/x-amz-json-1.0")], {"Successful": []}
    response.setdefault("Successful", [])
    response["Failed"] = list(response.get("Failed") or []) + [_failed_entry(i) for i in sorted(failing)]
    body = json.dumps(response).encode()
    start_response(status, _with_length(headers, body))
    return [body]


def _partial_sns(app, environ, start_response, rule: dict):
    pairs = parse_qsl(_read_body(environ).decode("utf-8"), keep_blank_values=True)
    members: dict[int, list[tuple[str, str]]] = {}
    other: list[tuple[str, str]] = []
    for key, value in pairs:
        match = _MEMBER.match(key)
        if match:
            members.setdefault(int(match.group(1)), []).append((match.group(2), value))
        else:
            other.append((key, value))
    ids = {n: dict(fields).get("Id", str(n)) for n, fields in members.items()}
    failing = set(_pick([ids[n] for n in sorted(members)], rule))
    kept = [n for n in sorted(members) if ids[n] not in failing]
    failed_xml = "".join(
        f"<member><Id>{i}</Id><Code>InternalError</Code><Message>injected partial failure</Message>"
        "<SenderFault>false</SenderFault></member>"
        for i in sorted(failing)
    )
    if kept:
        renumbered = [(f"PublishBatchRequestEntries.member.{new}.{name}", value)
                      for new, n in enumerate(kept, 1) for name, value in members[n]]  # fmt: skip
        raw = urlencode(other + renumbered).encode()
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(raw), str(len(raw))
        status, headers, body = _call(app, environ)
        if not status.startswith("200"):
            start_response(status, headers)
            return [body]
        text = body.decode("utf-8")
        if re.search(r"<Failed\s*/>", text):
            text = re.sub(r"<Failed\s*/>", f"<Failed>{failed_xml}</Failed>", text, count=1)
        elif "</Failed>" in text:
            text = text.replace("</Failed>", f"{failed_xml}</Failed>", 1)
        else:
            text = text.replace("</PublishBatchResult>", f"<Failed>{failed_xml}</Failed></PublishBatchResult>", 1)
    else:
        status, headers = "200 OK", [("Content-Type", "text/xml")]
        text = (
            '<PublishBatchResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishBatchResult>'
            f"<Successful/><Failed>{failed_xml}</Failed></PublishBatchResult><ResponseMetadata>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></PublishBatchResponse>"
        )
    body = text.encode()
    start_response(status, _with_length(headers, body))
    return [body]


# -- the middleware ---------------------------------------------------------------------------------
def _control(environ, start_response):
    try:
        if environ.get("REQUEST_METHOD") == "POST":
            update = json.loads(_read_body(environ) or b"{}")
            with STATE.lock:
                if update.get("reset"):
                    STATE.reset()
                else:
                    STATE.reset(update.get("rules") or [], update.get("seed", 0))
        with STATE.lock:
            status, payload = 200, STATE.snapshot()
    except (ValueError, TypeError) as exc:
        status, payload = 400, {"error": str(exc)}
    body = json.dumps(payload).encode()
    return _respond(start_response, status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], body)


def wrap(app, ctx=None):
    def middleware(environ, start_response):
        if environ.get("PATH_INFO") == CONTROL_PATH:
            return _control(environ, start_response)
        if not STATE.rules:
            return app(environ, start_response)
        if environ.get("PATH_INFO", "").startswith("/_localcloud/") or environ.get("PATH_INFO", "").startswith("/moto-api"):
            return app(environ, start_response)
        service, operation = identify(environ)
        rule = STATE.choose(service, operation, environ.get("HTTP_USER_AGENT", ""), environ.get("PATH_INFO", ""))
        if rule is None:
            return app(environ, start_response)
        fault = rule["fault"]
        if fault == "delay":
            time.sleep(float(rule.get("delay", 1.0)))
            return app(environ, start_response)
        if fault == "partial":
            handler = _partial_sns if service == "sns" else _partial_sqs
            return handler(app, environ, start_response, rule)
        if rule.get("when") == "after":
            _call(app, environ)  # the call takes effect; the client is told it failed
        status, headers, body = _fault_error(service, rule, environ.get("REQUEST_METHOD") == "HEAD")
        return _respond(start_response, status, headers, body)

    return middleware
