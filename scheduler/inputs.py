"""Bounded input: the rules a member's text obeys before it reaches a file or the cluster.

Every string a member sends that ends up in run.yaml, an sbatch script, a template or a Slurm command
line goes through `text_problem` (or its validator, `bounded_text`): a length cap, no NUL bytes, no
control characters (a multi-line field keeps tab and newline, and CRLF as a browser posts it), no Unicode
direction overrides (the "Trojan Source" characters, which make text read differently than it runs).

YAML a member sends (`training.extra_yaml`) is read by `load_yaml`: PyYAML's safe loader that also
refuses anchors and aliases (a 250-byte "billion laughs" document expands to gigabytes), documents over
16 KiB and nesting deeper than 20, and whose errors never quote more than a short snippet of the input.

`path_problem` says what is wrong with a path-valued setting: `..` components, `~`, a relative path
where only an absolute one will do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

MAX_YAML_BYTES = 16 * 1024
MAX_YAML_DEPTH = 20
MAX_LINE = 1000  # a path, a name, a hub id: one line
MAX_ERROR = 300  # what an error message quotes of anything a member sent

# U+202A-U+202E (embeddings and overrides) and U+2066-U+2069 (isolates).
BIDI_RE = re.compile("[\u202a-\u202e\u2066-\u2069]")
# C0 controls and DEL, and C1 controls (U+0080-U+009F: CSI and friends in some terminals).
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MULTILINE_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # tab and newline allowed


def text_problem(value: str, *, max_length: int = MAX_LINE, multiline: bool = False) -> str | None:
    """What is wrong with a member's text, or None when it may go to a file or the cluster."""
    if len(value) > max_length:
        return _("At most %(max)d characters (this has %(n)d).") % {"max": max_length, "n": len(value)}
    if "\x00" in value:
        return _("NUL bytes are not allowed.")
    if multiline:
        value = value.replace("\r\n", "\n")  # what a browser posts from a textarea
    if (MULTILINE_CONTROL_RE if multiline else CONTROL_RE).search(value):
        return (
            _("Control characters are not allowed (tab and newline are).")
            if multiline
            else _("Control characters (newlines, tabs, escapes) are not allowed here.")
        )
    if BIDI_RE.search(value):
        return _("Unicode direction overrides (U+202A–U+202E, U+2066–U+2069) are not allowed.")
    return None


def bounded_text(max_length: int = MAX_LINE, *, multiline: bool = False) -> Callable[[Any], None]:
    """A form or serializer field validator for `text_problem`."""

    def validate(value: Any) -> None:
        problem = text_problem(str(value), max_length=max_length, multiline=multiline)
        if problem is not None:
            raise ValidationError(problem, code="bounded_text")

    return validate


