"""AWS JSON protocol requests: the action is the ``X-Amz-Target`` header's, the body is data.

AWS: "Making query API requests using AWS JSON protocol in Amazon SQS"
(https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-making-api-requests-json.html):
``POST /`` with ``X-Amz-Target: AmazonSQS.<operationName>``, ``Content-Type:
application/x-amz-json-1.0`` and the parameters as a JSON body (Secrets Manager and the other
JSON-protocol services alike, ``application/x-amz-json-1.1``).

moto 5.2.5 (``BaseResponse.setup_class``) parses any request body that is not a form as a query
string too, and ``_get_action`` prefers an ``Action`` found there over the header. So a JSON body
holding ``...&Action=Unsubscribe`` — a message body with a URL in it, an SNS envelope's
``UnsubscribeURL`` — was dispatched as that action (a 500), and services whose responses read
``querystring`` first (Secrets Manager) could take a parameter from inside a value
(``"SecretString": "x&SecretId=other"``).

Patched inside the local-cloud process: for a JSON-protocol request the action comes from the
header, and the query parameters are the URL's alone (else the headers, as moto uses when a body
has none), never the body's.
"""

from __future__ import annotations

from urllib.parse import parse_qs


def json_protocol(headers) -> bool:
    """Whether a request is in the AWS JSON protocol (a target header and a JSON content type)."""
    return bool(headers.get("X-Amz-Target")) and str(headers.get("Content-Type", "")).startswith("application/x-amz-json")


def install(ctx) -> None:
    from moto.core.responses import BaseResponse

    original_get_action = BaseResponse._get_action
    original_setup_class = BaseResponse.setup_class

    def _get_action(self) -> str:
        headers = getattr(self, "headers", None)
        if headers is not None and json_protocol(headers):
            return headers["X-Amz-Target"].split(".")[-1]
        return original_get_action(self)

    def setup_class(self, request, full_url=None, headers=None, use_raw_body=None):
        # setup_class itself dispatches on the action (parameter parsing): the headers must be known first
        self.headers = request.headers if headers is None else headers
        original_setup_class(self, request, full_url, headers, use_raw_body)
        if json_protocol(self.headers):
            query = parse_qs(self.parsed_url.query, keep_blank_values=True) or dict(self.headers)
            self.querystring = self.data = query

    BaseResponse._get_action = _get_action
    BaseResponse.setup_class = setup_class
