"""Read a W&B run file (`run-<id>.wandb`) incrementally, from a byte offset, while it is being written.

The file is a LevelDB-style log, as wandb's core writes it:

1. A 7-byte file header: b":W&B", magic 0xBEE1 (little-endian uint16), version 0.
2. Then 32 KiB blocks of chunks. Each chunk has a 7-byte header: CRC32 (uint32, little-endian; zlib's
   CRC-32 of the type byte followed by the data, not masked), length (uint16), type (uint8:
   1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST). A block's tail shorter than a header is zero padding.
3. A FULL chunk, or FIRST + MIDDLE* + LAST, is one `wandb.proto.wandb_internal_pb2.Record`.

`parse(data, start)` consumes only whole records and returns the offset just after the last one, so a
record still being written waits for the next read and nothing is ever read twice.

As a metrics source: `find_run_file` finds a job's file under its run directory and `read_new` reads
what was written after an offset, over any `RunFiles` (scheduler.ssh.Connection, over SFTP). No Django
here; `metrics.ingest` stores what these return.
"""

from __future__ import annotations

import functools
import json
import math
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

BLOCK_SIZE = 32 * 1024
HEADER_SIZE = 7
FILE_HEADER = struct.pack("<4sHB", b":W&B", 0xBEE1, 0)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_CHUNK = struct.Struct("<IHB")
_TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in (FULL, FIRST, MIDDLE, LAST)}


class WandbFileError(Exception):
    """The bytes are not a W&B run file (wrong file header)."""


@dataclass(frozen=True)
class HistoryRow:
    """One `wandb.log()` call: its step, the numeric values by key, and its `_timestamp` (epoch s)."""

    step: int
    values: dict[str, float]
    timestamp: float | None = None
    # Keys whose value was NaN or infinite: not stored as points, but the loss watch tells of them.
    nonfinite: tuple[str, ...] = ()


@dataclass(frozen=True)
class Summary:
    values: dict[str, Any]


@dataclass(frozen=True)
class Exit:
    exit_code: int


Event = HistoryRow | Summary | Exit


@dataclass
class ParseResult:
    events: list[Event] = field(default_factory=list)
    offset: int = 0  # where the next read starts: just after the last whole record consumed
    corrupt_chunks: int = 0  # chunks whose CRC did not match (skipped with the rest of their block)
    more: bool = False  # `read_new` filled its window: the file may hold more after `offset`


class RunFiles(Protocol):
    """What reading run files needs of a connection (scheduler.ssh.Connection has both, over SFTP)."""

    def read_from(self, path: str, offset: int, max_bytes: int = ...) -> bytes: ...

    def listdir(self, path: str) -> list[tuple[str, int, bool]]: ...


def find_run_file(files: RunFiles, run_dir: str, run_id: UUID) -> str | None:
    """The newest run directory of this run id under `<run_dir>/wandb/` and its `.wandb` file:
    `<run_dir>/wandb/[offline-]run-<time>-<id>/run-<id>.wandb` (the id with or without dashes)."""
    wandb_dir = f"{run_dir}/wandb"
    found: list[tuple[str, str]] = []
    for name, _size, is_dir in files.listdir(wandb_dir):
        if not is_dir or not name.startswith(("offline-run-", "run-")):
            continue
        for text in (str(run_id), run_id.hex):
            if name.endswith(f"-{text}"):
                # The name carries the start time (YYYYMMDD_HHMMSS): the newest run sorts last.
                found.append((name.removeprefix("offline-"), f"{wandb_dir}/{name}/run-{text}.wandb"))
    return max(found)[1] if found else None


def read_new(files: RunFiles, path: str, offset: int, read_bytes: int, max_bytes: int) -> ParseResult:
    """The whole records written to the file since `offset` (a record boundary), without summaries. A
    record larger than `read_bytes` makes the read grow (by 4×, up to `max_bytes`), else it waits for
    the next call. Nothing new: a result whose offset is `offset`. `more`: the read came back full, so
    the file may already hold more (a reader that is behind reads on)."""
    limit = read_bytes
    while True:
        data = files.read_from(path, offset, limit)
        if not data:
            return ParseResult(offset=offset)
        result = parse(data, offset, summaries=False)
        result.more = len(data) >= limit
        if result.offset > offset or len(data) < limit or limit >= max_bytes:
            return result
        limit *= 4


def parse(data: bytes, start: int = 0, *, summaries: bool = True) -> ParseResult:
    """Parse whole records from `data`, which holds the file's bytes from offset `start`.

    `start` must be 0 or an offset this function returned before (a record boundary). Without
    `summaries`, summary records (one per history row, as large) are skipped undecoded.
    """
    return _parse(data, start, decode=True, summaries=summaries)


