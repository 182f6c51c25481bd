"""Keep-alive connections for the AWS emulator's HTTP server (werkzeug's development server, which
moto's ``MotoRequestHandler`` extends).

AWS endpoints keep HTTP/1.1 connections open and botocore reuses them from its pool. Werkzeug's
server closes every connection after one response (it sends ``Connection: close``), because after
the application it drains whatever is left on the socket and, on an open connection, would read
the next request as the rest of this one's body. So every request through the emulator paid a TCP
connect and close: in an archive run a third of the client's CPU went to connection setup and
teardown, which no client of AWS pays.

:class:`KeepAliveRequestHandler` bounds the request's input to its ``Content-Length`` (werkzeug's
own ``LimitedStream``) while the application and werkzeug's drain run, so the drain reads at most
the unread rest of this request's body, and then lets the connection stay open, unless the client
asked to close it, the request body is not length-delimited (``Transfer-Encoding: chunked``: closed
as before) or werkzeug itself decides to close (an error after a chunked response began). Its
sockets send without delay (``TCP_NODELAY``), as urllib3's do.
"""

from __future__ import annotations

import socket

from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.wsgi import LimitedStream


class KeepAliveRequestHandler(MotoRequestHandler):
    keep_alive = False

    def setup(self) -> None:
        super().setup()
        # werkzeug writes a response's headers and body separately: on an open connection, Nagle's
        # algorithm would hold the body until the client's delayed ACK of the headers (~40 ms)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        self.socket_input = self.rfile
        length = self.headers.get("Content-Length")
        framed = "Transfer-Encoding" not in self.headers and (length is None or length.strip().isdigit())
        self.keep_alive = framed and not self.close_connection and self.request_version == "HTTP/1.1"
        if self.keep_alive:
            self.rfile = LimitedStream(self.socket_input, int(length or 0))
        return True

    def run_wsgi(self) -> None:
        try:
            super().run_wsgi()
        finally:
            self.rfile = self.socket_input  # the next request line is read from the socket's own stream

    def send_header(self, keyword: str, value: str) -> None:
        if self.keep_alive and keyword.lower() == "connection" and value.lower() == "close":
            return  # werkzeug's unconditional close: this request's body is bounded, the connection can stay
        super().send_header(keyword, value)
