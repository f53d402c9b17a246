"""The Japanese UI: the catalog is complete and compiled, and pages speak Japanese unless asked otherwise.

Japanese is the default language (LANGUAGE_CODE = "ja"); English comes from `Accept-Language: en` or the
language switch (`/i18n/setlang/`, remembered in a cookie). After adding or changing a marked string, run
`manage.py makemessages -l ja …`, translate, and `manage.py compilemessages` (see test_catalog_covers_…).
"""

from __future__ import annotations

import ast
import dataclasses
import gettext
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from portal.models import Task
from tests.personas import Team

LOCALE_DIR = Path(settings.LOCALE_PATHS[0])
PO_FILE = LOCALE_DIR / "ja" / "LC_MESSAGES" / "django.po"
MO_FILE = PO_FILE.with_suffix(".mo")
REPO = Path(settings.BASE_DIR)

# The same walk as the documented `makemessages -l ja --ignore …` run.
MAKEMESSAGES_IGNORED = (".venv", "training", "tests", "staticfiles")


# --- a tiny .po reader ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Entry:
    msgid: str
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: str = ""
    msgstr_plural: dict[int, str] = dataclasses.field(default_factory=dict)
    flags: set[str] = dataclasses.field(default_factory=set)
    references: list[str] = dataclasses.field(default_factory=list)

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.msgctxt, self.msgid)

    @property
    def translations(self) -> list[str]:
        return list(self.msgstr_plural.values()) if self.msgid_plural is not None else [self.msgstr]

    @property
    def where(self) -> str:
        return " ".join(self.references) or repr(self.msgid)


def read_po(path: Path) -> tuple[Entry, list[Entry]]:
    """(header, entries) of a .po file; obsolete (`#~`) entries are left out."""
    entries: list[Entry] = []
    flags: set[str] = set()
    references: list[str] = []
    fields: dict[str, str] = {}
    current: str | None = None

    def flush() -> None:
        nonlocal flags, references, fields, current
        if "msgid" in fields:
            entry = Entry(
                msgid=fields["msgid"],
                msgid_plural=fields.get("msgid_plural"),
                msgctxt=fields.get("msgctxt"),
                msgstr=fields.get("msgstr", ""),
                msgstr_plural={
                    int(name[7:-1]): value for name, value in fields.items() if name.startswith("msgstr[")
                },
                flags=flags,
                references=references,
            )
            entries.append(entry)
        flags, references, fields, current = set(), [], {}, None

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            flush()
        elif line.startswith("#~"):
            continue
        elif line.startswith("#"):
            if "msgid" in fields:  # a comment starts the next entry
                flush()
            if line.startswith("#,"):
                flags |= {flag.strip() for flag in line[2:].split(",") if flag.strip()}
            elif line.startswith("#:"):
                references += line[2:].split()
        elif line.startswith('"'):
            assert current is not None, f"{path}: continuation line without a keyword: {raw!r}"
            fields[current] += ast.literal_eval(line)
        else:
            keyword, _, quoted = line.partition(" ")
            assert re.fullmatch(r"msgctxt|msgid|msgid_plural|msgstr(\[\d+\])?", keyword), raw
            if keyword in ("msgctxt", "msgid") and "msgid" in fields:
                flush()
            current = keyword
            fields[keyword] = ast.literal_eval(quoted)
    flush()
    header = entries[0]
    assert header.msgid == "", f"{path} has no header entry"
    return header, entries[1:]


def header_fields(header: Entry) -> dict[str, str]:
    pairs = (line.partition(":") for line in header.msgstr.splitlines() if line.strip())
    return {name.strip(): value.strip() for name, _, value in pairs}


def placeholders(text: str, flags: set[str]) -> list[str]:
    found = re.findall(r"%\(\w+\)[sdifr]|%[sdif]", text) if "python-format" in flags else []
    if "python-brace-format" in flags:
        found += re.findall(r"\{\w*\}", text)
    return sorted(found)


@pytest.fixture(scope="module")
def catalog() -> tuple[Entry, list[Entry]]:
    return read_po(PO_FILE)


# --- the catalog -----------------------------------------------------------------------------------------


