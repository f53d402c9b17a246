"""Results that take the top of a board or meet a goal's target (a step of the worker's cycle).

`check_results(poll)` reads the `EvalResultEvent` rows after its cursor (`BoardCursor` "board"), at most
`BATCH` a call, and writes a `BoardRecord` for each result (not a baseline) that

- takes the top of its benchmark's project board (every result, baselines included) or of its subteam's
  board (`evals.services.on_board`: the subteam's results and the project's baselines): its
  average is strictly higher than that of every other result on that board at the event's moment
  (results recorded by then); the first result on a board takes its top;
- met a goal's target: `evals.services.update_goals` made the goal achieved (its `GoalRevision`, source
  `eval:<id>`, written with the event).

Each record keeps the previous best (the board's top before it; for a goal, the result that set the
goal's value before) and the diff of the two training jobs' configs (`experiments.compare`; empty when
either has no training job). `slackbot.outbox` turns the records into messages to the subteam's channel
and to the owner; `_board_records.html` shows them on the portal.

Like the Slack outbox, the cursor stays `SETTLE` behind the newest event (ids are handed out before
commit); an event read twice, or a result re-scored, makes no second record (the records' unique
constraints). An event whose score is no longer the result's (re-scored since) is skipped: the later
event is read with the current score. On its first run the cursor starts at the settled events, so
results recorded before this step existed are not announced.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from evals.models import EvalResult, EvalResultEvent
from evals.services import goal_source, on_board
from experiments.compare import config_of, diff_pairs
from experiments.models import BoardCursor, BoardRecord
from portal.models import Goal, GoalRevision, Member

log = logging.getLogger("experiments")

CURSOR = "board"
BATCH = 200
SETTLE = dt.timedelta(seconds=60)
RESULT_FIELDS = ("subteam", "trained_by_job", "job__owner", "trained_by_job__owner", "created_by")


def check_results(poll: Any) -> None:
    """The worker's step (it needs no cluster: `poll` is not used). Cheap when nothing happened: two
    reads, no write transaction."""
    check()


def check() -> int:
    """Read the new result events; the number of records made."""
    seen = BoardCursor.objects.filter(name=CURSOR).values_list("last_id", flat=True).first()
    if seen is not None and not EvalResultEvent.objects.filter(pk__gt=seen).exists():
        return 0
    made = 0
    with transaction.atomic():
        cursor, _created = BoardCursor.objects.select_for_update().get_or_create(
            name=CURSOR, defaults={"last_id": _settled_id()}
        )
        events = list(
            EvalResultEvent.objects.filter(pk__gt=cursor.last_id)
            .select_related(*(f"result__{name}" for name in RESULT_FIELDS))
            .order_by("pk")[:BATCH]
        )
        for event in events:
            try:
                with transaction.atomic():
                    made += len(check_event(event))
            except Exception:  # one bad row never blocks the others
                log.exception("could not check the result of event %s", event.pk)
        settled = timezone.now() - SETTLE
        last = cursor.last_id
        for event in events:
            if event.at > settled:
                break
            last = event.pk
        if last != cursor.last_id:
            cursor.last_id = last
            cursor.save(update_fields=["last_id"])
    return made


def _settled_id() -> int:
    """Where a new cursor starts: after the events older than SETTLE (they were told before, or never)."""
    found = EvalResultEvent.objects.filter(at__lte=timezone.now() - SETTLE).aggregate(last=Max("pk"))
    return int(found["last"] or 0)


def check_event(event: EvalResultEvent) -> list[BoardRecord]:
    """The records one event makes (none when its result has them already)."""
    result = event.result
    if result.is_baseline or result.average is None or event.average != result.average:
        return []
    existing = {(r.scope, r.goal_id) for r in BoardRecord.objects.filter(result=result)}
    new = []
    for scope, board in boards(result):
        if (scope, None) in existing:
            continue
        top, previous = takes_top(result, board, event.at)
        if top:
            new.append(
                BoardRecord(result=result, scope=scope, previous=previous, diff=diff(previous, result))
            )
    for goal, previous in goals_met(result):
        if (BoardRecord.Scope.GOAL, goal.pk) not in existing:
            new.append(
                BoardRecord(
                    result=result,
                    scope=BoardRecord.Scope.GOAL,
                    goal=goal,
                    previous=previous,
                    diff=diff(previous, result),
                )
            )
    # Two workers (two clusters) checking at once: the unique constraints keep one record each.
    BoardRecord.objects.bulk_create(new, ignore_conflicts=True)
    return new


def boards(result: EvalResult) -> list[tuple[str, QuerySet[EvalResult]]]:
    """The boards the result is on: the project's and, for a subteam's result, the subteam's."""
    found = [(str(BoardRecord.Scope.PROJECT), on_board(EvalResult.objects.all(), result.benchmark))]
    if result.subteam_id is not None:
        own = on_board(EvalResult.objects.all(), result.benchmark, result.subteam_id)
        found.append((str(BoardRecord.Scope.SUBTEAM), own))
    return found


