"""Signing in: the password form, Slack (OpenID Connect) and GitHub through django-allauth, and the
throttle on passwords (django-axes). How to set it up: docs/sign-in.md.

Nobody signs up. A Slack sign-in is the Member whose `slack_user_id` is the ID token's
`https://slack.com/user_id`, and only when its `https://slack.com/team_id` is `SLACK_TEAM_ID`; a
GitHub sign-in is the Member whose `github` is the login (case-insensitive). Anyone else gets a page
saying to ask the management team, and no account is made. The rule is checked on every sign-in, not
only the first: a member whose Slack ID or GitHub user is cleared is out on the next one.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp, SocialLogin
from axes.backends import AxesStandaloneBackend
from django import forms
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from portal.access import is_admin
from portal.models import Member

log = logging.getLogger("portal.signin")

SLACK = "slack"  # the provider_id of the OpenID Connect app in SOCIALACCOUNT_PROVIDERS
GITHUB = "github"
SLACK_USER_CLAIM = "https://slack.com/user_id"
SLACK_TEAM_CLAIM = "https://slack.com/team_id"
APP_FIELDS = ("name", "provider_id", "client_id", "secret", "settings")


# --- passwords ----------------------------------------------------------------------------------------


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes' lockout check, for sign-ins that come with a request (the sign-in page).
    Without one (the test client's `login()`, a shell) there is no address to count by, so it stands
    aside; the next backend checks the password either way."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is not None:
            super().authenticate(request, username, password, **kwargs)  # raises when locked out


class PasswordSignInForm(AuthenticationForm):
    """Django's sign-in form; with `PASSWORD_SIGNIN = "admins"` only the management team passes."""

    def confirm_login_allowed(self, user: User) -> None:
        super().confirm_login_allowed(user)
        if settings.PASSWORD_SIGNIN == "admins" and not is_admin(user):  # noqa: S105 - a mode, no password
            raise forms.ValidationError(
                _("Password sign-in is for the management team. Sign in with Slack or GitHub."),
                code="password_signin_admins_only",
            )


def locked_out(request: HttpRequest, *args: object) -> HttpResponse:
    """Axes' lockout answer (AXES_LOCKOUT_CALLABLE): the page says for how long, in minutes."""
    context = {
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "lockout_minutes": max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)),
    }
    return render(request, "registration/locked_out.html", context, status=429)


login = auth_views.LoginView.as_view(
    template_name="registration/login.html",
    authentication_form=PasswordSignInForm,
    redirect_authenticated_user=True,
)


# --- Slack and GitHub -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a Slack or GitHub identity is not let in, and what the page shows of it."""

    reason: str  # "unknown", "wrong_team", "ambiguous" or "inactive"
    provider: str
    identity: str  # the Slack user ID or the GitHub login, so the person can tell the management team
    team: str = ""


def _slack_claims(extra_data: dict[str, Any]) -> dict[str, Any]:
    """The ID token's claims over the userinfo answer's (allauth keeps both)."""
    return {**(extra_data.get("userinfo") or {}), **(extra_data.get("id_token") or {})}


def _one_member(members: list[Member], refusal: Refusal) -> Member | Refusal:
    if not members:
        return refusal
    if len(members) > 1:
        return dataclasses.replace(refusal, reason="ambiguous")
    if not members[0].user.is_active:
        return dataclasses.replace(refusal, reason="inactive")
    return members[0]


def slack_member(claims: dict[str, Any]) -> Member | Refusal:
    """The Member a Slack identity is, or why not: the workspace must be the team's."""
    user_id, team_id = str(claims.get(SLACK_USER_CLAIM) or ""), str(claims.get(SLACK_TEAM_CLAIM) or "")
    refusal = Refusal("unknown", "Slack", user_id, team_id)
    if not settings.SLACK_TEAM_ID or team_id != settings.SLACK_TEAM_ID:
        return dataclasses.replace(refusal, reason="wrong_team")
    if not user_id:
        return refusal
    members = list(Member.objects.select_related("user").filter(slack_user_id=user_id)[:2])
    return _one_member(members, refusal)


def github_member(profile: dict[str, Any]) -> Member | Refusal:
    """The Member a GitHub identity is (by login, case-insensitive), or why not."""
    login = str(profile.get("login") or "")
    refusal = Refusal("unknown", "GitHub", login)
    if not login:
        return refusal
    members = list(Member.objects.select_related("user").filter(github__iexact=login)[:2])
    return _one_member(members, refusal)


def member_for(sociallogin: SocialLogin) -> Member | Refusal:
    provider = sociallogin.account.provider
    extra_data = sociallogin.account.extra_data or {}
    if provider == SLACK:
        return slack_member(_slack_claims(extra_data))
    if provider == GITHUB:
        return github_member(extra_data)
    return Refusal("unknown", str(provider), str(sociallogin.account.uid))


def refuse(request: HttpRequest, refusal: Refusal) -> ImmediateHttpResponse:
    log.warning(
        "sign-in refused: %s %s %s%s",
        refusal.provider,
        refusal.identity or "(no identity)",
        refusal.reason,
        f" (team {refusal.team})" if refusal.team else "",
    )
    page = render(request, "socialaccount/refused.html", {"refusal": refusal}, status=403)
    return ImmediateHttpResponse(page)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    """Maps a Slack or GitHub identity onto its Member's account, or refuses it; never signs anyone up."""

    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return False

    def list_apps(
        self, request: HttpRequest | None, provider: str | None = None, client_id: str | None = None
    ) -> list[SocialApp]:
        """The apps of `SOCIALACCOUNT_PROVIDERS` only (client secrets come from the environment): allauth
        would blend in `SocialApp` rows from the database, which the portal never has."""
        apps = []
        for name, config in settings.SOCIALACCOUNT_PROVIDERS.items():
            for fields in config.get("APPS", []):
                app = SocialApp(provider=name, **{key: fields[key] for key in APP_FIELDS if key in fields})
                if provider in (None, app.provider, app.provider_id) and client_id in (None, app.client_id):
                    apps.append(app)
        return apps

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        found = member_for(sociallogin)
        if isinstance(found, Refusal):
            raise refuse(request, found)
        if not sociallogin.is_existing:
            sociallogin.connect(request, found.user)
        elif sociallogin.user.pk != found.user_id:
            # The Slack ID or GitHub login has moved to another member since: this account is not theirs.
            slack = sociallogin.account.provider == SLACK
            identity = found.slack_user_id if slack else found.github
            raise refuse(request, Refusal("ambiguous", "Slack" if slack else "GitHub", identity))


class AccountAdapter(DefaultAccountAdapter):
    """The management team adds members (the admin site); there is no sign-up page."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False
