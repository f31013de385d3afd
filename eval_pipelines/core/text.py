"""Text the platform writes: Markdown tables, console tables, canonical JSON, one-line errors.

One of each, so every table and error reads the same wherever it is shown.
"""

import json
import math

from pydantic import ValidationError


def canonical_json(value: object) -> bytes:
    """The bytes whose hash names a snapshot: key order and spacing never vary."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def _cell(value: object) -> str:
    """A table cell: floats to 3 places, missing values empty, and on one line with its pipes
    escaped, so no value can end its cell, its row or the table."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    if value is None:
        return ""
    return " ".join(str(value).split()).replace("|", "\\|")


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """The Markdown table of `rows`' `columns`, in order (a missing key is an empty cell)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def validation_problems(exc: ValidationError) -> list[str]:
    """Each problem of a pydantic error as `field.path: message`."""
    return [f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in exc.errors()]


def validation_errors(exc: ValidationError) -> str:
    """A pydantic error on one line."""
    return "; ".join(validation_problems(exc))
