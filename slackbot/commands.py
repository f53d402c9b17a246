"""The `/tanuki` slash command: one handler per subcommand, each calling the same access rules and
services as the web pages. Handlers return a `Reply`; slow work goes in `Reply.later`, which the view
runs after answering and posts to the command's response_url."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from lending import access as lending_access
from lending import services as lending
from portal import access, services
from portal.models import Member, Subteam
from reports import data as report_data
from reports import weeks
from reports.models import WeeklyReport
from scheduler import access as job_access
from scheduler import logs, pending, triage
from scheduler import services as job_services
from scheduler.models import Cluster, Job, Node
from slackbot import timeparse
from slackbot.notify import duration, esc, link
from slackbot.outbox import report_lines

JOB_PREFIX_MIN = 8
_HEX = re.compile(r"^[0-9a-f]{8,32}\Z")


@dataclasses.dataclass
class Reply:
    text: str
    later: Callable[[], str] | None = None  # slow work: its text is posted to the response_url


def language_for(locale: str) -> str:
    """The reply's language: Slack's locale (`en-US` -> `en`) if the portal speaks it, else the default."""
    code = (locale or "").split("-")[0].split("_")[0].lower()
    return code if code in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


def member_for(slack_user_id: str) -> Member | None:
    if not slack_user_id:
        return None
    return (
        Member.objects.select_related("user")
        .filter(slack_user_id=slack_user_id, user__is_active=True)
        .first()
    )


def handle(slack_user_id: str, text: str) -> Reply:
    """Answer one slash command (in the active language)."""
    words = text.split()
    name = words[0].lower() if words else "help"
    if name == "help":
        return Reply(help_text())
    member = member_for(slack_user_id)
    if member is None:
        return Reply(unknown_user_text(slack_user_id))
    handler = HANDLERS.get(name)
    if handler is None:
        return Reply(_("Unknown command `%(name)s`.") % {"name": esc(name)} + "\n\n" + help_text())
    return handler(member, words[1:])


def help_text() -> str:
    lines = [
        _("*Tanuki Portal commands*"),
        "`gpus` — " + _("free GPUs now and for the rest of today, per cluster"),
        "`reserve [subteam] <n> <type>[@cluster] <start> <end> <purpose>` — "
        + _("ask for GPUs on the lending list, e.g. `reserve 8 h100 tomorrow 9:00 18:00 SFT sweep`"),
        "`jobs` — " + _("your live jobs"),
        "`job <id>` — " + _("a job's state, run time and last log lines (ID: at least 8 characters)"),
        "`cancel <id>` — " + _("cancel a job"),
        "`task [subteam] <title>` — " + _("add a task to your subteam"),
        "`report [subteam] [week]` — "
        + _(
            "the week's report of your subteam, with its link (week: `last`, `2026-06-01`; default: this week)"
        ),
        "`help` — " + _("this list"),
        _("Times are in %(zone)s: `2026-12-01T09:00`, `12-01 9:00`, `tomorrow 9:00`, `9:00`.")
        % {"zone": settings.TIME_ZONE},
    ]
    return "\n".join(lines)


def unknown_user_text(slack_user_id: str) -> str:
    return _(
        "Your Slack account (%(id)s) is not linked to a portal member. Open your profile in the portal "
        "(%(url)s → your name → Edit profile) and enter %(id)s as your Slack user ID, then try again."
    ) % {"id": esc(slack_user_id or "?"), "url": link(reverse("members"))}


# --- jobs ----------------------------------------------------------------------------------------------------


def _job_line(job: Job) -> str:
    runtime = duration(job.runtime) if job.started_at else "–"
    return f"`{str(job.id)[:8]}` {esc(job.name)} — {job.get_state_display()} ({esc(job.cluster.name)}, {runtime})"


def find_job(ref: str) -> Job | str:
    """The job with this UUID or unique prefix (at least 8 hex digits), or a message saying why not."""
    compact = ref.lower().replace("-", "")
    if not _HEX.match(compact):
        return _("Give a job ID: the full UUID or its first %(n)s characters.") % {"n": JOB_PREFIX_MIN}
    # The canonical hyphenated form, so the prefix matches however the database stores UUIDs.
    parts, cut = [], 0
    for width in (8, 4, 4, 4, 12):
        if cut < len(compact):
            parts.append(compact[cut : cut + width])
        cut += width
    prefix = "-".join(parts)
    if len(compact) == 32:
        matches = list(
            Job.objects.select_related("cluster", "subteam", "owner").filter(pk=uuid.UUID(compact))
        )
    else:
        matches = list(
            Job.objects.select_related("cluster", "subteam", "owner").filter(id__startswith=prefix)[:2]
        )
    if not matches:
        return _("No job with ID %(id)s.") % {"id": esc(ref)}
    if len(matches) > 1:
        return _("Several jobs start with %(id)s: give more of the ID.") % {"id": esc(ref)}
    return matches[0]


def cmd_jobs(member: Member, args: list[str]) -> Reply:
    jobs = list(
        Job.objects.select_related("cluster")
        .filter(owner=member, state__in=[Job.State.SUBMITTING, Job.State.PENDING, Job.State.RUNNING])
        .order_by("created_at")[:25]
    )
    if not jobs:
        return Reply(_("You have no live jobs."))
    return Reply("\n".join([_("*Your live jobs*"), *(_job_line(job) for job in jobs)]))


def cmd_job(member: Member, args: list[str]) -> Reply:
    if len(args) != 1:
        return Reply(_("Usage: `job <id>`"))
    job = find_job(args[0])
    if isinstance(job, str):
        return Reply(job)
    lines = [
        f"*{esc(job.name)}* `{job.id}`",
        _("State: %(state)s") % {"state": job.get_state_display()}
        + (f" — {esc(job.reason)}" if job.reason else ""),
        _("Cluster: %(cluster)s, subteam: %(subteam)s, owner: %(owner)s")
        % {
            "cluster": esc(job.cluster.name),
            "subteam": esc(job.subteam.name),
            "owner": esc(job.owner.display_name),
        },
        _("Run time: %(runtime)s") % {"runtime": duration(job.runtime)},
    ]
    waiting = pending.explain(job)
    if waiting is not None:
        lines.append(_("Waiting: %(why)s") % {"why": esc(waiting.text)})
        if waiting.detail:
            lines.append(esc(waiting.detail))
        if waiting.expected_start:
            when = timezone.localtime(waiting.expected_start).strftime("%m-%d %H:%M")
            lines.append(_("Expected start: ~%(when)s (Slurm's estimate)") % {"when": when})
    if job.exit_code is not None:
        lines.append(_("Exit code: %(code)s") % {"code": job.exit_code})
    diagnosis = triage.summary(job)
    if diagnosis is not None:
        lines.append(
            _("Why it failed: %(title)s — %(explanation)s")
            % {k: esc(diagnosis[k]) for k in ("title", "explanation")}
        )
    lines.append(link(job.get_absolute_url()))
    tail = logs.tail(job, "stdout", lines=10)
    if tail.strip():
        lines.append("```" + esc(tail.replace("```", "`\u200b``")) + "```")
    else:
        lines.append(_("(no output yet)"))
    return Reply("\n".join(lines))


def cmd_cancel(member: Member, args: list[str]) -> Reply:
    if len(args) != 1:
        return Reply(_("Usage: `cancel <id>`"))
    job = find_job(args[0])
    if isinstance(job, str):
        return Reply(job)
    if not job_access.can_cancel_job(member.user, job):
        return Reply(
            _("You may not cancel %(job)s: only its owner, a lead of its subteam or an admin may.")
            % {"job": esc(job.name)}
        )
    if job.is_terminal:
        return Reply(
            _("%(job)s has already ended (%(state)s).")
            % {"job": esc(job.name), "state": job.get_state_display()}
        )
    job = job_services.cancel_job(member, job)
    if job.is_terminal:
        return Reply(_("Cancelled %(job)s.") % {"job": esc(job.name)})
    return Reply(_("Cancel requested for %(job)s: the scheduler stops it shortly.") % {"job": esc(job.name)})


# --- tasks -----------------------------------------------------------------------------------------------------


def pick_subteam(member: Member, words: list[str]) -> tuple[Subteam, list[str]] | str:
    """The subteam named by the first word (a slug), else the member's only subteam; or a message."""
    if words:
        named = Subteam.objects.filter(slug=words[0].lower()).first()
        if named is not None:
            return named, words[1:]
    mine = list(
        Subteam.objects.filter(memberships__member=member, memberships__ended__isnull=True)
        .distinct()
        .order_by("slug")
    )
    if len(mine) == 1:
        return mine[0], words
    if not mine:
        return _("You are not in any subteam: start with a subteam's slug.")
    return _("You are in several subteams (%(slugs)s): start with one, e.g. `%(slug)s …`.") % {
        "slugs": ", ".join(s.slug for s in mine),
        "slug": mine[0].slug,
    }


