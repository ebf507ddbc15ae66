"""A fake Google OAuth 2.0 token endpoint (``POST /token``) on 127.0.0.1.

It answers the two grants google-auth uses:

* JWT bearer (service accounts): the RS256 assertion is verified against the public
  key of a service account written by :meth:`FakeGoogleOAuth.write_service_account`;
* refresh token (authorized users, e.g. the Apps Script API), checked against
  :meth:`FakeGoogleOAuth.write_authorized_user`.

Issued access tokens are recorded so that resource-server fakes (Sheets, Apps Script)
can check bearer tokens with :meth:`FakeGoogleOAuth.is_valid` / :meth:`FakeGoogleOAuth.lookup`.

Beware: google-auth's ``Credentials.from_authorized_user_file/info`` ignore the file's
``token_uri`` and always use Google's endpoint. Build authorized-user credentials with
``google.oauth2.credentials.Credentials(None, refresh_token=…, client_id=…,
client_secret=…, token_uri=info["token_uri"], scopes=…)`` to reach this fake.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.server import ServedFake, ThreadedServer

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REFRESH_TOKEN_GRANT = "refresh_token"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
SHEETS_SCOPE = "https://www.googleapis.com/auth/spreadsheets"

# One key for the whole test run: RSA generation costs tens of milliseconds per key.
_KEY_LOCK = threading.Lock()
_SHARED_KEY: rsa.RSAPrivateKey | None = None


def _rsa_key() -> rsa.RSAPrivateKey:
    global _SHARED_KEY
    with _KEY_LOCK:
        if _SHARED_KEY is None:
            _SHARED_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return _SHARED_KEY


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    grant_type: str
    subject: str  # service-account email or OAuth client id
    scopes: tuple[str, ...]
    expires_at: float


@dataclass(slots=True)
class _ServiceAccount:
    client_email: str
    private_key_id: str
    public_key: rsa.RSAPublicKey


@dataclass(slots=True)
class _AuthorizedUser:
    client_id: str
    client_secret: str
    refresh_token: str
    scopes: tuple[str, ...] = field(default_factory=tuple)


class _Rejected(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


class FakeGoogleOAuth(ServedFake):
    """``with FakeGoogleOAuth() as oauth: oauth.write_service_account(tmp_path / "sa.json")``."""

    def __init__(self, *, expires_in: int = 3599) -> None:
        self.expires_in = expires_in
        self._lock = threading.Lock()
        self._service_accounts: dict[str, _ServiceAccount] = {}
        self._users: dict[str, _AuthorizedUser] = {}
        self._issued: dict[str, IssuedToken] = {}
        self._revoked: set[str] = set()
        self._rejection: _Rejected | None = None
        self._mint_invalid = False
        self.token_requests = 0
        self.app = Starlette(routes=[Route("/token", self._token, methods=["POST"])])
        self._server = ThreadedServer(self.app)

    # -- lifecycle -----------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._server.url

    @property
    def token_uri(self) -> str:
        return f"{self._server.url}/token"

    # -- behaviour switches ------------------------------------------------------------
    def reject(
        self, error: str = "invalid_grant", description: str = "Invalid JWT Signature.", status: int = 400
    ) -> None:
        """Refuse every token request from now on (what Google says for a deleted or bad key)."""
        with self._lock:
            self._rejection = _Rejected(error, description, status)

    def accept(self) -> None:
        with self._lock:
            self._rejection = None
            self._mint_invalid = False

    def mint_invalid_tokens(self) -> None:
        """Keep answering token requests, but with tokens no resource server accepts."""
        with self._lock:
            self._mint_invalid = True

    def revoke_all(self) -> None:
        with self._lock:
            self._revoked.update(self._issued)

    # -- queries ---------------------------------------------------------------------------
    @property
    def issued(self) -> list[IssuedToken]:
        with self._lock:
            return list(self._issued.values())

    def lookup(self, access_token: str) -> IssuedToken | None:
        """The token if it was issued here and is neither expired nor revoked."""
        with self._lock:
            token = self._issued.get(access_token)
            if token is None or access_token in self._revoked or token.expires_at < time.time():
                return None
            return token

    def is_valid(self, access_token: str, scope: str | None = None) -> bool:
        token = self.lookup(access_token)
        return token is not None and (scope is None or scope in token.scopes)

    # -- credential files -----------------------------------------------------------------
    def write_service_account(
        self,
        path: Path,
        *,
        client_email: str = "wipsvc-test@fake-project.iam.gserviceaccount.com",
        project_id: str = "fake-project",
    ) -> Path:
        """Write a service-account JSON whose ``token_uri`` is this fake, and accept its key."""
        key = _rsa_key()
        private_key_id = secrets.token_hex(20)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        info = {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": private_key_id,
            "private_key": pem,
            "client_email": client_email,
            "client_id": str(secrets.randbelow(10**20)),
            "auth_uri": f"{self.url}/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": f"{self.url}/certs",
            "universe_domain": "googleapis.com",
        }
        with self._lock:
            self._service_accounts[client_email] = _ServiceAccount(
                client_email, private_key_id, key.public_key()
            )
        path.write_text(json.dumps(info, indent=2), encoding="utf-8")
        return path

    def write_authorized_user(
        self,
        path: Path,
        *,
        client_id: str = "fake-client.apps.googleusercontent.com",
        client_secret: str = "fake-secret",
        refresh_token: str | None = None,
        scopes: tuple[str, ...] = (),
    ) -> Path:
        """Write an authorized-user JSON (refresh token) whose ``token_uri`` is this fake."""
        refresh_token = refresh_token or "1//fake-" + secrets.token_urlsafe(24)
        info: dict[str, Any] = {
            "type": "authorized_user",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
            "token_uri": self.token_uri,
        }
        if scopes:
            info["scopes"] = list(scopes)
        with self._lock:
            self._users[refresh_token] = _AuthorizedUser(client_id, client_secret, refresh_token, scopes)
        path.write_text(json.dumps(info, indent=2), encoding="utf-8")
        return path

    # -- the endpoint -----------------------------------------------------------------------
    async def _token(self, request: Request) -> JSONResponse:
        # Parsed by hand: Starlette's request.form() needs python-multipart, which is not installed.
        params = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        with self._lock:
            self.token_requests += 1
            rejection = self._rejection
        try:
            if rejection is not None:
                raise rejection
            grant_type = params.get("grant_type", "")
            if grant_type == JWT_BEARER_GRANT:
                subject, scopes = self._check_assertion(params.get("assertion", ""))
            elif grant_type == REFRESH_TOKEN_GRANT:
                subject, scopes = self._check_refresh(params)
            else:
                raise _Rejected("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        except _Rejected as exc:
            return JSONResponse(
                {"error": exc.error, "error_description": exc.description}, status_code=exc.status
            )
        token = IssuedToken(
            access_token="ya29.fake-" + secrets.token_urlsafe(32),
            grant_type=grant_type,
            subject=subject,
            scopes=scopes,
            expires_at=time.time() + self.expires_in,
        )
        with self._lock:
            self._issued[token.access_token] = token
            if self._mint_invalid:
                self._revoked.add(token.access_token)
        body: dict[str, Any] = {
            "access_token": token.access_token,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
        }
        if grant_type == REFRESH_TOKEN_GRANT and scopes:
            body["scope"] = " ".join(scopes)
        return JSONResponse(body)

    def _check_assertion(self, assertion: str) -> tuple[str, tuple[str, ...]]:
        try:
            header_b64, payload_b64, signature_b64 = assertion.split(".")
            header = json.loads(_b64url_decode(header_b64))
            claims = json.loads(_b64url_decode(payload_b64))
            signature = _b64url_decode(signature_b64)
        except ValueError as exc:
            raise _Rejected("invalid_grant", "Invalid JWT: malformed assertion.") from exc
        with self._lock:
            account = self._service_accounts.get(str(claims.get("iss")))
        if account is None or header.get("alg") != "RS256":
            raise _Rejected("invalid_grant", "Invalid JWT Signature.")
        if header.get("kid") not in (None, account.private_key_id):
            raise _Rejected("invalid_grant", "Invalid JWT Signature.")
        try:
            account.public_key.verify(
                signature, f"{header_b64}.{payload_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature as exc:
            raise _Rejected("invalid_grant", "Invalid JWT Signature.") from exc
        now = time.time()
        # google-auth always addresses the assertion to Google's endpoint, whatever token_uri says.
        if claims.get("aud") not in (GOOGLE_TOKEN_AUDIENCE, self.token_uri):
            raise _Rejected("invalid_grant", "Invalid JWT: audience does not match the token URI.")
        if not (claims.get("iat", 0) - 300 <= now <= claims.get("exp", 0) + 300):
            raise _Rejected("invalid_grant", "Invalid JWT: Token must be a short-lived token.")
        scopes = tuple(str(claims.get("scope", "")).split())
        if not scopes:
            raise _Rejected("invalid_scope", "Empty or missing scope not allowed.")
        return account.client_email, scopes

    def _check_refresh(self, params: dict[str, str]) -> tuple[str, tuple[str, ...]]:
        with self._lock:
            user = self._users.get(params.get("refresh_token", ""))
        if user is None:
            raise _Rejected("invalid_grant", "Token has been expired or revoked.")
        if params.get("client_id") != user.client_id or params.get("client_secret") != user.client_secret:
            raise _Rejected("invalid_client", "The OAuth client was not found.", status=401)
        requested = tuple(params.get("scope", "").split())
        return user.client_id, requested or user.scopes