def test_catalog_header_is_japanese_with_one_plural_form(catalog: tuple[Entry, list[Entry]]) -> None:
    header, _entries = catalog
    fields = header_fields(header)
    assert "fuzzy" not in header.flags
    assert fields["Language"] == "ja"
    assert fields["Project-Id-Version"] == "tanuki-portal"
    assert fields["Content-Type"] == "text/plain; charset=UTF-8"
    assert fields["Plural-Forms"] == "nplurals=1; plural=0;"


def test_every_entry_is_translated_and_none_is_fuzzy(catalog: tuple[Entry, list[Entry]]) -> None:
    _header, entries = catalog
    assert len(entries) > 100, "the catalog looks truncated"
    fuzzy = [e.where for e in entries if "fuzzy" in e.flags]
    empty = [e.where for e in entries if not all(e.translations)]
    assert not fuzzy, f"fuzzy entries: {fuzzy}"
    assert not empty, f"untranslated entries: {empty}"
    wrong_plurals = [e.where for e in entries if e.msgid_plural is not None and set(e.msgstr_plural) != {0}]
    assert not wrong_plurals, f"Japanese has one plural form (msgstr[0] only): {wrong_plurals}"


def test_translations_keep_every_placeholder(catalog: tuple[Entry, list[Entry]]) -> None:
    _header, entries = catalog
    broken = []
    for entry in entries:
        for source in filter(None, (entry.msgid, entry.msgid_plural)):
            expected = set(placeholders(source, entry.flags))
            for translation in entry.translations:
                if set(placeholders(translation, entry.flags)) != expected:
                    broken.append((entry.where, source, translation))
    assert not broken


def test_compiled_catalog_matches_the_po_file(catalog: tuple[Entry, list[Entry]]) -> None:
    """The committed .mo holds exactly the .po's translations (run compilemessages after editing)."""
    _header, entries = catalog
    with MO_FILE.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    assert compiled.info().get("plural-forms") == "nplurals=1; plural=0;"
    stale: list[tuple[object, ...]] = []
    for entry in entries:
        if entry.msgid_plural is not None:
            for n in (1, 2, 5):
                if entry.msgctxt is None:
                    got = compiled.ngettext(entry.msgid, entry.msgid_plural, n)
                else:
                    got = compiled.npgettext(entry.msgctxt, entry.msgid, entry.msgid_plural, n)
                if got != entry.msgstr_plural[0]:
                    stale.append((entry.where, n, got))
        else:
            if entry.msgctxt is None:
                got = compiled.gettext(entry.msgid)
            else:
                got = compiled.pgettext(entry.msgctxt, entry.msgid)
            if got != entry.msgstr:
                stale.append((entry.where, got))
    assert not stale, f"django.mo is older than django.po; run compilemessages: {stale[:10]}"


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("xgettext", "msguniq", "msgmerge", "msgattrib")),
    reason="needs GNU gettext to extract the strings",
)
def test_catalog_covers_every_string_marked_in_the_sources(
    catalog: tuple[Entry, list[Entry]], tmp_path: Path
) -> None:
    """Extract the marked strings from a copy of the sources and look each one up in the catalog, so a new
    `{% translate %}` without a translation fails here instead of showing English on the Japanese UI."""
    tree = tmp_path / "tree"
    for dirpath, dirnames, filenames in os.walk(REPO):
        relative = Path(dirpath).relative_to(REPO)
        dirnames[:] = [
            d
            for d in dirnames
            if not d.startswith(".") and not (relative == Path() and d in MAKEMESSAGES_IGNORED)
        ]
        for name in filenames:
            if name.endswith((".py", ".html", ".txt")):
                (tree / relative).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(dirpath) / name, tree / relative / name)
    (tree / "locale").mkdir(exist_ok=True)
    (tree / "i18n_check_settings.py").write_text(
        "from pathlib import Path\n"
        "from tests.settings import *  # noqa: F403\n"
        "LOCALE_PATHS = [Path(__file__).resolve().parent / 'locale']\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "i18n_check_settings",
        "PYTHONPATH": os.pathsep.join([str(tree), str(REPO)]),
    }
    subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "ja"],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    _header, extracted = read_po(tree / "locale" / "ja" / "LC_MESSAGES" / "django.po")
    _header, entries = catalog
    translated = {e.key: e for e in entries if all(e.translations) and "fuzzy" not in e.flags}
    missing = [e.where for e in extracted if e.key not in translated]
    assert extracted, "makemessages found no strings"
    assert not missing, f"marked strings missing from locale/ja (run makemessages and translate): {missing}"


