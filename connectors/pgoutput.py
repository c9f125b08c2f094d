"""The pgoutput logical-replication protocol, version 1, decoded into plain objects.

Reference: PostgreSQL docs, "Logical Replication Message Formats". Every integer is
big-endian; strings are NUL-terminated; tuple values are in text format (we never ask
for the binary option), with 'n' = NULL and 'u' = unchanged TOASTed value.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

# Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
PG_EPOCH_OFFSET_US = 946_684_800_000_000


class Unchanged:
    """An unchanged TOASTed value: present in the row but not sent by the server."""

    def __repr__(self) -> str:
        return "UNCHANGED_TOAST"


UNCHANGED_TOAST = Unchanged()
Value = str | None | Unchanged


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int  # LSN of the commit record
    commit_ts_us: int  # Unix epoch microseconds
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_ts_us: int


@dataclass(frozen=True, slots=True)
class RelationColumn:
    name: str
    type_oid: int
    typmod: int
    key: bool


@dataclass(frozen=True, slots=True)
class Relation:
    relid: int
    namespace: str
    name: str
    replica_identity: str  # d default, n nothing, f full, i index
    columns: tuple[RelationColumn, ...]


@dataclass(frozen=True, slots=True)
class Insert:
    relid: int
    new: list[Value]


@dataclass(frozen=True, slots=True)
class Update:
    relid: int
    old: list[Value] | None  # only when the key changed ('K') or REPLICA IDENTITY FULL ('O')
    old_is_key_only: bool
    new: list[Value]


@dataclass(frozen=True, slots=True)
class Delete:
    relid: int
    old: list[Value]
    old_is_key_only: bool


@dataclass(frozen=True, slots=True)
class Truncate:
    relids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True, slots=True)
class Message:
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Ignored:
    """Type ('Y') and Origin ('O') messages: nothing to publish."""

    tag: str


PgOutputMessage = Begin | Commit | Relation | Insert | Update | Delete | Truncate | Message | Ignored

_BEGIN = struct.Struct(">qqi")
_COMMIT = struct.Struct(">bqqq")
_I32 = struct.Struct(">i")
_I16 = struct.Struct(">h")
RELID = struct.Struct(">I")  # RELID.unpack_from(payload, 1)[0]: the relation of R/I/U/D


class ProtocolError(ValueError):
    """A payload that does not follow pgoutput v1."""


def _cstring(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(b"\0", pos)
    return buf[pos:end].decode("utf-8"), end + 1


Converter = Callable[[str], Any] | None
Field = tuple[str, Converter, Any]  # column name, text → value (None: keep the text), unchanged TOAST


def _tuple(buf: bytes, pos: int) -> tuple[list[Value], int]:
    """TupleData → raw values (text, None, UNCHANGED_TOAST), for any number of columns."""
    count = (buf[pos] << 8) | buf[pos + 1]
    row, pos = _Reader([(str(i), None, UNCHANGED_TOAST) for i in range(count)])(buf, pos, [])
    return list(row.values()), pos


RowReader = Callable[[bytes, int, list[str]], tuple[dict[str, Any], int]]

class _Reader:
    """TupleData → {column: converted value} for one relation's columns (see `row_reader`)."""

    def __init__(self, fields: list[Field]) -> None:
        self.names = [name for name, _, _ in fields]
        self.converters = [convert for _, convert, _ in fields]
        self.unchanged = [toast for _, _, toast in fields]

    def __call__(self, buf: bytes, pos: int, bad: list[str]) -> tuple[dict[str, Any], int]:
        names, converters = self.names, self.converters
        count = (buf[pos] << 8) | buf[pos + 1]
        if count != len(names):
            raise ProtocolError(f"tuple has {count} columns, relation has {len(names)}")
        pos += 2
        row: dict[str, Any] = {}
        for i in range(count):
            kind = buf[pos]
            if kind == 116:  # 't' text
                start = pos + 5
                # The length by hand, not _I32.unpack_from: compiled, indexing is C; a Struct
                # method call goes through the interpreter, once per column.
                pos = start + ((buf[pos + 1] << 24) | (buf[pos + 2] << 16)
                               | (buf[pos + 3] << 8) | buf[pos + 4])
                text = buf[start:pos].decode()
                convert = converters[i]
                if convert is None:
                    row[names[i]] = text
                    continue
                try:
                    row[names[i]] = convert(text)
                except (ValueError, ArithmeticError):
                    row[names[i]] = text
                    bad.append(names[i])
            elif kind == 110:  # 'n' null
                row[names[i]] = None
                pos += 1
            elif kind == 117:  # 'u' unchanged toast
                row[names[i]] = self.unchanged[i]
                pos += 1
            else:
                raise ProtocolError(f"unexpected tuple column kind {chr(kind)!r} (binary mode is not used)")
        return row, pos


def row_reader(fields: list[Field]) -> RowReader:
    """TupleData → {column: converted value}, for one relation's columns.

    The hot path of streaming, compiled with mypyc (setup.py). The reader takes
    (payload, position, bad) and returns (row, position after the tuple). An unchanged
    TOASTed value becomes its field's third element; a value its converter rejects is kept
    as text and its column name appended to `bad`, so one odd value never wedges the stream.
    """
    return _Reader(fields)


