"""Which Slurm associations the portal wants: members in their subteams' accounts, admins in every
subteam's account (the portal lets an admin submit for any subteam, so Slurm must take the account),
and nothing for someone who stops being an admin or a member. No cluster: the plan is database only."""

from __future__ import annotations

from portal import services as portal_services
from portal.models import Membership
from scheduler.associations import wanted
from scheduler.models import Cluster
from tests.personas import Team, grant_cluster_accounts
from tests.scheduler.test_web import make_fake_cluster


def test_members_get_their_subteams_accounts_and_admins_every_account(team: Team) -> None:
    cluster: Cluster = make_fake_cluster()
    grant_cluster_accounts(team, cluster)
    want = set(wanted(cluster))
    accounts = {team.management.slug, team.sft.slug, team.pretrain.slug}
    assert {account for user, account in want if user == "tk-admin"} == accounts
    assert {account for user, account in want if user == "tk-member"} == {team.sft.slug}
    assert {account for user, account in want if user == "tk-other"} == {team.pretrain.slug}

    # No longer in the management team: no longer an admin, back to the accounts of their own subteams.
    admin = team.member("admin")
    membership = Membership.objects.get(member=admin, subteam=team.management, ended__isnull=True)
    portal_services.end_membership(None, membership)
    assert {account for user, account in wanted(cluster) if user == "tk-admin"} == set()
