"""The headers every answer of the admin listener carries: ``nosniff`` and a per-route CSP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

#: ``Content-Security-Policy`` per kind of answer. Nothing the API sends runs
#: script or loads anything; the SVG may carry inline styles. The console's page
#: runs its own script and style (no inline code) and talks to its own origin only;
#: it shows the graph from a ``blob:`` URL of an SVG it fetched with its token.
CSP: Final[Mapping[str, str]] = {
    "default": "default-src 'none'; frame-ancestors 'none'",
    "svg": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "console": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
}
#: Sent with every answer, refusals and errors included.
SECURITY_HEADERS: Final = ((b"x-content-type-options", b"nosniff"),)


def security_headers(csp: str = "default") -> tuple[tuple[bytes, bytes], ...]:
    """``nosniff`` and the ``Content-Security-Policy`` of :data:`CSP` ``[csp]``."""
    return (*SECURITY_HEADERS, (b"content-security-policy", CSP[csp].encode()))
