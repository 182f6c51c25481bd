"""The weekly report's chart as a PNG, in pure Python (no plotting library: matplotlib is not in
MWAA's constraints): daily records per producer as small multiples, one band per producer with
this week's bars over the previous week's (faint). Text is drawn with a built-in 5x7 pixel font
(upper-case ASCII; anything else as ``?``). Pure: no I/O.

Email clients show it as an inline image (a ``cid:`` attachment), so it is drawn at twice the size
it is shown at (:data:`DISPLAY_WIDTH`) to stay sharp on high-density screens.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

DISPLAY_WIDTH = 600  # CSS pixels in the email
SCALE = 2  # image pixels per CSS pixel
MAX_BANDS = 12  # producers drawn; the table lists them all

# Indexed colours (PNG palette): background, text, muted text, grid, this week, previous week,
# silent (alert) and new.
PALETTE = (
    (0xFF, 0xFF, 0xFF), (0x1F, 0x29, 0x37), (0x6B, 0x72, 0x80), (0xE5, 0xE7, 0xEB),
    (0x25, 0x63, 0xEB), (0xBF, 0xCF, 0xF0), (0xB4, 0x23, 0x18), (0x05, 0x7A, 0x55),
)  # fmt: skip
BACKGROUND, TEXT, MUTED, GRID, CURRENT, PREVIOUS, SILENT, NEW = range(len(PALETTE))

# 5x7 glyphs, rows top to bottom ('#' on).
_GLYPHS = """
0 .###. #...# #..## #.#.# ##..# #...# .###.
1 ..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.
2 .###. #...# ....# ...#. ..#.. .#... #####
3 ##### ...#. ..#.. ...#. ....# #...# .###.
4 ...#. ..##. .#.#. #..#. ##### ...#. ...#.
5 ##### #.... ####. ....# ....# #...# .###.
6 ..##. .#... #.... ####. #...# #...# .###.
7 ##### ....# ...#. ..#.. .#... .#... .#...
8 .###. #...# #...# .###. #...# #...# .###.
9 .###. #...# #...# .#### ....# ...#. .##..
A .###. #...# #...# #...# ##### #...# #...#
B ####. #...# #...# ####. #...# #...# ####.
C .###. #...# #.... #.... #.... #...# .###.
D ###.. #..#. #...# #...# #...# #..#. ###..
E ##### #.... #.... ####. #.... #.... #####
F ##### #.... #.... ####. #.... #.... #....
G .###. #...# #.... #.### #...# #...# .####
H #...# #...# #...# ##### #...# #...# #...#
I .###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.
J ..### ...#. ...#. ...#. ...#. #..#. .##..
K #...# #..#. #.#.. ##... #.#.. #..#. #...#
L #.... #.... #.... #.... #.... #.... #####
M #...# ##.## #.#.# #.#.# #...# #...# #...#
N #...# #...# ##..# #.#.# #..## #...# #...#
O .###. #...# #...# #...# #...# #...# .###.
P ####. #...# #...# ####. #.... #.... #....
Q .###. #...# #...# #...# #.#.# #..#. .##.#
R ####. #...# #...# ####. #.#.. #..#. #...#
S .#### #.... #.... .###. ....# ....# ####.
T ##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..
U #...# #...# #...# #...# #...# #...# .###.
V #...# #...# #...# #...# #...# .#.#. ..#..
W #...# #...# #...# #.#.# #.#.# #.#.# .#.#.
X #...# #...# .#.#. ..#.. .#.#. #...# #...#
Y #...# #...# .#.#. ..#.. ..#.. ..#.. ..#..
Z ##### ....# ...#. ..#.. .#... #.... #####
- ..... ..... ..... ##### ..... ..... .....
_ ..... ..... ..... ..... ..... ..... #####
. ..... ..... ..... ..... ..... .##.. .##..
, ..... ..... ..... ..... .##.. ..#.. .#...
: ..... .##.. .##.. ..... .##.. .##.. .....
; ..... .##.. .##.. ..... .##.. ..#.. .#...
/ ..... ....# ...#. ..#.. .#... #.... .....
( ...#. ..#.. .#... .#... .#... ..#.. ...#.
) .#... ..#.. ...#. ...#. ...#. ..#.. .#...
[ .###. .#... .#... .#... .#... .#... .###.
] .###. ...#. ...#. ...#. ...#. ...#. .###.
% ##... ##..# ...#. ..#.. .#... #..## ...##
+ ..... ..#.. ..#.. ##### ..#.. ..#.. .....
= ..... ..... ##### ..... ##### ..... .....
# .#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.
* ..... ..#.. #.#.# .###. #.#.# ..#.. .....
' ..#.. ..#.. .#... ..... ..... ..... .....
& .##.. #..#. #.#.. .#... #.#.# #..#. .##.#
@ .###. #...# ....# .##.# #.#.# #.#.# .###.
! ..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..
? .###. #...# ....# ...#. ..#.. ..... ..#..
< ...#. ..#.. .#... #.... .#... ..#.. ...#.
> .#... ..#.. ...#. ....# ...#. ..#.. .#...
| ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..
$ ..#.. .#### #.#.. .###. ..#.# ####. ..#..
~ ..... ..... .#... #.#.# ...#. ..... .....
"""
FONT: dict[str, tuple[str, ...]] = {line[0]: tuple(line[2:].split()) for line in _GLYPHS.strip("\n").splitlines()}
FONT[" "] = (".....",) * 7
GLYPH_W, GLYPH_H, ADVANCE = 5, 7, 6  # font pixels; ADVANCE includes the gap


@dataclass(frozen=True)
class Band:
    """One producer's row of the chart: records per day this week and the previous week (None:
    no previous week to compare), its title and the note on the right."""

    title: str
    current: Sequence[int]
    previous: Sequence[int] | None
    note: str = ""
    alert: bool = False  # silent: the title in the alert colour
    new: bool = False


class Canvas:
    """An indexed-colour image: rectangles and text, written as a PNG."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(width * height)  # all BACKGROUND

    def rect(self, x: int, y: int, w: int, h: int, colour: int) -> None:
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, self.width), min(y + h, self.height)
        if x1 <= x0 or y1 <= y0:
            return
        row = bytes([colour]) * (x1 - x0)
        for yy in range(y0, y1):
            start = yy * self.width + x0
            self.pixels[start : start + len(row)] = row

    def text(self, x: int, y: int, text: str, colour: int, size: int) -> int:
        """Draw ``text`` (upper-cased) with its top left at (x, y), each font pixel ``size``
        image pixels; returns the x after it."""
        for ch in text.upper():
            glyph = FONT.get(ch) or FONT["?"]
            for gy, row in enumerate(glyph):
                for gx, bit in enumerate(row):
                    if bit == "#":
                        self.rect(x + gx * size, y + gy * size, size, size, colour)
            x += ADVANCE * size
        return x

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.pixels[y * self.width : (y + 1) * self.width]) for y in range(self.height))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 3, 0, 0, 0)  # 8-bit indexed
        palette = b"".join(bytes(c) for c in PALETTE)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"PLTE", palette)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def text_width(text: str, size: int) -> int:
    return len(text) * ADVANCE * size - (size if text else 0)


