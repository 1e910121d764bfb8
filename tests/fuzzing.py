"""Hypothesis strategies that damage valid files the way real downloads and hand edits do, for the parser fuzz tests.

``edited(base, sep)`` draws a file made from ``base`` by one to three edits (byte flips, truncation, deleted /
duplicated / swapped / inserted lines, deleted / added / replaced fields, CRLF endings, a BOM, non-UTF-8 bytes), or
replaced by random bytes, or empty. ``sep`` is the field separator (None: whitespace-separated fields).
``edited_binary(base)`` does the same for binary containers (byte flips, 32-bit words set to extreme values,
truncation, inserted/deleted byte runs). The readers under test must succeed or raise a FacemacError, nothing else.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Field values that break naive parsers: empties, NaN/inf spellings, overflowing numbers, text, quotes, control
# characters, non-UTF-8 bytes, full-width digits.
TOKENS = [
    b"", b"nan", b"NaN", b"NA", b"inf", b"-inf", b"1e309", b"-1e309", b"99999999999999999999999999",
    b"18446744073709551616", b"-9223372036854775809", b"4294967296", b"-1", b"2", b"0.5", b"-0", b"+1", b"1.0",
    b"0x10", b"abc", b"\xff\xfe", b"\xc3", b"\xe9t\xe9", b'"', b'"a,b"', b"\t", b" ", b"#", b"\r", b"\x00",
    "\uff11".encode(), b"1,2", b"a b", b"../x.jpg", b"/abs.jpg",
]
U32 = [0, 1, 3, 4, 23, 24, 25, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xCED7230A, (1 << 29) - 1, 1 << 29, 3 << 29,
       (1 << 29) | 5, (2 << 29) | 8, 0x3F800000, 0x7FC00000, 0x7F800000]

LINE_OPS = ["flip", "truncate", "del_line", "dup_line", "swap_lines", "insert_line", "del_field", "add_field",
            "set_field", "set_field", "set_field", "crlf", "bom", "non_utf8"]

def fuzz(max_examples: int = 100) -> settings:
    """Bounded, reproducible hypothesis settings: derandomized (CI sees the same inputs), no example database."""
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _split_fields(line: bytes, sep: bytes | None) -> list[bytes]:
    return line.split(sep) if sep is not None else line.split(b" ")


def _join_fields(fields: list[bytes], sep: bytes | None) -> bytes:
    return (sep if sep is not None else b" ").join(fields)


@st.composite
def _line_edit(draw, data: bytes, sep: bytes | None) -> bytes:
    op = draw(st.sampled_from(LINE_OPS))
    lines = data.split(b"\n")
    li = draw(st.integers(0, max(len(lines) - 1, 0)))
    if op == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1:]
    if op == "truncate":
        return data[:draw(st.integers(0, len(data)))]
    if op == "del_line":
        return b"\n".join(lines[:li] + lines[li + 1:])
    if op == "dup_line":
        return b"\n".join(lines[:li + 1] + lines[li:])
    if op == "swap_lines":
        lj = draw(st.integers(0, max(len(lines) - 1, 0)))
        lines[li], lines[lj] = lines[lj], lines[li]
        return b"\n".join(lines)
    if op == "insert_line":
        new = draw(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=40),
                             st.lists(st.sampled_from(TOKENS), max_size=8).map(lambda t: _join_fields(t, sep))))
        return b"\n".join(lines[:li] + [new] + lines[li:])
    if op in ("del_field", "add_field", "set_field"):
        fields = _split_fields(lines[li], sep)
        fj = draw(st.integers(0, max(len(fields) - 1, 0)))
        if op == "del_field":
            fields = fields[:fj] + fields[fj + 1:]
        elif op == "add_field":
            fields = fields[:fj] + [draw(st.sampled_from(TOKENS))] + fields[fj:]
        else:
            fields[fj:fj + 1] = [draw(st.sampled_from(TOKENS))]
        lines[li] = _join_fields(fields, sep)
        return b"\n".join(lines)
    if op == "crlf":
        return data.replace(b"\n", b"\r\n")
    if op == "bom":
        return b"\xef\xbb\xbf" + data
    if op == "non_utf8":
        i = draw(st.integers(0, len(data)))
        return data[:i] + draw(st.sampled_from([b"\xff", b"\xe9", b"\xc3\x28", b"\x80\x80"])) + data[i:]
    return data


@st.composite
def edited(draw, base: bytes, sep: bytes | None = b",") -> bytes:
    """``base`` after 1-3 text-level edits (most draws), or random bytes, or nothing."""
    kind = draw(st.sampled_from(["edit"] * 8 + ["random", "empty"]))
    if kind == "random":
        return draw(st.binary(max_size=400))
    if kind == "empty":
        return b""
    data = base
    for _ in range(draw(st.integers(1, 3))):
        data = draw(_line_edit(data, sep))
    return data


@st.composite
def edited_binary(draw, base: bytes) -> bytes:
    """``base`` after 1-3 byte-level edits: flips, extreme 32-bit words at aligned offsets, cuts, inserted runs."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=400))
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "u32", "u32", "truncate", "insert", "delete"]))
        n = len(data)
        if op == "flip" and n:
            data[draw(st.integers(0, n - 1))] = draw(st.integers(0, 255))
        elif op == "u32" and n >= 4:
            head = min(n // 4, 64)  # half the time in the first 256 bytes, where headers and lengths live
            i = draw(st.one_of(st.integers(0, head - 1), st.integers(0, n // 4 - 1))) * 4
            data[i:i + 4] = draw(st.sampled_from(U32)).to_bytes(4, "little")
        elif op == "truncate":
            del data[draw(st.integers(0, n)):]
        elif op == "insert":
            i = draw(st.integers(0, n))
            data[i:i] = draw(st.binary(min_size=1, max_size=12))
        elif op == "delete" and n:
            i = draw(st.integers(0, n - 1))
            del data[i:i + draw(st.integers(1, 12))]
    return bytes(data)
