"""The Slack and GitHub sign-in apps allauth reads (`SOCIALACCOUNT_PROVIDERS`), built from settings that
come from the environment, and the origins the sign-in buttons redirect to (the CSP's form-action).

Plain functions, so the tests build the same apps for their local providers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

SLACK_ISSUER = "https://slack.com"
GITHUB_WEB = "https://github.com"


def social_providers(
    *,
    slack_client_id: str = "",
    slack_client_secret: str = "",
    slack_team_id: str = "",
    slack_issuer: str = SLACK_ISSUER,
    github_client_id: str = "",
    github_client_secret: str = "",
    github_url: str = "",
) -> dict[str, dict[str, Any]]:
    """Slack as an OpenID Connect app (`provider_id` "slack") and GitHub, each only when its client ID
    and secret are set; Slack also needs the workspace's team ID (its sign-ins are checked against it)."""
    providers: dict[str, dict[str, Any]] = {}
    if slack_client_id and slack_client_secret:
        if not slack_team_id:
            raise ImproperlyConfigured(
                "SLACK_TEAM_ID must be set with SLACK_CLIENT_ID (the workspace's T… ID)"
            )
        slack = {
            "provider_id": "slack",
            "name": "Slack",
            "client_id": slack_client_id,
            "secret": slack_client_secret,
            # `team` skips Slack's workspace picker; the team-id claim is checked all the same.
            "settings": {"server_url": slack_issuer.rstrip("/"), "auth_params": {"team": slack_team_id}},
        }
        providers["openid_connect"] = {"SCOPE": ["openid", "profile"], "APPS": [slack]}
    if github_client_id and github_client_secret:
        providers["github"] = {
            "SCOPE": [],  # the public profile (its login) is all the mapping needs
            "APPS": [{"client_id": github_client_id, "secret": github_client_secret}],
            **({"GITHUB_URL": github_url.rstrip("/")} if github_url else {}),
        }
    return providers


def redirect_origins(providers: dict[str, dict[str, Any]]) -> list[str]:
    """Where the sign-in buttons' forms end up: each configured provider's origin."""
    urls = [app["settings"]["server_url"] for app in providers.get("openid_connect", {}).get("APPS", [])]
    if "github" in providers:
        urls.append(providers["github"].get("GITHUB_URL") or GITHUB_WEB)
    return sorted({f"{p.scheme}://{p.netloc}" for p in map(urlsplit, urls) if p.netloc})
