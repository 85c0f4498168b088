"""Printing for the admin CLI: rich tables for people, ``--json`` for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def emit(rows: Sequence[dict[str, Any]], as_json: bool, title: str) -> None:
    """Print rows as a table, or as a JSON array on stdout."""
    if as_json:
        print(json.dumps([{k: _plain(v) for k, v in row.items()} for row in rows], indent=2))
        return
    if not rows:
        console.print(f"[dim]no {title.lower()}[/dim]")
        return
    table = Table(title=title)
    for column in rows[0]:
        table.add_column(column.replace("_", " "))
    for row in rows:
        table.add_row(*(_cell(value) for value in row.values()))
    console.print(table)


def emit_one(row: dict[str, Any], as_json: bool) -> None:
    """Print one object as JSON or as ``key: value`` lines."""
    if as_json:
        print(json.dumps({k: _plain(v) for k, v in row.items()}, indent=2))
        return
    for key, value in row.items():
        console.print(f"[bold]{key.replace('_', ' ')}[/bold]: {_cell(value)}")
