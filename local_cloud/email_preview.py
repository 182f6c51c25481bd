"""An email as a mail client shows it, for a browser: the HTML part with its ``cid:`` images
inlined as ``data:`` URIs, written beside the message itself (``.eml``) and its images. For the
demo and the report's browser tests; standard library only."""

from __future__ import annotations

import base64
import re
from email.message import EmailMessage
from pathlib import Path


def html_part(message: EmailMessage) -> EmailMessage:
    part = message.get_body(preferencelist=("html",))
    if part is None:
        raise ValueError("the message has no HTML part")
    return part


def inline_images(message: EmailMessage) -> dict[str, EmailMessage]:
    """The message's parts with a Content-ID, by that id (without the angle brackets)."""
    return {str(p["Content-ID"]).strip("<>"): p for p in message.walk() if p["Content-ID"] and not p.is_multipart()}


def preview_html(message: EmailMessage) -> str:
    """The HTML part, every ``cid:`` reference replaced by the attachment it names as a data URI
    (as a mail client resolves it); a reference to no attachment stays as it is."""
    images = inline_images(message)

    def resolve(match: re.Match) -> str:
        part = images.get(match.group(2))
        if part is None:
            return match.group(0)
        data = base64.b64encode(part.get_payload(decode=True)).decode()
        return f"{match.group(1)}data:{part.get_content_type()};base64,{data}"

    return re.sub(r"""((?:src|href)\s*=\s*["'])cid:([^"']+)""", resolve, html_part(message).get_content(), flags=re.IGNORECASE)


def save_preview(message: EmailMessage, folder: Path, name: str) -> dict[str, Path]:
    """``<name>.eml`` (the message), ``<name>.html`` (the preview) and each inline image in
    ``folder``; returns their paths by kind (``eml``, ``html``, and the images' file names)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"eml": folder / f"{name}.eml", "html": folder / f"{name}.html"}
    paths["eml"].write_bytes(bytes(message))
    paths["html"].write_text(preview_html(message), encoding="utf-8")
    for cid, part in inline_images(message).items():
        filename = Path(part.get_filename() or re.sub(r"[^\w.-]", "_", cid)).name
        path = folder / f"{name}-{filename}"
        path.write_bytes(part.get_payload(decode=True))
        paths[filename] = path
    return paths
