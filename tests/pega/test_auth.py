"""shared.auth: inbound Entra bearer tokens for our HTTP contract."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth import (
    BadSignatureError,
    BearerValidator,
    ClientNotAllowedError,
    ExpiredTokenError,
    KeysUnavailableError,
    MalformedTokenError,
    MissingRoleError,
    MissingTokenError,
    NotYetValidError,
    UnknownKeyError,
    WrongAudienceError,
    WrongIssuerError,
)
from shared.config import ApiAuthSettings
from tests.pega.entra_stub import API_AUDIENCE, TENANT, EntraStub


def validator(entra: EntraStub, **overrides: object) -> BearerValidator:
    values: dict[str, object] = {"tenant_id": TENANT, "audience": API_AUDIENCE,
                                 "openid_config_url": entra.openid_config_url, "leeway_seconds": 30}
    values.update(overrides)
    return BearerValidator.from_settings(ApiAuthSettings(**values))


async def test_good_token_gives_the_principal(entra: EntraStub) -> None:
    v = validator(entra)
    p = await v.validate("Bearer " + entra.mint())
    assert p.app_id == "pega-connect-rest" and p.tenant_id == TENANT and "Sync.ReadWrite" in p.roles
    await v.validate("bearer " + entra.mint())
    assert entra.jwks_requests == 1  # cached


@pytest.mark.parametrize(("header", "error"), [
    (None, MissingTokenError), ("", MissingTokenError), ("Basic abc", MissingTokenError),
    ("Bearer ", MissingTokenError), ("Bearer not-a-jwt", MalformedTokenError),
])
async def test_missing_or_malformed(entra: EntraStub, header: str | None, error: type[Exception]) -> None:
    with pytest.raises(error) as exc:
        await validator(entra).validate(header)
    assert exc.value.status == 401  # type: ignore[attr-defined]


async def test_wrong_audience(entra: EntraStub) -> None:
    with pytest.raises(WrongAudienceError):
        await validator(entra).validate("Bearer " + entra.mint(aud="https://graph.microsoft.com"))
    # an extra accepted audience (e.g. the app's client id) is fine
    v = validator(entra, extra_audiences="dddddddd-0000-4000-8000-0000000000aa")
    await v.validate("Bearer " + entra.mint(aud="dddddddd-0000-4000-8000-0000000000aa"))


async def test_wrong_issuer(entra: EntraStub) -> None:
    with pytest.raises(WrongIssuerError):
        await validator(entra).validate("Bearer " + entra.mint(iss="https://login.microsoftonline.com/other/v2.0"))
    v = validator(entra, issuer="https://sts.windows.net/x/")  # explicit issuer wins over metadata
    with pytest.raises(WrongIssuerError):
        await v.validate("Bearer " + entra.mint())


async def test_expiry_and_not_before_with_leeway(entra: EntraStub) -> None:
    now = int(time.time())
    v = validator(entra, leeway_seconds=30)
    await v.validate("Bearer " + entra.mint(exp=now - 10))  # inside the leeway
    with pytest.raises(ExpiredTokenError):
        await v.validate("Bearer " + entra.mint(exp=now - 120))
    with pytest.raises(NotYetValidError):
        await v.validate("Bearer " + entra.mint(nbf=now + 300, iat=now))
    with pytest.raises(MalformedTokenError, match="exp"):
        await v.validate("Bearer " + entra.mint(exp=None))


async def test_bad_signature_and_unknown_key(entra: EntraStub) -> None:
    v = validator(entra)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(BadSignatureError):
        await v.validate("Bearer " + entra.mint(key=other))  # right kid, wrong key
    tampered = entra.mint()
    head, _body, sig = tampered.split(".")
    forged = entra.mint(roles=["Sync.ReadWrite", "Admin"]).split(".")[1]
    with pytest.raises(BadSignatureError):
        await v.validate(f"Bearer {head}.{forged}.{sig}")
    with pytest.raises(UnknownKeyError):
        await v.validate("Bearer " + entra.mint(kid="no-such-kid"))
    fetches = entra.jwks_requests
    with pytest.raises(UnknownKeyError):
        await v.validate("Bearer " + entra.mint(kid="another-garbage-kid"))
    assert entra.jwks_requests == fetches  # unknown kids cannot make us hammer the issuer
    with pytest.raises(MalformedTokenError):
        import jwt

        await v.validate("Bearer " + jwt.encode({"aud": API_AUDIENCE}, "s" * 40, algorithm="HS256",
                                                headers={"kid": entra.keys[-1][0]}))


async def test_key_rotation_refreshes_jwks_on_unknown_kid(entra: EntraStub) -> None:
    v = validator(entra)
    await v.validate("Bearer " + entra.mint())
    assert entra.jwks_requests == 1
    entra.rotate()
    await v.validate("Bearer " + entra.mint())  # new kid -> one refresh, accepted
    assert entra.jwks_requests == 2
    await v.validate("Bearer " + entra.mint())
    assert entra.jwks_requests == 2


async def test_missing_role_is_403(entra: EntraStub) -> None:
    with pytest.raises(MissingRoleError) as exc:
        await validator(entra).validate("Bearer " + entra.mint(roles=["Other.Role"]))
    assert exc.value.status == 403
    assert 'error="insufficient_scope"' in exc.value.www_authenticate
    with pytest.raises(MissingRoleError):
        await validator(entra).validate("Bearer " + entra.mint(roles=None))


async def test_tokens_from_the_token_endpoint(entra: EntraStub) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async def token(client_id: str, secret: str) -> str:
            async with s.post(entra.token_url, data={"grant_type": "client_credentials", "client_id": client_id,
                                                     "client_secret": secret,
                                                     "scope": f"{API_AUDIENCE}/.default"}) as r:
                return (await r.json())["access_token"]

        v = validator(entra)
        p = await v.validate("Bearer " + await token("pega-connect-rest", "sandbox-pega-secret"))
        assert p.app_id == "pega-connect-rest"
        with pytest.raises(MissingRoleError):
            await v.validate("Bearer " + await token("sandbox-no-role", "sandbox-no-role-secret"))


async def test_allowed_client_ids(entra: EntraStub) -> None:
    v = validator(entra, allowed_client_ids="someone-else")
    with pytest.raises(ClientNotAllowedError):
        await v.validate("Bearer " + entra.mint())


async def test_unreachable_issuer_is_transient(entra: EntraStub) -> None:
    v = validator(entra, openid_config_url="http://127.0.0.1:9/nothing", http_timeout_seconds=1)
    with pytest.raises(KeysUnavailableError) as exc:
        await v.validate("Bearer " + entra.mint())
    assert exc.value.status == 503
