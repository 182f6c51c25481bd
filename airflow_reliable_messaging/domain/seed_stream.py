"""Seed-shaped records read piece by piece (pure: no I/O, no Airflow).

A claim-check pointer's S3 object can hold a whole seed request (``{"messageMetaData": {...},
"messagePayload": "<base64>"}``) of several megabytes. :class:`SeedDocumentReader` reads such a
document in chunks, in bounded memory: it validates the JSON (:class:`JsonScanner`, the grammar
of Python's ``json.loads``, without recursion), keeps the small members (``messageMetaData``,
``messageID``), and decodes ``messagePayload`` as it streams (:class:`Base64Decoder`: exactly
``base64.b64decode(validate=True)`` of the whitespace-free string) into a SHA-256, a size, a
content-type sniff (:class:`ContentSniffer`) and — up to a limit — the decoded bytes.

Inline seed requests go through the same reader in one piece, so a record is read the same way
whatever its transport.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import io
import json
import re
import sys
from dataclasses import dataclass
from typing import Any

MAX_JSON_DEPTH = 10_000  # deeper documents are refused (json.loads gives up far earlier)
CAPTURE_LIMIT = 1024 * 1024  # messageMetaData / messageID: at most what an inline SQS message holds
KEY_LIMIT = 256  # top-level keys longer than this cannot be one of the seed's

PAYLOAD = "messagePayload"
METADATA = "messageMetaData"
MESSAGE_ID = "messageID"
SEED_KEYS = (METADATA, PAYLOAD)  # a top-level object with either member is a seed request


class JsonSyntaxError(ValueError):
    """The document is not JSON (``json.loads`` would refuse it); names the byte offset."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at byte {offset}")
        self.offset = offset


# -- JSON ------------------------------------------------------------------------------------------
_WS = re.compile(rb"[ \t\n\r]*")
_STRING_RUN = re.compile(rb'[^"\\\x00-\x1f]*')
_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_NUMBER_CUT = re.compile(rb"\.|[eE][-+]?")  # what a number may go on with in the next chunk
_HEX4 = re.compile(rb"[0-9a-fA-F]{4}")
# Fast paths (validation at C speed): runs of simple "scalar," array elements and "key": scalar,
# object members. Anything else (escapes, long numbers, the last element) takes the token path.
_SCALAR = rb'(?:"[^"\\\x00-\x1f]*"|-?(?:0|[1-9][0-9]{0,99})(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|null|NaN|-?Infinity)'
_ARRAY_RUN = re.compile(rb"(?:[ \t\n\r]*" + _SCALAR + rb"[ \t\n\r]*,)+")
_OBJECT_RUN = re.compile(rb'(?:[ \t\n\r]*"[^"\\\x00-\x1f]*"[ \t\n\r]*:[ \t\n\r]*' + _SCALAR + rb"[ \t\n\r]*,)+")
_LITERALS = (b"true", b"false", b"null", b"NaN", b"Infinity", b"-Infinity")
_LONGEST_TOKEN = 1024 * 1024  # a number or literal longer than this is refused

SKIP, CAPTURE, STREAM = 0, 1, 2
_VALUE, _FIRST_OR_CLOSE, _KEY_OR_CLOSE, _KEY, _COLON, _AFTER, _DONE, _STRING = range(8)


