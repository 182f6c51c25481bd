"""SNS ``PutDataProtectionPolicy`` / ``GetDataProtectionPolicy`` (moto 5.2.5 has neither), to the
SNS API reference: the policy is stored per topic (JSON text, as given) and returned as stored;
an unknown topic is ``NotFound`` (404), a policy that is not a JSON object ``InvalidParameter``.
The policy is stored, not enforced on Publish: the provider de-identifies what it publishes
itself (``domain/masking.py``), and real SNS enforces the stored policy.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

XMLNS = "http://sns.amazonaws.com/doc/2010-03-31/"
ACTIONS = ("PutDataProtectionPolicy", "GetDataProtectionPolicy")
POLICIES: dict[str, str] = {}
_lock = threading.Lock()


def _topic_exists(arn: str, ctx) -> bool:
    from moto.sns.models import sns_backends

    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sns":
        return False
    try:
        return arn in sns_backends[parts[4]][parts[3]].topics
    except KeyError:
        return False


def _xml(status: int, body: str, start_response):
    payload = body.encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "text/xml"), ("Content-Length", str(len(payload)))])
    return [payload]


def _error(code: str, status: int, message: str, start_response):
    return _xml(status, (
        f'<ErrorResponse xmlns="{XMLNS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ), start_response)  # fmt: skip


def wrap(app, ctx):
    def middleware(environ, start_response):
        if environ.get("REQUEST_METHOD") != "POST" or "form-urlencoded" not in environ.get("CONTENT_TYPE", ""):
            return app(environ, start_response)
        if "/sns/aws4_request" not in environ.get("HTTP_AUTHORIZATION", ""):
            return app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        if b"DataProtectionPolicy" not in raw:  # not one of ACTIONS (letters are never %-encoded): no parse
            return app(environ, start_response)
        params = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
        action = params.get("Action")
        if action not in ACTIONS:
            return app(environ, start_response)
        arn = params.get("ResourceArn", "")
        if not _topic_exists(arn, ctx):
            return _error("NotFound", 404, "Topic does not exist", start_response)
        request_id = f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        if action == "PutDataProtectionPolicy":
            text = params.get("DataProtectionPolicy", "")
            try:
                if not isinstance(json.loads(text), dict):
                    raise ValueError
            except ValueError:
                return _error("InvalidParameter", 400, "Invalid parameter: DataProtectionPolicy", start_response)
            with _lock:
                POLICIES[arn] = text
            return _xml(
                200, f'<PutDataProtectionPolicyResponse xmlns="{XMLNS}">{request_id}</PutDataProtectionPolicyResponse>', start_response
            )
        with _lock:
            text = POLICIES.get(arn, "")
        return _xml(200, (
            f'<GetDataProtectionPolicyResponse xmlns="{XMLNS}"><GetDataProtectionPolicyResult>'
            f"<DataProtectionPolicy>{escape(text)}</DataProtectionPolicy></GetDataProtectionPolicyResult>"
            f"{request_id}</GetDataProtectionPolicyResponse>"
        ), start_response)  # fmt: skip

    return middleware
