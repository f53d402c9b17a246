"""The run-file reader on files written by the real wandb SDK, whole and cut at arbitrary points."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metrics import wandb_file
from metrics.wandb_file import Exit, HistoryRow, Summary
from tests.metrics.conftest import SPIKE_STEP


def history(events: list[wandb_file.Event]) -> list[HistoryRow]:
    return [e for e in events if isinstance(e, HistoryRow)]


def test_it_reads_every_history_row_summary_and_exit(run_file: bytes) -> None:
    result = wandb_file.parse(run_file)

    rows = history(result.events)
    assert result.offset == len(run_file)
    assert result.corrupt_chunks == 0
    assert [int(r.values["train/global_step"]) for r in rows] == list(range(1, 301))
    assert [r.step for r in rows] == list(range(300))  # W&B's own _step
    spike = rows[SPIKE_STEP - 1]
    assert spike.values["train/loss"] == 42.0
    assert max(r.values["train/loss"] for r in rows) == 42.0
    assert set(spike.values) == {
        "train/loss",
        "train/learning_rate",
        "train/grad_norm",
        "train/epoch",
        "train/global_step",
        "train/num_input_tokens_seen",
    }
    assert all(r.timestamp is not None and r.timestamp > 1.6e9 for r in rows)
    summaries = [e for e in result.events if isinstance(e, Summary)]
    assert any(s.values.get("eval/score") == 7.03 for s in summaries), summaries[-3:]
    assert result.events[-1] == Exit(0)


def test_the_file_spans_blocks_with_fragmented_records(run_file: bytes) -> None:
    """The fixture is large enough to exercise FIRST/LAST chunks across the 32 KiB block boundary."""
    assert len(run_file) > 3 * wandb_file.BLOCK_SIZE
    types = set()
    pos = wandb_file.HEADER_SIZE
    while pos + wandb_file.HEADER_SIZE <= len(run_file):
        left = wandb_file.BLOCK_SIZE - pos % wandb_file.BLOCK_SIZE
        if left < wandb_file.HEADER_SIZE:
            pos += left
            continue
        _crc, length, kind = struct.unpack_from("<IHB", run_file, pos)
        types.add(kind)
        pos += wandb_file.HEADER_SIZE + length
    assert {wandb_file.FULL, wandb_file.FIRST, wandb_file.LAST} <= types


def test_a_half_written_record_waits(run_file: bytes) -> None:
    whole = wandb_file.parse(run_file)
    first = wandb_file.parse(run_file[:1000])
    assert 0 < first.offset < 1000
    again = wandb_file.parse(run_file[first.offset : 1000], first.offset)
    assert again.events == [] and again.offset == first.offset  # nothing twice, nothing lost
    rest = wandb_file.parse(run_file[first.offset :], first.offset)
    assert first.events + rest.events == whole.events


def test_nothing_before_the_file_header_is_complete() -> None:
    assert wandb_file.parse(b":W&").offset == 0


def test_it_refuses_a_file_that_is_not_a_wandb_run() -> None:
    with pytest.raises(wandb_file.WandbFileError):
        wandb_file.parse(b"not a wandb file at all")


def test_a_corrupt_chunk_is_skipped_with_its_block(run_file: bytes) -> None:
    broken = bytearray(run_file)
    broken[wandb_file.BLOCK_SIZE + 500] ^= 0xFF  # somewhere inside the second block
    whole = history(wandb_file.parse(run_file).events)

    result = wandb_file.parse(bytes(broken))

    assert result.corrupt_chunks == 1
    assert result.offset == len(run_file)
    rows = history(result.events)
    assert 0 < len(whole) - len(rows) < 100  # one block's rows lost, the rest read
    assert rows[-1] == whole[-1]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.floats(min_value=0, max_value=1), max_size=12))
def test_reading_in_pieces_equals_one_full_parse(run_file: bytes, cuts: list[float]) -> None:
    """The file as it grows: each read goes from the returned offset to wherever the writer is."""
    whole = wandb_file.parse(run_file)
    ends = [*sorted(int(c * len(run_file)) for c in cuts), len(run_file)]
    offset = 0
    events: list[wandb_file.Event] = []
    for end in ends:
        piece = wandb_file.parse(run_file[offset:end], offset) if end >= offset else None
        if piece is None:
            continue
        assert piece.offset >= offset
        events += piece.events
        offset = piece.offset
    assert offset == len(run_file)
    assert events == whole.events