class JsonScanner:
    """An incremental JSON validator with the grammar of Python's ``json.loads`` (``NaN``,
    ``Infinity``, the integer digit limit, no control characters in strings), fed UTF-8 bytes.

    ``listener`` hears about the members of a top-level object: ``member(key)`` (the decoded key,
    None when longer than ``KEY_LIMIT``) answers SKIP, CAPTURE (``captured(key, raw)`` then gets the
    value's JSON text, at most ``CAPTURE_LIMIT`` bytes) or STREAM (a string value's content goes to
    ``string_start(offset)``, ``string_piece(raw)`` — runs of plain characters and whole escape
    sequences, raw — and ``string_end(offset)``; a value of another type to ``not_a_string()``).
    With ``stream_top_level`` a top-level string is streamed the same way. Offsets are absolute
    byte positions: the content starts after the opening quote and ends at the closing one.
    """

    def __init__(self, listener: Any = None, *, stream_top_level: bool = False) -> None:
        self.listener = listener
        self.stream_top_level = stream_top_level
        self.stack = bytearray()  # b"{" / b"[" per open container
        self.state = _VALUE
        self.in_key = False
        self.streaming = False
        self.mode = SKIP  # what the listener wants of the current top-level member
        self.key: str | None = None
        self.key_raw: bytearray | None = None
        self.capture: bytearray | None = None
        self.cap_from = 0
        self.carry = b""
        self.offset = 0  # absolute position of the current buffer's first byte

    def feed(self, data: bytes) -> None:
        buf = self.carry + data if self.carry else bytes(data)
        self._run(buf, final=False)

    def close(self) -> None:
        buf = self.carry
        self._run(buf, final=True)
        if self.state != _DONE:
            what = "Unterminated string" if self.state == _STRING else "Unterminated JSON document" if self.stack else "Expecting value"
            raise JsonSyntaxError(what, self.offset)

    # -- the machine -------------------------------------------------------------------------------
    def _run(self, buf: bytes, final: bool) -> None:
        i, n = 0, len(buf)
        while True:
            if self.state == _STRING:
                i = self._string(buf, i, final)
                if self.state == _STRING:
                    break  # needs more bytes
                continue
            if self.stack and self.state in (_VALUE, _FIRST_OR_CLOSE, _KEY, _KEY_OR_CLOSE) and not self._top_member():
                run = (_ARRAY_RUN if self.stack[-1] == 0x5B else _OBJECT_RUN).match(buf, i)
                if run is not None and (self.stack[-1] == 0x5B) == (self.state in (_VALUE, _FIRST_OR_CLOSE)):
                    i, self.state = run.end(), _VALUE if self.stack[-1] == 0x5B else _KEY
            i = _WS.match(buf, i).end()  # type: ignore[union-attr]  # matches the empty string too
            if i >= n:
                break
            c, state = buf[i], self.state
            if state == _DONE:
                raise self._error("Extra data", i)
            if state == _COLON:
                if c != 0x3A:  # :
                    raise self._error("Expecting ':' delimiter", i)
                i += 1
                self.state = _VALUE
                if self._top_member() and self.mode == CAPTURE:
                    self.capture, self.cap_from = bytearray(), i
                continue
            if state == _AFTER:
                top = self.stack[-1]
                if c == 0x2C:  # ,
                    self.state = _KEY if top == 0x7B else _VALUE
                    i += 1
                elif c == (0x7D if top == 0x7B else 0x5D):  # } or ]
                    i += 1
                    self.stack.pop()
                    self._value_done(buf, i)
                else:
                    raise self._error("Expecting ',' delimiter", i)
                continue
            if state in (_KEY_OR_CLOSE, _KEY):
                if c == 0x22:  # "
                    self.state, self.in_key, i = _STRING, True, i + 1
                    self.key_raw = bytearray() if self._top_member() else None
                elif c == 0x7D and state == _KEY_OR_CLOSE:
                    i += 1
                    self.stack.pop()
                    self._value_done(buf, i)
                else:
                    raise self._error("Expecting property name enclosed in double quotes", i)
                continue
            # a value (or, right after "[", the end of the array)
            if c == 0x5D and state == _FIRST_OR_CLOSE:
                i += 1
                self.stack.pop()
                self._value_done(buf, i)
            elif c in (0x7B, 0x5B):  # { [
                if len(self.stack) >= MAX_JSON_DEPTH:
                    raise self._error("JSON nested too deeply", i)
                if self._streamed_value():
                    self.listener.not_a_string()
                self.stack.append(c)
                self.state = _KEY_OR_CLOSE if c == 0x7B else _FIRST_OR_CLOSE
                i += 1
            elif c == 0x22:
                i += 1
                self.state, self.in_key = _STRING, False
                self.streaming = self._streamed_value()
                if self.streaming:
                    self.listener.string_start(self.offset + i)
            else:
                end = self._scalar(buf, i, final)
                if end is None:
                    break  # may continue in the next chunk
                if self._streamed_value():
                    self.listener.not_a_string()
                i = end
                self._value_done(buf, i)
        consumed = min(i, n)
        if self.capture is not None:
            self._capture(buf[self.cap_from : consumed])
            self.cap_from = 0
        self.carry = buf[consumed:]
        self.offset += consumed

    def _top_member(self) -> bool:
        return len(self.stack) == 1 and self.stack[0] == 0x7B

    def _streamed_value(self) -> bool:
        """Is the value starting now one the listener streams?"""
        if self.listener is None:
            return False
        if not self.stack:
            return self.stream_top_level
        return self._top_member() and self.mode == STREAM

    def _scalar(self, buf: bytes, i: int, final: bool) -> int | None:
        """End of the number or literal at ``i``; None when it may continue in the next chunk."""
        n = len(buf)
        m = _NUMBER.match(buf, i)
        literal = next((lit for lit in _LITERALS if buf.startswith(lit, i)), None)
        if literal is not None:
            end = i + len(literal)
        elif m is not None:
            end = m.end()
            if not m.group(1) and not m.group(2):  # an integer: json.loads converts it with int()
                limit = sys.get_int_max_str_digits()
                if limit and end - i - (buf[i] == 0x2D) > limit:
                    raise self._error("Exceeds the limit for integer string conversion", i)
        elif not final and n - i < 9 and any(lit.startswith(buf[i:]) for lit in _LITERALS):
            return None  # a literal cut by the chunk boundary
        else:
            raise self._error("Expecting value", i)
        if not final and (end >= n or _NUMBER_CUT.fullmatch(buf, end)):  # "1" then "e5" in the next chunk
            if end - i > _LONGEST_TOKEN:
                raise self._error("Number too long", i)
            return None
        return end

    def _string(self, buf: bytes, i: int, final: bool) -> int:
        n = len(buf)
        while True:
            j = _STRING_RUN.match(buf, i).end()  # type: ignore[union-attr]  # matches the empty string too
            if j > i:
                self._piece(buf[i:j])
                i = j
            if i >= n:
                return i
            c = buf[i]
            if c == 0x22:
                i += 1
                self._end_string(buf, i)
                return i
            if c != 0x5C:
                raise self._error("Invalid control character", i)
            if i + 1 >= n:
                return i  # the escape continues in the next chunk (close() reports a cut one)
            e = buf[i + 1]
            if e in b'"\\/bfnrt':
                self._piece(buf[i : i + 2])
                i += 2
            elif e == 0x75 and i + 6 <= n and _HEX4.match(buf, i + 2):
                self._piece(buf[i : i + 6])
                i += 6
            elif e == 0x75 and i + 6 > n and not final and _HEX4.match(buf[i + 2 :] + b"0000"):
                return i
            else:
                raise self._error("Invalid \\uXXXX escape" if e == 0x75 else "Invalid \\escape", i)

    def _piece(self, raw: bytes) -> None:
        if self.in_key:
            if self.key_raw is not None:
                self.key_raw += raw
                if len(self.key_raw) > KEY_LIMIT:
                    self.key_raw = None
        elif self.streaming:
            self.listener.string_piece(raw)

    def _end_string(self, buf: bytes, i: int) -> None:
        if self.in_key:
            self.state, self.in_key = _COLON, False
            if self._top_member():
                self.key = None if self.key_raw is None else json.loads(b'"' + bytes(self.key_raw) + b'"')
                self.key_raw = None
                self.mode = self.listener.member(self.key) if self.listener is not None else SKIP
            return
        if self.streaming:
            self.streaming = False
            self.listener.string_end(self.offset + i - 1)
        self._value_done(buf, i)

    def _value_done(self, buf: bytes, i: int) -> None:
        """A value ended just before ``i``."""
        self.state = _AFTER if self.stack else _DONE
        if self.capture is not None and self._top_member():
            self._capture(buf[self.cap_from : i])
            raw, self.capture = bytes(self.capture), None
            self.listener.captured(self.key, raw)

    def _capture(self, raw: bytes) -> None:
        self.capture += raw  # type: ignore[operator]
        if len(self.capture) > CAPTURE_LIMIT:
            raise JsonSyntaxError(f"{self.key} is larger than {CAPTURE_LIMIT} bytes", self.offset)

    def _error(self, message: str, i: int) -> JsonSyntaxError:
        return JsonSyntaxError(message, self.offset + i)


