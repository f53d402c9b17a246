"""Settings come from the environment through typed helpers; bad values fail at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list

ROOT = Path(__file__).resolve().parents[2]


def settings_in_subprocess(env: dict[str, str], expr: str) -> subprocess.CompletedProcess[str]:
    """Import config.settings fresh with exactly this environment and print an expression."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    code = f"import config.settings as s; print(({expr}))"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("true", True), ("On", True), ("0", False), ("no", False)]
)
def test_env_bool_reads_the_usual_spellings(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool
) -> None:
    monkeypatch.setenv("X_FLAG", raw)
    assert env_bool("X_FLAG") is expected


def test_env_bool_refuses_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG must be a boolean"):
        env_bool("X_FLAG")


def test_env_int_and_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_LIST", "a.example, b.example ,")
    assert env_int("X_INT", 1) == 42
    assert env_list("X_LIST", []) == ["a.example", "b.example"]
    monkeypatch.setenv("X_INT", "forty")
    with pytest.raises(ImproperlyConfigured, match="X_INT must be an integer"):
        env_int("X_INT", 1)


def test_secret_key_is_required_when_debug_is_off() -> None:
    result = settings_in_subprocess({}, "s.SECRET_KEY")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_defaults_are_sqlite_in_process_layer_tokyo_and_japanese() -> None:
    result = settings_in_subprocess(
        {"DEBUG": "1"},
        "s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND'], s.TIME_ZONE, s.LANGUAGE_CODE",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "('config.sqlite3', 'channels.layers.InMemoryChannelLayer', 'Asia/Tokyo', 'ja')"
    )


def test_database_url_and_redis_url_switch_to_postgresql_and_redis() -> None:
    result = settings_in_subprocess(
        {
            "SECRET_KEY": "x" * 50,
            "DATABASE_URL": "postgres://tanuki@db.internal:5432/portal",
            "REDIS_URL": "redis://cache.internal:6379/1",
            "ALLOWED_HOSTS": "portal.example.org",
        },
        "s.DATABASES['default']['ENGINE'], s.DATABASES['default']['HOST'], "
        "s.CHANNEL_LAYERS['default']['BACKEND'], s.ALLOWED_HOSTS, s.DEBUG",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "('django.db.backends.postgresql', 'db.internal', 'channels_redis.core.RedisChannelLayer', "
        "['portal.example.org'], False)"
    )
