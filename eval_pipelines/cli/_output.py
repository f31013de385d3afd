"""What several evalctl commands print alike: plain-text tables, numbers, the catalog's
warnings and the leaderboard's sections."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eval_pipelines.catalog import Catalog


def table(rows: list[list[str]], header: list[str]) -> str:
    """`rows` in left-aligned columns under `header` and a line of dashes."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
        + [fmt.format(*map(str, r)) for r in rows]
    )


def format_number(value: float | None) -> str:
    """Three decimals, or "-" for a missing value."""
    return "-" if value is None else f"{value:.3f}"


def print_catalog_errors(catalog: Catalog) -> None:
    """A warning on stderr for each catalog file that failed to load."""
    for error in catalog.problems():
        print(f"warning: skipped {error}", file=sys.stderr)


def print_leaderboard(rows: list[dict]) -> None:
    """The leaderboard asset's rows as its titled tables."""
    from assets.leaderboard import display_sections

    for title, header, cells in display_sections(rows):
        print(f"\n{title}\n{table(cells, header)}")
