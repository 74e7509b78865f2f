"""The operator's ``/metrics`` endpoint: who may read it, how the answers are remembered, and
its TLS. The reviews here are a stand-in for the Kubernetes API (tests/e2e/test_metrics_auth.py
asks a real API server); the server is the real one, over HTTPS on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bulkterm import metrics
from bulkterm.k8s import metrics_server, metrics_tls
from bulkterm.k8s.metrics_server import (
    Gate,
    MetricsServer,
    Review,
    ReviewCache,
    ReviewFailed,
    bearer_token,
    cache_key,
    status_of,
)
from bulkterm.k8s.metrics_tls import CertificateProblem, load_certificate, server_context
from tests.kube import free_port
from tests.simulator.certs import Pki, make_test_pki

TOKEN = "eyJhbGciOiJSUzI1NiJ9.reader-token.signature"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeApiServer:
    """Reviews as the API server would give them: ``reader`` may get /metrics, ``stranger`` is
    authenticated without the grant, any other token is unknown. ``down`` makes it fail."""

    def __init__(self) -> None:
        self.reviews: list[str] = []
        self.down = False

    async def review(self, token: str) -> Review:
        self.reviews.append(token)
        if self.down:
            raise ReviewFailed("API server unreachable (ConnectionRefusedError)")
        if token == TOKEN:
            return Review(authenticated=True, allowed=True, user="system:serviceaccount:m:prom")
        if token == "stranger":
            return Review(authenticated=True, allowed=False, user="system:serviceaccount:m:other")
        return Review(authenticated=False)


# --- the pure parts --------------------------------------------------------------------------


def test_the_cache_key_is_the_tokens_sha256_and_holds_none_of_it() -> None:
    key = cache_key(TOKEN)
    assert key == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert "reader-token" not in key and cache_key(TOKEN + "x") != key


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {TOKEN}", TOKEN),
        (f"bearer {TOKEN}", TOKEN),
        (f"  Bearer   {TOKEN} ", TOKEN),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        (f"Basic {TOKEN}", None),
        ("Bearer two words", None),
    ],
)
def test_only_a_bearer_authorization_header_gives_a_token(
    header: str | None, token: str | None
) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    ("review", "status"),
    [
        (Review(authenticated=False), 401),
        (Review(authenticated=True, allowed=False, user="u"), 403),
        (Review(authenticated=True, allowed=True, user="u"), 200),
    ],
)
def test_a_review_result_is_an_http_status(review: Review, status: int) -> None:
    assert status_of(review) == status


def test_an_allowed_answer_is_remembered_for_a_minute() -> None:
    clock = Clock()
    cache = ReviewCache(clock)
    cache.remember("k", 200)
    clock.now += 59
    assert cache.fresh("k") == 200
    clock.now += 2
    assert cache.fresh("k") is None


@pytest.mark.parametrize("status", [401, 403])
def test_a_refusal_is_remembered_for_ten_seconds(status: int) -> None:
    clock = Clock()
    cache = ReviewCache(clock)
    cache.remember("k", status)
    clock.now += 9
    assert cache.fresh("k") == status
    clock.now += 2
    assert cache.fresh("k") is None


def test_an_answer_allowed_within_the_outage_grace_stands_while_the_api_server_is_away() -> None:
    clock = Clock()
    cache = ReviewCache(clock)
    cache.remember("allowed", 200)
    cache.remember("refused", 403)
    clock.now += 599
    assert cache.during_outage("allowed") == 200
    assert cache.during_outage("refused") is None
    assert cache.during_outage("unknown") is None
    clock.now += 2
    assert cache.during_outage("allowed") is None


def test_the_cache_forgets_the_least_recently_answered_tokens_beyond_its_size() -> None:
    cache = ReviewCache(Clock(), size=2)
    for key in ("a", "b", "c"):
        cache.remember(key, 200)
    assert cache.last("a") is None and cache.last("b") == 200 and cache.last("c") == 200


# --- the gate --------------------------------------------------------------------------------


async def test_no_token_is_401_without_asking_the_api_server() -> None:
    api = FakeApiServer()
    assert await Gate(api).status(None) == 401
    assert api.reviews == []


async def test_a_second_scrape_within_the_minute_costs_no_review() -> None:
    api, clock = FakeApiServer(), Clock()
    gate = Gate(api, ReviewCache(clock))
    assert await gate.status(f"Bearer {TOKEN}") == 200
    clock.now += 15
    assert await gate.status(f"Bearer {TOKEN}") == 200
    assert len(api.reviews) == 1
    clock.now += 50
    assert await gate.status(f"Bearer {TOKEN}") == 200
    assert len(api.reviews) == 2


async def test_a_token_the_api_server_cannot_review_is_503() -> None:
    api = FakeApiServer()
    api.down = True
    assert await Gate(api).status(f"Bearer {TOKEN}") == 503


async def test_a_reader_keeps_scraping_through_an_api_server_outage() -> None:
    api, clock = FakeApiServer(), Clock()
    gate = Gate(api, ReviewCache(clock))
    assert await gate.status(f"Bearer {TOKEN}") == 200
    api.down = True
    clock.now += 300
    assert await gate.status(f"Bearer {TOKEN}") == 200
    assert await gate.status("Bearer stranger") == 503


async def test_refusals_are_logged_once_per_token_and_never_with_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, clock = FakeApiServer(), Clock()
    gate = Gate(api, ReviewCache(clock))
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            assert await gate.status("Bearer stranger") == 403
            assert await gate.status("Bearer not-a-real-token") == 401
            assert await gate.status(f"Bearer {TOKEN}") == 200
            clock.now += 11
        api.down = True
        clock.now += 1000
        assert await gate.status(f"Bearer {TOKEN}") == 503
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2, refusals
    assert "user system:serviceaccount:m:other may not get /metrics" in refusals[0]
    for secret in ("stranger", "not-a-real-token", TOKEN, "reader-token"):
        assert secret not in caplog.text


# --- the server ------------------------------------------------------------------------------


@pytest.fixture
def api() -> FakeApiServer:
    return FakeApiServer()


@pytest.fixture
def started() -> Iterator[list[MetricsServer]]:
    servers: list[MetricsServer] = []
    yield servers
    for server in servers:
        server.stop()


def serve(started: list[MetricsServer], **options: object) -> MetricsServer:
    server = metrics_server.serve(
        metrics.REGISTRY,
        address="127.0.0.1",
        port=free_port(),
        **options,  # type: ignore[arg-type]
    )
    started.append(server)
    return server


def get(
    server: MetricsServer,
    token: str | None = None,
    *,
    verify: ssl.SSLContext | bool = False,
    accept: str | None = None,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if accept:
        headers["Accept"] = accept
    return httpx.get(server.url, headers=headers, verify=verify, timeout=10)


def test_the_endpoint_is_https_by_default(started: list[MetricsServer], api: FakeApiServer) -> None:
    server = serve(started, reviewer=api)
    assert server.url.startswith("https://127.0.0.1:")
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url.replace("https://", "http://"), timeout=5)


def test_a_scrape_without_a_token_is_401_with_a_bearer_challenge(
    started: list[MetricsServer], api: FakeApiServer
) -> None:
    response = get(serve(started, reviewer=api))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "bulkterm_" not in response.text


def test_a_scrape_with_an_unknown_token_is_401(
    started: list[MetricsServer], api: FakeApiServer
) -> None:
    assert get(serve(started, reviewer=api), "forged").status_code == 401


def test_a_scrape_by_a_user_without_the_grant_is_403(
    started: list[MetricsServer], api: FakeApiServer
) -> None:
    response = get(serve(started, reviewer=api), "stranger")
    assert response.status_code == 403 and "bulkterm_" not in response.text


def test_a_scrape_by_a_reader_gets_the_page(
    started: list[MetricsServer], api: FakeApiServer
) -> None:
    response = get(serve(started, reviewer=api), TOKEN)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert "bulkterm_aiapi_calls_total" in response.text


def test_a_reader_asking_for_openmetrics_gets_openmetrics(
    started: list[MetricsServer], api: FakeApiServer
) -> None:
    openmetrics = "application/openmetrics-text; version=1.0.0"
    response = get(serve(started, reviewer=api), TOKEN, accept=openmetrics)
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_the_plain_http_opt_out_serves_anyone(started: list[MetricsServer]) -> None:
    server = serve(started, secure=False)
    assert server.url.startswith("http://127.0.0.1:")
    response = httpx.get(server.url, timeout=5)
    assert response.status_code == 200 and "bulkterm_aiapi_calls_total" in response.text


def test_a_port_in_use_is_an_os_error_before_anything_starts(api: FakeApiServer) -> None:
    with metrics_server.listen("127.0.0.1", free_port()) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="Address already in use"):
            metrics_server.serve(metrics.REGISTRY, address="127.0.0.1", port=port, reviewer=api)


# --- TLS -------------------------------------------------------------------------------------


def served_certificate(server: MetricsServer) -> str:
    return ssl.get_server_certificate(server.address)


def trusting(pem: str | Path) -> ssl.SSLContext:
    if isinstance(pem, Path):
        return ssl.create_default_context(cafile=str(pem))
    return ssl.create_default_context(cadata=pem)


def test_the_self_signed_certificate_verifies_for_127_0_0_1_against_itself(
    started: list[MetricsServer], api: FakeApiServer
) -> None:
    server = serve(started, reviewer=api)
    pem = served_certificate(server)
    response = get(server, TOKEN, verify=trusting(pem))
    assert response.status_code == 200


def test_each_start_makes_a_new_self_signed_certificate(
    started: list[MetricsServer], api: FakeApiServer
) -> None:
    first, second = serve(started, reviewer=api), serve(started, reviewer=api)
    assert served_certificate(first) != served_certificate(second)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_test_pki(tmp_path_factory.mktemp("other-pki"))


def cert_dir(folder: Path, pki: Pki) -> Path:
    folder.mkdir(exist_ok=True)
    shutil.copyfile(pki.cert, folder / "tls.crt.new")
    shutil.copyfile(pki.key, folder / "tls.key.new")
    # As the kubelet updates a mounted Secret: the new files appear whole.
    (folder / "tls.key.new").replace(folder / "tls.key")
    (folder / "tls.crt.new").replace(folder / "tls.crt")
    return folder


def test_a_certificate_folder_is_served_and_verifies_against_its_ca(
    started: list[MetricsServer], api: FakeApiServer, pki: Pki, tmp_path: Path
) -> None:
    server = serve(started, reviewer=api, cert_dir=cert_dir(tmp_path / "tls", pki))
    assert get(server, TOKEN, verify=trusting(pki.ca)).status_code == 200


def test_a_renewed_certificate_is_served_without_a_restart(
    started: list[MetricsServer],
    api: FakeApiServer,
    pki: Pki,
    other_pki: Pki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics_server, "CERT_RELOAD_SECONDS", 0.1)
    folder = cert_dir(tmp_path / "tls", pki)
    server = serve(started, reviewer=api, cert_dir=folder)
    cert_dir(folder, other_pki)
    deadline = time.monotonic() + 10
    while served_certificate(server) != other_pki.cert.read_text():
        assert time.monotonic() < deadline, "the renewed certificate was not served"
        time.sleep(0.1)
    assert get(server, TOKEN, verify=trusting(other_pki.ca)).status_code == 200


def test_a_broken_renewal_keeps_the_certificate_being_served(
    pki: Pki, other_pki: Pki, tmp_path: Path
) -> None:
    folder = cert_dir(tmp_path / "tls", pki)
    files = metrics_tls.CertificateFiles(folder)
    files.load(server_context())
    shutil.copyfile(other_pki.cert, folder / "tls.crt")  # the key no longer matches
    assert files.reload_if_changed(server_context()) is False


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        ("no-folder", "no such folder"),
        ("no-key", "tls.key: no such file"),
        ("mismatch", "not a PEM certificate and its unencrypted private key"),
        ("not-pem", "not a PEM certificate and its unencrypted private key"),
    ],
)
def test_an_unusable_certificate_folder_is_one_line_naming_the_file(
    pki: Pki, other_pki: Pki, tmp_path: Path, breakage: str, problem: str
) -> None:
    folder = tmp_path / "tls"
    if breakage != "no-folder":
        cert_dir(folder, pki)
    if breakage == "no-key":
        (folder / "tls.key").unlink()
    elif breakage == "mismatch":
        shutil.copyfile(other_pki.key, folder / "tls.key")
    elif breakage == "not-pem":
        (folder / "tls.crt").write_text("not a certificate\n")
    with pytest.raises(CertificateProblem) as raised:
        load_certificate(server_context(), folder)
    message = str(raised.value)
    assert problem in message and str(folder) in message and "\n" not in message