def _errors(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(
            f"{field}: {' '.join(msgs)}" if field != "__all__" else " ".join(msgs)
            for field, msgs in exc.message_dict.items()
        )
    return " ".join(exc.messages)


def cmd_task(member: Member, args: list[str]) -> Reply:
    picked = pick_subteam(member, args)
    if isinstance(picked, str):
        return Reply(picked)
    subteam, words = picked
    title = " ".join(words).strip()
    if not title:
        return Reply(_("Usage: `task [subteam] <title>`"))
    if not access.can_create_task(member.user, subteam.pk):
        return Reply(_("You may not add tasks to %(subteam)s.") % {"subteam": esc(subteam.name)})
    try:
        task = services.create_task(member, subteam=subteam, title=title)
    except ValidationError as exc:
        return Reply(_("The task was not added: %(errors)s") % {"errors": esc(_errors(exc))})
    return Reply(
        _("Added task “%(title)s” to %(subteam)s.") % {"title": esc(task.title), "subteam": esc(subteam.name)}
        + "\n"
        + link(task.get_absolute_url())
    )


# --- weekly reports ------------------------------------------------------------------------------------------


def cmd_report(member: Member, args: list[str]) -> Reply:
    """The week's report of a subteam (draft or published), or the week so far when there is none yet."""
    words, week = list(args), weeks.this_week()
    if words and (named := weeks.parse(words[-1])) is not None:
        week, words = named, words[:-1]
    picked = pick_subteam(member, words)
    if isinstance(picked, str):
        return Reply(picked)
    subteam, rest = picked
    if rest:
        return Reply(_("Usage: `report [subteam] [week]`, e.g. `report sft last`"))
    if week > weeks.this_week():
        return Reply(_("That week has not begun: there is nothing to report yet."))
    report = (
        WeeklyReport.objects.select_related("subteam", "published_by")
        .filter(subteam=subteam, week=week)
        .first()
    )
    if report is None:  # not stored: what a draft would show now
        report = WeeklyReport(subteam=subteam, week=week, data=report_data.week_data(subteam, week))
    return Reply(report_lines(report))


# --- GPUs and the lending list ------------------------------------------------------------------------------


def _free_from_nodes(cluster: Cluster) -> tuple[int, int]:
    nodes = list(Node.objects.filter(cluster=cluster))
    return sum(n.gpus_free for n in nodes), sum(n.gpus_total for n in nodes)


def gpus_text() -> str:
    """Per active cluster: free GPUs now, and the fewest free for the rest of today (from the lending list)."""
    clusters = list(Cluster.objects.filter(is_active=True).order_by("name"))
    if not clusters:
        return _("No clusters are registered.")
    now = timezone.now()
    end_of_day = dt.datetime.combine(
        now.astimezone(timeparse.zone()).date() + dt.timedelta(days=1), dt.time(0), tzinfo=timeparse.zone()
    )
    lines = [_("*Free GPUs* (%(time)s)") % {"time": timezone.localtime(now).strftime("%Y-%m-%d %H:%M")}]
    for cluster in clusters:
        _free, total = _free_from_nodes(cluster)
        slots = lending.availability(cluster, now, end_of_day)
        today = min((slot.free_gpus for slot in slots), default=None)
        line = _("%(cluster)s: %(free)s of %(total)s free now") % {
            "cluster": esc(cluster.name),
            "free": lending.free_gpus_now(cluster),
            "total": max((slot.total_gpus for slot in slots), default=total),
        }
        if today is not None:
            line += ", " + _("at least %(n)s free until midnight") % {"n": today}
        lines.append(line)
    return "\n".join(lines)


def cmd_gpus(member: Member, args: list[str]) -> Reply:
    if args:
        return Reply(_("Usage: `gpus`"))
    return Reply(_("Counting free GPUs…"), later=gpus_text)


RESERVE_USAGE = "`reserve [subteam] <n> <type>[@cluster] <start> <end> <purpose>`"


@dataclasses.dataclass
class ReserveArgs:
    subteam: Subteam
    cluster: Cluster
    gpus: int
    gpu_type: str
    start: dt.datetime
    end: dt.datetime
    purpose: str


def parse_reserve(member: Member, args: list[str], now: dt.datetime) -> ReserveArgs | str:
    usage = _("Usage: %(usage)s, e.g. `reserve 8 h100 tomorrow 9:00 18:00 SFT sweep`") % {
        "usage": RESERVE_USAGE
    }
    words = list(args)
    if words and not words[0].isdecimal():
        picked = pick_subteam(member, words)
        if isinstance(picked, str):
            return picked
        subteam, words = picked
    else:
        picked = pick_subteam(member, [])
        if isinstance(picked, str):
            return picked
        subteam = picked[0]
    if len(words) < 2 or not words[0].isdecimal() or not 1 <= int(words[0]) <= 100_000:
        return _("Give the number of GPUs first (a whole number, 1 or more).") + "\n" + usage
    count = int(words[0])
    gpu_type, _sep, cluster_name = words[1].partition("@")
    gpu_type = "" if gpu_type.lower() in ("any", "-", "") else gpu_type
    clusters = Cluster.objects.filter(is_active=True)
    if cluster_name:
        cluster = clusters.filter(name=cluster_name).first()
        if cluster is None:
            return _("No active cluster named %(name)s.") % {"name": esc(cluster_name)}
    else:
        found = list(clusters.order_by("name")[:2])
        if len(found) != 1:
            names = ", ".join(c.name for c in clusters.order_by("name"))
            return _("Name the cluster after the GPU type, e.g. `h100@%(name)s` (clusters: %(names)s).") % {
                "name": esc(found[0].name) if found else "…",
                "names": esc(names) or "–",
            }
        cluster = found[0]
    rest = words[2:]
    try:
        start, used = timeparse.parse_when(rest, now)
        rest = rest[used:]
    except timeparse.TimeError as exc:
        return (
            _("Could not read the start time %(words)s.") % {"words": f"`{esc(exc)}`" if str(exc) else "–"}
            + "\n"
            + usage
        )
    try:
        end, used = timeparse.parse_when(rest, now, start=start)
        rest = rest[used:]
    except timeparse.TimeError as exc:
        return (
            _("Could not read the end time %(words)s.") % {"words": f"`{esc(exc)}`" if str(exc) else "–"}
            + "\n"
            + usage
        )
    if end <= start:
        return _("The end must be after the start.")
    purpose = " ".join(rest).strip()
    if not purpose:
        return _("Say what the GPUs are for (the purpose comes last).") + "\n" + usage
    return ReserveArgs(subteam, cluster, count, gpu_type, start, end, purpose)


def cmd_reserve(member: Member, args: list[str]) -> Reply:
    """Request a booking at once, inside the request (a write is never left to a thread that a
    restart would lose); the lending list answers in milliseconds."""
    parsed = parse_reserve(member, args, timezone.now())
    if isinstance(parsed, str):
        return Reply(parsed)
    if not lending_access.can_book_gpus(member.user, parsed.subteam.pk):
        return Reply(_("You may not reserve GPUs for %(subteam)s.") % {"subteam": esc(parsed.subteam.name)})
    try:
        reservation = lending.request_reservation(
            member,
            subteam=parsed.subteam,
            cluster=parsed.cluster,
            start=parsed.start,
            end=parsed.end,
            purpose=parsed.purpose,
            gpus=parsed.gpus,
            gpu_type=parsed.gpu_type,
        )
    except ValidationError as exc:
        return Reply(_("The reservation was not requested: %(errors)s") % {"errors": esc(_errors(exc))})
    requested = _(
        "Requested %(n)s GPUs on %(cluster)s, %(start)s – %(end)s, for %(subteam)s: waiting for approval."
    ) % {
        "n": parsed.gpus,
        "cluster": esc(parsed.cluster.name),
        "start": timezone.localtime(parsed.start).strftime("%Y-%m-%d %H:%M"),
        "end": timezone.localtime(parsed.end).strftime("%Y-%m-%d %H:%M"),
        "subteam": esc(parsed.subteam.name),
    }
    return Reply(f"{requested}\n{link(reservation.get_absolute_url())}")


HANDLERS: dict[str, Callable[[Member, list[str]], Reply]] = {
    "gpus": cmd_gpus,
    "reserve": cmd_reserve,
    "jobs": cmd_jobs,
    "job": cmd_job,
    "cancel": cmd_cancel,
    "task": cmd_task,
    "report": cmd_report,
}
