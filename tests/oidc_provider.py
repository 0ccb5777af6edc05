"""A local OpenID Connect provider for tests: real HTTP on 127.0.0.1, real RS256 ID tokens.

It speaks enough of the protocol for mozilla-django-oidc (Entra ID staff SSO) and allauth's
OpenID Connect provider (Auth0): discovery, authorize (auto-consent as the chosen user, PKCE S256),
token (authorization code and refresh token grants, client_secret_post or basic), JWKS and userinfo.
ID tokens carry Entra's claim shapes (`iss` https://login.microsoftonline.com/<tid>/v2.0, `tid`, `oid`,
`roles`, `groups`) or, in `auth0` style, Auth0's (issuer = the server URL with a trailing slash).

`provider.fault = "wrong_aud" | "wrong_iss" | "wrong_tid" | "expired" | "other_key" |
"replayed_nonce" | "unknown_kid" | "hs256"` makes the next ID token bad in that one way.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

FAULTS = {"wrong_aud", "wrong_iss", "wrong_tid", "expired", "other_key", "replayed_nonce", "unknown_kid", "hs256"}


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class StandInUser:
    claims: dict[str, Any]
    enabled: bool = True


@dataclass
class _Grant:
    oid: str
    nonce: str | None
    challenge: str | None
    method: str | None
    redirect_uri: str
    client_id: str


@dataclass
class OIDCProvider:
    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    style: str = "entra"  # or "auth0"
    token_lifetime: int = 3600

    def __post_init__(self) -> None:
        self.key = _new_key()
        self.other_key = _new_key()
        self.kid = "p360-test-key-1"
        self.users: dict[str, StandInUser] = {}
        self.current: str | None = None
        self.fault: str | None = None
        self.codes: dict[str, _Grant] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.access_tokens: dict[str, str] = {}
        self.nonces_seen: list[str] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) for assertions
        self.token_requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> OIDCProvider:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def issuer(self) -> str:
        if self.style == "auth0":
            return self.url + "/"
        return f"https://login.microsoftonline.com/{self.tenant_id}/v2.0"

    def settings(self) -> dict[str, Any]:
        """Django settings pointing mozilla-django-oidc (Entra style) at this provider."""
        return {
            "ENTRA_TENANT_ID": self.tenant_id,
            "ENTRA_SSO_ENABLED": True,
            "ENTRA_ISSUER": self.issuer,
            "OIDC_RP_CLIENT_ID": self.client_id,
            "OIDC_RP_CLIENT_SECRET": self.client_secret,
            "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{self.url}/authorize",
            "OIDC_OP_TOKEN_ENDPOINT": f"{self.url}/token",
            "OIDC_OP_JWKS_ENDPOINT": f"{self.url}/jwks",
            "OIDC_OP_USER_ENDPOINT": f"{self.url}/userinfo",
        }

    # --- users ---------------------------------------------------------------------------------------
    def add_user(
        self,
        *,
        email: str,
        roles: list[str] | None = None,
        groups: list[str] | None = None,
        name: str = "",
        oid: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        oid = oid or str(uuid.uuid4())
        claims: dict[str, Any] = {"oid": oid, "email": email, "preferred_username": email, "name": name or email}
        if roles is not None:
            claims["roles"] = list(roles)
        if groups is not None:
            claims["groups"] = list(groups)
        claims.update(extra or {})
        self.users[oid] = StandInUser(claims=claims)
        self.current = oid
        return oid

    def sign_in_as(self, oid: str) -> None:
        self.current = oid

    # --- tokens --------------------------------------------------------------------------------------
    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def id_token(self, oid: str, *, nonce: str | None) -> str:
        user = self.users[oid]
        now = int(time.time())
        fault, self.fault = self.fault, None
        claims: dict[str, Any] = {
            **user.claims,
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "nbf": now,
            "exp": now + self.token_lifetime,
            "sub": f"sub-{oid}",
            "ver": "2.0",
        }
        if self.style == "entra":
            claims["tid"] = self.tenant_id
        if nonce is not None:
            claims["nonce"] = nonce
        key: Any = self.key
        headers = {"kid": self.kid}
        algorithm = "RS256"
        if fault == "wrong_aud":
            claims["aud"] = str(uuid.uuid4())
        elif fault == "wrong_iss":
            claims["iss"] = f"https://login.microsoftonline.com/{uuid.uuid4()}/v2.0"
        elif fault == "wrong_tid":
            claims["tid"] = str(uuid.uuid4())
        elif fault == "expired":
            claims["iat"], claims["nbf"], claims["exp"] = now - 7200, now - 7200, now - 3600
        elif fault == "other_key":
            key = self.other_key  # same kid: only the signature check can catch it
        elif fault == "unknown_kid":
            key, headers = self.other_key, {"kid": "not-published"}
        elif fault == "replayed_nonce":
            claims["nonce"] = self.nonces_seen[0] if self.nonces_seen else "an-old-nonce"
        elif fault == "hs256":
            key, algorithm = self.client_secret, "HS256"
        return jwt.encode(claims, key, algorithm=algorithm, headers=headers)

    def _tokens_for(self, oid: str, nonce: str | None) -> dict[str, Any]:
        access = secrets.token_urlsafe(24)
        refresh = secrets.token_urlsafe(24)
        self.access_tokens[access] = oid
        self.refresh_tokens[refresh] = oid
        return {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "access_token": access,
            "refresh_token": refresh,
            "id_token": self.id_token(oid, nonce=nonce),
        }

    # --- HTTP ----------------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                provider.requests.append(("GET", parsed.path))
                query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                if parsed.path.endswith("/.well-known/openid-configuration"):
                    self._json(200, provider.discovery())
                elif parsed.path in ("/jwks", "/.well-known/jwks.json"):
                    self._json(200, provider.jwks())
                elif parsed.path == "/authorize":
                    self._authorize(query)
                elif parsed.path == "/userinfo":
                    self._userinfo(query)
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                parsed = urlparse(self.path)
                provider.requests.append(("POST", parsed.path))
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if parsed.path in ("/token", "/oauth/token"):
                    self._token(form)
                else:
                    self._json(404, {"error": "not_found"})

            def _authorize(self, query: dict[str, str]) -> None:
                redirect_uri = query.get("redirect_uri", "")
                if query.get("client_id") != provider.client_id or not redirect_uri:
                    self._json(400, {"error": "invalid_client"})
                    return
                oid = provider.current
                if oid is None or not provider.users[oid].enabled:
                    target = (
                        redirect_uri
                        + "?"
                        + urlencode(
                            {
                                "error": "access_denied",
                                "state": query.get("state", ""),
                                "error_description": "User account is disabled.",
                            }
                        )
                    )
                else:
                    code = secrets.token_urlsafe(16)
                    nonce = query.get("nonce")
                    with provider._lock:
                        provider.codes[code] = _Grant(
                            oid,
                            nonce,
                            query.get("code_challenge"),
                            query.get("code_challenge_method"),
                            redirect_uri,
                            query["client_id"],
                        )
                    target = redirect_uri + "?" + urlencode({"code": code, "state": query.get("state", "")})
                self.send_response(302)
                self.send_header("Location", target)
                self.end_headers()

            def _client_ok(self, form: dict[str, str]) -> bool:
                client_id, secret = form.get("client_id"), form.get("client_secret")
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                return client_id == provider.client_id and secret == provider.client_secret

            def _token(self, form: dict[str, str]) -> None:
                provider.token_requests.append(form)
                if not self._client_ok(form):
                    self._json(401, {"error": "invalid_client"})
                    return
                grant_type = form.get("grant_type")
                if grant_type == "authorization_code":
                    with provider._lock:
                        grant = provider.codes.pop(form.get("code", ""), None)  # single use
                    if grant is None or grant.redirect_uri != form.get("redirect_uri"):
                        self._json(400, {"error": "invalid_grant"})
                        return
                    if grant.challenge is not None:
                        verifier = form.get("code_verifier", "")
                        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
                        if grant.method != "S256" or digest.decode() != grant.challenge:
                            self._json(400, {"error": "invalid_grant", "error_description": "PKCE check failed"})
                            return
                    body = provider._tokens_for(grant.oid, grant.nonce)
                    if grant.nonce:
                        provider.nonces_seen.append(grant.nonce)
                    self._json(200, body)
                elif grant_type == "refresh_token":
                    with provider._lock:
                        oid = provider.refresh_tokens.pop(form.get("refresh_token", ""), None)  # rotated
                    if oid is None or not provider.users[oid].enabled:
                        self._json(400, {"error": "invalid_grant", "error_description": "AADSTS50057: disabled"})
                        return
                    self._json(200, provider._tokens_for(oid, None))
                else:
                    self._json(400, {"error": "unsupported_grant_type"})

            def _userinfo(self, query: dict[str, str]) -> None:
                auth = self.headers.get("Authorization", "")
                token = auth[7:] if auth.startswith("Bearer ") else query.get("access_token", "")
                oid = provider.access_tokens.get(token)
                if oid is None:
                    self._json(401, {"error": "invalid_token"})
                    return
                claims = provider.users[oid].claims
                self._json(200, {"sub": f"sub-{oid}", "email": claims.get("email"), "name": claims.get("name")})

        return Handler

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "userinfo_endpoint": f"{self.url}/userinfo",
            "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "offline_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
        }
