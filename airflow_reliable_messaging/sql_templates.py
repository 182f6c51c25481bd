"""The Snowflake statements in ``sql/``, rendered with validated identifiers.

Values always travel as bind parameters; only identifiers (validated by
``domain.identifiers``) and quoted literals built here are placed into the text.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

_SAFE_STAGE_PATH = re.compile(r"^[A-Za-z0-9!_.*()/=-]+\Z")


def _sql_root() -> Path:
    packaged = resources.files("airflow_reliable_messaging") / "sql"
    if packaged.is_dir():  # installed wheel: sql/ ships inside the package
        return Path(str(packaged))
    return Path(__file__).resolve().parents[1] / "sql"  # source checkout / editable install


@cache
def read(name: str) -> str:
    """The text of ``sql/<name>`` (e.g. ``load/merge_records.sql``)."""
    path = (_sql_root() / name).resolve()
    if _sql_root().resolve() not in path.parents:
        raise ValueError(f"{name!r} is outside sql/")
    return path.read_text()


def render(name: str, **identifiers: str) -> str:
    return read(name).format(**identifiers)


def quote_literal(value: str) -> str:
    """A single-quoted SQL string literal (for DDL positions that take no bind parameters)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def stage_file_list(paths: list[str]) -> str:
    """``'a/b.jsonl', 'c/d.jsonl'`` for ``FILES = (...)``: stage-relative paths, strictly checked."""
    for p in paths:
        if not _SAFE_STAGE_PATH.match(p) or ".." in p or p.startswith("/"):
            raise ValueError(f"unsafe stage file path {p!r}")
    return ", ".join(quote_literal(p) for p in paths)
