"""/api/v1/reservations/ and /api/v1/clusters/<id>/availability/: same rules and messages as the form."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from lending import services
from lending.models import Reservation
from scheduler.models import Cluster
from tests.lending.conftest import soon
from tests.personas import Team


def api(team: Team, role: str) -> APIClient:
    client = APIClient(headers={"accept-language": "en"})
    if role != "anon":
        client.force_authenticate(team.users[role])
    return client


def payload(team: Team, lab: Cluster, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "subteam": "sft", "cluster": lab.pk, "gpus": 8, "start": soon(1).isoformat(), "end": soon(3).isoformat(),
        "purpose": "sft eval",
    }  # fmt: skip
    data.update(changes)
    return data


def test_booking_through_the_api(team: Team, lab: Cluster) -> None:
    response = api(team, "member").post(reverse("api:reservation-list"), payload(team, lab), format="json")
    assert response.status_code == 201, response.data
    r = Reservation.objects.get()
    assert response.data["id"] == r.pk and response.data["state"] == "requested"
    assert response.data["held_gpus"] == 8 and response.data["events"][0]["kind"] == "requested"
    assert response["Location"] == reverse("api:reservation-detail", args=[r.pk])


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"end": "start"}, "end", "The end must be after the start."),
        ({"gpus": 64}, "gpus", "only 32 GPUs"),
        ({"gpus": None, "nodes": ["node9"]}, "nodes", "no node node9"),
        ({"gpu_type": "h200"}, "gpu_type", "no h200 GPUs"),
    ],
)
def test_bad_input_is_a_400_with_the_forms_message(
    team: Team, lab: Cluster, changes: dict[str, object], field: str, text: str
) -> None:
    data = payload(team, lab, **changes)
    if data["end"] == "start":
        data["end"] = data["start"]
    response = api(team, "member").post(reverse("api:reservation-list"), data, format="json")
    assert response.status_code == 400
    assert any(text in message for message in response.data[field]), response.data
    assert not Reservation.objects.exists()


def test_refusals(team: Team, lab: Cluster, book) -> None:  # type: ignore[no-untyped-def]
    assert api(team, "anon").get(reverse("api:reservation-list")).status_code in (401, 403)
    response = api(team, "other").post(reverse("api:reservation-list"), payload(team, lab), format="json")
    assert response.status_code == 403
    assert not Reservation.objects.exists()
    r = book("member")
    for role in ("lead", "member", "other"):
        client = api(team, role)
        assert client.post(reverse("api:reservation-approve", args=[r.pk])).status_code == 403
        assert client.post(reverse("api:reservation-reject", args=[r.pk]), {"note": "no"}).status_code == 403
    assert api(team, "other").post(reverse("api:reservation-cancel", args=[r.pk])).status_code == 403
    r.refresh_from_db()
    assert r.state == "requested" and r.approver is None


def test_admin_approves_and_the_requester_cancels(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    r = book("member")
    response = api(team, "admin").post(reverse("api:reservation-approve", args=[r.pk]), {"note": "ok"})
    assert response.status_code == 200 and response.data["state"] == "approved"
    assert (
        response.data["slurm_name"].startswith(f"tanuki-{r.pk}-") and response.data["sync_state"] == "create"
    )
    again = api(team, "admin").post(reverse("api:reservation-approve", args=[r.pk]))
    assert again.status_code == 400 and "Only a requested booking" in str(again.data)
    response = api(team, "member").post(reverse("api:reservation-cancel", args=[r.pk]))
    assert response.status_code == 200 and response.data["state"] == "cancelled"


def test_reject_needs_a_note(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    r = book("member")
    response = api(team, "admin").post(reverse("api:reservation-reject", args=[r.pk]), {"note": ""})
    assert response.status_code == 400 and "note" in response.data
    r.refresh_from_db()
    assert r.state == "requested"


def test_list_filters_and_constant_queries(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    book("member")
    client = api(team, "member")
    with CaptureQueriesContext(connection) as one:
        client.get(reverse("api:reservation-list"))
    for i in range(6):
        book("other" if i % 2 else "lead", hours=(3 + i, 4 + i))
    with CaptureQueriesContext(connection) as seven:
        response = client.get(reverse("api:reservation-list"))
    assert response.data["count"] == 7 and len(seven) == len(one)
    response = client.get(reverse("api:reservation-list"), {"subteam": "pretrain", "state": "requested"})
    assert response.data["count"] == 3
    assert client.get(reverse("api:reservation-list"), {"subteam": "nope"}).status_code == 400


def test_availability_endpoint(team: Team, lab: Cluster, book) -> None:  # type: ignore[no-untyped-def]
    r = book("member", gpus=16, hours=(1, 2))
    services.approve(team.member("admin"), r)
    url = reverse("lending-availability", args=[lab.pk])
    response = api(team, "other").get(url, {"start": soon(0).isoformat(), "end": soon(3).isoformat()})
    assert response.status_code == 200
    assert [s["free_gpus"] for s in response.data] == [32, 16, 32]
    assert response.data[1]["conflicts"] == [r.pk]
    bad = api(team, "other").get(url, {"start": soon(3).isoformat(), "end": soon(1).isoformat()})
    assert bad.status_code == 400 and "end" in bad.data
    assert api(team, "anon").get(url).status_code in (401, 403)


def test_the_schema_documents_the_endpoints(team: Team) -> None:
    response = team.client("member").get(reverse("api-schema"))
    text = response.content.decode()
    assert "/api/v1/reservations/{id}/approve/" in text and "/api/v1/clusters/{id}/availability/" in text


def test_moving_another_subteams_booking_is_refused(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    r = book("member", hours=(1, 2))
    url = reverse("api:reservation-detail", args=[r.pk])
    new = {"start": soon(5).isoformat(), "end": soon(6).isoformat()}
    assert api(team, "other").patch(url, new, format="json").status_code == 403
    assert (
        api(team, "member").patch(url, {**new, "end": soon(1).isoformat()}, format="json").status_code == 400
    )
    r.refresh_from_db()
    assert (r.start, r.end) == (soon(1), soon(2))
    response = api(team, "lead").patch(url, new, format="json")
    assert response.status_code == 200
    r.refresh_from_db()
    assert (r.start, r.end) == (soon(5), soon(6))