class Change:
    """An Insert/Update/Delete decoded straight into rows (see `decode_change`).

    A plain class, not a dataclass: compiled, mypyc keeps a dataclass's generated
    `__init__` interpreted; this one is native (~0.1 µs less per row).
    """

    __slots__ = ("op", "old", "old_is_key_only", "new")

    def __init__(self, op: str, old: dict[str, Any] | None, old_is_key_only: bool,
                 new: dict[str, Any] | None) -> None:
        self.op = op  # "c", "u", "d"
        self.old = old
        self.old_is_key_only = old_is_key_only
        self.new = new


ROW_TAGS: Final = frozenset(b"IUD")


def decode_change(payload: bytes, read: RowReader, bad: list[str]) -> Change:
    """An I/U/D payload (`payload[0] in ROW_TAGS`) of a relation, its tuples read by `read`."""
    tag = payload[0]
    marker = payload[5]
    if tag == 73:
        if marker != 78:
            raise ProtocolError("insert without a new tuple")
        return Change("c", None, False, read(payload, 6, bad)[0])
    if marker not in (75, 79, 78):
        raise ProtocolError(f"unexpected tuple marker {chr(marker)!r}")
    old = None
    pos = 5
    if marker in (75, 79):
        old, pos = read(payload, 6, bad)
    if tag == 68:
        if old is None:
            raise ProtocolError("delete without an old tuple")
        return Change("d", old, marker == 75, None)
    if payload[pos] != 78:
        raise ProtocolError("update without a new tuple")
    new, _ = read(payload, pos + 1, bad)
    return Change("u", old, marker == 75, new)


def _relation(buf: bytes) -> Relation:
    (relid,) = RELID.unpack_from(buf, 1)
    namespace, pos = _cstring(buf, 5)
    name, pos = _cstring(buf, pos)
    identity = chr(buf[pos])
    (count,) = _I16.unpack_from(buf, pos + 1)
    pos += 3
    columns = []
    for _ in range(count):
        flags = buf[pos]
        column, pos = _cstring(buf, pos + 1)
        type_oid, typmod = struct.unpack_from(">Ii", buf, pos)
        pos += 8
        columns.append(RelationColumn(column, type_oid, typmod, bool(flags & 1)))
    return Relation(relid, namespace or "pg_catalog", name, identity, tuple(columns))


def _update(buf: bytes) -> Update:
    (relid,) = RELID.unpack_from(buf, 1)
    pos = 5
    old: list[Value] | None = None
    key_only = False
    marker = buf[pos]
    if marker in (75, 79):  # 'K' key columns, 'O' full old row
        key_only = marker == 75
        old, pos = _tuple(buf, pos + 1)
        marker = buf[pos]
    if marker != 78:  # 'N'
        raise ProtocolError(f"update without a new tuple (marker {chr(marker)!r})")
    new, _ = _tuple(buf, pos + 1)
    return Update(relid, old, key_only, new)


def _delete(buf: bytes) -> Delete:
    (relid,) = RELID.unpack_from(buf, 1)
    marker = buf[5]
    if marker not in (75, 79):
        raise ProtocolError(f"delete without an old tuple (marker {chr(marker)!r})")
    old, _ = _tuple(buf, 6)
    return Delete(relid, old, marker == 75)


def _truncate(buf: bytes) -> Truncate:
    (count,) = _I32.unpack_from(buf, 1)
    options = buf[5]
    relids = struct.unpack_from(f">{count}I", buf, 6)
    return Truncate(tuple(relids), bool(options & 1), bool(options & 2))


def _message(buf: bytes) -> Message:
    flags = buf[1]
    (lsn,) = struct.unpack_from(">q", buf, 2)
    prefix, pos = _cstring(buf, 10)
    (length,) = _I32.unpack_from(buf, pos)
    return Message(bool(flags & 1), lsn, prefix, bytes(buf[pos + 4:pos + 4 + length]))


def decode(payload: bytes) -> PgOutputMessage:
    """One XLogData payload → one message object."""
    if not payload:
        raise ProtocolError("empty payload")
    tag = payload[0]
    if tag == 73:  # 'I'
        (relid,) = RELID.unpack_from(payload, 1)
        if payload[5] != 78:
            raise ProtocolError("insert without a new tuple")
        return Insert(relid, _tuple(payload, 6)[0])
    if tag == 85:  # 'U'
        return _update(payload)
    if tag == 68:  # 'D'
        return _delete(payload)
    if tag == 66:  # 'B'
        final_lsn, ts, xid = _BEGIN.unpack_from(payload, 1)
        return Begin(final_lsn, ts + PG_EPOCH_OFFSET_US, xid & 0xFFFFFFFF)
    if tag == 67:  # 'C'
        _flags, commit_lsn, end_lsn, ts = _COMMIT.unpack_from(payload, 1)
        return Commit(commit_lsn, end_lsn, ts + PG_EPOCH_OFFSET_US)
    if tag == 82:  # 'R'
        return _relation(payload)
    if tag == 84:  # 'T'
        return _truncate(payload)
    if tag == 77:  # 'M'
        return _message(payload)
    if tag in (89, 79):  # 'Y' type, 'O' origin
        return Ignored(chr(tag))
    raise ProtocolError(f"unknown pgoutput message {chr(tag)!r}")


def lsn_to_int(text: str) -> int:
    """'16/B374D848' → integer."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def int_to_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"
