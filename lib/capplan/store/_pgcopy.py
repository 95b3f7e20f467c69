"""PostgreSQL binary COPY streams and binary array values built and parsed with numpy (no
Python object per value).

Only fixed-width, NOT NULL columns are supported: ``int8``, ``float8`` and ``timestamptz``
(sent as int64 microseconds since 2000-01-01 UTC, the server's integer-datetime format).  A
row is then ``int16 field count`` + per field ``int32 length`` + the big-endian value, so a
whole stream is one numpy structured array between the header and the trailer.  A binary
array (``array_send`` format, what a binary query parameter of type ``int8[]`` etc. carries)
is a header and the same ``int32 length`` + value pairs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["encode", "decode", "encode_array", "decode_array", "ELEMENT_OID", "PG_EPOCH_US",
           "ns_to_pg_us", "pg_us_to_ns"]

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = SIGNATURE + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_TRAILER = b"\xff\xff"

#: microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01 UTC)
PG_EPOCH_US = 946_684_800_000_000
_WIRE = {"int8": ">i8", "float8": ">f8", "timestamptz": ">i8"}
#: type oid of each element type (pg_type.oid, fixed since PostgreSQL 7)
ELEMENT_OID = {"int8": 20, "float8": 701, "timestamptz": 1184}


def ns_to_pg_us(ns: np.ndarray) -> np.ndarray:
    """int64 ns since 1970 -> int64 µs since 2000 (floored)."""
    return ns // 1000 - PG_EPOCH_US


def pg_us_to_ns(us: np.ndarray) -> np.ndarray:
    return (us.astype(np.int64) + PG_EPOCH_US) * 1000


def _row_dtype(types: list[str]) -> np.dtype:
    fields = [("nf", ">i2")]
    for i, t in enumerate(types):
        fields += [(f"l{i}", ">i4"), (f"f{i}", _WIRE[t])]
    return np.dtype(fields)


def encode(types: list[str], columns: list[np.ndarray]) -> bytes:
    """A complete binary COPY stream of ``columns`` (timestamptz columns given in pg µs)."""
    dt = _row_dtype(types)
    n = len(columns[0]) if columns else 0
    rows = np.empty(n, dtype=dt)
    rows["nf"] = len(types)
    for i, col in enumerate(columns):
        rows[f"l{i}"] = 8
        rows[f"f{i}"] = col
    return _HEADER + rows.tobytes() + _TRAILER


def decode(types: list[str], data: bytes) -> list[np.ndarray]:
    """Native-endian columns of a binary COPY stream of ``types`` (timestamptz as pg µs).

    Raises ValueError when the stream is not what was asked for (e.g. a NULL field)."""
    if not data:
        return [np.empty(0, dtype=_WIRE[t][1:]) for t in types]
    if data[:len(SIGNATURE)] != SIGNATURE:
        raise ValueError("not a binary COPY stream")
    ext = int.from_bytes(data[15:19], "big")
    body = memoryview(data)[19 + ext:len(data) - 2]
    dt = _row_dtype(types)
    if len(body) % dt.itemsize:
        raise ValueError("binary COPY rows are not the expected fixed width (NULL field?)")
    rows = np.frombuffer(body, dtype=dt)
    if len(rows) and (np.any(rows["nf"] != len(types))
                      or any(np.any(rows[f"l{i}"] != 8) for i in range(len(types)))):
        raise ValueError("binary COPY rows do not match the expected columns")
    return [rows[f"f{i}"].astype(_WIRE[t][1:]) for i, t in enumerate(types)]


def encode_array(kind: str, values: np.ndarray) -> bytes:
    """``values`` as a binary one-dimensional NOT NULL array of ``kind`` (timestamptz given in
    pg µs): what the server's ``array_recv`` reads from a binary parameter."""
    n = len(values)
    if n == 0:  # zero dimensions, no NULLs, the element type
        return np.array([0, 0, ELEMENT_OID[kind]], dtype=">i4").tobytes()
    head = np.array([1, 0, ELEMENT_OID[kind], n, 1], dtype=">i4")  # ndim, flags, oid, size, lbound
    rows = np.empty(n, dtype=[("l", ">i4"), ("v", _WIRE[kind])])
    rows["l"] = 8
    rows["v"] = values
    return head.tobytes() + rows.tobytes()


def decode_array(data: bytes, kind: str) -> np.ndarray:
    """A one-dimensional NOT NULL ``int8[]``/``float8[]``/``timestamptz[]`` as sent by
    ``array_send()`` (timestamptz as pg µs), parsed without a Python object per element."""
    head = np.frombuffer(data, dtype=">i4", count=3)
    if head[0] == 0:
        return np.empty(0, dtype=_WIRE[kind][1:])
    if head[0] != 1 or head[1] != 0:
        raise ValueError("expected a one-dimensional array without NULLs")
    n = int.from_bytes(data[12:16], "big")
    rows = np.frombuffer(data, dtype=[("l", ">i4"), ("v", _WIRE[kind])], offset=20, count=n)
    return rows["v"].astype(_WIRE[kind][1:])
