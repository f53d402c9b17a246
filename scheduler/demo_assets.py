"""A tiny model and data sets staged on a cluster, so that a training job can run from the form at once.

`stage(conn, root)` builds a tiny Llama with its tokenizer (training/tiny.py: made on the spot, nothing
downloaded) and small pretraining, SFT, DPO and MT-Bench question files, and writes them under `root` on the
cluster over SFTP. The demo stages them on the dev cluster (`manage.py stage_demo_assets`); the tests
that run real training jobs there use the same files. Needs the `training` extra on the portal host.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scheduler import ssh

# One question per MT-Bench category, in FastChat's question.jsonl format.
QUESTIONS: list[dict[str, Any]] = [
    {
        "question_id": 1,
        "category": "writing",
        "turns": ["たぬきについて短い詩を書いてください。", "もっと短くしてください。"],
    },
    {
        "question_id": 2,
        "category": "roleplay",
        "turns": ["あなたは駅員です。道を尋ねられたら答えてください。"],
    },
    {
        "question_id": 3,
        "category": "reasoning",
        "turns": ["AはBより背が高く、BはCより背が高い。一番低いのは?"],
    },
    {"question_id": 4, "category": "math", "turns": ["2+3は?", "それを2倍すると?"]},
    {"question_id": 5, "category": "coding", "turns": ["Pythonで1から10までの合計を求めるコードを書いて。"]},
    {"question_id": 6, "category": "extraction", "turns": ["次の文から人名を抜き出して: 山田さんが来た。"]},
    {"question_id": 7, "category": "stem", "turns": ["水の沸点は何度ですか?"]},
    {"question_id": 8, "category": "humanities", "turns": ["俳句とは何ですか?"]},
]


@dataclass
class Assets:
    """Where the staged files are on the cluster."""

    root: str

    @property
    def model(self) -> str:
        return f"{self.root}/tiny-llama"

    @property
    def pretrain_data(self) -> str:
        return f"{self.root}/data/pretrain.jsonl"

    @property
    def sft_data(self) -> str:
        return f"{self.root}/data/sft.jsonl"

    @property
    def dpo_data(self) -> str:
        return f"{self.root}/data/dpo.jsonl"

    @property
    def questions(self) -> str:
        return f"{self.root}/mt_bench/question.jsonl"


def assets_root(work_dir: str) -> str:
    return f"{work_dir.rstrip('/')}/assets"


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def build(directory: Path) -> Path:
    """The model and data files in a local directory, laid out as on the cluster."""
    from training import tiny

    tiny.make_tiny_model(directory / "tiny-llama")
    (directory / "data").mkdir(parents=True, exist_ok=True)
    (directory / "mt_bench").mkdir(parents=True, exist_ok=True)
    (directory / "data" / "pretrain.jsonl").write_bytes(_jsonl(tiny.pretrain_rows()))
    (directory / "data" / "sft.jsonl").write_bytes(_jsonl(tiny.sft_rows()))
    (directory / "data" / "dpo.jsonl").write_bytes(_jsonl(tiny.dpo_rows()))
    (directory / "mt_bench" / "question.jsonl").write_bytes(_jsonl(QUESTIONS))
    return directory


def stage(conn: ssh.Connection, root: str) -> Assets:
    """Build the assets and write them under `root` on the cluster (files readable by the job's user)."""
    with tempfile.TemporaryDirectory(prefix="tanuki-assets-") as tmp:
        local = build(Path(tmp))
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            relative = path.relative_to(local).as_posix()
            conn.write_file(f"{root}/{relative}", path.read_bytes(), mode=0o644)
    return Assets(root)
