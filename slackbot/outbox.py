"""The event tables are the outbox: job events, booking events, evaluation results, results at a board's
top (board records), node incidents and published weekly reports become Slack messages here, read by
cursor, in the worker's cycle.

Each state change writes its event row in its own transaction (`scheduler.transitions`,
`lending.services.transition`, `evals.services`, `reports.services`), so a process killed right after
the commit loses nothing: the next cycle reads the row. For each source:
1. Read the rows after the source's cursor (oldest first, at most `BATCH`).
2. Make the messages of each row that deserves some (one per channel); each `event_key` names the
   event and the channel, so a row read twice (or an event recorded twice) still gives one
   `Notification` per channel (unique key, existing keys skipped).
3. Insert the new notifications and move the cursor in the same transaction.
The cursor stops short of rows younger than `SETTLE`: ids are handed out before commit, so a
transaction that commits late can add a row below the newest id seen. Those recent rows are read
again next cycle (step 2 makes that harmless).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Prefetch
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from evals.models import EvalResultEvent
from experiments.models import BoardRecord
from experiments.records import owner_of
from lending.models import ReservationEvent
from portal.models import Subteam
from reports.data import totals
from reports.models import ReportEvent, WeeklyReport
from scheduler.models import Job, JobEvent, NodeIncident
from slackbot import notify
from slackbot.models import Notification, OutboxCursor

log = logging.getLogger("slackbot")

BATCH = 500
SETTLE = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class Message:
    channel: str
    event_key: str
    text: str


def _job_message(event: JobEvent) -> Message | None:
    job = event.job
    if event.to_state not in Job.TERMINAL_STATES or not job.subteam.slack_channel:
        return None
    text = notify.job_text(job)
    return Message(job.subteam.slack_channel, f"job:{job.pk}:{event.to_state}", text)


def _loss_alert_message(event: JobEvent) -> Message | None:
    """A loss spike or NaN (metrics.watch): to the subteam's channel, naming the job's owner."""
    job = event.job
    if not job.subteam.slack_channel:
        return None
    return Message(job.subteam.slack_channel, f"job:{job.pk}:loss:{event.pk}", notify.loss_alert_text(event))


def _reservation_message(event: ReservationEvent) -> Message | None:
    reservation = event.reservation
    if event.kind not in notify.RESERVATION_EVENTS or not reservation.subteam.slack_channel:
        return None
    # "idle" may repeat for one booking: one message per hour at most. A booking may lose and regain
    # its enforcement more than once: each episode is told.
    suffix = ":" + timezone.localtime(event.at).strftime("%Y%m%d%H") if event.kind == "idle" else ""
    if event.kind in ENFORCEMENT_KINDS:
        suffix = f":{event.pk}"
    text = notify.reservation_text(reservation, event.kind)
    return Message(
        reservation.subteam.slack_channel, f"reservation:{reservation.pk}:{event.kind}{suffix}", text
    )


ENFORCEMENT_KINDS = ("not_enforced", "enforced")


def _management_channel() -> str:
    """The management team's (the admins') channel: the management subteam's; "" when none is set."""
    return (
        Subteam.objects.filter(is_management=True)
        .exclude(slack_channel="")
        .values_list("slack_channel", flat=True)
        .first()
    ) or ""


def _admin_alert(event: ReservationEvent) -> Message | None:
    """A booking Slurm does not enforce is also told to the management team (the admins)."""
    channel = _management_channel()
    if not channel or channel == event.reservation.subteam.slack_channel:
        return None
    text = notify.reservation_text(event.reservation, event.kind)
    return Message(channel, f"reservation-admins:{event.reservation_id}:{event.kind}:{event.pk}", text)


def _eval_message(event: EvalResultEvent) -> Message | None:
    """A subteam's new or re-scored result goes to its channel (baselines and project-wide ones do not)."""
    result = event.result
    if result.is_baseline or result.subteam is None or not result.subteam.slack_channel:
        return None
    text = notify.eval_text(result)
    return Message(result.subteam.slack_channel, f"eval:{result.pk}:{event.average}", text)


