"""Know-how: the "what we learned" notes of every task, searchable and paginated.

Run on SQLite (LIKE) and, where DATABASE_URL points to PostgreSQL (CI's second run), on PostgreSQL's
full-text search; the tests that only hold for one of them say so.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal import learnings
from portal.models import Task
from tests.personas import Team

on_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's full-text search")
on_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="the LIKE search of SQLite")

# The page's queries for a signed-in member: what every page asks (session, user, the member and whether
# they are an admin, for the header) and its own: subteams (filter), count, the page, its assignees.
PAGE_QUERIES = 9


def note(team: Team, title: str, text: str, **fields: object) -> Task:
    return Task.objects.create(subteam=fields.pop("subteam", team.sft), title=title, learnings=text, **fields)


def titles(html: str) -> list[str]:
    return re.findall(r'<a class="title" href="/tasks/\d+/">([^<]*)</a>', html)


def test_the_page_lists_every_note_newest_first_and_leaves_out_tasks_without_one(team: Team) -> None:
    note(team, "Older", "Packing sequences saved 20%")
    note(team, "Newer", "LoRA r=16 was enough")
    Task.objects.create(subteam=team.sft, title="No note")
    html = team.client("member").get("/learnings/").content.decode()
    assert titles(html) == ["Newer", "Older"]
    assert "2 notes" in html


def test_search_ignores_case_and_needs_every_word(team: Team) -> None:
    note(team, "LoRA sweep", "Rank 16 matched full fine-tuning on the 8B model")
    note(team, "Tokenizer", "Byte fallback avoided unknown tokens")
    client = team.client("member")
    assert titles(client.get("/learnings/?q=lora").content.decode()) == ["LoRA sweep"]
    assert titles(client.get("/learnings/?q=RANK+model").content.decode()) == ["LoRA sweep"]
    assert titles(client.get("/learnings/?q=rank+tokens").content.decode()) == []
    assert "No notes match" in client.get("/learnings/?q=rank+tokens").content.decode()


def test_japanese_words_are_found_inside_sentences(team: Team) -> None:
    note(team, "学習率の調整", "学習率を 2e-5 に下げたら損失のスパイクが消えた")
    note(team, "データ", "重複除去で 12% 減った")
    client = team.client("member")
    assert titles(client.get("/learnings/?q=スパイク").content.decode()) == ["学習率の調整"]
    assert titles(client.get("/learnings/?q=学習率 スパイク").content.decode()) == ["学習率の調整"]
    assert learnings.uses_full_text("スパイク") is False


def test_the_subteam_filter_keeps_one_subteams_notes(team: Team) -> None:
    note(team, "SFT note", "lr 2e-5")
    note(team, "Data note", "lr for the tokenizer", subteam=team.pretrain)
    html = team.client("member").get("/learnings/?q=lr&subteam=pretrain").content.decode()
    assert titles(html) == ["Data note"]


def test_notes_come_in_pages_and_the_links_keep_the_query(team: Team) -> None:
    for i in range(learnings.PAGE_SIZE + 3):
        note(team, f"Note {i}", f"lesson {i}")
    client = team.client("member")
    first = client.get("/learnings/?q=lesson").content.decode()
    assert len(titles(first)) == learnings.PAGE_SIZE
    assert 'href="?q=lesson&amp;page=2"' in first
    second = client.get("/learnings/?q=lesson&page=2").content.decode()
    assert len(titles(second)) == 3
    assert 'href="?q=lesson&amp;page=1"' in second
    assert len(titles(client.get("/learnings/?q=lesson&page=99").content.decode())) == 3


def test_htmx_gets_only_the_results(team: Team) -> None:
    note(team, "LoRA sweep", "Rank 16")
    response = team.client("member").get("/learnings/?q=lora", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="results"')
    assert titles(body) == ["LoRA sweep"]


def test_user_text_is_escaped(team: Team) -> None:
    note(team, "<b>t</b>", "<script>alert(1)</script>")
    html = team.client("member").get("/learnings/").content.decode()
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html


def test_the_nav_the_board_and_the_task_page_link_to_it(team: Team) -> None:
    task = note(team, "t", "x")
    client = team.client("member")
    for url in ("/", "/tasks/?subteam=sft", f"/tasks/{task.pk}/"):
        assert 'href="/learnings/"' in client.get(url).content.decode(), url


def test_anonymous_visitors_are_sent_to_sign_in(team: Team) -> None:
    response = team.client("anon").get("/learnings/?q=x")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("query", ["", "lora", "学習率"])
def test_the_query_count_is_pinned_and_stays_at_ten_times_the_notes(team: Team, query: str) -> None:
    client = team.client("member")
    url = f"/learnings/?q={query}"

    def add(n: int) -> None:
        for i in range(n):
            task = note(team, f"LoRA {i}", f"LoRA rank {i}; 学習率 2e-5")
            task.assignees.set([team.member("member"), team.member("lead")])

    add(2)
    client.get(url)
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    add(18)
    with CaptureQueriesContext(connection) as ten:
        assert client.get(url).status_code == 200
    assert len(one) == len(ten) == PAGE_QUERIES, "\n".join(q["sql"][:160] for q in ten.captured_queries)


# --- one database or the other -------------------------------------------------------------------------


@on_sqlite
def test_sqlite_matches_parts_of_words(team: Team) -> None:
    note(team, "Tokenizer", "Byte fallback")
    assert learnings.uses_full_text("tok") is False
    assert titles(team.client("member").get("/learnings/?q=tok").content.decode()) == ["Tokenizer"]


@on_postgres
def test_postgres_searches_stemmed_words_best_match_first(team: Team) -> None:
    note(team, "Passing mention", "We also looked at tokenizers briefly")
    note(team, "Tokenizer", "Tokenizer: a tokenizer trained on the mix tokenizes Japanese better")
    note(team, "Other", "Packing sequences")
    assert learnings.uses_full_text("tokenizers") is True
    client = team.client("member")
    assert titles(client.get("/learnings/?q=tokenizers").content.decode()) == ["Tokenizer", "Passing mention"]
    # websearch syntax: a minus leaves notes out.
    assert titles(client.get("/learnings/?q=tokenizer+-japanese").content.decode()) == ["Passing mention"]


@on_postgres
def test_postgres_answers_the_search_from_the_gin_index(team: Team) -> None:
    note(team, "LoRA", "rank 16")
    tasks = learnings.search("lora rank")
    sql, params = tasks.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [learnings.LEARNINGS_INDEX])
        assert cursor.fetchone() is not None
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert learnings.LEARNINGS_INDEX in plan, plan
