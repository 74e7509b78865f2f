"""``bulkterm apply`` against a URL that is not the AI API, or not there at all: the run says
Stalled with the kind of problem and the host on stderr, instead of waiting silently."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import SimulatorThread
from tests.cli.test_apply import bulkterm, manifest
from tests.kube.controlplane import free_port


class _Portal(BaseHTTPRequestHandler):
    """A gateway's catch-all: 200 and an HTML page for every path."""

    def _answer(self) -> None:
        body = b"<html><body>Welcome to the portal</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PATCH = do_DELETE = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def portal() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Portal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _key(sim: SimulatorThread, api_url: str, path: Path) -> Path:
    key = sim.service_key()
    key["serviceurls"] = {"AI_API_URL": api_url}
    path.write_text(json.dumps(key))
    return path


def _closed_port() -> int:
    return free_port()  # nothing listens there


def test_a_url_that_answers_but_not_as_the_ai_api_stalls_and_exits_2_naming_it(
    simulator_thread: SimulatorThread, portal: str, tmp_path: Path
) -> None:
    key = _key(simulator_thread, portal, tmp_path / "key.json")
    text = manifest(("Deployment", "dep-run1", "STOPPED"))
    result = bulkterm(
        "apply", "-f", "-", "--service-key", str(key), "--stall-after", "1", stdin=text
    )
    assert result.returncode == 2, result.stderr
    assert "Stalled NotTheAiApi" in result.stderr
    assert portal.removeprefix("http://") in result.stderr
    assert "not the AI API" in result.stderr
    assert "Traceback" not in result.stderr
    assert simulator_thread.config.client_secret not in result.stdout + result.stderr


def test_an_unreachable_api_says_stalled_naming_the_host_and_ends_at_the_timeout(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    simulator_thread.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    port = _closed_port()
    key = _key(simulator_thread, f"http://127.0.0.1:{port}", tmp_path / "key.json")
    text = manifest(("Deployment", "dep-run1", "STOPPED"))
    result = bulkterm(
        "apply",
        "-f",
        "-",
        "--service-key",
        str(key),
        "--stall-after",
        "1",
        "--timeout",
        "6",
        stdin=text,
    )
    assert result.returncode == 1, result.stderr
    assert "Stalled AiApiUnreachable" in result.stderr
    assert f"127.0.0.1:{port}" in result.stderr
    assert "DeadlineExceeded" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
