"""Settings for Tanuki Portal, read from the environment (see the README's configuration table).

Embedded default: SQLite file, in-process channel layer. Production: DATABASE_URL (PostgreSQL) and
REDIS_URL (channel layer).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dj_database_url
import django_stubs_ext
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from config.env import env_bool, env_int, env_list, env_str
from config.signin import SLACK_ISSUER, redirect_origins, social_providers

django_stubs_ext.monkeypatch()  # lets admin/queryset generics be subscripted at run time

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", default=False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (set DEBUG=1 for local development)"
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105 - only with DEBUG on

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "channels",
    "allauth",  # sign-in with Slack (OpenID Connect) and GitHub: docs/sign-in.md
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.socialaccount.providers.github",
    "axes",  # throttles password sign-in per username and address
    "csp",
    "portal",
    "scheduler",
    "lending",
    "metrics",
    "evals",
    "experiments",
    "reports",
    "slackbot",
]
# Paths anonymous users may reach (portal.middleware): sign-in (the password form, the Slack and GitHub
# round trips and their error pages), the language switch, the health check; the API and websockets
# answer 401/403 themselves; Slack's requests carry a signature instead of a session.
LOGIN_EXEMPT_PREFIXES = [
    "/accounts/login/",
    "/accounts/oidc/",
    "/accounts/github/",
    "/accounts/3rdparty/login/",
    "/accounts/inactive/",
    "/i18n/",
    "/healthz",
    "/api/",
    "/ws/",
    "/slack/",
]

# The demo (`make demo` sets DEMO=1): its data, loaders and commands, and the stand-in MT-Bench judge
# (DEBUG only; it checks its own key, so it is open without a session).
if env_bool("DEMO", default=False):
    INSTALLED_APPS.append("demo")
    LOGIN_EXEMPT_PREFIXES.append("/demo-judge/")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "portal.middleware.LoginRequiredEverywhereMiddleware",
    "portal.middleware.ApiRequestErrorsMiddleware",  # /api/: too large or unreadable bodies answer JSON
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out sign-in into the lockout page
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.portal",
                "csp.context_processors.nonce",  # CSP_NONCE, for the rare inline <script>/<style>
            ],
        },
    },
]

ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'tanuki.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["ENGINE"] = "config.sqlite3"  # Django's, with the file made 0600
    # WAL lets the scheduler loop write while pages read; IMMEDIATE avoids lock-upgrade deadlocks.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
    }

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "login"

# --- Sign-in (portal.signin; docs/sign-in.md) ---
# Axes' check comes first: a locked-out username+address is refused before any password is hashed.
AUTHENTICATION_BACKENDS = [
    "portal.signin.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# The password form: "everyone" (default) or "admins" (the management team; the others sign in with
# Slack or GitHub).
PASSWORD_SIGNIN = env_str("PASSWORD_SIGNIN", "everyone")
if PASSWORD_SIGNIN not in ("everyone", "admins"):
    raise ImproperlyConfigured(f"PASSWORD_SIGNIN must be 'everyone' or 'admins', got {PASSWORD_SIGNIN!r}")

# Slack (OpenID Connect): a sign-in maps to the Member whose Slack user ID is the token's
# https://slack.com/user_id, only when its https://slack.com/team_id is SLACK_TEAM_ID. GitHub: the
# Member whose GitHub user is the login. Nobody else gets in (no sign-up). Client secrets come from the
# environment only: allauth reads apps from this setting, so none is stored in the database.
SLACK_TEAM_ID = env_str("SLACK_TEAM_ID")
SLACK_CLIENT_ID = env_str("SLACK_CLIENT_ID")
SLACK_CLIENT_SECRET = env_str("SLACK_CLIENT_SECRET")
SLACK_OIDC_ISSUER = env_str("SLACK_OIDC_ISSUER", SLACK_ISSUER)
GITHUB_CLIENT_ID = env_str("GITHUB_CLIENT_ID")
GITHUB_CLIENT_SECRET = env_str("GITHUB_CLIENT_SECRET")
GITHUB_URL = env_str("GITHUB_URL")  # GitHub Enterprise Server; empty: github.com

SOCIALACCOUNT_PROVIDERS = social_providers(
    slack_client_id=SLACK_CLIENT_ID,
    slack_client_secret=SLACK_CLIENT_SECRET,
    slack_team_id=SLACK_TEAM_ID,
    slack_issuer=SLACK_OIDC_ISSUER,
    github_client_id=GITHUB_CLIENT_ID,
    github_client_secret=GITHUB_CLIENT_SECRET,
    github_url=GITHUB_URL,
)
SOCIALACCOUNT_ONLY = True  # allauth's own password, e-mail and sign-up pages are off
SOCIALACCOUNT_AUTO_SIGNUP = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # never match people by e-mail address
SOCIALACCOUNT_STORE_TOKENS = False  # the portal calls neither API after sign-in
SOCIALACCOUNT_ADAPTER = "portal.signin.SocialAccountAdapter"
ACCOUNT_ADAPTER = "portal.signin.AccountAdapter"
ACCOUNT_EMAIL_VERIFICATION = "none"

# Throttling (django-axes): after LOGIN_FAILURE_LIMIT failed passwords for one username from one
# address, that pair is refused (even with the right password) for LOGIN_LOCKOUT_MINUTES; a success
# clears the count. Behind a proxy, run daphne with --proxy-headers so the address is the client's.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "portal.signin.locked_out"  # the lockout page (429), in the visitor's language
AXES_DISABLE_ACCESS_LOG = True  # only failures are kept (to count them), not every sign-in

# Content-Security-Policy (django-csp): scripts and stylesheets from the portal only (an inline
# <script> or <style> needs the request's nonce: {{ CSP_NONCE }}). Inline style *attributes* stay
# allowed (style-src-attr): pages size bars and progress from data (`style="width: 40%"`).
# The sign-in buttons post to the portal, which redirects to the provider: form-action names them.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],  # htmx, fetch and the live pages' websockets (same origin)
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF, *redirect_origins(SOCIALACCOUNT_PROVIDERS)],
    }
}

LANGUAGE_CODE = env_str("LANGUAGE_CODE", "ja")
LANGUAGES = [("ja", _("Japanese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "Asia/Tokyo")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# STATIC_MANIFEST (production, and `make demo`, which runs collectstatic): pages link hashed, compressed
# copies from STATIC_ROOT, served with a year's max-age (immutable); a changed file gets a new name.
# Off (DEBUG without collectstatic, the tests): the app folders' files under their own names.
STATIC_MANIFEST = env_bool("STATIC_MANIFEST", default=not DEBUG)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "config.storage.HashedStaticFilesStorage"
        if STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST
WHITENOISE_AUTOREFRESH = DEBUG and not STATIC_MANIFEST

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie; kept default for admin
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=True)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Tanuki Portal API",
    "DESCRIPTION": "Members, subteams, tasks, goals and milestones of the team, and its jobs on the "
    "Slurm clusters; token auth (`Authorization: Token KEY`).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Choice sets that share a field name get names of their own in the schema.
    "ENUM_NAME_OVERRIDES": {
        "JobKindEnum": "scheduler.models.Job.Kind",
        "JobStateEnum": "scheduler.models.Job.State",
        "ClusterStatusEnum": "scheduler.models.Cluster.Status",
        "TrainingKindEnum": "scheduler.api.serializers.STEP_KINDS",
        "TemplateKindEnum": ["custom", "pretrain", "sft", "dpo", "eval", "pipeline"],
        "ReportStateEnum": "reports.models.WeeklyReport.State",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# Name shown in the header and page titles.
PORTAL_NAME = env_str("PORTAL_NAME", "Tanuki Portal")

# --- The scheduler's worker (docs/architecture.md) ---
# The whole cycle, in order. Per reachable cluster, on one SSH connection (each step gets a
# `scheduler.steps.Poll`: the cluster, the connection, the worker's name and the cycle's counters):
SCHEDULER_STEPS = [
    "scheduler.steps.refresh_inventory",  # sinfo + scontrol show partition, every 30 s
    "scheduler.drains.watch_nodes",  # nodes newly drained/down → NodeIncidents with their jobs (no command)
    "scheduler.steps.submit_pending",  # adopt or sbatch the jobs waiting to be submitted
    "scheduler.steps.send_cancels",  # scancel what was asked for, first: as the member, or the service
    "scheduler.tracking.track_jobs",  # one squeue, one batched sacct: state changes become JobEvents
    "scheduler.steps.read_logs",  # stdout/stderr tails over SFTP, as each job's member
    "scheduler.triage.diagnose_jobs",  # why a job ended badly, from its stored log tails (no command)
    "scheduler.associations.sync_associations",  # memberships → sacctmgr user→account, every minute
    "lending.sync.sync_reservations",  # bookings → scontrol create/update/delete reservation
    "metrics.ingest.ingest_cluster",  # .wandb run files over SFTP → metric points
    "evals.collect.collect_eval_results",  # finished evaluations' summaries → leaderboard
    "experiments.datasets.check_datasets",  # data sets' rows, size and SHA-256, computed as the member
    "experiments.lineage.record_models",  # finished training jobs → model records (no command)
    "experiments.records.check_results",  # new results at a board's top or a goal's target (no command)
]
# Then once per cycle, whatever the clusters:
SCHEDULER_CYCLE_STEPS = [
    "slackbot.delivery.run_from_worker",  # new job/booking/eval events → Slack messages, posted
]
# The preflight (scheduler.preflight) refuses a job when the filesystem of its run directory, or the
# member's quota there, has less room than this (GB; 0: not checked).
PREFLIGHT_MIN_FREE_GB = float(env_str("PREFLIGHT_MIN_FREE_GB", "5") or "5")
# A node that goes drained or down is linked to the portal's jobs running on it and to those that ended
# on it this many minutes before (scheduler.drains).
NODE_INCIDENT_WINDOW_MINUTES = env_int("NODE_INCIDENT_WINDOW_MINUTES", 30)
# --- Metrics ingest (metrics.ingest): the first read of a run's W&B file per cycle, and how long a visit
# reads on, in growing chunks, into runs that are behind.
METRICS_READ_BYTES = env_int("METRICS_READ_BYTES", 4 << 20)
METRICS_INGEST_SECONDS_PER_CYCLE = float(env_str("METRICS_INGEST_SECONDS_PER_CYCLE", "2.0") or "2.0")
# The loss watch (metrics.watch): a robust z-score above METRICS_SPIKE_Z against the previous
# METRICS_SPIKE_WINDOW losses is a spike (NaN or infinite losses always are).
METRICS_SPIKE_Z = float(env_str("METRICS_SPIKE_Z", "8") or "8")
METRICS_SPIKE_WINDOW = env_int("METRICS_SPIKE_WINDOW", 50)

# --- Identity on the clusters (scheduler.identity; docs/cluster-access.md) ---
# The SSH user CA's private key file (OpenSSH format): the portal signs a certificate valid for
# SSH_CERTIFICATE_SECONDS for a member's own cluster user for each connection. Never in the database.
SSH_USER_CA_KEY = env_str("SSH_USER_CA_KEY")
SSH_CERTIFICATE_SECONDS = env_int("SSH_CERTIFICATE_SECONDS", 300)
# Encrypts members' uploaded private keys (clusters in the "uploaded keys" mode); any long random
# string. Without it, keys cannot be uploaded (with DEBUG on, one is derived from SECRET_KEY).
KEY_ENCRYPTION_KEY = env_str("KEY_ENCRYPTION_KEY") or (f"derived:{SECRET_KEY}" if DEBUG else "")
# Members' pooled SSH connections are closed after this many idle seconds.
SSH_IDLE_SECONDS = env_int("SSH_IDLE_SECONDS", 300)

# The Slurm reservation a job is submitted into (a subteam's jobs run inside its booking), asked for
# when the job's script is built: a function (job) -> reservation name or None.
JOB_RESERVATION = "lending.services.reservation_for_job"
# How a job waiting in a booking names it ("booking #12 (8 GPUs, until …)"): scheduler.pending.
JOB_RESERVATION_LABEL = "lending.waiting.describe_reservation"
# The registered data sets a training request names (`name@version`) → their paths, or why not:
# scheduler.training_jobs.check asks it; the form's choices come from TRAINING_DATASET_CHOICES.
TRAINING_DATASETS = "experiments.datasets.resolve"
TRAINING_DATASET_CHOICES = "experiments.datasets.choices"
# How the leaderboard groups its rows (a sweep, else the base model): evals.views asks it.
EVAL_RESULT_GROUPS = "experiments.board.groups"
# --- Experiments (docs/experiments.md): the most runs one sweep may submit.
SWEEP_MAX_RUNS = env_int("SWEEP_MAX_RUNS", 64)

# --- Slack (slackbot app; docs/slack.md) ---
# Without a signing secret the slash command answers 503; without a bot token notifications are
# recorded but not posted.
SLACK_SIGNING_SECRET = env_str("SLACK_SIGNING_SECRET")
SLACK_BOT_TOKEN = env_str("SLACK_BOT_TOKEN")
SLACK_API_BASE_URL = env_str("SLACK_API_BASE_URL", "https://slack.com/api/")
SLACK_MAX_ATTEMPTS = env_int("SLACK_MAX_ATTEMPTS", 8)
# Where the portal is reached from a browser, for links in Slack messages (no trailing slash).
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

# --- GPU lending list (lending) ---
# A booking with no running job of its subteam for this long (while active) is flagged idle, once.
LENDING_IDLE_MINUTES = env_int("LENDING_IDLE_MINUTES", 60)
# The longest booking, in days.
LENDING_MAX_DAYS = env_int("LENDING_MAX_DAYS", 14)
# GPU types the clusters' nodes carry (the inventory records GPU counts, not the gres type).
LENDING_GPU_TYPES = env_list("LENDING_GPU_TYPES", ["h100"])
# SQLite: write transactions are already IMMEDIATE (above), which serializes approvals as the
# capacity invariant needs; PostgreSQL locks the Cluster row (SELECT … FOR UPDATE).
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {})["ReservationStateEnum"] = (  # type: ignore[index]
    "lending.models.Reservation.State"
)
