"""Text the platform writes: Markdown tables, console tables, canonical JSON, one-line errors.

One of each, so every table and error reads the same wherever it is shown.
"""

import json

from pydantic import ValidationError


def canonical_json(value: object) -> bytes:
    """The bytes whose hash names a snapshot: key order and spacing never vary."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    def cell(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else ("" if value is None else str(value))

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def validation_errors(exc: ValidationError) -> str:
    """A pydantic error on one line, each problem as `field.path: message`."""
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
