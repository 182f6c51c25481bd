"""Seed-shaped records read piece by piece: the same answers as reading them whole."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import random

import pytest

from airflow_reliable_messaging.domain import seed_stream as ss


def _scan(data: bytes, splits=()) -> bool:
    scanner = ss.JsonScanner()
    try:
        previous = 0
        for cut in (*splits, len(data)):
            scanner.feed(data[previous:cut])
            previous = cut
        scanner.close()
        return True
    except ss.JsonSyntaxError:
        return False


def _loads(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


TRICKY = [
    "01", "[01]", "1.", "-", "-0", "1e5", "1E+5", "1.5e-3", "[1,]", '{"a":1,}', "NaN", "-NaN", "Infinity", "-Infinity",
    "[Infinityx]", "truex", "[true false]", " 1 ", '"\\x"', '"\\u12"', '"a\tb"', '{"a" 1}', "[]", "{}", "[[]]", '"\\/"',
    "1 2", "", "  ", "\x0c1", "1\x0c", '{"a":[1,2,{"b":null}],"c":"\\u00e9x"}', "[-]", "[1e]", "[tru]", '"abc', '["a"',
    "1" * 4301, "1" * 4300, "-" + "1" * 4300, "1." + "1" * 5000, "[-Infinity, NaN]", "nul", "null ", '"\\ud800"',
    '{"a": "b" "c"}', '[1 , 2 ,3]', '{"a":{"b":{"c":[]}}}', "[" * 50 + "]" * 50, "[" * 50 + "]" * 49,
]  # fmt: skip


@pytest.mark.parametrize("text", TRICKY, ids=lambda t: repr(t[:20]))
def test_the_scanner_accepts_exactly_what_json_loads_accepts_cut_anywhere(text):
    data = text.encode()
    expected = _loads(text)
    for cut in range(len(data) + 1) if len(data) < 200 else (0, 1, len(data) // 2, len(data) - 1):
        assert _scan(data, (cut,)) == expected, (text[:40], cut)


def test_the_scanner_agrees_with_json_loads_on_mutated_documents():
    rng = random.Random(13)
    pieces = ["{", "}", "[", "]", ",", ":", '"a"', '"\\u00e9"', '"\\ud83d\\ude00"', '"\\x"', "1", "-", "0", ".", "e", "+",
              "true", "tru", "null", "NaN", "-Infinity", " ", "\n", '"é"', '"\x01"', "x", '"', "\\", '"a\\"b"', "\xa0"]  # fmt: skip

    def value(depth=0):
        kind = rng.randint(0, 7 if depth < 4 else 3)
        if kind == 0:
            return rng.choice([True, False, None])
        if kind == 1:
            return rng.randint(-(10**6), 10**6)
        if kind == 2:
            return rng.uniform(-1e10, 1e10)
        if kind == 3:
            return "".join(rng.choice('aé\u2028"\\/\n\x01😀') for _ in range(rng.randint(0, 5)))
        if kind in (4, 5):
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {str(rng.randint(0, 9)): value(depth + 1) for _ in range(rng.randint(0, 3))}

    checked = 0
    for _ in range(4000):
        text = json.dumps(value(), ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1]))
        for _ in range(rng.randint(0, 2)):
            at = rng.randint(0, len(text))
            text = text[:at] + rng.choice(pieces) + text[at + 1 :] if rng.random() < 0.5 else text[:at] + text[at + 1 :]
        data = text.encode()
        splits = sorted(rng.randint(0, len(data)) for _ in range(rng.randint(0, 4)))
        assert _scan(data, splits) == _loads(text), (text, splits)
        checked += 1
    assert checked == 4000


def _decode_whole(text: str) -> bytes | None:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except ValueError:
        return None


def _decode_streamed(text: str, splits) -> bytes | None:
    decoder, out, previous = ss.Base64Decoder(), b"", 0
    try:
        for cut in (*splits, len(text)):
            out += decoder.feed(text[previous:cut])
            previous = cut
        return out + decoder.close()
    except ValueError:
        return None


def test_base64_decoded_piece_by_piece_is_b64decode_of_the_whole():
    """Every string of up to 6 characters over a tricky alphabet, cut at every point; then random ones."""
    for length in range(7):
        for chars in itertools.product("AB/= !", repeat=length):
            text = "".join(chars)
            expected = _decode_whole(text)
            for cut in range(length + 1):
                assert _decode_streamed(text, (cut,)) == expected, (text, cut)
    rng = random.Random(7)
    for _ in range(3000):
        text = base64.b64encode(os.urandom(rng.randint(0, 50))).decode()
        text = "".join(c + ("\n" if rng.random() < 0.05 else "") for c in text) + "=" * rng.choice([0, 0, 1, 5, 40])
        splits = sorted(rng.randint(0, len(text)) for _ in range(rng.randint(0, 6)))
        assert _decode_streamed(text, splits) == _decode_whole(text), (text, splits)


def _document(**members) -> bytes:
    return json.dumps(members).encode()


def _read(data: bytes, chunk: int, keep: int | None = None) -> ss.SeedDocument:
    reader = ss.SeedDocumentReader(keep=keep)
    for at in range(0, len(data), chunk):
        reader.feed(data[at : at + chunk])
    return reader.close()


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 24])
def test_a_seed_request_read_in_chunks_gives_its_members_and_decoded_payload(chunk):
    payload = os.urandom(30_000)
    meta = {"messageType": "t", "sourceSystemID": "s", "sourceTransactionID": "x", "dateTime": "2021-07-03 16:21:12.357246"}
    data = _document(messagePayload=base64.b64encode(payload).decode(), other=[1, {"a": "b"}], messageMetaData=meta, messageID="m-1")
    doc = _read(data, chunk)
    assert doc.seed_shaped and doc.json_error is None and doc.payload_error is None
    assert doc.metadata == meta and doc.message_id == "m-1"
    assert doc.payload.data == payload and doc.payload.size == len(payload)
    assert doc.payload.sha256 == hashlib.sha256(payload).hexdigest() and not doc.payload.is_text
    # beyond ``keep``: only the digest, and where to read the payload again
    big = _read(data, chunk, keep=1000)
    assert big.payload.data is None and big.payload.sha256 == doc.payload.sha256
    rereader, again = ss.PayloadRereader(), b""
    segment = data[big.payload.start : big.payload.end]
    for at in range(0, len(segment), chunk):
        again += rereader.feed(segment[at : at + chunk])
    assert again + rereader.close() == payload


@pytest.mark.parametrize(
    ("data", "seed_shaped", "json_error", "payload_error"),
    [
        (b"[1]", False, None, None),
        (b'{"a": 1}', False, None, None),
        (b'{"a": 1', False, None, None),  # not a seed request: whatever it is, it is copied as it is
        (b"\xff{", False, None, None),
        (b'  {"messagePayload": 5}', True, None, "not a base64 string"),
        (b'{"messagePayload": "!!"}', True, None, "not valid base64 (Only base64 data is allowed)"),
        (b'{"messagePayload": ""}', True, None, "empty"),
        (b'{"messageMetaData": {}, "x": }', True, "Expecting value at byte 29", None),
        (b'{"messageMetaData": {"a": "\xff"}}', True, "not UTF-8 (invalid start byte at byte 27)", None),
        (b'{"a": "' + b"x" * 300 + b'", "messageMetaData": 1}', True, None, None),  # found after a long member
    ],
)
def test_what_makes_a_document_a_seed_request_and_what_is_wrong_with_one(data, seed_shaped, json_error, payload_error):
    doc = _read(data, 3)
    assert (doc.seed_shaped, doc.json_error, doc.payload_error) == (seed_shaped, json_error, payload_error)


def test_the_last_payload_wins_and_escapes_decode_as_json_loads_does():
    doc = _read(b'{"messagePayload": "QQ==", "messagePayload": "Q\\u0067=\\u003d"}', 2)  # "Qg==" → b"B"
    assert doc.payload.data == b"B"
    assert _read(b'{"messagePayload": "QQ\\u00a0=="}', 1).payload.data == b"A"  # U+00A0 is whitespace to str.split()


def test_content_is_sniffed_as_the_whole_would_be():
    for data, text, is_json, control in [
        (b"[1, 2]", True, True, False), (b"{not json", True, False, False), ("héllo\n".encode(), True, False, False),
        (b"\xff\xd8\xff", False, False, False), (b"abc\x00def", True, False, True), (b"\xa0 {}", False, False, False),
        ("\u3000{}".encode(), True, False, False), (b"[" * 20_000 + b"]" * 20_000, True, False, False),
    ]:  # fmt: skip
        sniffer = ss.ContentSniffer()
        for at in range(0, len(data), 3):
            sniffer.feed(data[at : at + 3])
        sniffer.close()
        assert (sniffer.is_text, sniffer.is_json, sniffer.control) == (text, is_json, control), data[:20]
        assert ss.is_json_document(data) == is_json  # in memory: json.loads, the scanner when it recurses too deep
