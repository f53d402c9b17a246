"""Every state change goes through a service: the model writes outside the services are listed here.

Read on the source with `ast`: each call of `.save(`, `.delete(`, `.bulk_create(`, `.bulk_update(`,
`.update_or_create(`, `.get_or_create(`, `.objects.create(` and a query's `.update(` in the app
packages counts, outside the services (`services.py`, `services/`), the migrations, the demo app and
the worker's cycle (the worker, the steps the `SCHEDULER_STEPS`/`SCHEDULER_CYCLE_STEPS` settings name,
and the modules those steps write through). What is left is the allow-list below, a count per file
with its reason: a new write in a view, an API view, a form, the admin or a command fails this test
(call a service instead), and so does a stale entry (lower the count).
"""

from __future__ import annotations

import ast
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
APPS = ["portal", "scheduler", "lending", "metrics", "evals", "experiments", "slackbot", "config"]

# The worker's cycle writes its own rows (claims, inventories, sync state, cursors): these modules are
# the steps themselves, or what they write through, besides the step modules the settings name.
CYCLE_HELPERS = {
    "scheduler/worker.py": "the loop: claims clusters for a cycle",
    "scheduler/transitions.py": "the one door for a job's state change (conditional UPDATE + JobEvent)",
    "scheduler/identity.py": "logins proved or refused as the steps open members' connections (+ AccessEvent)",
    "metrics/store.py": "metric points, written by the ingest step",
    "slackbot/notify.py": "notification rows, made from event rows by the delivery step",
    "slackbot/outbox.py": "the outbox cursor: event rows become notifications, read by cursor",
}

ALLOWED: dict[str, tuple[int, str]] = {
    "portal/api/views.py": (2, "serializer.save(): the serializers' create/update call portal.services"),
    "scheduler/api/views.py": (
        1,
        "serializer.save(): JobRequestSerializer.create calls services.submit_chain",
    ),
    "experiments/sweeps.py": (
        3,
        "the sweeps' service: the sweep and its runs, in the transaction that submits their jobs",
    ),
    "slackbot/signing.py": (2, "replay protection: the signatures seen in the last minutes, not state"),
}

ALWAYS_WRITES = {"save", "delete", "bulk_create", "bulk_update", "update_or_create", "get_or_create"}


def _through_a_query(node: ast.expr) -> bool:
    """Whether a receiver is a query (`X.objects…`, `….filter(…)`): `.update(` on it writes rows, while
    `.update(` on a dict (a template context) does not."""
    while True:
        if isinstance(node, ast.Call):
            return True
        if isinstance(node, ast.Attribute):
            if node.attr == "objects":
                return True
            node = node.value
            continue
        return False


def write_calls(tree: ast.AST) -> list[ast.Call]:
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name, receiver = node.func.attr, node.func.value
        if (
            name in ALWAYS_WRITES
            or (name == "create" and isinstance(receiver, ast.Attribute) and receiver.attr == "objects")
            or (name == "update" and _through_a_query(receiver))
        ):
            found.append(node)
    return found


def _cycle_modules() -> set[str]:
    steps = [*settings.SCHEDULER_STEPS, *settings.SCHEDULER_CYCLE_STEPS]
    named = {path.rpartition(".")[0].replace(".", "/") + ".py" for path in steps}
    return named | set(CYCLE_HELPERS)


def _checked_files() -> list[Path]:
    skipped = _cycle_modules()
    files = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "migrations" in relative.parts or "services" in relative.parts[:-1]:
                continue
            if path.name == "services.py" or relative.as_posix() in skipped:
                continue
            files.append(path)
    return files


def write_sites() -> dict[str, list[str]]:
    """file -> the write calls in it (as source text, with line numbers)."""
    sites: dict[str, list[str]] = {}
    for path in _checked_files():
        calls = write_calls(ast.parse(path.read_text(), filename=str(path)))
        if calls:
            sites[path.relative_to(ROOT).as_posix()] = [f"{c.lineno}: {ast.unparse(c)[:80]}" for c in calls]
    return sites


def test_model_writes_happen_only_in_services_and_the_worker_cycle() -> None:
    sites = write_sites()
    unexpected = {path: calls for path, calls in sites.items() if len(calls) > ALLOWED.get(path, (0, ""))[0]}
    assert not unexpected, f"write outside a service (call a service instead): {unexpected}"
    stale = {path: len(sites.get(path, [])) for path, (count, _why) in ALLOWED.items()}
    assert stale == {path: count for path, (count, _why) in ALLOWED.items()}, "lower the allow-list"


def test_the_cycle_modules_exist() -> None:
    """The skipped modules are real files (a renamed step must not widen what goes unchecked)."""
    missing = sorted(path for path in _cycle_modules() if not (ROOT / path).is_file())
    assert not missing


def test_the_finder_sees_the_writes_it_is_meant_to() -> None:
    source = """
def view(request, job, context, rows):
    job.save(update_fields=["state"])
    Job.objects.create(name="x")
    Job.objects.filter(pk=1).update(state="done")
    rows.filter(pk=1).delete()
    Node.objects.update_or_create(name="n")
    context.update(page=2)
    jobs = Job.objects.filter(pk=1)
    form.cleaned_data.get("x")
"""
    found = [ast.unparse(call) for call in write_calls(ast.parse(source))]
    assert found == [
        "job.save(update_fields=['state'])",
        "Job.objects.create(name='x')",
        "Job.objects.filter(pk=1).update(state='done')",
        "rows.filter(pk=1).delete()",
        "Node.objects.update_or_create(name='n')",
    ]
