"""Per-request costs of moto 5.2.5 that grow with a request's size but not on AWS (same results).

1. Query-protocol parsing, linear in the number of parameters.

Query-protocol APIs (SNS, and every ``Action=...`` form API) send a request as flat form fields:
``PublishBatchRequestEntries.member.3.MessageAttributes.entry.2.Value.StringValue=...``. moto
5.2.5's ``QueryParser`` decides whether a nested structure is present by scanning *every* form
field for the structure's prefix (``any(key.startswith(prefix) for key in query_params)``),
once per structure and list element it tries, iterating werkzeug's ``CombinedMultiDict`` (which
rebuilds its key set on every iteration). A ``PublishBatch`` of 10 entries with three message
attributes each (~150 fields, ~60 structures tried) spent about half its server time there: a
cost quadratic in the batch size that single-message calls barely pay, so it made batched
requests look several times dearer per entry than on AWS.

Patched inside the local-cloud process: the parser sorts the request's field names once (on the
first such question) and answers "does any field start with this prefix" by binary search (the
first name not below the prefix starts with it, or none does). The parsed parameters are exactly
those of moto's own parser; only the search is faster.

2. The request id of the response. moto writes it into every response body with
``re.sub(r"(?<=<RequestId>).*(?=</RequestId>)", ...)``, a regular-expression scan of the whole
body (hundreds of KB for a ``ReceiveMessage`` of large messages, JSON bodies included, which
have no such element). The scan is skipped when the body holds no ``<RequestId>`` (the
substitution could not match); otherwise moto's own code runs.

3. Finding the backend of a request. moto's ``DomainDispatcherApplication.get_application`` holds one
lock for every request while ``get_backend_for_host`` asks whether the host names a moto module
(``backends.list_of_moto_modules()``: a directory listing of the moto package and an ``isdir`` per
entry, ~150 system calls) and then tries the backends' URL patterns. Profiled during an archive
run, 12% of the emulator's busy time was that walk, and most request threads were queued on the
lock behind it. The answer depends only on the host (the installed package and the patterns do not
change while the process runs), so it is computed once per host and kept; the backend chosen is
moto's own (moto's function is called on a miss).
"""

from __future__ import annotations

from bisect import bisect_left


def has_prefix(names: list[str], prefix: str) -> bool:
    """Whether any of the sorted ``names`` starts with ``prefix`` (what moto's linear scan computes)."""
    i = bisect_left(names, prefix)
    return i < len(names) and names[i].startswith(prefix)


def memoized_backend_lookup(lookup):
    """``lookup(self, host)`` (moto's ``get_backend_for_host``) computed once per host."""
    found: dict = {}

    def backend_for_host(self, host):
        if host not in found:
            found[host] = lookup(self, host)
        return found[host]

    return backend_for_host


def install(ctx) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    DomainDispatcherApplication.get_backend_for_host = memoized_backend_lookup(DomainDispatcherApplication.get_backend_for_host)

    from moto.core.parse import QueryParser

    def _gonna_recurse(self, query_params, prefix):
        if prefix == "":
            return False
        index = self.__dict__.get("_sorted_params")  # one parser per request; one snapshot per parser
        if index is None or index[0] is not query_params:
            index = self.__dict__["_sorted_params"] = (query_params, sorted(query_params))
        return not has_prefix(index[1], prefix)

    QueryParser._gonna_recurse = _gonna_recurse

    from moto.core.responses import BaseResponse

    original_enrich = BaseResponse._enrich_response

    def _enrich_response(headers, body):
        if isinstance(body, str) and "<RequestId>" not in body or isinstance(body, bytes) and b"<RequestId>" not in body:
            return original_enrich(headers, "")[0], body  # the headers' part; the body cannot change
        return original_enrich(headers, body)

    BaseResponse._enrich_response = staticmethod(_enrich_response)
