"""The timeline places goals and milestones by day on a track that fills the page (percentages of it)."""

from __future__ import annotations

import datetime as dt

from portal.models import Goal, Milestone, Subteam
from portal.views.timeline import Span, build_columns, header_cells, timeline_rows
from tests.personas import Team

D = dt.date


def test_the_week_grid_places_a_goal_by_day() -> None:
    columns = build_columns(D(2024, 6, 3), D(2024, 6, 23), "week")
    assert columns == [D(2024, 6, 3), D(2024, 6, 10), D(2024, 6, 17)]
    span = Span.of(columns, "week")
    assert (span.first, span.days) == (D(2024, 6, 3), 21)
    goal = Goal(title="SFT/DPO pipeline", start_date=D(2024, 6, 10), due_date=D(2024, 6, 16))
    (group,) = timeline_rows([goal], [], span)
    (bar,) = group["bars"]
    assert (bar["left"], bar["width"]) == (33.333, 33.333)


def test_the_month_grid_spreads_milestones_of_one_month_by_their_day() -> None:
    columns = build_columns(D(2026, 10, 24), D(2027, 1, 4), "month")
    assert columns == [D(2026, 10, 1), D(2026, 11, 1), D(2026, 12, 1), D(2027, 1, 1)]
    span = Span.of(columns, "month")
    assert span.days == 31 + 30 + 31 + 31
    december = [Milestone(title=f"m{day}", date=D(2026, 12, day)) for day in (2, 5, 12, 19, 28)]
    (group,) = timeline_rows([], december, span)
    xs = [m["x"] for m in group["milestones"]]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    # Inside the December column, not all on its left edge.
    december_cell = header_cells(columns, span, "month", D(2026, 12, 7))[2]
    assert december_cell["today"]
    assert all(december_cell["left"] < x < december_cell["left"] + december_cell["width"] for x in xs)
    assert xs[-1] - xs[0] > december_cell["width"] / 2


def test_milestones_on_one_day_each_get_a_row_and_late_ones_put_their_date_on_the_left() -> None:
    columns = build_columns(D(2024, 6, 3), D(2024, 6, 30), "week")
    span = Span.of(columns, "week")
    same_day = [Milestone(title=t, date=D(2024, 6, 29)) for t in ("a", "b", "c")]
    early = Milestone(title="early", date=D(2024, 6, 4))
    (group,) = timeline_rows([], [early, *same_day], span)
    rows = [m["row"] for m in group["milestones"]]
    assert len(set(rows)) == 4
    assert [m["flip"] for m in group["milestones"]] == [False, True, True, True]


def test_groups_come_project_first_then_by_subteam_name(team: Team) -> None:
    columns = build_columns(D(2024, 6, 3), D(2024, 6, 30), "week")
    span = Span.of(columns, "week")
    b = Subteam.objects.create(name="B team", slug="b")
    a = Subteam.objects.create(name="A team", slug="a")
    milestones = [Milestone(subteam=s, title="m", date=D(2024, 6, 10)) for s in (b, None, a)]
    groups = timeline_rows([], milestones, span)
    assert [g["subteam"] for g in groups] == [None, a, b]
    assert [g["row"] for g in groups] == [2, 4, 6]
