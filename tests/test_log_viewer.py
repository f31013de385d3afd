"""Log and sample links in asset metadata open Inspect's log viewer, not `file://` URLs."""

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from eval_pipelines.core.log_viewer import LOG_VIEWER_URL_ENV, transcript_url
from tests.test_evaluation_job import latest_metadata, run_evaluation

KEY = "model=reference/suite=smoke/task=theory-of-mind/run-1/0123abcd.eval"


def test_links_name_the_log_under_the_viewers_folder_for_local_and_s3(monkeypatch):
    monkeypatch.delenv(LOG_VIEWER_URL_ENV, raising=False)
    local = transcript_url(f"file:///home/me/.dagster_home/artifacts/eval-logs/{KEY}")
    assert local == (
        "http://127.0.0.1:7575/#/logs/model%3Dreference/suite%3Dsmoke/task%3Dtheory-of-mind"
        "/run-1/0123abcd.eval"
    )
    monkeypatch.setenv(LOG_VIEWER_URL_ENV, "https://logs.example.org/view/")
    s3 = transcript_url(f"s3://bucket/evals/eval-logs/{KEY}", sample_id="q 7/a", epoch=2)
    assert s3.startswith("https://logs.example.org/view/#/logs/model%3Dreference/")
    assert s3.endswith("/0123abcd.eval/samples/sample/q%207%2Fa/2/")


@pytest.mark.parametrize("url", ["127.0.0.1:7575", "ftp://host", "http://", "http://h/#/logs"])
def test_a_bad_viewer_url_is_refused_by_name(monkeypatch, url):
    monkeypatch.setenv(LOG_VIEWER_URL_ENV, url)
    with pytest.raises(ValueError, match=LOG_VIEWER_URL_ENV):
        transcript_url(f"file:///a/eval-logs/{KEY}")


def test_a_uri_outside_eval_logs_is_refused():
    with pytest.raises(ValueError, match="not a log stored under"):
        transcript_url("file:///a/results/model=x/scores.json")


def _log_path(url: str) -> str:
    assert url.startswith("http://127.0.0.1:7575/#/logs/"), url
    return unquote(re.match(r"http://127\.0\.0\.1:7575/#/logs/(.+?\.eval)", url).group(1))


def test_asset_metadata_links_every_log_and_sample_row_to_the_viewer(
    defs, instance, dagster_home: Path, monkeypatch
):
    monkeypatch.delenv(LOG_VIEWER_URL_ENV, raising=False)
    assert run_evaluation(defs, instance, "reference", "smoke").success
    logs = latest_metadata(instance, "eval_logs", "reference|smoke")
    links = {key: value for key, value in logs.items() if key.startswith("log/")}
    assert len(links) == 3
    for url in links.values():
        # The viewer serves artifacts/eval-logs: the link's path is a stored log there.
        assert (dagster_home / "artifacts" / "eval-logs" / _log_path(url)).is_file()
    preview = latest_metadata(instance, "sample_results", "reference|smoke")["preview"]
    rows = [line for line in preview.splitlines()[2:]]
    assert len(rows) == 12  # 3 tasks x 4 samples
    for row in rows:
        task, sample_id, epoch = (cell.strip() for cell in row.split("|")[1:4])
        url = re.search(r"\[open\]\((.+?)\)", row).group(1)
        assert url.startswith(links[f"log/{task}"] + f"/samples/sample/{sample_id}/{epoch}/")
