"""What a registry row proves, sans-IO: safe text, and signatures under the cluster key.

Whoever can write the ``schedulers`` table can write any row. With ``cluster.key_file``
set, a member signs the row it registers with HMAC-SHA256 under the cluster key; the
signature covers every field a client acts on (cluster, name, boot, URLs, address,
ports) and the registration's id and time, which the database assigns, so a signature
cannot be moved to another row. Every reader of the roster keeps only the rows that
verify (`screen`), and a process deciding whether its name is held ignores a holder
that does not (`judge_holder`). Without a key nothing can be verified: rows are taken
as they are (docs/security.md, "The cluster registry").

Text from the database is checked whether or not a key is set: a name, cluster id or
boot id with control characters or whitespace, or a URL with ``user:password@``, is
never served to clients (`row_problem`).
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import hmac
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Final, final

import attrs
import orjson

from ._model import Identity, Member

#: The longest scheduler name, cluster id or boot id accepted.
MAX_NAME: Final = 128
#: The longest URL accepted (advertised or read back).
MAX_URL: Final = 2048
#: Prefix of a stored signature: the version of the signed encoding.
SIGNATURE_PREFIX: Final = "v1:"
_ROW_DOMAIN: Final = b"trio-p2p-scheduler registry row v1\0"
_PROBE_DOMAIN: Final = b"trio-p2p-scheduler lease probe v1\0"


class RowFault(enum.StrEnum):
    """Why a row read from the registry is ignored: the ``reason`` label of the metric."""

    #: A name, id or URL a client must not be handed (control characters, userinfo, ...).
    UNSAFE = "unsafe"
    #: No signature, and this process verifies signatures.
    UNSIGNED = "unsigned"
    #: A signature that does not verify under the cluster key(s).
    BAD_SIGNATURE = "bad_signature"


def text_problem(value: str, *, limit: int = MAX_NAME) -> str | None:
    """Why ``value`` may not be a name, cluster id or boot id; None if it may."""
    if not value:
        return "must not be empty"
    if len(value) > limit:
        return f"must be at most {limit} characters, got {len(value)}"
    if not value.isprintable() or any(c.isspace() for c in value):
        return f"must hold no control characters or whitespace, got {value!r}"
    return None


def url_problem(value: str, schemes: Sequence[str]) -> str | None:
    """Why ``value`` may not be an advertised URL of one of ``schemes``; None if it may."""
    if len(value) > MAX_URL:
        return f"must be at most {MAX_URL} characters"
    if not value.isascii() or not value.isprintable() or any(c.isspace() for c in value):
        return f"must be printable ASCII without whitespace, got {value!r}"
    parts = urllib.parse.urlsplit(value)
    if "@" in parts.netloc:
        return "must not carry user:password@ (peers' credentials travel in a header)"
    try:
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError as exc:
        return f"bad port in {value!r}: {exc}"
    if parts.scheme not in schemes or not parts.hostname:
        wanted = " or ".join(f"{s}://HOST[:PORT]/..." for s in schemes)
        return f"expected {wanted}, got {value!r}"
    return None


def row_problem(member: Member) -> str | None:
    """Why ``member`` (a row read back) may not be served to clients; None if it may."""
    for field in ("cluster_id", "name", "boot_id", "address"):
        problem = text_problem(
            getattr(member, field), limit=MAX_URL if field == "address" else MAX_NAME
        )
        if problem is not None:
            return f"{field} {problem}"
    problem = url_problem(member.url, ("ws", "wss"))
    if problem is None and member.admin_url is not None:
        problem = url_problem(member.admin_url, ("http", "https"))
    return None if problem is None else f"url {problem}"


def _timestamp(value: datetime.datetime) -> str:
    # PostgreSQL keeps microseconds: this text is the same when the row is read back.
    return value.astimezone(datetime.UTC).isoformat(timespec="microseconds")


def row_payload(
    identity: Identity, registration_id: int, registered_at: datetime.datetime
) -> bytes:
    """The bytes a row's signature covers (one encoding, for signing and verifying)."""
    return _ROW_DOMAIN + orjson.dumps(
        [
            identity.cluster_id,
            identity.name,
            identity.boot_id,
            identity.url,
            identity.admin_url,
            identity.address,
            identity.port,
            identity.admin_port,
            registration_id,
            _timestamp(registered_at),
        ]
    )


def member_identity(member: Member) -> Identity:
    """The identity a member row was registered with."""
    return Identity(
        cluster_id=member.cluster_id,
        name=member.name,
        boot_id=member.boot_id,
        url=member.url,
        address=member.address,
        port=member.port,
        admin_url=member.admin_url,
        admin_port=member.admin_port,
    )


