"""Links from Dagster's metadata to transcripts in Inspect's log viewer (`inspect view`).

Browsers refuse `file://` links from a web page, so a log link opens the viewer instead.
`evalctl ui` serves the viewer over the artifact store's `eval-logs/` folder; at scale it
runs elsewhere over the bucket's `eval-logs/` prefix. Either way a log is named by its path
under `eval-logs/`, so one link format serves both: the viewer's base URL
(`EVAL_LOG_VIEWER_URL`) and the viewer's own hash route for a log or a sample.
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlsplit

LOG_VIEWER_URL_ENV = "EVAL_LOG_VIEWER_URL"
DEFAULT_LOG_VIEWER_PORT = 7575
EVAL_LOGS = "eval-logs"


def log_viewer_url() -> str:
    """The viewer's base URL: $EVAL_LOG_VIEWER_URL, or where `evalctl ui` serves it."""
    url = os.environ.get(LOG_VIEWER_URL_ENV) or f"http://127.0.0.1:{DEFAULT_LOG_VIEWER_PORT}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(
            f"{LOG_VIEWER_URL_ENV}={url!r} is not the http(s) base URL of Inspect's log viewer "
            f"(e.g. http://127.0.0.1:{DEFAULT_LOG_VIEWER_PORT})"
        )
    return url.rstrip("/")


def transcript_url(log_uri: str, sample_id: str | int | None = None, epoch: int = 1) -> str:
    """The viewer's page for a stored `.eval` log, or for one sample x epoch of it."""
    head, sep, rest = log_uri.rpartition(f"/{EVAL_LOGS}/model=")
    if not head or not sep:
        raise ValueError(f"{log_uri!r} is not a log stored under an artifact store's {EVAL_LOGS}/")
    route = "/logs/" + "/".join(quote(part, safe="") for part in f"model={rest}".split("/"))
    if sample_id is not None:
        route += f"/samples/sample/{quote(str(sample_id), safe='')}/{epoch}/"
    return f"{log_viewer_url()}/#{route}"
