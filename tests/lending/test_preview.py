"""The booking form's preview: drawn on the first load, hour labels and a legend under the strip, a
window that ends before it starts told as an error, and, where the request does not fit, the next
window of the same length where it does (or that the cluster is smaller than the request)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from lending import services
from lending.models import Reservation
from scheduler.models import Cluster
from tests.lending.conftest import soon
from tests.lending.test_web import form_data, local
from tests.personas import Team


def preview(team: Team, lab: Cluster, language: str = "en", **changes: object) -> str:
    response = team.client("member", language).get(
        reverse("lending:preview"), form_data(team, lab, **changes), headers={"hx-request": "true"}
    )
    assert response.status_code == 200
    return response.content.decode()


def test_the_form_shows_the_preview_of_its_window_on_the_first_load(team: Team, lab: Cluster) -> None:
    body = team.client("member").get(reverse("lending:create")).content.decode()
    panel = body[body.index('id="preview"') :]
    assert "Choose a cluster, a start and an end" not in panel
    assert panel.count('class="cell') == 4 and "8 GPUs fit in every hour" in panel
    form = body[body.index('id="booking-form"') : body.index('id="booking-form"') + 600]
    assert 'hx-trigger="load, change, keyup delay:300ms"' in form


def test_the_strip_has_hour_labels_and_a_legend_in_both_languages(team: Team, lab: Cluster) -> None:
    body = preview(team, lab, start=local(soon(1)), end=local(soon(5)))
    hours = body[body.index('data-testid="hours"') : body.index('data-testid="legend"')]
    labels = [timezone.localtime(soon(h)).strftime("%H:%M") for h in range(1, 5)]
    assert all(label in hours for label in labels), hours
    assert timezone.localtime(soon(1)).strftime("%-m/%-d") in hours  # the first label has its date
    assert "Free GPUs in the hour" in body and "fewer than this request needs" in body
    ja = preview(team, lab, "ja", start=local(soon(1)), end=local(soon(5)))
    legend = ja[ja.index('data-testid="legend"') : ja.index("</ul>", ja.index('data-testid="legend"'))]
    assert "Free GPUs" not in legend and "空き" in legend


def test_a_two_week_strip_keeps_to_a_few_labels(team: Team, lab: Cluster) -> None:
    body = preview(team, lab, start=local(soon(1)), end=local(soon(1 + 14 * 24)))
    hours = body[body.index('data-testid="hours"') : body.index('data-testid="legend"')]
    assert 2 <= hours.count('class="tick"') <= 8


def test_an_end_before_the_start_is_an_error_in_the_preview_and_by_the_end_field(
    team: Team, lab: Cluster
) -> None:
    body = preview(team, lab, start=local(soon(3)), end=local(soon(1)))
    assert 'data-testid="window-error"' in body and "The end must be after the start." in body
    assert "Choose a cluster" not in body
    live = body[body.index('<span id="window-error"') :]
    assert 'hx-swap-oob="true"' in live[:120] and "The end must be after the start." in live
    fixed = preview(team, lab)  # the slot by the end field is emptied again
    assert '<span id="window-error" class="live-error" hx-swap-oob="true"></span>' in fixed
    # Sent anyway, with another field missing: the form says it by the end field.
    data = form_data(team, lab, start=local(soon(3)), end=local(soon(1)), purpose="")
    page = team.client("member").post(reverse("lending:create"), data).content.decode()
    end_field = page[page.index('id="id_end"') :]
    assert "The end must be after the start." in end_field[: end_field.index("</p>")]
    assert not Reservation.objects.exists()


def test_a_request_that_does_not_fit_gets_the_next_window_of_the_same_length(
    team: Team, lab: Cluster, book: Any
) -> None:
    admin = team.member("admin")
    services.approve(admin, book("lead", gpus=24, hours=(1, 3), purpose="dpo sweep"))
    services.approve(admin, book("lead", gpus=24, hours=(4, 6), purpose="eval"))
    body = preview(team, lab, gpus=16, start=local(soon(1)), end=local(soon(3)))
    assert "only 8 GPUs free" in body
    tip = body[body.index('data-testid="suggestion"') :]
    when = timezone.localtime(soon(6)).strftime("%m-%d %H:%M")  # 3–4 is too short a gap
    assert "16 GPUs are free from" in tip and when in tip[: tip.index("</p>")]
    url = tip[tip.index('href="') + 6 : tip.index('"', tip.index('href="') + 6)].replace("&amp;", "&")
    query = parse_qs(urlsplit(url).query)
    assert query["start"] == [local(soon(6))] and query["end"] == [local(soon(8))]
    assert query["gpus"] == ["16"] and query["purpose"] == ["sft eval"]
    # The link opens the form with that window, and its preview says it fits.
    page = team.client("member").get(url).content.decode()
    assert f'value="{local(soon(6))}"' in page and "16 GPUs fit in every hour" in page


def test_named_nodes_wait_for_the_booking_that_holds_them(team: Team, lab: Cluster, book: Any) -> None:
    services.approve(team.member("admin"), book("lead", nodes=["node2"], hours=(1, 5)))
    found = services.next_free_window(lab, soon(2), soon(4), 8, nodes=["node2"])
    assert found == (soon(5), soon(7))
    assert services.next_free_window(lab, soon(2), soon(4), 8, nodes=["node3"]) == (soon(2), soon(4))


def test_no_suggestion_beyond_the_search_or_the_cluster(team: Team, lab: Cluster, book: Any) -> None:
    # Booked solid for longer than the search looks ahead: says so.
    for i in range(8):
        services.approve(
            team.member("admin"), book("lead", gpus=32, hours=(1 + 48 * i, 49 + 48 * i), purpose=f"run {i}")
        )
    assert services.next_free_window(lab, soon(1), soon(3), 8, days=3) is None
    body = preview(team, lab, gpus=8, start=local(soon(1)), end=local(soon(3)))
    assert 'data-testid="no-suggestion"' in body and "in the next 14 days" in body


@pytest.mark.parametrize("gpus", [40, 33])
def test_asking_more_gpus_than_the_cluster_has_says_so(
    team: Team, lab: Cluster, book: Any, gpus: int
) -> None:
    services.approve(team.member("admin"), book("lead", gpus=8, hours=(1, 3)))
    body = preview(team, lab, gpus=gpus)
    assert "The cluster has only 32 GPUs in partition gpu." in body
    assert 'data-testid="suggestion"' not in body and "only 24 GPUs free" not in body
    assert services.next_free_window(lab, soon(1), soon(3), 40) is None


def test_the_search_is_exact_at_the_edges(team: Team, lab: Cluster, book: Any) -> None:
    services.approve(team.member("admin"), book("lead", gpus=32, hours=(1, 2)))
    start = soon(1) + dt.timedelta(minutes=30)
    assert services.next_free_window(lab, start, start + dt.timedelta(hours=1), 8) == (
        soon(2),
        soon(3),
    )