def scan(data: bytes, start: int = 0) -> ParseResult:
    """Like `parse`, but only find record boundaries (no protobuf decoding): for measuring framing."""
    return _parse(data, start, decode=False, summaries=False)


def _parse(data: bytes, start: int, *, decode: bool, summaries: bool) -> ParseResult:
    result = ParseResult(offset=start)
    pos = 0
    if start == 0:
        if len(data) < HEADER_SIZE:
            return result
        if data[:4] != FILE_HEADER[:4]:
            raise WandbFileError("not a W&B run file (missing :W&B header)")
        pos = HEADER_SIZE
        result.offset = HEADER_SIZE
    pending: list[bytes] = []
    for chunk_type, payload, end, bad in _chunks(data, start, pos):
        if bad:
            result.corrupt_chunks += 1
            pending = []
            result.offset = end
            continue
        if chunk_type == FULL:
            pending = []
            record: bytes | None = payload
        elif chunk_type == FIRST:
            pending = [payload]
            record = None
        elif chunk_type == MIDDLE and pending:
            pending.append(payload)
            record = None
        elif chunk_type == LAST and pending:
            record = b"".join([*pending, payload])
            pending = []
        else:  # a MIDDLE or LAST without its FIRST (after a corrupt chunk): drop it
            pending = []
            record = None
        if not pending:
            result.offset = end
        if record is not None and decode:
            event = _decode(record, summaries)
            if event is not None:
                result.events.append(event)
    return result


def _chunks(data: bytes, start: int, pos: int) -> Iterator[tuple[int, bytes, int, bool]]:
    """(type, payload, absolute end offset, crc mismatch) for each whole chunk in data[pos:]."""
    size = len(data)
    while True:
        absolute = start + pos
        left = BLOCK_SIZE - absolute % BLOCK_SIZE
        if left < HEADER_SIZE:  # zero padding at the block's end
            if pos + left > size:
                return
            pos += left
            continue
        if pos + HEADER_SIZE > size:
            return
        crc, length, chunk_type = _CHUNK.unpack_from(data, pos)
        if crc == 0 and length == 0 and chunk_type == 0:
            # A zero header: the writer padded the rest of this block. Wait until the block is complete.
            if pos + left > size:
                return
            pos += left
            continue
        end = pos + HEADER_SIZE + length
        if end > size:
            return  # still being written
        payload = data[pos + HEADER_SIZE : end]
        bad = chunk_type not in _TYPE_CRC or zlib.crc32(payload, _TYPE_CRC[chunk_type]) != crc
        if bad:
            # As LevelDB does: skip the rest of the block (complete blocks only, so we never skip
            # bytes that have not been written yet).
            block_end = pos + left
            if block_end > size:
                return
            yield chunk_type, b"", start + block_end, True
            pos = block_end
            continue
        yield chunk_type, payload, start + end, False
        pos = end


def _decode(raw: bytes, summaries: bool) -> Event | None:
    record = _record_class()()
    record.ParseFromString(raw)
    kind = record.WhichOneof("record_type")
    if kind == "history":
        values: dict[str, Any] = {}
        for item in record.history.item:
            values[_key(item)] = _value(item)
        step = int(record.history.step.num) if record.history.HasField("step") else None
        if step is None:
            raw_step = values.get("_step")
            step = int(raw_step) if isinstance(raw_step, int | float) else 0
        timestamp = values.get("_timestamp")
        numbers = {
            key: float(value)
            for key, value in values.items()
            if not key.startswith("_")
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
        }
        nonfinite = tuple(
            key
            for key, value in values.items()
            if isinstance(value, float) and not math.isfinite(value) and not key.startswith("_")
        )
        return HistoryRow(
            step=step,
            values=numbers,
            timestamp=float(timestamp) if isinstance(timestamp, int | float) else None,
            nonfinite=nonfinite,
        )
    if kind == "summary" and summaries:
        return Summary({_key(item): _value(item) for item in record.summary.update})
    if kind == "exit":
        return Exit(int(record.exit.exit_code))
    return None


@functools.cache
def _record_class() -> Any:
    from wandb.proto import wandb_internal_pb2 as pb  # imported late: the wandb package is slow to load

    return pb.Record  # type: ignore[attr-defined]


def _key(item: Any) -> str:
    """History and summary items carry either `key` or `nested_key` (a path, joined with dots)."""
    path = item.nested_key
    size = len(path)
    if size == 1:
        return str(path[0])
    return ".".join(path) if size else str(item.key)


def _value(item: Any) -> Any:
    text = item.value_json
    if text:
        try:
            return float(text) if "." in text or "e" in text else int(text)  # the common case, fast
        except ValueError:
            pass
        try:
            return json.loads(text)
        except ValueError:
            return None
    for name in ("number", "integer", "boolean", "text"):
        try:
            if item.HasField(name):
                return getattr(item, name)
        except ValueError:
            continue
    return None