def _board_messages(record: BoardRecord) -> list[Message]:
    """A result at a board's top or a goal's target (experiments.records): to its subteam's channel and
    to its owner (a direct message: the member's Slack user ID as the channel), once each. The top of the
    subteam's board is not told again when the same result took the project's top (it says as much)."""
    result = record.result
    if (
        record.scope == BoardRecord.Scope.SUBTEAM
        and BoardRecord.objects.filter(result_id=result.pk, scope=BoardRecord.Scope.PROJECT).exists()
    ):
        return []
    messages = []
    channel = result.subteam.slack_channel if result.subteam is not None else ""
    if channel:
        messages.append(Message(channel, f"board:{record.pk}:channel", notify.board_record_text(record)))
    owner = owner_of(result)
    if owner is not None and owner.slack_user_id:
        text = notify.board_record_text(record, to_owner=True, language=notify.language_of(owner))
        messages.append(Message(owner.slack_user_id, f"board:{record.pk}:owner", text))
    return messages


def _incident_messages(incident: NodeIncident) -> list[Message]:
    """A node drained or down (scheduler.drains): the admins are told, with every job that was on it;
    each implicated job's subteam is told of its own jobs, their owners mentioned. One message per
    incident and channel."""
    jobs = list(incident.jobs.all())
    messages = []
    admins = _management_channel()
    if admins:
        text = notify.incident_text(incident, jobs)
        messages.append(Message(admins, f"node-incident:{incident.pk}:admins", text))
    by_channel: dict[str, list[Job]] = {}
    for job in jobs:
        if job.subteam.slack_channel and job.subteam.slack_channel != admins:
            by_channel.setdefault(job.subteam.slack_channel, []).append(job)
    for channel, own in by_channel.items():
        text = notify.incident_text(incident, own, mention=True)
        messages.append(Message(channel, f"node-incident:{incident.pk}:{own[0].subteam_id}", text))
    return messages


def _report_message(event: ReportEvent) -> Message | None:
    """A published weekly report goes to its subteam's channel, once (a report is published once)."""
    report = event.report
    if not report.subteam.slack_channel:
        return None
    return Message(report.subteam.slack_channel, f"report:{report.pk}:published", report_text(report))


def report_text(report: WeeklyReport) -> str:
    """The headline numbers of a weekly report and its link (the channel post and `/tanuki report`)."""
    with translation.override(settings.LANGUAGE_CODE):
        return report_lines(report)


def report_lines(report: WeeklyReport) -> str:
    """`report_text` in the active language (a command's answer speaks the asker's)."""
    facts = totals(report.data)
    title = _("Weekly report of %(subteam)s, week of %(week)s") % {
        "subteam": notify.esc(report.subteam.name),
        "week": report.week.isoformat(),
    }
    if report.is_published:
        who = report.published_by.display_name if report.published_by else "–"
        state = _("published by %(name)s") % {"name": notify.esc(who)}
    elif report.pk is None:
        state = _("no report yet: the week so far")
    else:
        state = _("draft")
    lines = [
        f"*{title}* ({state})",
        "• "
        + _("%(done)s tasks done, %(blocked)s blocked, %(changes)s goal changes")
        % {"done": facts.tasks_done, "blocked": facts.blocked, "changes": facts.goal_changes},
        "• "
        + _("%(jobs)s jobs, %(used)s GPU-hours used of %(booked)s booked")
        % {"jobs": facts.jobs, "used": f"{facts.gpu_hours_used:g}", "booked": f"{facts.gpu_hours_booked:g}"},
    ]
    if facts.best is not None:
        best = _("best new score: %(model)s %(score)s") % {
            "model": notify.esc(facts.best["model"]),
            "score": f"{facts.best['average']:.2f}",
        }
        lines.append("• " + best + (" " + _("(a new best)") if facts.best["new_best"] else ""))
    if report.issues.strip():
        first = report.issues.strip().splitlines()[0]
        lines.append("• " + _("Issues: %(first)s") % {"first": notify.esc(first[:200])})
    lines.append(notify.link(report.get_absolute_url()))
    return "\n".join(lines)


