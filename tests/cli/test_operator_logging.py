"""``bulkterm operator``'s log: a timestamp on every line in every ``--log-format``, and no
urllib3 ``Retrying`` lines while the API server is away (the outage is ApiWeather's two lines;
``tests/e2e/test_outages.py`` shows it through a real control-plane outage)."""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import urllib3.exceptions
from kubernetes import client as k8s

from bulkterm.k8s import handlers
from bulkterm.k8s.config import OperatorConfig
from bulkterm.k8s.kubeapi import is_outage, load_client

#: How a text line starts: ``2026-11-28T20:47:00.123Z`` (``full`` puts it in brackets).
STAMP = re.compile(r"^\[?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\]? ")


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The root logger as it was: ``run_operator`` installs kopf's handler on it."""
    root = logging.getLogger()
    handlers_before, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers_before
    root.setLevel(level)


def _operator_log(
    log_format: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> list[str]:
    """What ``run_operator`` writes for a line from the operator and one from kopf (kopf
    itself does not run)."""

    def run(**_: Any) -> None:
        logging.getLogger("bulkterm.k8s.kubeapi").warning("Kubernetes API unreachable")
        logging.getLogger("kopf.objects").info("[ml-team/nightly] Handler succeeded.")

    monkeypatch.setattr(handlers.kopf, "run", run)
    monkeypatch.setattr(handlers.metrics, "serve", lambda *_: None)
    capsys.readouterr()
    handlers.run_operator(OperatorConfig(log_format=log_format))  # type: ignore[arg-type]
    return capsys.readouterr().err.splitlines()


@pytest.mark.usefixtures("root_logging")
@pytest.mark.parametrize("log_format", ["plain", "full"])
def test_each_text_line_starts_with_a_utc_timestamp(
    log_format: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _operator_log(log_format, monkeypatch, capsys)
    assert len(lines) == 2, lines
    assert all(STAMP.match(line) for line in lines), lines
    assert lines[0].endswith("Kubernetes API unreachable")


@pytest.mark.usefixtures("root_logging")
def test_each_json_line_has_a_timestamp(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _operator_log("json", monkeypatch, capsys)
    assert len(lines) == 2, lines
    for line in lines:
        stamp = json.loads(line)["timestamp"]
        assert datetime.fromisoformat(stamp).utcoffset() is not None, stamp


def test_the_plain_format_is_still_the_message_after_the_timestamp() -> None:
    formatter = handlers.UtcFormatter(handlers.TEXT_LOG_FORMATS["plain"])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "run stopped", None, None)
    record.created = datetime(2026, 12, 6, 21, 27, tzinfo=UTC).timestamp()
    record.msecs = 500.0
    assert formatter.format(record) == "2026-12-06T21:27:00.500Z run stopped"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_kubernetes_client_leaves_retrying_to_api_weather(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused connection is one failed attempt: no urllib3 retries (and no ``Retrying``
    warning each), and the error is still one ApiWeather counts as an outage."""
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": f"http://127.0.0.1:{_closed_port()}"}}
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    api = k8s.CoreV1Api(load_client())
    caplog.set_level(logging.DEBUG, logger="urllib3")
    with pytest.raises(urllib3.exceptions.MaxRetryError) as refused:
        api.list_namespace(_request_timeout=5)
    assert is_outage(refused.value)
    assert not [r for r in caplog.records if "Retrying" in r.getMessage()], caplog.text
