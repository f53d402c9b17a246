"""Settings for the test suite: the real settings, with a throwaway secret and a fast password hasher."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")

from config.settings import *  # noqa: F403

# The demo app is installed here so that its loaders, commands and judge are tested with the rest.
if "demo" not in INSTALLED_APPS:  # noqa: F405
    INSTALLED_APPS.append("demo")  # noqa: F405
    LOGIN_EXEMPT_PREFIXES.append("/demo-judge/")  # noqa: F405

# The tests' dev cluster instance's SSH user CA (scripts/devcluster): workers started as separate
# processes sign members' certificates with it too.
SSH_USER_CA_KEY = os.environ.get("SSH_USER_CA_KEY") or (
    os.environ.get("DEVCLUSTER_DIR", "/var/lib/tanuki-devcluster") + "-test/ssh/user_ca"
)
KEY_ENCRYPTION_KEY = "test-only-key-encryption-key"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not shared-cache memory: threads then lock rows the way the embedded deployment does
    # (WAL + busy timeout) instead of failing with "table is locked".
    import tempfile

    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"tanuki-test-{os.getpid()}.sqlite3")
    }
