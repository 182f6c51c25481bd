"""An SMTP server that stores each received message as ``<n>.eml`` in a folder."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

from aiosmtpd.controller import Controller


class _MaildirHandler:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        with self._lock:
            n = next(self._counter)
        header = f"X-Envelope-From: {envelope.mail_from}\r\nX-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        tmp = self.folder / f".{n:06d}.tmp"
        tmp.write_bytes(header.encode() + envelope.original_content)
        tmp.rename(self.folder / f"{n:06d}.eml")  # atomic: readers never see half a message
        return "250 Message accepted for delivery"


def _accept_any(server, session, envelope, mechanism, auth_data):
    from aiosmtpd.smtp import AuthResult

    return AuthResult(success=True)


def start_smtp_sink(folder: Path, host: str = "127.0.0.1", port: int = 0) -> Controller:
    folder.mkdir(parents=True, exist_ok=True)
    if port == 0:
        import socket

        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
    # AUTH is offered (any credentials accepted, over plain SMTP on loopback) so connections with a
    # login and password work as against a real relay; none is required.
    controller = Controller(_MaildirHandler(folder), hostname=host, port=port, authenticator=_accept_any, auth_require_tls=False)
    controller.start()
    return controller