@final
@attrs.frozen
class ClusterKeys:
    """The cluster key that signs (``cluster.key_file``), and every key that verifies
    (the signing key first, then ``cluster.previous_key_file`` during a rotation)."""

    signing: bytes = attrs.field(repr=False)
    previous: tuple[bytes, ...] = attrs.field(default=(), repr=False)

    @property
    def verifying(self) -> tuple[bytes, ...]:
        return (self.signing, *self.previous)

    def _mac(self, key: bytes, payload: bytes) -> str:
        return hmac.new(key, payload, hashlib.sha256).hexdigest()

    def sign(self, payload: bytes) -> str:
        return SIGNATURE_PREFIX + self._mac(self.signing, payload)

    def verifies(self, payload: bytes, signature: str | None) -> bool:
        if signature is None or not signature.startswith(SIGNATURE_PREFIX):
            return False
        mac = signature[len(SIGNATURE_PREFIX) :]
        # compare_digest on every key: the time taken does not say which key matched.
        return any([hmac.compare_digest(self._mac(key, payload), mac) for key in self.verifying])

    def sign_row(self, identity: Identity, registration_id: int, at: datetime.datetime) -> str:
        return self.sign(row_payload(identity, registration_id, at))

    def verifies_member(self, member: Member) -> bool:
        payload = row_payload(member_identity(member), member.registration_id, member.registered_at)
        return self.verifies(payload, member.signature)

    def prove(self, nonce: str, answer: bytes) -> str:
        """A proof that the answer to a lease probe with ``nonce`` comes from a key holder."""
        return self.sign(_PROBE_DOMAIN + nonce.encode() + b"\0" + answer)

    def proven(self, nonce: str, answer: bytes, proof: str | None) -> bool:
        return self.verifies(_PROBE_DOMAIN + nonce.encode() + b"\0" + answer, proof)


def fault(member: Member, keys: ClusterKeys | None) -> RowFault | None:
    """Why a reader ignores ``member``; None if it may be served."""
    if row_problem(member) is not None:
        return RowFault.UNSAFE
    if keys is None:
        return None
    if member.signature is None:
        return RowFault.UNSIGNED
    return None if keys.verifies_member(member) else RowFault.BAD_SIGNATURE


@final
@attrs.frozen
class Screened:
    """A roster split into the rows that may be served and the rows ignored."""

    accepted: tuple[Member, ...]
    ignored: tuple[tuple[Member, RowFault], ...]


def screen(members: Iterable[Member], keys: ClusterKeys | None) -> Screened:
    """Keep the members whose rows are safe and (with a key) signed under it."""
    accepted, ignored = [], []
    for member in members:
        why = fault(member, keys)
        if why is None:
            accepted.append(member)
        else:
            ignored.append((member, why))
    return Screened(tuple(accepted), tuple(ignored))


class HolderDecision(enum.Enum):
    """What a registration does about a live row holding its name."""

    #: End the holder and register (a takeover by a key holder, or today's keyless one).
    TAKE_OVER = "take_over"
    #: The holder proves nothing under our key: end it and register; report it.
    IGNORE_FORGED = "ignore_forged"
    #: The holder is a member this process may not displace: `NameTaken`.
    REFUSE = "refuse"


def judge_holder(
    holder: Member,
    keys: ClusterKeys | None,
    *,
    takeover: bool,
    rejoining_since: datetime.datetime | None = None,
) -> HolderDecision:
    """Whether a registration may end ``holder``, a live row of another process.

    * With a key: a holder that does not verify is no member (`IGNORE_FORGED`). A
      verified one is taken over on a first start (``takeover``: holding the key is the
      proof), never on a rejoin, except a holder registered *before* our own last
      registration (``rejoining_since``): nobody takes a name over with an older row, so
      it is an old row set active again by hand (`IGNORE_FORGED`).
    * Without a key nothing is proven: a signed holder (a member with the key) is never
      taken over; an unsigned one is, on a first start, as without signatures.
    """
    if keys is not None:
        if fault(holder, keys) is not None:
            return HolderDecision.IGNORE_FORGED
        if takeover:
            return HolderDecision.TAKE_OVER
        if rejoining_since is not None and holder.registered_at < rejoining_since:
            return HolderDecision.IGNORE_FORGED
        return HolderDecision.REFUSE
    if holder.signature is not None or not takeover:
        return HolderDecision.REFUSE
    return HolderDecision.TAKE_OVER
