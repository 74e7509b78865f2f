"""TLS to the AI API is always verified: against a CA bundle when one is given, else the public CAs.

Over real TLS on 127.0.0.1: the simulator serves HTTPS with a certificate from a throwaway CA
(``tests/simulator/certs.py``). Without that CA the client fails at once with a
:class:`TlsVerificationError` naming the server (not a connection error retried until the
deadline); with it as ``ca_bundle`` the same calls work. A bundle that cannot be used is a
:class:`CaBundleError` naming the file, before any connection.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.errors import ConfigurationError
from bulkterm.aiapi.models import Kind, Status
from bulkterm.aiapi.settings import CaBundleError, ClientSettings, load_ca_bundle
from bulkterm.aiapi.transport import TlsVerificationError, tls_verify
from bulkterm.k8s.clients import ClientPool
from bulkterm.k8s.config import OperatorConfig
from bulkterm.simulator import Simulator
from tests.simulator.certs import Pki, make_test_pki

MakeSimulator = Callable[..., Awaitable[Simulator]]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def https_sim(simulator_factory: MakeSimulator, pki: Pki) -> Simulator:
    sim = await simulator_factory(tls_cert=pki.cert, tls_key=pki.key)
    sim.add_item(Kind.DEPLOYMENT, "dep-tls-0001", Status.RUNNING)
    assert sim.url.startswith("https://127.0.0.1:")
    return sim


def client(sim: Simulator, **settings: Any) -> AiApiClient:
    return AiApiClient.from_service_key(sim.service_key(), "default", ClientSettings(**settings))


# -- over real TLS ---------------------------------------------------------------------------


async def test_with_the_ca_bundle_the_client_works_over_https(
    https_sim: Simulator, pki: Pki
) -> None:
    api = client(https_sim, ca_bundle=pki.ca)
    try:
        assert await api.count(Kind.DEPLOYMENT) == 1
    finally:
        await api.aclose()


async def test_without_the_ca_the_client_fails_at_once_with_a_tls_verification_error(
    https_sim: Simulator,
) -> None:
    api = client(https_sim, max_attempts=5, backoff_initial_seconds=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(TlsVerificationError) as caught:
            await api.count(Kind.DEPLOYMENT)
    finally:
        await api.aclose()
    assert time.monotonic() - started < 2.0  # not retried with backoff
    error = caught.value
    assert isinstance(error, ConfigurationError) and error.reason == "TLSVerificationFailed"
    assert f"TLS: the certificate of {https_sim.url} did not verify" in error.message
    assert "--ca-bundle" in error.message
    assert sum(https_sim.counters.values()) == 0  # no request got through


async def test_a_bundle_of_another_ca_is_named_in_the_verification_error(
    https_sim: Simulator, pki: Pki
) -> None:
    api = client(https_sim, ca_bundle=pki.other_ca)
    try:
        with pytest.raises(TlsVerificationError, match=f"CA bundle {pki.other_ca}"):
            await api.count(Kind.DEPLOYMENT)
    finally:
        await api.aclose()


async def test_the_operator_setting_reaches_its_clients(https_sim: Simulator, pki: Pki) -> None:
    """``--ca-bundle`` / ``BULKTERM_CA_BUNDLE`` → ``OperatorConfig`` → every pooled client."""
    pool = ClientPool.for_config(OperatorConfig(ca_bundle=pki.ca))
    key = ServiceKey.from_dict(https_sim.service_key())
    async with pool.client(key, "default") as api:
        assert await api.count(Kind.DEPLOYMENT) == 1


async def test_the_operator_without_the_bundle_gets_the_verification_error(
    https_sim: Simulator,
) -> None:
    pool = ClientPool.for_config(OperatorConfig())
    key = ServiceKey.from_dict(https_sim.service_key())
    async with pool.client(key, "default") as api:
        with pytest.raises(TlsVerificationError):
            await api.count(Kind.DEPLOYMENT)


# -- the bundle itself -------------------------------------------------------------------------


def test_a_bundle_context_verifies_certificates_and_host_names(pki: Pki) -> None:
    context = load_ca_bundle(pki.ca)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


def test_the_bundle_replaces_the_public_cas(pki: Pki) -> None:
    assert [cert["subject"] for cert in load_ca_bundle(pki.ca).get_ca_certs()] == [
        ((("commonName", "bulkterm test ca"),),)
    ]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such file"),
        ("", "no PEM certificate in it"),
        ("just text\n", "no PEM certificate in it"),
        (
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
            "not a valid PEM certificate bundle",
        ),
        (b"\x30\x82\x01\x0a-----BEGIN CERTIFICATE-----", "not a PEM file"),
    ],
    ids=["missing", "empty", "text", "bad-pem", "binary"],
)
def test_an_unusable_bundle_is_refused_naming_the_file(
    tmp_path: Path, content: str | bytes | None, problem: str
) -> None:
    path = tmp_path / "bundle.pem"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(CaBundleError) as caught:
        load_ca_bundle(path)
    assert str(caught.value).startswith(f"CA bundle {path}: ") and problem in str(caught.value)


def test_a_directory_is_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(CaBundleError, match="is a directory"):
        load_ca_bundle(tmp_path)


def test_a_bundle_that_cannot_be_read_is_refused_naming_the_file(tmp_path: Path) -> None:
    # (file modes do not stop root, who runs CI: a path through a file cannot be read by anyone)
    (tmp_path / "not-a-dir").write_text("")
    path = tmp_path / "not-a-dir" / "bundle.pem"
    with pytest.raises(CaBundleError, match=f"CA bundle {path}: cannot read it"):
        load_ca_bundle(path)


# -- never off ---------------------------------------------------------------------------------


def _key(sim_url: str = "https://ai.example") -> ServiceKey:
    return ServiceKey.from_dict(
        {
            "clientid": "c",
            "clientsecret": "s",
            "url": sim_url,
            "serviceurls": {"AI_API_URL": sim_url},
        }
    )


def test_verification_is_on_without_a_bundle() -> None:
    context = tls_verify(_key())
    assert isinstance(context, ssl.SSLContext) and context.verify_mode is ssl.CERT_REQUIRED
    assert tls_verify(_key()) is context  # made once, shared by every client


def test_verification_with_a_bundle_is_a_verifying_context(pki: Pki) -> None:
    context = tls_verify(_key(), pki.ca)
    assert isinstance(context, ssl.SSLContext) and context.verify_mode is ssl.CERT_REQUIRED


def test_no_setting_can_turn_verification_off() -> None:
    assert not any("verify" in name or "insecure" in name for name in ClientSettings.model_fields)
    assert not any("verify" in name or "insecure" in name for name in OperatorConfig.model_fields)
