"""Layer 1, the catalog: typed specs of models, suites, safety policies and programmes, and
the catalog that loads them from the shipped YAML beside this file and users' folders.

May import: `eval_pipelines.core` only (and pydantic, dagster's config types).
"""

from eval_pipelines.catalog._catalog import (
    MODEL_PATH_ENV,
    PROGRAMME_PATH_ENV,
    SHIPPED_DIR,
    SUITE_PATH_ENV,
    Catalog,
)

__all__ = ["MODEL_PATH_ENV", "PROGRAMME_PATH_ENV", "SHIPPED_DIR", "SUITE_PATH_ENV", "Catalog"]
