"""OAuth2 client credentials as XSUAA answers them, and bearer tokens on every AI API call."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from bulkterm.simulator import SimClock, Simulator

FORM = {
    "grant_type": "client_credentials",
    "client_id": "sim-client",
    "client_secret": "sim-secret",
}
RG = {"AI-Resource-Group": "default"}


async def test_token_for_credentials_in_the_form_body(
    sim: Simulator, raw: httpx.AsyncClient
) -> None:
    response = await raw.post("/oauth/token", data=FORM)
    body = response.json()
    assert response.status_code == 200
    assert (body["token_type"], body["expires_in"]) == ("bearer", 43199)  # as XSUAA issues
    assert body["access_token"]


async def test_token_for_credentials_as_http_basic(raw: httpx.AsyncClient) -> None:
    response = await raw.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=("sim-client", "sim-secret")
    )
    assert response.status_code == 200


@pytest.mark.simulator(token_expires_in=1800)
async def test_token_lifetime_is_configurable(raw: httpx.AsyncClient) -> None:
    response = await raw.post("/oauth/token", data=FORM)
    assert response.json()["expires_in"] == 1800


@pytest.mark.parametrize(
    "form",
    [
        {**FORM, "client_secret": "wrong"},
        {**FORM, "client_id": "someone-else"},
        {"grant_type": "client_credentials"},
    ],
    ids=["bad-secret", "bad-id", "no-credentials"],
)
async def test_bad_credentials_are_invalid_client(
    sim: Simulator, raw: httpx.AsyncClient, form: dict[str, str]
) -> None:
    response = await raw.post("/oauth/token", data=form)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert [v.code for v in sim.violations] == ["InvalidClient"]


async def test_other_grant_types_are_refused(raw: httpx.AsyncClient) -> None:
    response = await raw.post("/oauth/token", data={**FORM, "grant_type": "password"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_token_is_jwt_shaped_with_its_expiry(raw: httpx.AsyncClient) -> None:
    token = (await raw.post("/oauth/token", data=FORM)).json()["access_token"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["exp"] - claims["iat"] == 43199
    assert claims["client_id"] == "sim-client"


async def test_ai_api_call_without_a_token_is_401_and_a_violation(
    sim: Simulator, raw: httpx.AsyncClient
) -> None:
    response = await raw.get("/v2/lm/deployments", headers=RG)
    assert response.status_code == 401
    assert [v.code for v in sim.violations] == ["MissingToken"]


async def test_meta_needs_a_token_too(raw: httpx.AsyncClient) -> None:
    response = await raw.get("/v2/lm/meta")
    assert response.status_code == 401


@pytest.mark.parametrize(
    "authorization", ["Bearer not-a-token", "Basic c2ltLWNsaWVudDpzaW0tc2VjcmV0", "Bearer"]
)
async def test_unknown_tokens_are_refused(
    sim: Simulator, raw: httpx.AsyncClient, authorization: str
) -> None:
    response = await raw.get("/v2/lm/deployments", headers={**RG, "Authorization": authorization})
    assert response.status_code == 401
    assert sim.violations == []


async def test_expired_token_is_refused_and_a_new_one_works(
    sim: Simulator, clock: SimClock, raw: httpx.AsyncClient
) -> None:
    old = (await raw.post("/oauth/token", data=FORM)).json()["access_token"]
    clock.advance(sim.config.token_expires_in)
    expired = await raw.get("/v2/lm/deployments", headers={**RG, "Authorization": f"Bearer {old}"})
    new = (await raw.post("/oauth/token", data=FORM)).json()["access_token"]
    fresh = await raw.get("/v2/lm/deployments", headers={**RG, "Authorization": f"Bearer {new}"})
    assert (expired.status_code, fresh.status_code) == (401, 200)
    assert sim.violations == []


async def test_revoked_tokens_are_refused(sim: Simulator, api: httpx.AsyncClient) -> None:
    before = await api.get("/v2/lm/deployments")
    sim.revoke_tokens()
    after = await api.get("/v2/lm/deployments")
    assert (before.status_code, after.status_code) == (200, 401)


async def test_control_api_on_loopback_needs_no_token(raw: httpx.AsyncClient) -> None:
    response = await raw.get("/_sim/health")
    assert response.json() == {"status": "ok"}
