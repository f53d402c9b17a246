"""From a source's events to the points stored: each history row's values at the trainer's global step
when the row has one, plus a derived tokens/s series. Pure (no database); ingestion stores the result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from metrics import wandb_file
from metrics.keys import STEP_KEY, TOKENS_KEY, TOKENS_PER_S_KEY
from metrics.store import Points


@dataclass(frozen=True)
class RunState:
    """What is carried from one read of a run to the next (saved on the cursor with its offset)."""

    last_step: int | None = None
    exit_code: int | None = None
    last_tokens: float | None = None  # the previous (tokens seen, time) for tokens/s
    last_time: float | None = None


def points_of(
    events: Sequence[wandb_file.Event], state: RunState, tokens_per_step: float | None = None
) -> tuple[Points, RunState]:
    """The points of the events' history rows and the run state after them. Without a tokens-seen value
    in a row, `tokens_per_step` × the global step stands in for it (from the run config)."""
    points = Points()
    last_step, exit_code = state.last_step, state.exit_code
    last_tokens, last_time = state.last_tokens, state.last_time
    for event in events:
        if isinstance(event, wandb_file.Exit):
            exit_code = event.exit_code
            continue
        if not isinstance(event, wandb_file.HistoryRow):
            continue
        step = int(event.values.get(STEP_KEY, event.step))
        when = dt.datetime.fromtimestamp(event.timestamp, dt.UTC) if event.timestamp is not None else None
        points.add_row(step, event.values, when)
        last_step = step if last_step is None else max(last_step, step)
        tokens = event.values.get(TOKENS_KEY)
        if tokens is None and tokens_per_step and STEP_KEY in event.values:
            tokens = event.values[STEP_KEY] * tokens_per_step
        if tokens is None or event.timestamp is None:
            continue
        if last_tokens is not None and last_time is not None:
            elapsed = event.timestamp - last_time
            if elapsed > 0 and tokens >= last_tokens:
                points.add(TOKENS_PER_S_KEY, step, (tokens - last_tokens) / elapsed, when)
            elif elapsed <= 0:
                continue  # same instant (a train and an eval row): keep the earlier reference
        last_tokens, last_time = tokens, event.timestamp
    return points, RunState(last_step, exit_code, last_tokens, last_time)
