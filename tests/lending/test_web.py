"""The lending pages: list, form + htmx preview, a booking's page, decisions, calendar (the .ics feeds:
test_feeds.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from lending import services
from lending.models import KeptReservation, Reservation
from scheduler.models import Cluster
from tests.lending.conftest import soon
from tests.personas import ROLES, Team


def local(value: dt.datetime) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%dT%H:%M")


def form_data(team: Team, lab: Cluster, **changes: object) -> dict[str, Any]:
    data: dict[str, object] = {
        "cluster": lab.pk, "subteam": team.sft.pk, "gpus": 8, "gpu_type": "", "nodes": "",
        "start": local(soon(1)), "end": local(soon(3)), "purpose": "sft eval",
    }  # fmt: skip
    data.update(changes)
    return data


@pytest.mark.parametrize("role", ROLES)
def test_pages_answer_every_role(team: Team, lab: Cluster, book, role: str) -> None:  # type: ignore[no-untyped-def]
    r = book("member")
    client = team.client(role)
    for url in (reverse("lending:list"), reverse("lending:calendar"), r.get_absolute_url()):
        response = client.get(url)
        assert response.status_code == (302 if role == "anon" else 200), url
    form = client.get(reverse("lending:create"))
    assert form.status_code == {"anon": 302, "other": 200}.get(role, 200)


def test_booking_through_the_form(team: Team, lab: Cluster) -> None:
    response = team.client("member").post(reverse("lending:create"), form_data(team, lab))
    r = Reservation.objects.get()
    assert response.status_code == 302 and response["Location"] == r.get_absolute_url()
    assert (r.requester, r.subteam, r.gpus, r.state) == (team.member("member"), team.sft, 8, "requested")


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({"end": "start"}, "The end must be after the start."),
        ({"start": -30, "end": -28}, "This window is in the past."),
        ({"gpus": 99}, "only 32 GPUs"),
        ({"gpus": "", "nodes": "node7"}, "no node node7"),
        ({"gpu_type": "a100"}, "no a100 GPUs"),
    ],
)
def test_the_form_explains_bad_input_and_records_nothing(
    team: Team, lab: Cluster, changes: dict[str, object], text: str
) -> None:
    data = form_data(team, lab)
    for key, value in changes.items():
        if key in ("start", "end"):
            data[key] = data["start"] if value == "start" else local(soon(value))  # type: ignore[arg-type]
        else:
            data[key] = value
    response = team.client("member").post(reverse("lending:create"), data)
    assert response.status_code == 200
    assert text in response.content.decode()
    assert not Reservation.objects.exists()


def test_booking_for_another_subteam_is_refused(team: Team, lab: Cluster) -> None:
    response = team.client("other").post(reverse("lending:create"), form_data(team, lab))
    assert response.status_code == 403
    assert not Reservation.objects.exists()


def test_the_preview_fragment_shows_free_gpus_and_conflicts_in_words(team: Team, lab: Cluster, book) -> None:  # type: ignore[no-untyped-def]
    services.approve(team.member("admin"), book("lead", gpus=24, hours=(1, 3), purpose="dpo sweep"))
    url = reverse("lending:preview")
    fits = team.client("member").get(url, form_data(team, lab, gpus=8), headers={"hx-request": "true"})
    body = fits.content.decode()
    assert fits.status_code == 200 and "<html" not in body and 'id="preview"' in body
    assert body.count('class="cell') == 2 and "8 GPUs fit in every hour" in body
    short = team.client("member").get(url, form_data(team, lab, gpus=16), headers={"hx-request": "true"})
    body = short.content.decode()
    assert "only 8 GPUs free" in body and "&#x27;dpo sweep&#x27; by Lead (Fine-tuning) books 24" in body
    assert body.count('class="cell short"') == 2


def test_admin_approves_and_rejects_on_the_page(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    first, second = book("member", hours=(1, 2)), book("member", hours=(3, 4))
    admin = team.client("admin")
    assert admin.post(reverse("lending:approve", args=[first.pk]), {"note": "go"}).status_code == 302
    assert admin.post(reverse("lending:reject", args=[second.pk]), {"note": "final push"}).status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, first.decision_note, second.state) == ("approved", "go", "rejected")


@pytest.mark.parametrize("role", ["lead", "member", "other"])
def test_only_admins_decide_on_the_page(team: Team, book, role: str) -> None:  # type: ignore[no-untyped-def]
    r = book("member")
    client = team.client(role)
    assert client.post(reverse("lending:approve", args=[r.pk])).status_code == 403
    assert client.post(reverse("lending:reject", args=[r.pk]), {"note": "no"}).status_code == 403
    r.refresh_from_db()
    assert r.state == "requested" and r.approver is None


def test_cancelling_another_subteams_booking_is_refused(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    r = book("member")
    assert team.client("other").post(reverse("lending:cancel", args=[r.pk])).status_code == 403
    r.refresh_from_db()
    assert r.state == "requested"
    assert team.client("lead").post(reverse("lending:cancel", args=[r.pk])).status_code == 302
    r.refresh_from_db()
    assert r.state == "cancelled"


def _count(client, url: str) -> int:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_list_and_calendar_queries_do_not_grow_with_rows(team: Team, lab: Cluster, book) -> None:  # type: ignore[no-untyped-def]
    admin = team.member("admin")
    services.approve(admin, book("member", gpus=8, hours=(1, 2)))
    client = team.client("member")
    urls = [reverse("lending:list"), reverse("lending:calendar")]
    one = [_count(client, url) for url in urls]
    for i in range(8):
        r = book("lead" if i % 2 else "member", gpus=8, hours=(3 + 2 * i, 4 + 2 * i))
        if i % 3 == 0:
            services.approve(admin, r)
    services.approve(admin, book("member", nodes=["node2"], hours=(1, 2)))
    assert [_count(client, url) for url in urls] == one


def test_calendar_shows_bars_on_nodes_and_marks_drained_ones(team: Team, lab: Cluster, book) -> None:  # type: ignore[no-untyped-def]
    lab.nodes.filter(name="node3").update(unavailable=True, state="DRAIN", reason="disk check")
    r = book("member", nodes=["node4"])
    body = team.client("member").get(reverse("lending:calendar"), {"cluster": lab.pk}).content.decode()
    node4 = body[body.index('data-node="node4"') :]
    assert r.get_absolute_url() in node4[: node4.index("legend")]
    node3 = body[body.index('data-node="node3"') - 40 : body.index('data-node="node3"')]
    assert "node-out" in node3


def test_calendar_places_bookings_on_the_nodes_slurm_reserved(team: Team, lab: Cluster, book) -> None:  # type: ignore[no-untyped-def]
    placed, unreadable = book("member", gpus=16), book("lead", gpus=8, hours=(4, 5))
    Reservation.objects.filter(pk=placed.pk).update(slurm_nodes="node[1-2]")
    Reservation.objects.filter(pk=unreadable.pk).update(slurm_nodes="node[1-")  # cut short: drawn unplaced
    response = team.client("member").get(reverse("lending:calendar"), {"cluster": lab.pk})
    assert response.status_code == 200
    body = response.content.decode()
    rows = {node: body[body.index(f'data-node="{node}"') :] for node in ("node1", "node2", "node3", "node4")}
    rows = {node: row[: row.index("gcal-row")] for node, row in rows.items()}
    assert [node for node, row in rows.items() if placed.get_absolute_url() in row] == ["node1", "node2"]
    assert not any(unreadable.get_absolute_url() in row for row in rows.values())
    assert unreadable.get_absolute_url() in body


def test_list_filters(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    mine = book("member", purpose="mine-1")
    book("other", purpose="theirs-1", hours=(4, 5))
    client = team.client("member")
    body = client.get(reverse("lending:list"), {"mine": "1"}).content.decode()
    assert "mine-1" in body and "theirs-1" not in body
    body = client.get(reverse("lending:list"), {"subteam": "pretrain"}).content.decode()
    assert "mine-1" not in body and "theirs-1" in body
    services.cancel(team.member("member"), mine)
    body = client.get(reverse("lending:list"), {"state": "open"}).content.decode()
    assert "mine-1" not in body and "theirs-1" in body


def test_admin_lists_bookings_read_only_and_edits_quotas(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    book("member")
    admin = team.client("admin")
    assert admin.get(reverse("admin:lending_reservation_changelist")).status_code == 200
    assert admin.get(reverse("admin:lending_subteamquota_add")).status_code == 200
    assert team.client("member").get(reverse("admin:lending_reservation_changelist")).status_code == 302


def test_moving_a_booking_follows_the_rules(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    r = book("member", hours=(1, 2))
    new = {"start": local(soon(2)), "end": local(soon(4))}
    assert team.client("other").post(reverse("lending:move", args=[r.pk]), new).status_code == 403
    r.refresh_from_db()
    assert (r.start, r.end) == (soon(1), soon(2))
    backwards = team.client("member").post(
        reverse("lending:move", args=[r.pk]), {**new, "end": new["start"]}, follow=True
    )
    assert "The end must be after the start." in backwards.content.decode()
    r.refresh_from_db()
    assert (r.start, r.end) == (soon(1), soon(2))
    assert team.client("member").post(reverse("lending:move", args=[r.pk]), new).status_code == 302
    r.refresh_from_db()
    assert (r.start, r.end) == (soon(2), soon(4))
    assert list(r.events.values_list("kind", flat=True)) == ["requested", "changed"]


def test_the_preview_agrees_with_the_request_when_nodes_are_drained(team: Team, lab: Cluster) -> None:
    lab.nodes.filter(name="node3").update(unavailable=True, state="DRAIN", reason="disk check")
    data = form_data(team, lab, gpus=32)
    body = team.client("member").get(reverse("lending:preview"), data).content.decode()
    assert "only" not in body and 'data-testid="drained"' in body and "node3 (disk check)" in body
    assert team.client("member").post(reverse("lending:create"), data).status_code == 302


def test_the_booking_page_shows_an_old_reservation_kept_while_jobs_run_in_it(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    r = book("member")
    services.approve(team.member("admin"), r)
    ends = soon(2)
    kept = KeptReservation.objects.create(
        reservation=r, name="tanuki-1-0ld000", nodes="node3", ends_at=ends, retry_at=timezone.now()
    )
    page = team.client("member").get(r.get_absolute_url()).content.decode()
    until = timezone.localtime(ends).strftime("%m-%d %H:%M")
    assert f'id="kept-{kept.pk}"><code>tanuki-1-0ld000</code> · node3 · ' in page
    assert f"kept while jobs run in it (until {until} at the latest)" in page
