"""What a client proves itself with: a bearer token, a CA to trust, a client certificate."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Final

#: Environment variables read when no flag gives a token.
TOKEN_ENV: Final = "SCHEDULER_TOKEN"
TOKEN_FILE_ENV: Final = "SCHEDULER_TOKEN_FILE"

__all__ = ["TOKEN_ENV", "TOKEN_FILE_ENV", "client_ssl_context", "resolve_token"]


def resolve_token(
    token: str | None = None,
    token_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """The bearer token to send: ``token``, else ``token_file``'s content, else the
    ``SCHEDULER_TOKEN`` / ``SCHEDULER_TOKEN_FILE`` variables; None when none is given.

    Raises :class:`ValueError` naming the file when it cannot be read or is empty.
    """
    env = os.environ if environ is None else environ
    if token is None and token_file is None:
        token, token_file = env.get(TOKEN_ENV) or None, env.get(TOKEN_FILE_ENV) or None
    if token is not None:
        return token.strip() or None
    if token_file is None:
        return None
    try:
        text = Path(token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read the token file {str(token_file)!r}: {exc.strerror}") from exc
    if not text:
        raise ValueError(f"the token file {str(token_file)!r} is empty")
    return text


def client_ssl_context(
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> ssl.SSLContext:
    """A context for ``wss://`` and ``https://``: trust ``ca_file`` (default: the system's
    CAs) and present ``cert_file``/``key_file`` when the server asks for a client certificate.

    Raises :class:`ValueError` naming the file that cannot be loaded.
    """
    try:
        context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the CA file {str(ca_file)!r}: {exc}") from exc
    if cert_file is not None:
        try:
            context.load_cert_chain(str(cert_file), None if key_file is None else str(key_file))
        except (OSError, ssl.SSLError) as exc:
            where = str(cert_file)
            raise ValueError(f"cannot load the client certificate {where!r}: {exc}") from exc
    elif key_file is not None:
        raise ValueError("a client key needs its certificate (cert_file)")
    return context