def takes_top(
    result: EvalResult, board: QuerySet[EvalResult], at: dt.datetime
) -> tuple[bool, EvalResult | None]:
    """Whether the result's average beats every other one on the board recorded by `at`, and the
    board's top before it (None when the board had no other scored result)."""
    best = (
        board.exclude(pk=result.pk)
        .filter(average__isnull=False, created_at__lte=at)
        .select_related("trained_by_job")
        .order_by("-average", "created_at", "pk")
        .first()
    )
    if best is None:
        return True, None
    assert result.average is not None and best.average is not None
    return result.average > best.average, best


def goals_met(result: EvalResult) -> list[tuple[Goal, EvalResult | None]]:
    """The goals this result made achieved, each with the result that had set its value before."""
    found = []
    revisions = GoalRevision.objects.filter(source=goal_source(result)).select_related("goal").order_by("pk")
    for revision in revisions:
        status = revision.changes.get("status")
        if isinstance(status, list) and len(status) == 2 and status[1] == Goal.Status.ACHIEVED:
            found.append((revision.goal, _previous_for_goal(revision)))
    return found


def _previous_for_goal(achieved: GoalRevision) -> EvalResult | None:
    """The result whose value the goal held before `achieved` (its latest earlier change of the value,
    when a result made it), other than the same result re-scored."""
    earlier = (
        GoalRevision.objects.filter(goal_id=achieved.goal_id, pk__lt=achieved.pk)
        .exclude(source=achieved.source)
        .order_by("-pk")
    )
    for revision in earlier:
        if "metric_current" not in revision.changes:
            continue
        kind, _sep, pk = revision.source.partition(":")
        if kind != "eval" or not pk.isdigit():
            return None  # set by hand
        return EvalResult.objects.select_related("trained_by_job").filter(pk=int(pk)).first()
    return None


def diff(previous: EvalResult | None, result: EvalResult) -> list[dict[str, str]]:
    """What changed in the training config against the previous best; empty when either has no
    training job."""
    if previous is None or previous.trained_by_job is None or result.trained_by_job is None:
        return []
    return diff_pairs(config_of(previous.trained_by_job), config_of(result.trained_by_job))


# --- who is told, and what is shown ----------------------------------------------------------------------


def owner_of(result: EvalResult) -> Member | None:
    """Whose result it is: its evaluation job's owner, else its training job's, else who recorded it."""
    if result.job is not None:
        return result.job.owner
    if result.trained_by_job is not None:
        return result.trained_by_job.owner
    return result.created_by


def metric_of(record: BoardRecord) -> str:
    """The metric the record is about: the goal's (`jmt_bench.coding`, …), else the benchmark's average."""
    if record.goal is not None and record.goal.metric_name:
        return record.goal.metric_name
    return f"{record.result.benchmark}.avg"


def values(record: BoardRecord) -> tuple[float | None, float | None]:
    """The previous best's value and the result's, in the record's metric."""
    metric = metric_of(record)
    before = record.previous.metric(metric) if record.previous is not None else None
    return before, record.result.metric(metric)


@dataclass(frozen=True)
class Shown:
    """A record as the portal shows it (`experiments/_board_records.html`)."""

    record: BoardRecord
    before: float | None
    after: float | None
    diff: list[dict[str, str]] = field(default_factory=list)

    @property
    def scope(self) -> str:
        return self.record.scope

    @property
    def subteam(self) -> str:
        subteam = self.record.result.subteam
        return subteam.name if subteam is not None else ""

    @property
    def goal(self) -> Goal | None:
        return self.record.goal

    @property
    def previous(self) -> EvalResult | None:
        return self.record.previous

    @property
    def benchmark(self) -> str:
        return self.record.result.benchmark_label

    @property
    def at(self) -> dt.datetime:
        return self.record.at


def shown(result: EvalResult) -> list[Shown]:
    """The result's records, oldest first, for `{% include "experiments/_board_records.html" %}`
    (its context variable: `board_records`)."""
    records = (
        BoardRecord.objects.filter(result=result)
        .select_related("result__subteam", "previous", "goal")
        .order_by("at", "pk")
    )
    return [Shown(record, *values(record), diff=list(record.diff or [])) for record in records]