def json_string_text(raw: bytes, utf8: Any) -> str:
    """One ``string_piece`` as text: an escape sequence decoded as ``json.loads`` does, plain
    characters through ``utf8`` (an incremental UTF-8 decoder: a character may span pieces)."""
    if raw[:1] == b"\\":
        return json.loads(b'"' + raw + b'"')
    return utf8.decode(raw)


# -- base64 ----------------------------------------------------------------------------------------
_WHITESPACE = re.compile(r"\s+")  # what str.split() splits on
_QUAD_SAFE = re.compile(r"[A-Za-z0-9+/]*")


class Base64Decoder:
    """``messagePayload`` decoded piece by piece, exactly as ``base64.b64decode(s, validate=True)``
    decodes the whole string once its whitespace is removed (``"".join(s.split())``): whole
    4-character groups are decoded as they come; the last one and any padding wait for the end."""

    def __init__(self) -> None:
        self.pending = ""
        self.characters = 0  # non-whitespace characters seen

    def feed(self, text: str) -> bytes:
        text = _WHITESPACE.sub("", text)
        if not text:
            return b""
        self.characters += len(text)
        self.pending += text
        head, padded, padding = self.pending.partition("=")
        if _QUAD_SAFE.fullmatch(head) is None or padding.strip("="):
            base64.b64decode(self.pending, validate=True)  # raises as the whole string would
            raise ValueError("not base64")  # (not reached)
        cut = max((len(head) - 1) // 4 * 4, 0)  # keep the last group (at least one character) back
        done, self.pending = head[:cut], self.pending[cut:]
        if padded:  # only more "=" may follow; a long run of them changes nothing
            self.pending = self.pending.partition("=")[0] + "=" * min(len(padding) + 1, 8)
        return binascii.a2b_base64(done, strict_mode=True) if done else b""

    def close(self) -> bytes:
        """The rest; raises ``binascii.Error`` / ``ValueError`` where ``b64decode`` would."""
        return base64.b64decode(self.pending, validate=True) if self.pending else b""


# -- content type ----------------------------------------------------------------------------------
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def has_control_chars(text: str) -> bool:
    return _CONTROL_CHARS.search(text) is not None


class ContentSniffer:
    """What the bytes fed are: JSON (an object or array ``json.loads`` accepts), UTF-8 text, or
    binary (not UTF-8, or control characters) — in bounded memory however long they are."""

    def __init__(self) -> None:
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.is_text = True
        self.control = False
        self.first: str | None = None  # the first character that is not (Unicode) whitespace
        self.json: JsonScanner | None = JsonScanner()
        self.size = 0

    def feed(self, data: bytes, final: bool = False) -> None:
        self.size += len(data)
        if not self.is_text:
            return
        try:
            text = self.utf8.decode(data, final)
        except UnicodeDecodeError:
            self.is_text, self.json = False, None
            return
        self.control = self.control or has_control_chars(text)
        if self.first is None and text.lstrip():
            self.first = text.lstrip()[0]
            if self.first not in "{[":
                self.json = None
        if self.json is not None:
            try:
                self.json.feed(data)
                if final:
                    self.json.close()
            except JsonSyntaxError:
                self.json = None

    def close(self) -> None:
        self.feed(b"", final=True)

    @property
    def is_json(self) -> bool:
        return self.is_text and self.json is not None and self.first is not None


def is_json_document(data: bytes) -> bool:
    """``data`` is a JSON object or array (``json.loads`` at C speed; the scanner when it recurses too deep)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if text.lstrip()[:1] not in ("{", "["):
        return False
    try:
        json.loads(text)
        return True
    except ValueError:
        return False
    except RecursionError:
        sniffer = ContentSniffer()
        sniffer.feed(data, final=True)
        return sniffer.is_json


# -- a seed request, read as it streams ------------------------------------------------------------
MISSING: Any = object()


@dataclass
class DecodedPayload:
    """``messagePayload`` decoded: digest, size, sniffed type; the bytes when at most ``keep`` long."""

    sha256: str
    size: int
    is_text: bool
    is_json: bool
    control_chars: bool
    data: bytes | None  # None: longer than the reader keeps (read it again from ``start`` .. ``end``)
    start: int  # byte range of the base64 string's content in the document
    end: int


@dataclass
class SeedDocument:
    """What a seed request holds, or why it is not usable (the checks themselves are the caller's)."""

    seed_shaped: bool
    json_error: str | None = None
    metadata: Any = MISSING
    message_id: Any = MISSING
    payload: DecodedPayload | None = None
    payload_error: str | None = None  # "not a base64 string" | "empty" | "not valid base64 (...)"


class _PayloadStream:
    """One ``messagePayload`` string: unescaped, base64-decoded, hashed, sniffed, kept up to ``keep``."""

    def __init__(self, keep: int | None, start: int) -> None:
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.base64 = Base64Decoder()
        self.sha = hashlib.sha256()
        self.sniffer = ContentSniffer()
        self.keep = keep
        self.kept: io.BytesIO | None = io.BytesIO()
        self.start, self.end = start, start
        self.error: str | None = None

    def piece(self, raw: bytes) -> None:
        if self.error is None:
            try:
                self.bytes(self.base64.feed(json_string_text(raw, self.utf8)))
            except (binascii.Error, ValueError) as exc:  # (UnicodeDecodeError: the document is refused anyway)
                self.error = f"not valid base64 ({exc})"

    def bytes(self, data: bytes) -> None:
        if not data:
            return
        self.sha.update(data)
        self.sniffer.feed(data)
        if self.kept is not None:
            self.kept.write(data)
            if self.keep is not None and self.kept.tell() > self.keep:
                self.kept = None

    def finish(self, end: int) -> None:
        self.end = end
        if self.error is None:
            try:
                self.bytes(self.base64.close())
            except (binascii.Error, ValueError) as exc:
                self.error = f"not valid base64 ({exc})"
        if self.error is None and not self.base64.characters:
            self.error = "empty"
        self.sniffer.close()

    def result(self) -> DecodedPayload:
        s = self.sniffer
        data = self.kept.getvalue() if self.kept is not None else None
        return DecodedPayload(self.sha.hexdigest(), s.size, s.is_text, s.is_json, s.control, data, self.start, self.end)


class SeedDocumentReader:
    """Reads a document chunk by chunk and says whether it is a seed request (a JSON object with
    a ``messageMetaData`` or ``messagePayload`` member); if so, keeps ``messageMetaData`` and
    ``messageID`` and decodes ``messagePayload`` as it streams (the last one wins, as in
    ``json.loads``). Memory: the chunk, the kept members (≤ ``CAPTURE_LIMIT`` each) and the decoded
    payload up to ``keep`` bytes (None: all of it)."""

    def __init__(self, keep: int | None = None) -> None:
        self.scanner = JsonScanner(self)
        self.keep = keep
        self.doc = SeedDocument(seed_shaped=False)
        self.decided = False  # seed-shaped or not, known
        self.started = False
        self.utf8 = codecs.getincrementaldecoder("utf-8")()  # json.loads reads UTF-8 text only
        self.utf8_read = 0
        self.stream: _PayloadStream | None = None

    # -- input -------------------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        if self.decided and not self.doc.seed_shaped or self.doc.json_error:
            return
        if not self.started:
            head = chunk.lstrip(b" \t\n\r")
            if not head:
                return
            self.started = True
            if head[:1] != b"{":  # not an object: not a seed request
                self.decided = True
                return
        try:  # (the scanner first: a seed key in this chunk makes a bad byte in it the request's fault)
            self.scanner.feed(chunk)
            self._check_utf8(chunk)
        except (JsonSyntaxError, UnicodeDecodeError) as exc:
            self._invalid(exc)

    def _check_utf8(self, chunk: bytes, final: bool = False) -> None:
        held = len(self.utf8.getstate()[0])
        try:
            self.utf8.decode(chunk, final)
        except UnicodeDecodeError as exc:  # (positions are the document's, not the chunk's)
            raise UnicodeDecodeError("utf-8", b"", 0, 1, f"{exc.reason} at byte {self.utf8_read - held + exc.start}") from None
        self.utf8_read += len(chunk)

    def close(self) -> SeedDocument:
        if not self.decided or self.doc.seed_shaped and not self.doc.json_error:
            try:
                self._check_utf8(b"", final=True)
                self.scanner.close()
            except (JsonSyntaxError, UnicodeDecodeError) as exc:
                self._invalid(exc)
        self.decided = True
        return self.doc

    @property
    def not_seed(self) -> bool:
        """Known not to be a seed request (the rest need not be read)."""
        return self.decided and not self.doc.seed_shaped

    def _invalid(self, exc: ValueError) -> None:
        if self.doc.seed_shaped:
            self.doc.json_error = str(exc) if isinstance(exc, JsonSyntaxError) else f"not UTF-8 ({exc.reason})"  # type: ignore[attr-defined]
        self.decided = True

    # -- JsonScanner's listener --------------------------------------------------------------------
    def member(self, key: str | None) -> int:
        if key in SEED_KEYS:
            self.doc.seed_shaped = self.decided = True
        if key in (METADATA, MESSAGE_ID):
            return CAPTURE
        return STREAM if key == PAYLOAD else SKIP

    def captured(self, key: str, raw: bytes) -> None:
        try:
            value = json.loads(raw)
        except (RecursionError, ValueError) as exc:
            value = MISSING
            self.doc.json_error = f"{key}: {'JSON nested too deeply to parse' if isinstance(exc, RecursionError) else exc}"
        if key == METADATA:
            self.doc.metadata = value
        else:
            self.doc.message_id = value

    def string_start(self, offset: int) -> None:
        self.stream = _PayloadStream(self.keep, offset)

    def string_piece(self, raw: bytes) -> None:
        assert self.stream is not None
        self.stream.piece(raw)

    def string_end(self, offset: int) -> None:
        assert self.stream is not None
        self.stream.finish(offset)
        self.doc.payload, self.doc.payload_error = self.stream.result(), self.stream.error
        self.stream = None

    def not_a_string(self) -> None:
        self.doc.payload, self.doc.payload_error = None, "not a base64 string"


class PayloadRereader:
    """The payload of a seed request read again from its byte range (``DecodedPayload.start`` ..
    ``end``, a ranged GET), decoded to bytes piece by piece."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.base64 = Base64Decoder()
        self.scanner = JsonScanner(self, stream_top_level=True)
        self.scanner.feed(b'"')

    def feed(self, chunk: bytes) -> bytes:
        self.scanner.feed(chunk)
        return self._take()

    def close(self) -> bytes:
        self.scanner.feed(b'"')
        self.scanner.close()
        return self._take()

    def _take(self) -> bytes:
        out, self.pieces = b"".join(self.pieces), []
        return out

    def string_start(self, offset: int) -> None:
        pass

    def string_piece(self, raw: bytes) -> None:
        self.pieces.append(self.base64.feed(json_string_text(raw, self.utf8)))

    def string_end(self, offset: int) -> None:
        self.pieces.append(self.base64.feed(self.utf8.decode(b"", True)))
        self.pieces.append(self.base64.close())
