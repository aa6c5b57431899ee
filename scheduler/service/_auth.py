"""Credentials: signed bearer tokens, client certificates and the listeners' TLS.

Tokens are JWTs signed with HMAC-SHA256 (PyJWT) under a shared key read from
``auth.key_file``; ``auth.previous_key_file`` keeps the tokens of the key
before a rotation valid. A token's claims:

* ``scope``: space-separated, ``host`` for a peer (with ``seed`` for one that may
  announce seed hosts), ``admin:read`` or ``admin:write`` (which includes read)
  for the admin API;
* ``sub``: for a host token, the one hostname it may announce; absent on a
  cluster-wide host token (any hostname: weaker, see docs/security.md);
* ``aud`` (required): the id of the cluster the token is for (``cluster.id``,
  ``"default"`` unless set), so that a token cannot be replayed into another
  cluster that shares the key;
* ``exp`` (required), ``iat`` and a random ``jti``.

The peers' listener checks ``Authorization: Bearer`` in the request head before
the upgrade (HTTP 401 otherwise) and hands the session rules an
:class:`~scheduler.session.Identity`; client certificates (``tls.client_ca_file``)
give one too, from the subject's CN.
"""

from __future__ import annotations

import enum
import ipaddress
import secrets
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, final

import attrs
import jwt

from ..core import ConfigError
from ..session import Identity
from ._config import ServiceConfig

ALGORITHM: Final = "HS256"
#: The cluster id a token is for when none is given (``cluster.id``'s default).
DEFAULT_CLUSTER: Final = "default"
#: RFC 7518 section 3.2: an HS256 key has at least 256 bits.
MIN_KEY_BYTES: Final = 32
#: Default lifetime of an issued token (``scheduler token issue --ttl``).
DEFAULT_TTL: Final = 30 * 86400.0
#: Seconds of clock difference tolerated on ``exp`` and ``iat``.
LEEWAY: Final = 30.0


class Scope(enum.StrEnum):
    HOST = "host"
    #: With ``host``: the token may announce seed hosts (``type: seed``).
    SEED = "seed"
    ADMIN_READ = "admin:read"
    ADMIN_WRITE = "admin:write"


_SCOPE_NAMES: Final = frozenset(s.value for s in Scope)
#: What each scope also grants.
IMPLIES: Final[Mapping[Scope, frozenset[Scope]]] = {
    Scope.HOST: frozenset({Scope.HOST}),
    Scope.SEED: frozenset({Scope.SEED}),
    Scope.ADMIN_READ: frozenset({Scope.ADMIN_READ}),
    Scope.ADMIN_WRITE: frozenset({Scope.ADMIN_READ, Scope.ADMIN_WRITE}),
}


class AuthFailure(enum.StrEnum):
    """Why a credential was refused: the ``reason`` label of the metric."""

    MISSING = "missing"
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    SCOPE = "scope"
    CERTIFICATE = "certificate"
    #: A token for another cluster (its ``aud``), or for none.
    AUDIENCE = "audience"


