"""The shared cast of every permission test.

admin  - in the management team: may do everything
lead   - lead of the fine-tuning subteam (`sft`)
member - plain member of `sft`
other  - member of another subteam (`pretrain`) only
anon   - not signed in
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from portal.models import Member, Membership, Subteam

PASSWORD = "correct horse battery staple"
ROLES = ("admin", "lead", "member", "other", "anon")


@dataclasses.dataclass
class Team:
    management: Subteam
    sft: Subteam
    pretrain: Subteam
    users: dict[str, User]

    def member(self, role: str) -> Member:
        return self.users[role].member

    def client(self, role: str, language: str = "en") -> Client:
        """A test client signed in as the role (English unless asked; the Japanese UI has its own tests)."""
        client = Client(headers={"accept-language": language})
        if role != "anon":
            client.force_login(self.users[role])
        return client


def make_user(username: str, display_name: str | None = None) -> User:
    user = User.objects.create_user(username=username, password=PASSWORD, email=f"{username}@example.org")
    Member.objects.create(user=user, display_name=display_name or username.title())
    return user


def make_team() -> Team:
    management = Subteam.objects.create(name="Management", slug="management", is_management=True)
    sft = Subteam.objects.create(name="Fine-tuning", slug="sft", purpose="SFT and DPO", slack_channel="#sft")
    pretrain = Subteam.objects.create(name="Pretraining data", slug="pretrain")
    users = {role: make_user(role) for role in ("admin", "lead", "member", "other")}
    start = dt.date(2024, 6, 1)
    Membership.objects.create(member=users["admin"].member, subteam=management, role="lead", started=start)
    Membership.objects.create(member=users["lead"].member, subteam=sft, role="lead", started=start)
    Membership.objects.create(member=users["member"].member, subteam=sft, role="member", started=start)
    Membership.objects.create(member=users["other"].member, subteam=pretrain, role="member", started=start)
    return Team(management=management, sft=sft, pretrain=pretrain, users=users)


def grant_cluster_accounts(team: Team, cluster: Any) -> None:
    """Each persona's own user on the cluster (`tk-<role>`, as the dev cluster creates them), each
    subteam's Slurm account and the team's one judge endpoint, as an admin sets them up."""
    from scheduler import services
    from scheduler.models import JudgeEndpoint

    JudgeEndpoint.objects.get_or_create(name="team-judge", defaults={"base_url": "http://127.0.0.1:9/v1"})

    for role, user in team.users.items():
        services.set_cluster_account(None, user.member, cluster, f"tk-{role}")
    for subteam in (team.management, team.sft, team.pretrain):
        services.set_subteam_account(None, subteam, cluster, subteam.slug)
