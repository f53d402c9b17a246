from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from portal import access


def portal(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    return {
        "portal_name": settings.PORTAL_NAME,
        "me": access.member_of(user) if user is not None else None,
        "i_am_admin": access.is_admin(user) if user is not None else False,
    }