@dataclass(frozen=True)
class Source:
    name: str
    rows: Callable[[], models.QuerySet[Any]]  # each row has `pk` and `at` (when it was written)
    message: Callable[[Any], Message | list[Message] | None]


SOURCES = (
    Source(
        "job-events",
        lambda: JobEvent.objects.filter(to_state__in=Job.TERMINAL_STATES).select_related(
            "job__subteam", "job__owner"
        ),
        _job_message,
    ),
    Source(
        "loss-alerts",
        lambda: JobEvent.objects.filter(kind=JobEvent.Kind.LOSS_ALERT).select_related(
            "job__subteam", "job__owner"
        ),
        _loss_alert_message,
    ),
    Source(
        "reservation-events",
        lambda: ReservationEvent.objects.filter(kind__in=notify.RESERVATION_EVENTS).select_related(
            "reservation__subteam", "reservation__cluster"
        ),
        _reservation_message,
    ),
    Source(
        "reservation-alerts",
        lambda: ReservationEvent.objects.filter(kind="not_enforced").select_related(
            "reservation__subteam", "reservation__cluster"
        ),
        _admin_alert,
    ),
    Source("eval-events", lambda: EvalResultEvent.objects.select_related("result__subteam"), _eval_message),
    Source(
        "board-records",
        lambda: BoardRecord.objects.select_related(
            "result__subteam",
            "result__job__owner",
            "result__trained_by_job__owner",
            "result__created_by",
            "previous",
            "goal",
        ),
        _board_messages,
    ),
    Source(
        "node-incidents",
        lambda: (
            NodeIncident.objects.annotate(at=F("seen_at"))
            .select_related("cluster")
            .prefetch_related(Prefetch("jobs", queryset=Job.objects.select_related("owner", "subteam")))
        ),
        _incident_messages,
    ),
    Source(
        "report-events",
        lambda: ReportEvent.objects.filter(kind=ReportEvent.Kind.PUBLISHED).select_related(
            "report__subteam", "report__published_by"
        ),
        _report_message,
    ),
)


def collect() -> int:
    """Turn new event rows of every source into notifications; the number of notifications made."""
    return sum(_collect(source) for source in SOURCES)


def _collect(source: Source) -> int:
    # Cheap when nothing happened: two reads, no write transaction.
    seen = OutboxCursor.objects.filter(source=source.name).values_list("last_id", flat=True).first() or 0
    if not source.rows().filter(pk__gt=seen).exists():
        return 0
    with transaction.atomic():
        cursor, _created = OutboxCursor.objects.select_for_update().get_or_create(source=source.name)
        rows = list(source.rows().filter(pk__gt=cursor.last_id).order_by("pk")[:BATCH])
        if not rows:
            return 0
        messages: dict[str, Message] = {}
        for row in rows:
            try:
                made = source.message(row)
            except Exception:  # one bad row never blocks the others
                log.exception("could not make the Slack message of %s %s", source.name, row.pk)
                continue
            for message in [made] if isinstance(made, Message) else made or []:
                messages.setdefault(message.event_key[:200], message)
        existing = set(
            Notification.objects.filter(event_key__in=list(messages)).values_list("event_key", flat=True)
        )
        new = [
            Notification(channel=m.channel, event_key=key, text=m.text, blocks=notify.section(m.text))
            for key, m in messages.items()
            if key not in existing
        ]
        Notification.objects.bulk_create(new, ignore_conflicts=True)
        settled = timezone.now() - SETTLE
        last = cursor.last_id
        for row in rows:
            if row.at > settled:
                break
            last = row.pk
        if last != cursor.last_id:
            cursor.last_id = last
            cursor.save(update_fields=["last_id"])
    return len(new)
