"""The sandbox's Entra ID: token endpoint, OIDC metadata, JWKS, and access-token validation.

Implements the identity contract in docs/HELPERS.md: RS256 JWTs whose ``iss`` is
``{public_base}/{tenant}/v2.0`` and whose ``aud`` is the resource of the requested ``.default`` scope.
The signing key is generated at start, so tokens never survive a restart (as with key rollover).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from sandbox.graph.errors import aadsts_response
from sandbox.graph.seed import (
    FEDERATION_AUDIENCE,
    GRAPH_APP_ID_URI_ALIASES,
    GRAPH_AUDIENCE,
    IDENTITY_HEADER,
    TENANT_DOMAINS,
    TENANT_ID,
    TENANT_ISSUER,
    ClientApp,
    FederatedCredential,
    ManagedIdentity,
    seed_clients,
    seed_managed_identities,
)

log = logging.getLogger(__name__)
TOKEN_LIFETIME = 3599


@dataclass(frozen=True)
class Principal:
    """Who is calling Graph: the validated claims of the bearer token."""

    app_id: str
    roles: tuple[str, ...]
    claims: dict[str, Any]


class Identity:
    def __init__(self, public_base: str, tenant_id: str = TENANT_ID) -> None:
        self.public_base = public_base.rstrip("/")
        self.tenant_id = tenant_id
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub = self._key.public_key()
        self.kid = base64.urlsafe_b64encode(
            hashlib.sha256(str(pub.public_numbers().n).encode()).digest()[:15]).decode().rstrip("=")
        self.clients: dict[str, ClientApp] = {c.client_id: c for c in seed_clients()}
        self.managed_identities: dict[str, ManagedIdentity] = {m.client_id: m for m in seed_managed_identities()}
        # Tokens carry the generation they were issued in; `refuse_issued_tokens` starts a new one. That
        # is how a test makes Graph refuse a token its client still holds as valid — what a client
        # meets after a clock skew between it and Entra, or after its credentials were reset.
        self.generation = 0

    def refuse_issued_tokens(self) -> int:
        self.generation += 1
        return self.generation

    def reset(self) -> None:
        self.clients = {c.client_id: c for c in seed_clients()}
        self.managed_identities = {m.client_id: m for m in seed_managed_identities()}

    @property
    def issuer(self) -> str:
        return f"{self.public_base}/{self.tenant_id}/v2.0"

    def known_tenant(self, tenant: str) -> bool:
        return tenant.lower() in (self.tenant_id, *TENANT_DOMAINS)

    def jwks(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256", "kty": "RSA", "issuer": self.issuer})
        return {"keys": [jwk]}

    def issue(self, client: ClientApp, audience: str, *, roles: list[str] | None = None) -> str:
        granted = roles if roles is not None else client.roles.get(audience, [])
        return self._sign(client.client_id, str(uuid.uuid5(uuid.NAMESPACE_URL, client.client_id)),
                          client.display_name, audience, granted)

    def issue_for_identity(self, identity: ManagedIdentity, audience: str) -> str:
        """A managed identity's token: `sub`/`oid` are its service principal's object id."""
        return self._sign(identity.client_id, identity.principal_id, identity.display_name, audience, [])

    def _sign(self, app_id: str, object_id: str, display_name: str, audience: str, roles: list[str]) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": audience, "iss": self.issuer, "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME,
            "tid": self.tenant_id, "appid": app_id, "azp": app_id, "appidacr": "1",
            "azpacr": "1", "idtyp": "app", "oid": object_id, "sub": object_id, "ver": "2.0",
            "uti": uuid.uuid4().hex[:22], "app_displayname": display_name, "xms_sim_gen": self.generation,
        }
        if roles:
            claims["roles"] = list(roles)
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})

    def validate(self, token: str, audiences: tuple[str, ...] = GRAPH_APP_ID_URI_ALIASES) -> Principal:
        """Validate a bearer token (signature, issuer, audience, lifetime). Raises jwt.InvalidTokenError."""
        claims = jwt.decode(token, self._key.public_key(), algorithms=["RS256"], audience=list(audiences),
                            issuer=self.issuer, leeway=30)
        if int(claims.get("xms_sim_gen", 0)) < self.generation:
            raise jwt.ExpiredSignatureError("the token was issued before the simulator refused issued tokens")
        return Principal(app_id=str(claims.get("appid") or claims.get("azp")), roles=tuple(claims.get("roles", [])),
                         claims=claims)

    # ---- client authentication -------------------------------------------------------------

    def federated_issuer(self, credential: FederatedCredential) -> str:
        return self.issuer if credential.issuer == TENANT_ISSUER else credential.issuer

    def _assertion_error(self, client: ClientApp, assertion: str) -> web.Response | None:
        """None when `assertion` authenticates `client`; Entra's AADSTS answer otherwise.

        Two kinds of assertion, as in Entra:
        - signed by a certificate registered on the app (`iss` = `sub` = the app's client id);
        - a token of a trusted issuer, accepted only through one of the app's federated identity
          credentials — its `iss` and `sub` exactly those of the credential and its `aud` one of
          the credential's audiences (api://AzureADTokenExchange). The simulator is the only issuer
          it can verify: its own tenant, whose managed identities get such tokens.
        """
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.InvalidTokenError:
            return aadsts_response(400, "invalid_client", 50027, "JWT token is invalid or is malformed.")
        for pem in client.certificates:
            key = x509.load_pem_x509_certificate(pem.encode()).public_key()
            try:
                claims = jwt.decode(assertion, key, algorithms=["RS256", "PS256"], options={"verify_aud": False},
                                    leeway=30)
            except jwt.InvalidTokenError:
                continue
            if claims.get("iss") == client.client_id and claims.get("sub") == client.client_id:
                return None
        if header.get("kid") != self.kid:
            return aadsts_response(401, "invalid_client", 700027, "Client assertion failed signature validation.")
        try:
            claims = jwt.decode(assertion, self._key.public_key(), algorithms=["RS256"],
                                options={"verify_aud": False}, leeway=30)
        except jwt.ExpiredSignatureError:
            return aadsts_response(400, "invalid_client", 700024, "Client assertion is not within its valid time "
                                                                  "range.")
        except jwt.InvalidTokenError:
            return aadsts_response(401, "invalid_client", 700027, "Client assertion failed signature validation.")
        iss, sub, aud = claims.get("iss"), claims.get("sub"), claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else list(aud or [])
        for cred in client.federated:
            if (self.federated_issuer(cred) == iss and cred.subject == sub
                    and any(a in cred.audiences for a in audiences)):
                return None
        return aadsts_response(400, "invalid_request", 70021,
                               "No matching federated identity record found for presented assertion. "
                               f"Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: "
                               f"'{','.join(audiences)}'.")

    async def token_endpoint(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        if not self.known_tenant(tenant):
            return aadsts_response(400, "invalid_request", 90002,
                                   f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                                   "and are signing into the correct cloud.")
        form = await request.post()
        client_id = str(form.get("client_id", ""))
        secret = form.get("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            raw = base64.b64decode(auth[6:]).decode()
            client_id, _, basic_secret = raw.partition(":")
            secret = basic_secret
        grant = form.get("grant_type")
        if grant != "client_credentials":
            return aadsts_response(400, "unsupported_grant_type", 70003,
                                   "The app requested an unsupported grant type.")
        client = self.clients.get(client_id)
        if client is None:
            return aadsts_response(400, "unauthorized_client", 700016,
                                   f"Application with identifier '{client_id}' was not found in the directory "
                                   f"'{self.tenant_id}'.")
        assertion = form.get("client_assertion")
        if assertion is not None:
            if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
                return aadsts_response(400, "invalid_request", 50027, "Invalid client_assertion_type.")
            refused = self._assertion_error(client, str(assertion))
            if refused is not None:
                return refused
        elif secret is None:
            return aadsts_response(401, "invalid_client", 7000218,
                                   "The request body must contain the following parameter: 'client_assertion' or "
                                   "'client_secret'.")
        elif str(secret) not in client.secrets:
            return aadsts_response(401, "invalid_client", 7000215,
                                   "Invalid client secret provided. Ensure the secret being sent in the request is "
                                   f"the client secret value, not the client secret ID, for a secret added to app "
                                   f"'{client_id}'.")
        scope = str(form.get("scope", "")).strip()
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return aadsts_response(400, "invalid_scope", 1002012,
                                   f"The provided value for scope {scope} is not valid. Client credential flows must "
                                   "have a scope value with /.default suffixed to the resource identifier "
                                   "(application ID URI).")
        resource = scopes[0][: -len("/.default")]
        if resource in GRAPH_APP_ID_URI_ALIASES:
            resource = GRAPH_AUDIENCE
        known_resources = {GRAPH_AUDIENCE, FEDERATION_AUDIENCE}
        for c in self.clients.values():
            known_resources.update(c.roles)
        if resource not in known_resources:
            return aadsts_response(400, "invalid_resource", 500011,
                                   f"The resource principal named {resource} was not found in the tenant named "
                                   f"{self.tenant_id}. This can happen if the application has not been installed by "
                                   "the administrator of the tenant or consented to by any user in the tenant.")
        token = self.issue(client, resource)
        log.info("issued token client=%s aud=%s", client_id, resource)
        return web.json_response({"token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                                  "ext_expires_in": TOKEN_LIFETIME, "access_token": token})

    async def openid_configuration(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        if not self.known_tenant(tenant):
            return aadsts_response(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        base = f"{self.public_base}/{self.tenant_id}"
        return web.json_response({
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": self.issuer,
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "roles", "appid", "azp"],
            "tenant_region_scope": "WW",
            "cloud_instance_name": "microsoftonline.com",
        })

    async def keys(self, request: web.Request) -> web.Response:
        return web.json_response(self.jwks())

    async def managed_identity_token(self, request: web.Request) -> web.Response:
        """App Service's managed-identity endpoint (IDENTITY_ENDPOINT, api-version 2019-08-01): the
        function app's identity gets a token for `resource` — e.g. api://AzureADTokenExchange, the
        assertion its app registration's federated credential trusts — with no secret at all."""
        if request.headers.get("X-IDENTITY-HEADER") != IDENTITY_HEADER:
            return web.json_response({"statusCode": 401, "message": "X-IDENTITY-HEADER is missing or wrong."},
                                     status=401)
        resource = request.query.get("resource", "")
        client_id = request.query.get("client_id") or request.query.get("clientid", "")
        principal_id = request.query.get("principal_id") or request.query.get("object_id", "")
        identity = self.managed_identities.get(client_id) if client_id else next(
            (m for m in self.managed_identities.values() if principal_id and m.principal_id == principal_id), None)
        if identity is None:
            return web.json_response({"statusCode": 400, "message": "No User Assigned or Delegated Managed Identity "
                                      "found for specified ClientId/ResourceId/PrincipalId."}, status=400)
        if resource.endswith("/.default"):
            resource = resource[: -len("/.default")]
        if not resource:
            return web.json_response({"statusCode": 400, "message": "resource is required."}, status=400)
        token = self.issue_for_identity(identity, GRAPH_AUDIENCE if resource in GRAPH_APP_ID_URI_ALIASES
                                        else resource)
        log.info("issued managed identity token client=%s aud=%s", identity.client_id, resource)
        return web.json_response({"access_token": token, "expires_on": str(int(time.time()) + TOKEN_LIFETIME),
                                  "resource": resource, "token_type": "Bearer", "client_id": identity.client_id})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/{tenant}/oauth2/v2.0/token", self.token_endpoint),
            web.get("/{tenant}/v2.0/.well-known/openid-configuration", self.openid_configuration),
            web.get("/{tenant}/discovery/v2.0/keys", self.keys),
            web.get("/{tenant}/discovery/keys", self.keys),
            web.get("/msi/token", self.managed_identity_token),
        ]