def fit(text: str, width: int, size: int) -> str:
    """``text`` cut (with ``..``) to fit ``width`` image pixels."""
    if text_width(text, size) <= width:
        return text
    keep = max(width // (ADVANCE * size) - 2, 1)
    return text[:keep] + ".."


def daily_chart(bands: Sequence[Band], day_labels: Sequence[str], legend: tuple[str, str]) -> bytes:
    """The PNG: a legend, one band per producer (at most :data:`MAX_BANDS`), day labels below.
    Each band has its own scale (the busiest day of either week fills it): the shape of the week
    shows, whatever the producer's volume; the numbers are in the band's note and the table."""
    s = SCALE
    width = DISPLAY_WIDTH * s
    pad, font, band_h, gap = 12 * s, 2 * s, 70 * s, 8 * s
    bands = list(bands)[:MAX_BANDS]
    days = max(len(day_labels), 1)
    top = pad + GLYPH_H * font + gap * 2
    height = top + len(bands) * (band_h + gap) + GLYPH_H * font + pad * 2
    c = Canvas(width, height)
    x = pad
    for label, colour in zip(legend, (CURRENT, PREVIOUS), strict=True):
        c.rect(x, pad, 14 * s, GLYPH_H * font, colour)
        x = c.text(x + 20 * s, pad, label, TEXT, font) + 16 * s
    slot = (width - 2 * pad) // days
    y = top
    for band in bands:
        note_w = text_width(band.note, font)
        colour = SILENT if band.alert else NEW if band.new else TEXT
        c.text(pad, y, fit(band.title, width - 2 * pad - note_w - 12 * s, font), colour, font)
        c.text(width - pad - note_w, y, band.note, SILENT if band.alert else MUTED, font)
        base = y + band_h  # the bars' baseline
        bar_top = y + GLYPH_H * font + 6 * s
        peak = max([*band.current, *(band.previous or ())], default=0) or 1
        for i in range(days):
            left = pad + i * slot
            if band.previous is not None and i < len(band.previous) and band.previous[i]:
                h = max(round((base - bar_top) * band.previous[i] / peak), s)
                c.rect(left + slot // 8, base - h, slot * 3 // 4, h, PREVIOUS)
            if i < len(band.current) and band.current[i]:
                h = max(round((base - bar_top) * band.current[i] / peak), s)
                c.rect(left + slot * 3 // 10, base - h, slot * 2 // 5, h, CURRENT)
        c.rect(pad, base, width - 2 * pad, s, GRID)
        y += band_h + gap
    every = max(1, -(-text_width(max(day_labels, key=len, default=""), font) // max(slot - 4 * s, 1)))
    for i, label in enumerate(day_labels):
        if i % every == 0:
            centre = pad + i * slot + slot // 2
            c.text(centre - text_width(label, font) // 2, y + 2 * s, label, MUTED, font)
    return c.png()
