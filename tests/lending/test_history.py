"""A booking's history in words: every event code has a label in both languages, the page shows the
label (never the code), and the code every writer emits is one of them. Also the share of booked
GPU-hours used, which small uses must not round to 0%."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone, translation

from lending import services
from lending.models import Reservation, ReservationEvent
from lending.usage import Usage
from scheduler.models import Cluster, Job
from tests.personas import Team

LENDING = Path(services.__file__).parent
CODES = ReservationEvent.Kind.values


def history(body: str) -> str:
    """The visible text of the history list."""
    start = body.index('id="history"')
    return re.sub(r"<[^>]+>", " ", body[start : body.index("</ul>", start)])


@pytest.mark.parametrize("language", ["ja", "en"])
def test_every_event_code_is_shown_as_words(team: Team, book: Any, language: str) -> None:
    r = book("member")
    r.events.all().delete()
    for code in CODES:
        ReservationEvent.objects.create(reservation=r, kind=code, note="")
    shown = history(team.client("member", language).get(r.get_absolute_url()).content.decode())
    if language == "ja":  # (English labels may use the code's word: "Window changed")
        raw = [code for code in CODES if re.search(rf"(?<![\w-]){code}(?![\w-])", shown)]
        assert raw == [], shown
    assert not any("_" in word for word in shown.split())  # slurm_create, not_enforced …
    with translation.override(language):
        labels = [str(ReservationEvent.Kind(code).label) for code in CODES]
    assert all(label in shown for label in labels)
    if language == "ja":  # translated, each apart from the English
        with translation.override("en"):
            english = [str(ReservationEvent.Kind(code).label) for code in CODES]
        assert [code for code, ja, en in zip(CODES, labels, english, strict=True) if ja == en] == []
        assert len(set(labels)) == len(labels)


def _emitted_codes() -> set[str]:
    """Event codes written anywhere in the lending app: `event="…"`, `_event(r, "…"` and the sync's
    actions (`record_sync(r, "…"` and `Outcome("…"`, written as `slurm_<action>`)."""
    found: set[str] = set()
    for path in LENDING.glob("*.py"):
        text = path.read_text()
        found |= set(re.findall(r'\bevent="(\w+)"', text))
        found |= set(re.findall(r'\b_event\(\s*\w+,\s*"(\w+)"', text))
        found |= {f"slurm_{a}" for a in re.findall(r'\brecord_sync\(\s*[\w.]+,\s*"(\w+)"', text)}
        found |= {f"slurm_{a}" for a in re.findall(r'\bOutcome\(\s*"(\w+)"', text)}
    return found


def test_every_code_the_app_writes_has_a_label() -> None:
    emitted = _emitted_codes()
    assert {"requested", "approved", "slurm_create", "slurm_delete_kept", "not_enforced"} <= emitted
    assert emitted - set(CODES) == set()


def test_an_old_row_with_an_unknown_code_still_shows(team: Team, book: Any) -> None:
    r = book("member")
    ReservationEvent.objects.create(reservation=r, kind="retired_code")
    assert "retired_code" in history(team.client("member").get(r.get_absolute_url()).content.decode())


@pytest.mark.parametrize(
    ("used", "booked", "label"),
    [
        (0, 288, "0%"),
        (0.1, 288, "<0.1%"),
        (1.3, 288, "0.5%"),
        (14, 288, "4.9%"),
        (40, 288, "14%"),
        (5, 0, "0%"),
    ],
)
def test_the_used_share_keeps_small_uses_visible(used: float, booked: float, label: str) -> None:
    assert Usage(booked_gpu_hours=booked, used_gpu_hours=used).percent_label == label


def test_the_pages_show_a_small_use_as_a_decimal(team: Team, lab: Cluster) -> None:
    start = timezone.now() - dt.timedelta(hours=10)
    r = Reservation.objects.create(  # 36 hours × 8 GPUs = 288 GPU-hours booked
        requester=team.member("member"), subteam=team.sft, cluster=lab, gpus=8, purpose="x",
        start=start, end=start + dt.timedelta(hours=36), state="active",
    )  # fmt: skip
    Job.objects.create(
        name="j", owner=team.member("member"), subteam=team.sft, cluster=lab, command="x", script="x",
        partition="gpu", time_limit_minutes=60, state="completed", gpus=1, gpu_hours=1.3,
        started_at=start + dt.timedelta(hours=1), ended_at=start + dt.timedelta(hours=2, minutes=18),
    )  # fmt: skip
    client = team.client("member")
    page = client.get(r.get_absolute_url()).content.decode()
    assert "1.3 used of 288 booked (0.5%)" in page
    listing = client.get("/gpus/").content.decode()
    usage = listing[listing.index('id="usage"') :]
    assert "0.5%" in usage and ">0%<" not in usage