def short(text: str, limit: int = MAX_ERROR) -> str:
    """At most `limit` characters of a message that may quote a member's input."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- paths ----------------------------------------------------------------------------------------------


def path_problem(value: str, *, absolute: bool = False, relative: bool = False) -> str | None:
    """What is wrong with a path on the cluster. `absolute`: only an absolute path will do;
    `relative`: only a path inside the run directory (relative, no `..`) will do; neither: either."""
    problem = text_problem(value)
    if problem is not None:
        return problem
    if not value:
        return _("Give a path.")
    if ".." in value.split("/"):
        return _("“..” is not allowed in a path.")
    if value.startswith("~"):
        return _("“~” is not allowed: give the whole path.")
    if absolute and not value.startswith("/"):
        return _("Give an absolute path (starting with /).")
    if relative and value.startswith("/"):
        return _("Give a path relative to the run directory.")
    return None


def name_problem(value: str) -> str | None:
    """What is wrong with a name that becomes a file name (no directories in it)."""
    problem = text_problem(value, max_length=200)
    if problem is not None:
        return problem
    if not value or "/" in value or value in (".", "..") or value.startswith("~"):
        return _("A plain name: no “/”, no “..”.")
    return None


# --- YAML ---------------------------------------------------------------------------------------------


class YAMLRefused(ValueError):
    """YAML a member sent that the portal does not read; the message is short and safe to show."""


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader without anchors or aliases, and no deeper than MAX_YAML_DEPTH."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        # check_event peeks at the next event (current_event); a node's anchor (&a) or an alias (*a).
        if self.check_event(yaml.AliasEvent) or getattr(self.current_event, "anchor", None) is not None:
            raise YAMLRefused(_("YAML anchors and aliases are not allowed."))
        self.depth += 1
        if self.depth > MAX_YAML_DEPTH:
            raise YAMLRefused(_("YAML nested deeper than %(max)d levels.") % {"max": MAX_YAML_DEPTH})
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_yaml(text: str) -> Any:
    """A member's YAML document, read with the safe loader's types; YAMLRefused with a short message
    for anything else (anchors, aliases, more than 16 KiB, deeper than 20, not YAML at all)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise YAMLRefused(_("The YAML is longer than %(kib)d KiB.") % {"kib": MAX_YAML_BYTES // 1024})
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except YAMLRefused:
        raise
    except (yaml.YAMLError, ValueError, OverflowError, TypeError) as error:
        # ValueError: e.g. an integer of more digits than Python converts, a date that does not exist.
        raise YAMLRefused(_("Not valid YAML: %(error)s") % {"error": short(str(error))}) from None
    finally:
        loader.dispose()


# --- run.yaml ---------------------------------------------------------------------------------------------

# The path-valued keys of run.yaml (training/config.py): where each may point. "absolute": a file the
# member names on the cluster; "relative": inside the job's run directory; "either": one or the other (a
# model may also be a hub name, which reads as a relative path).
PATH_KEYS: dict[str, str] = {
    "model.name_or_path": "either",
    "tokenizer.name_or_path": "either",
    "tokenizer.chat_template": "either",  # or the template itself (it holds a "{")
    "data.train_files": "absolute",
    "data.eval_files": "absolute",
    "output.dir": "relative",
    "checkpoint.resume": "either",  # or auto / never
    "wandb.dir": "relative",
    "evaluate.questions": "absolute",
    "evaluate.reference_answers": "either",
    "evaluate.judge.prompts_file": "either",
    "evaluate.judge.api_key_file": "either",  # the portal pins it to the judge's staged key
}
NAME_KEYS = frozenset({"evaluate.model_id"})  # becomes a file name: model_answer/<model_id>.jsonl
MULTILINE_KEYS = frozenset({"tokenizer.chat_template", "evaluate.system_prompt"})
NOT_PATHS = {"checkpoint.resume": ("auto", "never")}
MAX_KEY = 100


def _scalars(value: Any, key: str) -> Any:
    """(dotted key with indices, the key without them, value) of every scalar, and of every mapping key
    as (parent key, parent key, the key itself: a str, or what YAML made of it)."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield key, re.sub(r"\[\d+\]", "", key), ("key", name)
            if isinstance(name, str) and text_problem(name, max_length=MAX_KEY) is None:
                yield from _scalars(item, f"{key}.{name}" if key else name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _scalars(item, f"{key}[{index}]")
    else:
        yield key, re.sub(r"\[\d+\]", "", key), ("value", value)


def _value_problem(base: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    multiline = base in MULTILINE_KEYS
    problem = text_problem(value, max_length=MAX_YAML_BYTES if multiline else MAX_LINE, multiline=multiline)
    if problem is not None:
        return problem
    if base in NAME_KEYS:
        return name_problem(value)
    where = PATH_KEYS.get(base)
    if where is None or value in NOT_PATHS.get(base, ()):
        return None
    if base == "tokenizer.chat_template" and "{" in value:
        return None  # the template itself, not a file
    return path_problem(value, absolute=where == "absolute", relative=where == "relative")


def config_problems(config: dict[str, Any], *, allow_trust_remote_code: bool) -> list[tuple[str, str]]:
    """(run.yaml key, message) for each value of a run.yaml that may not reach the cluster: text that
    breaks the text rules, paths out of bounds, file names with directories in them, and
    model.trust_remote_code unless the cluster allows it."""
    found: list[tuple[str, str]] = []
    for key, base, (what, value) in _scalars(config, ""):
        if what == "key":
            if not isinstance(value, str):
                continue  # training.config names it: unknown key
            problem = text_problem(value, max_length=MAX_KEY)
            if problem is not None:
                found.append((key or "(top level)", _("a key: %(problem)s") % {"problem": problem}))
            continue
        problem = _value_problem(base, value)
        if problem is not None:
            found.append((key, problem))
    model = config.get("model")
    if isinstance(model, dict) and model.get("trust_remote_code") and not allow_trust_remote_code:
        found.append(
            (
                "model.trust_remote_code",
                _("Running a model's own code is not allowed on this cluster (an admin may allow it)."),
            )
        )
    return found
