"""The root URL conf: every app's pages, the admin, i18n, the API (config/api_urls.py) and sign-in.

/accounts/login/ is the password form with the Slack and GitHub buttons (portal.signin); allauth's
provider round trips live under /accounts/ after it (its own sign-in, sign-up and e-mail pages are off:
`SOCIALACCOUNT_ONLY`).
"""

from django.apps import apps
from django.conf import settings
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from portal import signin
from portal.admin import admin_site

urlpatterns = [
    path("accounts/login/", signin.login, name="login"),
    path("admin/", admin_site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("api/", include("config.api_urls")),
    path("", include(("scheduler.urls", "scheduler"))),
    path("", include(("lending.urls", "lending"))),
    path("", include(("metrics.urls", "metrics"))),
    path("", include(("evals.urls", "evals"))),
    path("", include(("experiments.urls", "experiments"))),
    path("", include(("reports.urls", "reports"))),
    path("slack/", include(("slackbot.urls", "slackbot"))),
    path("", include("portal.web_urls")),
    path("accounts/", include("allauth.urls")),
]

if apps.is_installed("demo"):
    urlpatterns.append(path("", include("demo.urls")))

if settings.DEBUG:
    from django.contrib.staticfiles.urls import staticfiles_urlpatterns

    urlpatterns += staticfiles_urlpatterns()
