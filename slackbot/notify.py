"""What the portal tells subteam channels: the texts of job, booking, evaluation, board record and node
incident messages.

`slackbot.outbox` makes `Notification` rows from event rows with these; `slackbot.delivery` posts them,
so a state change never waits on Slack."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from evals.models import EvalResult
from experiments import records
from experiments.models import BoardRecord
from lending.models import Reservation
from portal.formatting import format_duration
from portal.models import Member
from scheduler import drains
from scheduler.models import Job, JobEvent, NodeIncident
from slackbot.models import Notification

log = logging.getLogger("slackbot")


def link(path: str) -> str:
    """An absolute portal URL for a path from reverse()/get_absolute_url()."""
    return f"{settings.PORTAL_BASE_URL}{path}"


def esc(text: object) -> str:
    """Escape the three characters Slack's mrkdwn gives meaning to (so a job named `<!channel>` pings
    nobody)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def duration(seconds: float | None) -> str:
    return format_duration(seconds) or "–"


def enqueue(channel: str, event_key: str, text: str, blocks: list[dict[str, Any]] | None = None) -> bool:
    """Insert a notification unless one for this event exists; False when it did or no channel is set."""
    if not channel:
        return False
    try:
        with transaction.atomic():
            Notification.objects.create(
                channel=channel, event_key=event_key[:200], text=text, blocks=blocks or []
            )
    except IntegrityError:
        return False
    return True


def section(text: str) -> list[dict[str, Any]]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


# --- jobs ------------------------------------------------------------------------------------------------


def job_text(job: Job) -> str:
    """`Job dpo ended: Failed (exit code 3, ran 0:12:04, owner …)` and a link, in the portal's language."""
    with translation.override(settings.LANGUAGE_CODE):
        if job.succeeded:
            headline = _("Job %(name)s finished: %(state)s") % {
                "name": esc(job.name),
                "state": job.get_state_display(),
            }
        else:
            headline = _("Job %(name)s ended: %(state)s") % {
                "name": esc(job.name),
                "state": job.get_state_display(),
            }
        details = [
            _("exit code %(code)s") % {"code": "–" if job.exit_code is None else job.exit_code},
            _("ran %(duration)s") % {"duration": duration(job.runtime)},
            _("owner %(owner)s") % {"owner": esc(job.owner.display_name)},
        ]
        return f"{headline} ({', '.join(details)})\n{link(job.get_absolute_url())}"


def loss_alert_text(event: JobEvent) -> str:
    """`Loss alert in sft-run (owner @x): loss spike at step 1200: 7.9 (median 2.0, z 41)` and a link to
    the job's chart at that step, in the portal's language."""
    job = event.job
    with translation.override(settings.LANGUAGE_CODE):
        owner = (
            f"<@{esc(job.owner.slack_user_id)}>" if job.owner.slack_user_id else esc(job.owner.display_name)
        )
        headline = _("Loss alert in job %(name)s (owner %(owner)s): %(what)s") % {
            "name": esc(job.name),
            "owner": owner,
            "what": esc(event.message),
        }
        step = event.message.split("step ", 1)[-1].split(":", 1)[0].strip()
        anchor = f"#step-{step}" if step.isdigit() else ""
        return f"{headline}\n{link(job.get_absolute_url() + anchor)}"


# --- reservations (lending list) ----------------------------------------------------------------------------

RESERVATION_EVENTS = ("approved", "rejected", "starting", "idle", "not_enforced", "enforced")


def reservation_text(reservation: Reservation, event: str) -> str:
    """`GPU reservation approved: Fine-tuning, 8 h100 GPU on devcluster, 11-29 09:00–18:00 (SFT sweep)`."""
    with translation.override(settings.LANGUAGE_CODE):
        headlines = {
            "approved": _("GPU reservation approved"),
            "rejected": _("GPU reservation rejected"),
            "starting": _("GPU reservation starting"),
            "idle": _("Reserved GPUs are idle"),
            "not_enforced": _("GPU reservation NOT enforced by Slurm"),
            "enforced": _("GPU reservation enforced by Slurm again"),
        }
        start, end = timezone.localtime(reservation.start), timezone.localtime(reservation.end)
        window = (
            f"{start:%m-%d %H:%M}–{end:%H:%M}"
            if start.date() == end.date()
            else f"{start:%m-%d %H:%M}–{end:%m-%d %H:%M}"
        )
        summary = _("%(subteam)s, %(what)s on %(cluster)s, %(window)s (%(purpose)s)") % {
            "subteam": esc(reservation.subteam),
            "what": esc(reservation.what),
            "cluster": esc(reservation.cluster),
            "window": window,
            "purpose": esc(reservation.purpose),
        }
        parts = [f"{headlines[event]}: {summary}"]
        note = reservation.decision_note
        if event == "rejected" and note:
            parts.append(_("Reason: %(note)s") % {"note": esc(note)})
        if event == "not_enforced":
            # Slurm's reason as recorded when the message is made; the booking page keeps the latest.
            if reservation.sync_error:
                parts.append(_("Slurm says: %(reason)s") % {"reason": esc(reservation.sync_error)})
            parts.append(
                _(
                    "Until Slurm holds it, other jobs can take these GPUs. The portal keeps trying, less often each time, and says so here when Slurm holds it."
                )
            )
            if reservation.requester.slack_user_id:
                parts.append(f"<@{esc(reservation.requester.slack_user_id)}>")
        parts.append(link(reservation.get_absolute_url()))
        return "\n".join(parts)


# --- evaluation results ----------------------------------------------------------------------------------


