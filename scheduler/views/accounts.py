"""Members' cluster accounts: a member uploads the key of their own account (clusters that log in with
members' own keys), an admin tries a member's login.

The key is posted once, handed to `services.upload_member_key` (which checks it and keeps it encrypted)
and never shown again: the form's textarea does not render what was posted, errors do not quote it,
and the error reports Django makes hide it (`sensitive_post_parameters`).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from portal.access import member_of
from portal.http import HtmxHttpRequest
from scheduler import access, services
from scheduler.forms import MemberKeyForm


@sensitive_post_parameters("private_key")
@require_http_methods(["GET", "POST"])
def account_key(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    account = access.get_account_for_key(request.user, pk)
    form = MemberKeyForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            services.upload_member_key(member_of(request.user), account, form.cleaned_data["private_key"])
        except ValidationError as error:
            for message in error.messages:  # the service's reasons never quote the key
                form.add_error("private_key", message)
        else:
            messages.success(
                request,
                _("Key %(fingerprint)s kept for %(user)s on %(cluster)s.")
                % {
                    "fingerprint": account.key_fingerprint,
                    "user": account.username,
                    "cluster": account.cluster.name,
                },
            )
            return redirect("scheduler:account-key", pk=account.pk)
    return render(request, "scheduler/accounts/key.html", {"account": account, "form": form})


@require_POST
def account_test_login(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Log in as the member now (an admin's check after setting an account up); the result as a message."""
    account = access.get_account_to_test(request.user, pk)
    problem = services.check_login(member_of(request.user), account)
    names = {"user": account.username, "cluster": account.cluster.name, "problem": problem}
    if problem:
        messages.error(request, _("Logging in to %(cluster)s as %(user)s failed: %(problem)s") % names)
    else:
        messages.success(request, _("Logged in to %(cluster)s as %(user)s.") % names)
    return redirect(account.cluster)
