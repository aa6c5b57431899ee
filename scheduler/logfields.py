"""Structured fields on a log line, for the scheduler and for plugins.

``scheduler serve`` writes each record as one ``key=value`` line or one JSON object
(``--log-format``); the fields given with :func:`log_fields` become those pairs,
escaped like everything a client sent::

    import logging
    from scheduler import log_fields

    log = logging.getLogger("scheduler.plugins.quarantine")
    log.info("host quarantined", extra=log_fields(host_id=host.id, failures=3))

Put client-supplied text (ids, hostnames, reasons) in fields, never in the message.
Imports nothing; no I/O.
"""

from __future__ import annotations

from typing import Any, Final

#: The ``LogRecord`` attribute the formatters read the fields from.
FIELDS: Final = "fields"


def log_fields(**values: Any) -> dict[str, Any]:
    """The ``extra`` of a logging call that carries ``values`` as fields."""
    return {FIELDS: values}