# --- pages -----------------------------------------------------------------------------------------------


def signed_in(team: Team, role: str = "member", **headers: str) -> Client:
    client = Client(headers=headers)
    client.force_login(team.users[role])
    return client


def test_overview_is_japanese_without_accept_language(team: Team) -> None:
    response = signed_in(team).get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="ja">' in html
    for text in ("概要", "サブチーム", "タスク", "目標", "タイムライン", "メンバー", "ログアウト"):
        assert text in html, text
    assert ">Overview<" not in html
    assert ">Sign out<" not in html


def test_overview_is_japanese_with_accept_language_ja(team: Team) -> None:
    html = team.client("member", language="ja").get("/").content.decode()
    assert '<html lang="ja">' in html
    assert "概要" in html


def test_overview_is_english_with_accept_language_en(team: Team) -> None:
    response = team.client("member", language="en").get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="en">' in html
    assert ">Overview<" in html
    assert "Sign out" in html
    assert "概要" not in html
    assert "ログアウト" not in html


def test_language_switch_makes_the_next_pages_english_and_back(team: Team) -> None:
    client = team.client("member", language="ja")
    assert "概要" in client.get("/").content.decode()

    response = client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    for url in ("/", "/tasks/", "/goals/"):
        html = client.get(url).content.decode()
        assert '<html lang="en">' in html, url
        assert ">Overview<" in html, url
        assert "概要" not in html, url

    client.post("/i18n/setlang/", {"language": "ja", "next": "/"})
    html = client.get("/").content.decode()
    assert '<html lang="ja">' in html
    assert "概要" in html


def test_sign_in_page_is_japanese_by_default() -> None:
    response = Client().get("/accounts/login/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="ja">' in html
    for text in ("ログイン", "ユーザー名", "パスワード"):
        assert text in html, text
    assert "Sign in" not in html


def test_sign_in_page_follows_accept_language_en() -> None:
    html = Client(headers={"accept-language": "en"}).get("/accounts/login/").content.decode()
    assert '<html lang="en">' in html
    assert "Sign in" in html
    assert "ログイン" not in html


def test_failed_sign_in_explains_in_japanese(team: Team) -> None:
    response = Client().post("/accounts/login/", {"username": "member", "password": "wrong"})
    assert response.status_code == 200
    assert "ユーザー名とパスワードが一致しません" in response.content.decode()


def test_task_board_shows_japanese_column_and_priority_labels(team: Team) -> None:
    Task.objects.create(subteam=team.sft, title="Tokenizer check", status=Task.Status.BLOCKED, priority=4)
    html = signed_in(team).get("/tasks/?subteam=sft").content.decode()
    for label in ("未着手", "進行中", "ブロック中", "完了", "緊急", "タスクボード"):
        assert label in html, label
    for label in (">To do<", ">Doing<", ">Blocked<", ">Urgent<"):
        assert label not in html, label


@pytest.mark.parametrize(
    ("url", "texts"),
    [
        ("/subteams/", ["サブチーム", "リード"]),
        ("/subteams/sft/", ["目標", "マイルストーン", "タスクボード", "役割"]),
        ("/goals/", ["目標", "プロジェクト全体"]),
        ("/timeline/", ["タイムライン", "順調", "要注意", "達成", "取り下げ"]),
        ("/members/", ["メンバー", "クラスタアカウント"]),
        ("/members/member/", ["オンボーディング", "プロフィールを編集"]),
        ("/tasks/new/", ["新しいタスク", "学んだこと", "担当者"]),
    ],
)
def test_pages_are_japanese(team: Team, url: str, texts: list[str]) -> None:
    response = signed_in(team).get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="ja">' in html
    for text in texts:
        assert text in html, text