@final
class AuthError(Exception):
    """A credential was refused; ``str()`` is safe to send back (it names no secret)."""

    def __init__(self, reason: AuthFailure, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def status(self) -> int:
        """HTTP status: 403 for a valid token lacking the scope, 401 otherwise."""
        return 403 if self.reason is AuthFailure.SCOPE else 401


def read_key(path: str | Path, where: str) -> bytes:
    """The signing key in ``path`` (surrounding whitespace stripped); ConfigError if unusable."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(where, f"cannot read {str(path)!r}: {exc.strerror}") from exc
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            where,
            f"{str(path)!r} holds {len(key)} bytes; a key needs at least {MIN_KEY_BYTES} "
            "(e.g. `openssl rand -hex 32 > FILE`)",
        )
    return key


def issue_token(
    key: bytes,
    *,
    scopes: Sequence[Scope] = (Scope.HOST,),
    hostname: str | None = None,
    ttl: float = DEFAULT_TTL,
    now: float | None = None,
    cluster_id: str = DEFAULT_CLUSTER,
) -> str:
    """A token for ``scopes`` in cluster ``cluster_id``, valid ``ttl`` seconds from ``now``
    (default: the wall clock)."""
    if not scopes:
        raise ValueError("a token needs at least one scope")
    if hostname is not None and Scope.HOST not in scopes:
        raise ValueError("only a host token names a hostname")
    if Scope.SEED in scopes and Scope.HOST not in scopes:
        raise ValueError("the seed scope extends a host token")
    if not cluster_id:
        raise ValueError("a token names the cluster it is for")
    if not ttl > 0:
        raise ValueError(f"ttl must be positive, got {ttl!r}")
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {
        "scope": " ".join(str(s) for s in scopes),
        "aud": cluster_id,
        "iat": int(issued),
        "exp": int(issued + ttl),
        "jti": secrets.token_hex(8),
    }
    if hostname is not None:
        claims["sub"] = hostname
    return jwt.encode(claims, key, algorithm=ALGORITHM)


@final
@attrs.frozen
class Claims:
    """A verified token: its subject (None: cluster-wide) and the scopes it grants."""

    subject: str | None
    scopes: frozenset[Scope]


@final
@attrs.frozen
class TokenVerifier:
    """Checks tokens against the current key, then the previous one (rotation)."""

    keys: tuple[bytes, ...]
    #: The cluster this server belongs to: a token's ``aud`` must name it.
    audience: str = DEFAULT_CLUSTER

    @classmethod
    def from_config(cls, config: ServiceConfig) -> TokenVerifier | None:
        """The verifier ``auth.key_file`` asks for; None when authentication is off."""
        if config.auth_key_file is None:
            return None
        keys = [read_key(config.auth_key_file, "auth.key_file")]
        if config.auth_previous_key_file is not None:
            keys.append(read_key(config.auth_previous_key_file, "auth.previous_key_file"))
        return cls(tuple(keys), config.cluster_id)

    def verify(self, token: str, scope: Scope) -> Claims:
        """The token's claims if one of the keys signed it, it is current and grants ``scope``."""
        claims = self._decode(token)
        granted = _scopes(claims.get("scope"))
        if scope not in granted:
            raise AuthError(AuthFailure.SCOPE, f"the token does not grant {scope}")
        subject = claims.get("sub")
        if subject is not None and (not isinstance(subject, str) or not subject):
            raise AuthError(AuthFailure.MALFORMED, "the token's subject is not a hostname")
        return Claims(subject, granted)

    def _decode(self, token: str) -> dict[str, Any]:
        for key in self.keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=[ALGORITHM],
                    options={"require": ["exp", "aud"]},
                    audience=self.audience,
                    leeway=LEEWAY,
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise AuthError(AuthFailure.EXPIRED, "the token has expired") from None
            except (jwt.InvalidAudienceError, jwt.MissingRequiredClaimError) as exc:
                if isinstance(exc, jwt.MissingRequiredClaimError) and exc.claim != "aud":
                    raise AuthError(AuthFailure.MALFORMED, "the token is not valid") from None
                raise AuthError(
                    AuthFailure.AUDIENCE,
                    f"the token is not for cluster {self.audience!r}; issue one with "
                    f"`scheduler token issue --cluster-id {self.audience}`",
                ) from None
            except jwt.InvalidTokenError:
                raise AuthError(AuthFailure.MALFORMED, "the token is not valid") from None
            return claims
        raise AuthError(AuthFailure.BAD_SIGNATURE, "the token's signature does not verify")


def _scopes(value: object) -> frozenset[Scope]:
    if not isinstance(value, str):
        return frozenset()
    granted: set[Scope] = set()
    for word in value.split():
        if word in _SCOPE_NAMES:
            granted |= IMPLIES[Scope(word)]
    return frozenset(granted)


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The token of an ``Authorization: Bearer`` header; AuthError if absent or malformed."""
    values = [value for name, value in headers if name.lower() == b"authorization"]
    if not values:
        raise AuthError(AuthFailure.MISSING, "no Authorization header; send 'Bearer <token>'")
    scheme, _, token = values[0].decode("latin-1").strip().partition(" ")
    if len(values) > 1 or scheme.lower() != "bearer" or not token.strip():
        raise AuthError(AuthFailure.MALFORMED, "the Authorization header is not 'Bearer <token>'")
    return token.strip()


def certificate_name(peercert: Mapping[str, Any] | None) -> str:
    """The subject CN of a verified client certificate; AuthError without one."""
    for rdn in (peercert or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName" and value:
                return str(value)
    raise AuthError(AuthFailure.CERTIFICATE, "the client certificate has no subject CN")


#: The subject ``OU`` that lets a client certificate announce seed hosts.
SEED_UNIT: Final = "seed"


def certificate_is_seed(peercert: Mapping[str, Any] | None) -> bool:
    """True if a verified client certificate's subject has ``OU=seed``."""
    return any(
        name == "organizationalUnitName" and value == SEED_UNIT
        for rdn in (peercert or {}).get("subject", ())
        for name, value in rdn
    )


@final
@attrs.frozen
class PeerGuard:
    """Authenticates a handshake on the peers' port: a token, a client certificate, or both."""

    verifier: TokenVerifier | None
    certificates: bool = False

    def authenticate(
        self, headers: Iterable[tuple[bytes, bytes]], peercert: Mapping[str, Any] | None
    ) -> Identity:
        """The identity the request proves; AuthError (HTTP 401) otherwise.

        With both a token and a certificate, a named token must name the
        certificate's CN.
        """
        cert_name = certificate_name(peercert) if self.certificates else None
        cert_seed = cert_name is not None and certificate_is_seed(peercert)
        if self.verifier is None:
            assert cert_name is not None
            return Identity(cert_name, via="certificate", seed=cert_seed)
        claims = self.verifier.verify(bearer_token(headers), Scope.HOST)
        if cert_name is not None and claims.subject not in (None, cert_name):
            raise AuthError(
                AuthFailure.CERTIFICATE, "the token and the client certificate name other hosts"
            )
        seed = cert_seed or Scope.SEED in claims.scopes
        if claims.subject is None and cert_name is not None:
            return Identity(cert_name, via="certificate", seed=seed)
        return Identity(claims.subject, via="token", seed=seed)


def check_credential_files(config: ServiceConfig) -> None:
    """Read every key, certificate and CA file the config names; ConfigError if one fails."""
    TokenVerifier.from_config(config)
    server_ssl_context(config, client_certificates=True)


def peer_guard(config: ServiceConfig, verifier: TokenVerifier | None) -> PeerGuard | None:
    """The peers' listener's guard; None when authentication is off."""
    certificates = config.tls_client_ca_file is not None
    if verifier is None and not certificates:
        return None
    return PeerGuard(verifier, certificates)


def server_ssl_context(
    config: ServiceConfig, *, client_certificates: bool
) -> ssl.SSLContext | None:
    """A server context for ``tls.cert_file``/``tls.key_file`` (None: TLS off).

    With ``client_certificates`` and ``tls.client_ca_file``, a client must present
    a certificate that chains to that CA. Unreadable files are a ConfigError.
    """
    if config.tls_cert_file is None or config.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("tls.cert_file", f"cannot load the certificate and key: {exc}") from exc
    if client_certificates and config.tls_client_ca_file is not None:
        try:
            context.load_verify_locations(config.tls_client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("tls.client_ca_file", f"cannot load the CA bundle: {exc}") from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


#: Admin paths answered to anyone, with any ``Host`` (probes use the pod's address).
OPEN_PATHS: Final = frozenset({"/healthz", "/readyz"})
#: The web console's page and files: no token (a browser cannot send one to load a
#: page, and they hold no data), but the ``Host`` check. What the page reads needs
#: ``admin:read`` like any other route.
CONSOLE_PAGES: Final = frozenset({"/", "/console/console.js", "/console/console.css"})
#: Routes a peer's ``host`` token may read as well as an ``admin:read`` one: the
#: cluster's members, which a peer reads to find its schedulers, and a member's lease.
PEER_READABLE: Final = frozenset({"/api/v1/schedulers", "/api/v1/lease"})
_LOOPBACK_NAMES: Final = frozenset({"localhost", "ip6-localhost"})


@final
@attrs.frozen
class AdminRefusal:
    """Why the admin API refuses a request, and the answer."""

    status: int
    message: str
    reason: str

    @property
    def headers(self) -> tuple[tuple[bytes, bytes], ...]:
        if self.status == 401:
            return ((b"www-authenticate", b'Bearer realm="scheduler-admin"'),)
        return ()


@final
@attrs.frozen
class AdminGuard:
    """The admin API's checks: the ``Host`` header, then the token's scope.

    ``allowed_hosts`` are names (lower case) the API answers to besides loopback
    names and IP literals; ``"*"`` allows any. DNS rebinding always carries the
    attacker's name, so an IP literal is safe to accept.
    """

    verifier: TokenVerifier | None
    allowed_hosts: frozenset[str] = frozenset()
    private_metrics: bool = False

    @classmethod
    def from_config(cls, config: ServiceConfig, verifier: TokenVerifier | None) -> AdminGuard:
        names = {name.lower().rstrip(".") for name in config.allowed_hosts}
        names.add(config.admin_host.strip("[]").lower())
        return cls(verifier, frozenset(names), config.private_metrics)

    def host_allowed(self, host: str | None) -> bool:
        if host is None or "*" in self.allowed_hosts:
            return True  # no Host header: not a browser (HTTP/1.0)
        name = host.strip().lower()
        if name.startswith("["):
            name = name[1:].partition("]")[0]
        elif name.count(":") == 1:
            name = name.partition(":")[0]
        name = name.rstrip(".")
        if name in _LOOPBACK_NAMES or name in self.allowed_hosts:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def check(
        self, method: str, path: str, headers: Iterable[tuple[bytes, bytes]]
    ) -> AdminRefusal | None:
        """None lets the request through; otherwise the refusal to send."""
        if path in OPEN_PATHS:
            return None
        headers = list(headers)
        refusal = self.check_host(headers)
        if refusal is not None:
            return refusal
        scope = self._needed(method, path)
        if scope is None or self.verifier is None:
            return None
        try:
            token = bearer_token(headers)
            if path in PEER_READABLE and scope is Scope.ADMIN_READ:
                self._verify_either(token, Scope.HOST, scope)
            else:
                self.verifier.verify(token, scope)
        except AuthError as exc:
            return AdminRefusal(exc.status, str(exc), exc.reason.value)
        return None

    def check_host(self, headers: Iterable[tuple[bytes, bytes]]) -> AdminRefusal | None:
        """The ``Host`` check alone: None lets the request through."""
        hosts = [value.decode("latin-1") for name, value in headers if name.lower() == b"host"]
        host = hosts[0] if hosts else None
        if self.host_allowed(host):
            return None
        return AdminRefusal(
            403,
            f"Host {host!r} is not allowed; add it to auth.allowed_hosts (--allowed-host)",
            "host",
        )

    def _verify_either(self, token: str, first: Scope, second: Scope) -> None:
        assert self.verifier is not None
        try:
            self.verifier.verify(token, first)
        except AuthError as exc:
            if exc.reason is not AuthFailure.SCOPE:
                raise
            self.verifier.verify(token, second)

    def _needed(self, method: str, path: str) -> Scope | None:
        if path == "/metrics":
            return Scope.ADMIN_READ if self.private_metrics else None
        if path in CONSOLE_PAGES and method == "GET":
            return None
        return Scope.ADMIN_READ if method in ("GET", "HEAD") else Scope.ADMIN_WRITE
