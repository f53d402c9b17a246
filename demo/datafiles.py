"""The demo's data files (demo/data/*.yaml), read with PyYAML's safe loader: plain data, no objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DATA_DIR = Path(__file__).resolve().parent / "data"


def read(name: str) -> Any:
    """The parsed contents of demo/data/<name>; each caller turns them into its typed specs."""
    return yaml.safe_load((DATA_DIR / name).read_text(encoding="utf-8"))
