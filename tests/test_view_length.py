"""Views stay short: a view reads the request, asks an access helper, calls a form and a service, and
renders or redirects. Anything longer belongs in a helper (a form, a service, a selector).

Read on the source with `ast`: every function view (first parameter `request`) in the apps' view
and API modules, and every method of a class there that takes the request (DRF handlers and
actions), is at most `MAX_LINES` lines long, its signature and docstring included.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ["portal", "scheduler", "lending", "metrics", "evals", "slackbot", "demo", "config"]
MAX_LINES = 35

Function = ast.FunctionDef | ast.AsyncFunctionDef


def view_modules() -> list[Path]:
    found = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT)
            in_views = "views" in relative.parts[:-1]
            if "migrations" in relative.parts:
                continue
            if in_views or path.stem in ("views", "api"):
                found.append(path)
    return found


def _takes_request(function: Function, *, method: bool) -> bool:
    names = [arg.arg for arg in function.args.args]
    position = 1 if method else 0
    return len(names) > position and names[position] == "request"


def views_in(tree: ast.Module) -> Iterator[Function]:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _takes_request(node, method=False):
            yield node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and _takes_request(
                    item, method=True
                ):
                    yield item


def long_views() -> dict[str, int]:
    long: dict[str, int] = {}
    for path in view_modules():
        for function in views_in(ast.parse(path.read_text(), filename=str(path))):
            assert function.end_lineno is not None
            lines = function.end_lineno - function.lineno + 1
            if lines > MAX_LINES:
                long[f"{path.relative_to(ROOT).as_posix()}:{function.name}"] = lines
    return long


def test_every_view_is_short() -> None:
    assert not long_views(), f"views over {MAX_LINES} lines (move the work into a helper): {long_views()}"


def test_the_view_modules_are_found() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in view_modules()}
    assert {
        "lending/views.py",
        "lending/api.py",
        "scheduler/views/jobs.py",
        "scheduler/api/views.py",
    } <= names
    assert {"portal/views/tasks.py", "portal/api/views.py", "evals/api.py", "metrics/api.py"} <= names