def eval_text(result: EvalResult) -> str:
    """`Evaluation result landed: 8x8B-dpo, Japanese MT-Bench average 7.91 (judge gpt-4)`."""
    with translation.override(settings.LANGUAGE_CODE):
        summary = f"{esc(result.model_name)}, {esc(result.benchmark)}"
        if result.average is not None:
            summary += " " + _("average %(score).2f") % {"score": result.average}
        if result.judge_model:
            summary += " " + _("(judge %(judge)s)") % {"judge": esc(result.judge_model)}
        parts = [_("Evaluation result landed: %(summary)s") % {"summary": summary}]
        parts.append(link(result.get_absolute_url()))
        return "\n".join(parts)


# --- a result at a board's top or a goal's target (experiments.records) ------------------------------------

BOARD_DIFF_LISTED = 8


def language_of(member: Member) -> str:
    """A member's language for messages outside the pages (Member.language; empty: the portal's)."""
    code = member.language
    return code if code in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def board_record_text(record: BoardRecord, *, to_owner: bool = False, language: str | None = None) -> str:
    """`8x8B-dpo took the top of the project's MT-Bench board: 7.45 (owner @x)`, the previous best, what
    changed in the training config and a link; for the subteam's channel (the owner mentioned) or, with
    `to_owner`, for the owner's direct message. In the portal's language unless `language` is given."""
    result = record.result
    before, after = records.values(record)
    with translation.override(language or settings.LANGUAGE_CODE):
        names = {
            "model": esc(result.model_name),
            "benchmark": esc(result.benchmark_label),
            "score": _score(after),
        }
        if record.scope == BoardRecord.Scope.PROJECT:
            headline = _("%(model)s took the top of the project's %(benchmark)s board: %(score)s") % names
        elif record.scope == BoardRecord.Scope.SUBTEAM:
            subteam = result.subteam.name if result.subteam is not None else ""
            headline = _("%(model)s took the top of the %(subteam)s board for %(benchmark)s: %(score)s") % {
                **names,
                "subteam": esc(subteam),
            }
        else:
            goal = record.goal
            headline = _("%(model)s met the goal “%(goal)s”: %(metric)s %(score)s (target %(target)s)") % {
                **names,
                "goal": esc(goal.title if goal is not None else "–"),
                "metric": esc(records.metric_of(record)),
                "target": (
                    f"{goal.get_metric_comparison_display()} {goal.metric_target:g}"
                    if goal is not None and goal.metric_target is not None
                    else "–"
                ),
            }
        owner = records.owner_of(result)
        if not to_owner and owner is not None:
            who = f"<@{esc(owner.slack_user_id)}>" if owner.slack_user_id else esc(owner.display_name)
            headline += " (" + _("owner %(owner)s") % {"owner": who} + ")"
        parts = [headline]
        previous = record.previous
        if previous is not None:
            parts.append(
                _("Previous best: %(model)s, %(before)s → %(after)s")
                % {"model": esc(previous.model_name), "before": _score(before), "after": _score(after)}
            )
        elif record.scope != BoardRecord.Scope.GOAL:
            parts.append(_("The first result on this board."))
        changes = [f"{esc(d['field'])} {esc(d['before'])} → {esc(d['after'])}" for d in record.diff or []]
        if changes:
            listed = ", ".join(changes[:BOARD_DIFF_LISTED])
            if len(changes) > BOARD_DIFF_LISTED:
                listed += ", " + _("…and %(n)s more") % {"n": len(changes) - BOARD_DIFF_LISTED}
            parts.append(_("Changed: %(changes)s") % {"changes": listed})
        elif previous is not None and previous.trained_by_job_id and result.trained_by_job_id:
            parts.append(_("Same training config as the previous best."))
        parts.append(link(result.get_absolute_url()))
        return "\n".join(parts)


# --- node incidents (scheduler.drains) ----------------------------------------------------------------------

INCIDENT_JOBS_LISTED = 10


def incident_text(incident: NodeIncident, jobs: list[Job], *, mention: bool = False) -> str:
    """`Node node3 on devcluster is out of service (DRAIN): Kill task failed`, what happened, how to avoid
    it, the jobs that were on it (their owners mentioned with `mention`) and a link to the cluster page."""
    with translation.override(settings.LANGUAGE_CODE):
        why = drains.explain(incident.reason)
        parts = [
            _("Node %(node)s on %(cluster)s is out of service (%(state)s): %(reason)s")
            % {
                "node": esc(incident.node_name),
                "cluster": esc(incident.cluster),
                "state": esc(incident.state),
                "reason": esc(why.reason or "–"),
            }
        ]
        if why.known:
            parts.append(_("What happened: %(what)s") % {"what": why.what})
            parts.append(_("How to avoid it: %(avoid)s") % {"avoid": why.avoid})
        if jobs:
            parts.append(_("Portal jobs on it:"))
            for job in jobs[:INCIDENT_JOBS_LISTED]:
                owner = esc(job.owner.display_name)
                if mention and job.owner.slack_user_id:
                    owner = f"<@{esc(job.owner.slack_user_id)}>"
                parts.append(
                    f"• <{link(job.get_absolute_url())}|{esc(job.name)}> ({owner}, {job.get_state_display()})"
                )
            more = len(jobs) - INCIDENT_JOBS_LISTED + incident.jobs_left_out
            if more > 0:
                parts.append(_("…and %(n)s more") % {"n": more})
        else:
            parts.append(
                _("No portal job ran on it in the %(minutes)s minutes before.")
                % {"minutes": settings.NODE_INCIDENT_WINDOW_MINUTES}
            )
        parts.append(link(incident.cluster.get_absolute_url() + "#incidents"))
        return "\n".join(parts)
