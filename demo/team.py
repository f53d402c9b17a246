"""The demo team: a synthetic 45-person team in the middle of its 10-week plan, and the loader behind
`manage.py load_demo`.

The figures and the plan follow the team's public 2024 report (see the shared DOMAIN.md); every person
is invented. The team is data: demo/data/{subteams,people,milestones,goals,tasks}.yaml, read here into
typed specs and checked before anything is written. Its dates are plan dates, moved to the real
calendar by demo/plan.py.

Loading is idempotent. Users, members, memberships, subteams, milestones and tasks are upserted in bulk,
keyed on usernames, slugs and (subteam, title). Goals are rebuilt on every load through
`services.create_goal` / `services.update_goal`, so their revision history is recorded the normal way
and its dates follow the shift; a rebuilt goal keeps its place (same count, same revisions) but not
its id.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction
from django.db.models import ForeignKey, Model, Q

from demo import datafiles
from demo.plan import PLAN_START, Plan
from portal import services
from portal.models import Goal, GoalRevision, Member, Membership, Milestone, Subteam, Task

DEFAULT_PASSWORD = "demo"  # noqa: S105 - the documented demo password, overridden by DEMO_PASSWORD


# --- the specs: one kind of row of demo/data/ each --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SubteamSpec:
    slug: str
    name: str
    name_ja: str
    slack_channel: str
    purpose: str
    status_note: str
    is_management: bool = False


@dataclasses.dataclass(frozen=True)
class Stint:
    """A membership: subteam slug, role, plan start, plan end (None while it lasts)."""

    subteam: str
    role: str = Membership.Role.MEMBER
    start: str = "06-01"
    end: str | None = None


@dataclasses.dataclass(frozen=True)
class Person:
    username: str
    display_name: str
    bio: str
    stints: tuple[Stint, ...]
    joined: str = "06-01"
    missing: tuple[str, ...] = ()  # onboarding steps not done yet (Member.ONBOARDING_FIELDS names)
    is_admin: bool = False

    @property
    def given(self) -> str:
        return self.display_name.split()[0]

    @property
    def family(self) -> str:
        return self.display_name.split()[-1]


@dataclasses.dataclass(frozen=True)
class MilestoneSpec:
    subteam: str | None
    title: str
    date: str
    description: str = ""
    overdue: bool = False  # past and not done, on purpose: the overview has something overdue


@dataclasses.dataclass(frozen=True)
class Revision:
    """A later change to a goal; `author` None with a `source` is an automatic change."""

    day: str
    author: str | None
    changes: Mapping[str, Any]
    reason: str
    source: str = ""


@dataclasses.dataclass(frozen=True)
class GoalSpec:
    key: str
    subteam: str | None
    author: str
    created: str
    fields: Mapping[str, Any]
    reason: str = ""
    revisions: tuple[Revision, ...] = ()

    @property
    def titles(self) -> set[str]:
        """Every title the goal has had, to find it again on the next load."""
        titles = {self.fields["title"]}
        titles.update(r.changes["title"] for r in self.revisions if "title" in r.changes)
        return titles


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    subteam: str
    title: str
    status: str
    priority: int
    assignees: tuple[str, ...]  # usernames; the first created the task
    start: str
    due: str
    goal: str | None = None  # a GoalSpec key
    learnings: str = ""
    description: str = ""


@dataclasses.dataclass(frozen=True)
class TeamSpec:
    subteams: tuple[SubteamSpec, ...]
    people: tuple[Person, ...]
    milestones: tuple[MilestoneSpec, ...]
    goals: tuple[GoalSpec, ...]
    tasks: tuple[TaskSpec, ...]


@functools.cache
def read_team() -> TeamSpec:
    """The demo team from demo/data/, read once per process."""
    people = [
        {
            **row,
            "stints": tuple(Stint(**stint) for stint in row["stints"]),
            "missing": tuple(row.get("missing", ())),
        }
        for row in datafiles.read("people.yaml")
    ]
    goals = [
        {
            "subteam": None,
            **row,
            "revisions": tuple(
                Revision(**{"author": None, **revision}) for revision in row.get("revisions", ())
            ),
        }
        for row in datafiles.read("goals.yaml")
    ]
    tasks = [
        {
            **row,
            "subteam": subteam,
            "priority": Task.Priority[row["priority"].upper()],
            "assignees": tuple(row["assignees"]),
        }
        for subteam, rows in datafiles.read("tasks.yaml").items()
        for row in rows
    ]
    return TeamSpec(
        subteams=tuple(SubteamSpec(**row) for row in datafiles.read("subteams.yaml")),
        people=tuple(Person(**row) for row in people),
        milestones=tuple(
            MilestoneSpec(**{"subteam": None, **row}) for row in datafiles.read("milestones.yaml")
        ),
        goals=tuple(GoalSpec(**row) for row in goals),
        tasks=tuple(TaskSpec(**row) for row in tasks),
    )


# --- loading ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DemoSummary:
    subteams: int
    members: int
    active_memberships: int
    ended_memberships: int
    goals: int
    goal_revisions: int
    milestones: int
    tasks: int
    shift: dt.timedelta
    plan_today: dt.date
    password_from_env: bool

    def line(self) -> str:
        weeks = self.shift.days // 7
        return (
            f"Demo loaded: {self.subteams} subteams, {self.members} members "
            f"({self.active_memberships} active and {self.ended_memberships} ended memberships), "
            f"{self.goals} goals with {self.goal_revisions} revisions, {self.milestones} milestones, "
            f"{self.tasks} tasks; plan dates moved by {weeks:+d} weeks (today is plan day "
            f"{self.plan_today:%Y-%m-%d}, week {(self.plan_today - PLAN_START).days // 7 + 1} of 10)."
        )

    def sign_in_lines(self) -> list[str]:
        password = (
            "the password in DEMO_PASSWORD" if self.password_from_env else f"password '{DEFAULT_PASSWORD}'"
        )
        return [
            f"Sign in with {password} as:",
            "  admin       superuser, management team (may do everything)",
            "  htsuchiya   lead of Fine-tuning / post-training",
            "  smaruyama   member of Fine-tuning / post-training",
        ]


def demo_password() -> str:
    return os.environ.get("DEMO_PASSWORD", "") or DEFAULT_PASSWORD


def load_demo(today: dt.date | None = None, password: str | None = None) -> DemoSummary:
    """Create or refresh the demo team, plan, goals and tasks, with dates relative to `today`."""
    team = read_team()
    check(team)
    plan = Plan.for_today(today)
    password_from_env = password is None and bool(os.environ.get("DEMO_PASSWORD", ""))
    password = password if password is not None else demo_password()
    with transaction.atomic():
        subteams = _load_subteams(plan, team.subteams)
        members = _load_people(plan, team.people, _password_hash(password))
        _load_memberships(plan, team.people, members, subteams)
        _load_milestones(plan, team.milestones, subteams)
        goals = _load_goals(plan, team.goals, subteams, members)
        _load_tasks(plan, team.tasks, subteams, members, goals)
    return DemoSummary(
        subteams=Subteam.objects.count(),
        members=Member.objects.count(),
        active_memberships=Membership.objects.filter(ended__isnull=True).count(),
        ended_memberships=Membership.objects.filter(ended__isnull=False).count(),
        goals=Goal.objects.count(),
        goal_revisions=GoalRevision.objects.count(),
        milestones=Milestone.objects.count(),
        tasks=Task.objects.count(),
        shift=plan.shift,
        plan_today=plan.plan_today,
        password_from_env=password_from_env,
    )


def check(team: TeamSpec) -> None:
    """Catch mistakes in the data files before writing anything (unknown slugs, goals or people,
    assignees outside a team)."""
    slugs = {s.slug for s in team.subteams}
    goal_keys = {g.key for g in team.goals}
    usernames = {p.username for p in team.people}
    in_subteam: dict[str, set[str]] = {slug: set() for slug in slugs}
    for person in team.people:
        for stint in person.stints:
            if stint.subteam not in slugs:
                raise ValueError(f"{person.username}: unknown subteam {stint.subteam}")
            in_subteam[stint.subteam].add(person.username)
    for task in team.tasks:
        if task.subteam not in slugs or (task.goal is not None and task.goal not in goal_keys):
            raise ValueError(f"task {task.title!r}: unknown subteam or goal")
        outsiders = [u for u in task.assignees if u not in in_subteam[task.subteam]]
        if outsiders:
            raise ValueError(f"task {task.title!r}: {outsiders} not in {task.subteam}")
    for owner, subteam in [
        *((g.key, g.subteam) for g in team.goals),
        *((m.title, m.subteam) for m in team.milestones),
    ]:
        if subteam is not None and subteam not in slugs:
            raise ValueError(f"{owner}: unknown subteam {subteam}")
    for goal in team.goals:
        authors = {goal.author, *(r.author for r in goal.revisions if r.author is not None)}
        if authors - usernames:
            raise ValueError(f"goal {goal.key}: unknown authors {sorted(authors - usernames)}")


def _assign(obj: Model, values: Mapping[str, Any]) -> bool:
    """Set field values on a row; True when any changed (unchanged rows are left out of bulk updates)."""
    changed = False
    for name, value in values.items():
        field = obj._meta.get_field(name)
        if isinstance(field, ForeignKey):
            old, new = getattr(obj, field.attname), (value.pk if value is not None else None)
        else:
            old, new = getattr(obj, name), value
        if old != new:
            changed = True
        setattr(obj, name, value)  # also for relations: keeps the loaded object cached on the row
    return changed


def _password_hash(password: str) -> str:
    """One hash shared by every demo user (hashing 45 times would take seconds). When `admin` still has
    this password, its stored hash is reused, so loading again rewrites no user rows."""
    current = get_user_model().objects.filter(username="admin").values_list("password", flat=True).first()
    if current and check_password(password, current):
        return current
    return make_password(password)


def _load_subteams(plan: Plan, specs: Sequence[SubteamSpec]) -> dict[str, Subteam]:
    subteams = {}
    for spec in specs:
        subteam, _created = Subteam.objects.update_or_create(
            slug=spec.slug,
            defaults={
                "name": spec.name,
                "name_ja": spec.name_ja,
                "purpose": plan.text(spec.purpose),
                "slack_channel": spec.slack_channel,
                "status_note": plan.text(spec.status_note),
                "is_management": spec.is_management,
            },
        )
        subteams[spec.slug] = subteam
    return subteams


USER_FIELDS = ("first_name", "last_name", "email", "password", "is_active", "is_staff", "is_superuser")
# What a profile edit may change, plus the join date the demo plan sets.
MEMBER_FIELDS = (*services.MEMBER_FIELDS, "joined")
# Not from the demo data: a member's cluster username comes with their cluster account
# (register_devcluster), and the onboarding step is ticked only once the portal has logged in as them.
SET_BY_THE_CLUSTER = ("cluster_account", "has_cluster_account")


def _load_people(plan: Plan, people: Sequence[Person], password_hash: str) -> dict[str, Member]:
    """Users and their Member profiles, in bulk. Every demo user gets the same (already hashed) password:
    hashing once instead of 45 times keeps the load fast."""
    user_model = get_user_model()
    usernames = [p.username for p in people]
    users = {u.get_username(): u for u in user_model.objects.filter(username__in=usernames)}
    new_users, old_users = [], []
    for person in people:
        values: dict[str, Any] = {
            "first_name": "" if person.is_admin else person.given,
            "last_name": "" if person.is_admin else person.family,
            "email": f"{person.username}@example.org",
            "password": password_hash,
            "is_active": True,
            "is_staff": person.is_admin,
            "is_superuser": person.is_admin,
        }
        existing = users.get(person.username)
        if existing is None:
            new_users.append(user_model(username=person.username, **values))
        else:
            if _assign(existing, values):
                old_users.append(existing)
    user_model.objects.bulk_create(new_users)
    user_model.objects.bulk_update(old_users, USER_FIELDS)
    users = {u.get_username(): u for u in user_model.objects.filter(username__in=usernames)}

    members = {m.user_id: m for m in Member.objects.filter(user__in=users.values())}
    new_members, old_members = [], []
    for number, person in enumerate(people):
        user = users[person.username]
        handle = f"{person.given}-{person.family}".lower() if not person.is_admin else "tanuki-admin"
        fields: dict[str, Any] = {
            "display_name": person.display_name,
            "slack_user_id": f"U0DEMO{number:03d}",
            "github": handle,
            "huggingface": handle,
            "wandb": person.username,
            "bio": plan.text(person.bio),
            "joined": plan.day(person.joined),
            **{
                name: name not in person.missing
                for name, _label in Member.ONBOARDING_FIELDS
                if name not in SET_BY_THE_CLUSTER
            },
        }
        member = members.get(user.pk)
        if member is None:
            member = Member(user=user, **fields)
            new_members.append(member)
        else:
            if _assign(member, fields):
                old_members.append(member)
    Member.objects.bulk_create(new_members)
    Member.objects.bulk_update(old_members, MEMBER_FIELDS)
    by_user = {m.user_id: m for m in Member.objects.filter(user__in=users.values())}
    return {username: by_user[user.pk] for username, user in users.items()}


def _load_memberships(
    plan: Plan, people: Sequence[Person], members: dict[str, Member], subteams: dict[str, Subteam]
) -> None:
    """One row per stint, keyed on (member, subteam, ended or not); extra rows someone added are kept."""
    existing: dict[tuple[int, int, bool], Membership] = {}
    for row in Membership.objects.filter(member__in=members.values()).order_by("id"):
        existing.setdefault((row.member_id, row.subteam_id, row.ended is None), row)
    new: list[Membership] = []
    old: list[Membership] = []
    for person in people:
        member = members[person.username]
        for stint in person.stints:
            subteam = subteams[stint.subteam]
            fields = {
                "role": stint.role,
                "started": plan.day(max(stint.start, person.joined)),
                "ended": plan.day(stint.end) if stint.end else None,
            }
            found = existing.get((member.pk, subteam.pk, stint.end is None))
            if found is None:
                new.append(Membership(member=member, subteam=subteam, **fields))
            else:
                if _assign(found, fields):
                    old.append(found)
    Membership.objects.bulk_update(old, ["role", "started", "ended"])
    Membership.objects.bulk_create(new)


def _validate(obj: Task | Milestone) -> None:
    """`full_clean` without its per-row queries: the foreign keys were just loaded, and the date checks
    in `clean()` are the ones the database constraints enforce again on insert."""
    obj.clean_fields(exclude=["subteam", "goal", "created_by"])
    obj.clean()


def _milestone_done(plan: Plan, spec: MilestoneSpec) -> bool:
    return plan.is_past(spec.date) and not spec.overdue


def _load_milestones(plan: Plan, specs: Sequence[MilestoneSpec], subteams: dict[str, Subteam]) -> None:
    existing = {
        (m.subteam_id, m.title): m for m in Milestone.objects.filter(title__in=[s.title for s in specs])
    }
    new, old = [], []
    for spec in specs:
        subteam = subteams[spec.subteam] if spec.subteam else None
        fields = {
            "date": plan.day(spec.date),
            "done": _milestone_done(plan, spec),
            "description": plan.text(spec.description),
        }
        milestone = existing.get((subteam.pk if subteam else None, spec.title))
        if milestone is None:
            milestone = Milestone(subteam=subteam, title=spec.title, **fields)
            new.append(milestone)
        else:
            if _assign(milestone, fields):
                old.append(milestone)
        _validate(milestone)
    Milestone.objects.bulk_update(old, ["date", "done", "description"])
    Milestone.objects.bulk_create(new)


def _goal_values(plan: Plan, values: Mapping[str, Any], subteams: dict[str, Subteam]) -> dict[str, Any]:
    """Goal field values from a spec: plan dates moved (also in the target's prose), subteam slugs resolved."""
    resolved = dict(values)
    if isinstance(resolved.get("target"), str):
        resolved["target"] = plan.text(resolved["target"])
    for name in ("start_date", "due_date"):
        if isinstance(resolved.get(name), str):
            resolved[name] = plan.day(resolved[name])
    if isinstance(resolved.get("subteam"), str):
        resolved["subteam"] = subteams[resolved["subteam"]]
    return resolved


def _load_goals(
    plan: Plan, specs: Sequence[GoalSpec], subteams: dict[str, Subteam], members: dict[str, Member]
) -> dict[str, Goal]:
    """Rebuild the demo goals: delete last load's (found by any title they have had), then replay each
    goal's history through the services, dated on the plan."""
    stale = Q(pk__in=[])
    for spec in specs:
        where = Q(subteam__isnull=True) if spec.subteam is None else Q(subteam=subteams[spec.subteam])
        stale |= where & Q(title__in=spec.titles)
    Goal.objects.filter(stale).delete()

    goals = {}
    for spec in specs:
        subteam = subteams[spec.subteam] if spec.subteam else None
        created = plan.at(spec.created, hour=20)
        goal = services.create_goal(
            members[spec.author],
            reason=plan.text(spec.reason),
            subteam=subteam,
            **_goal_values(plan, spec.fields, subteams),
        )
        GoalRevision.objects.filter(goal=goal).update(created_at=created)
        updated = created
        for revision in spec.revisions:
            author = members[revision.author] if revision.author else None
            record = services.update_goal(
                author,
                goal,
                _goal_values(plan, revision.changes, subteams),
                reason=plan.text(revision.reason),
                source=revision.source,
            )
            if record is None:
                raise ValueError(f"goal {spec.key}: revision on {revision.day} changes nothing")
            updated = plan.at(revision.day, hour=22)
            GoalRevision.objects.filter(pk=record.pk).update(created_at=updated)
        Goal.objects.filter(pk=goal.pk).update(created_at=created, updated_at=updated)
        goal.refresh_from_db()
        goals[spec.key] = goal
    return goals


def _task_times(plan: Plan, spec: TaskSpec) -> tuple[dt.datetime, dt.datetime]:
    """created_at and updated_at: never in the future of the demo's today."""
    latest = (plan.plan_today - dt.timedelta(days=1)).strftime("%m-%d")
    created = min(spec.start, latest)
    touched = max(created, min(spec.due if spec.status == Task.Status.DONE else latest, latest))
    return plan.at(created, hour=10), plan.at(touched, hour=18)


TASK_UPDATE_FIELDS = (
    "description",
    "status",
    "priority",
    "start_date",
    "due_date",
    "goal",
    "learnings",
    "created_by",
    "created_at",
    "updated_at",
)


def _load_tasks(
    plan: Plan,
    specs: Sequence[TaskSpec],
    subteams: dict[str, Subteam],
    members: dict[str, Member],
    goals: dict[str, Goal],
) -> None:
    existing = {(t.subteam_id, t.title): t for t in Task.objects.filter(title__in=[s.title for s in specs])}
    new, old = [], []
    ordered: list[tuple[Task, TaskSpec]] = []
    for spec in specs:
        subteam = subteams[spec.subteam]
        created, updated = _task_times(plan, spec)
        fields: dict[str, Any] = {
            "description": plan.text(spec.description),
            "status": spec.status,
            "priority": spec.priority,
            "start_date": plan.day(spec.start),
            "due_date": plan.day(spec.due),
            "goal": goals[spec.goal] if spec.goal else None,
            "learnings": plan.text(spec.learnings),
            "created_by": members[spec.assignees[0]],
            "created_at": created,
            "updated_at": updated,
        }
        task = existing.get((subteam.pk, spec.title))
        if task is None:
            task = Task(subteam=subteam, title=spec.title, **fields)
            new.append(task)
        else:
            if _assign(task, fields):
                old.append(task)
        _validate(task)
        ordered.append((task, spec))
    Task.objects.bulk_update(old, TASK_UPDATE_FIELDS)
    Task.objects.bulk_create(new)
    if any(task.pk is None for task, _spec in ordered):  # backends that do not return ids from bulk inserts
        saved = {(t.subteam_id, t.title): t for t in Task.objects.filter(title__in=[s.title for s in specs])}
        ordered = [(saved[(task.subteam_id, task.title)], spec) for task, spec in ordered]
    _set_assignees([(task, [members[u] for u in spec.assignees]) for task, spec in ordered])


def _set_assignees(pairs: Iterable[tuple[Task, Sequence[Member]]]) -> None:
    through = Task.assignees.through
    pairs = list(pairs)
    through.objects.filter(task_id__in=[task.pk for task, _members in pairs]).delete()
    through.objects.bulk_create(
        [through(task_id=task.pk, member_id=member.pk) for task, assignees in pairs for member in assignees]
    )
