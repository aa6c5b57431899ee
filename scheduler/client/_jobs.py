"""Submit a preheat job to the admin API and follow it (``scheduler preheat``).

Synchronous, like the admin tables: it serves a one-shot command line call.
Every request has a deadline (``timeout``); the job itself finishes within the
scheduler's ``jobs.deadline``, so following it ends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from ._hosts import HostsFetchError, _get, quote_id

__all__ = ["fetch_job", "follow_job", "submit_preheat"]

#: Seconds between two reads of a job being followed.
FOLLOW_INTERVAL: Final = 0.5
#: Job states after which nothing changes.
FINISHED_STATES: Final = frozenset({"succeeded", "failed"})


def _object(url: str, body: bytes) -> dict[str, Any]:
    try:
        record = json.loads(body)
    except ValueError as exc:
        raise HostsFetchError(f"{url}: the body is not JSON: {exc}") from exc
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        raise HostsFetchError(f"{url}: expected a job object")
    return record


def submit_preheat(
    admin_url: str,
    request: Mapping[str, Any],
    *,
    timeout: float = 5.0,
    token: str | None = None,
    ca_file: str | None = None,
) -> dict[str, Any]:
    """``POST {admin_url}/api/v1/jobs`` with ``{"type": "preheat", **request}``: the job.

    Raises :class:`HostsFetchError` (its ``status`` the HTTP status: 400 for a bad
    field, 409 when no host matches, 429 when too many jobs are unfinished, 401/403
    for a missing ``admin:write`` token).
    """
    data = json.dumps({"type": "preheat", **request}).encode()
    url, body, _ = _get(
        admin_url, "jobs", {}, timeout, token=token, ca_file=ca_file, method="POST", data=data
    )
    return _object(url, body)


def fetch_job(
    admin_url: str,
    job_id: str,
    *,
    timeout: float = 5.0,
    token: str | None = None,
    ca_file: str | None = None,
) -> dict[str, Any]:
    """``GET {admin_url}/api/v1/jobs/{id}``: the job, each host's progress and failures."""
    url, body, _ = _get(
        admin_url, f"jobs/{quote_id(job_id)}", {}, timeout, token=token, ca_file=ca_file
    )
    return _object(url, body)


def follow_job(
    read: Callable[[], dict[str, Any]],
    on_update: Callable[[dict[str, Any]], None],
    *,
    interval: float = FOLLOW_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Read the job every ``interval`` seconds, calling ``on_update`` each time, until it
    has finished; return it."""
    while True:
        job = read()
        on_update(job)
        if job.get("state") in FINISHED_STATES:
            return job
        sleep(interval)
