"""The service's membership in the cluster registry: register, renew, leave.

psycopg is blocking, so each registry call runs in a worker thread
(``trio.to_thread.run_sync``) bounded by a ``CapacityLimiter`` (the store's pool size).
Every call has three deadlines: the trio one here (``timeout``), and the store's own
(``connect_timeout``, the pool wait, ``statement_timeout``). A call the trio deadline
gives up on is abandoned; its thread ends by the store's deadlines and holds its limiter
token until then, so threads never pile up behind a dead database.

What the process believes is `LeaseKeeper`'s (``scheduler/registry/_lease.py``): a
lease counts from the moment the request was *sent*, by this process's clock, and a
renewal that failed extends nothing. `Registrar.serving` is what ``/readyz`` consults;
``registry_up`` is whether the last call got an answer.

While its calls fail, a second task asks the other members (``GET /api/v1/lease``,
`probe_member`) when the registry last answered them, every ``interval / 2``, each
probe within ``timeout``; `OutageWatch` (``scheduler/registry/_outage.py``) decides
from the answers whether the registry is down for everyone (keep serving on the last
member list, marked stale) or this member is cut off (not ready once the lease ran out).

Every roster read is screened (``scheduler/registry/_trust.py``): rows that are unsafe,
or do not verify under the cluster key, are never listed; each is logged once.
"""

from __future__ import annotations

import datetime
import functools
import logging
import math
import random
import secrets
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar, final

import orjson
import trio
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from ..registry import (
    ClusterKeys,
    Identity,
    Lease,
    LeaseKeeper,
    LeaseLost,
    Member,
    NameTaken,
    OutageWatch,
    ProbeAnswer,
    RegistryError,
    RegistryUnavailable,
    Roster,
    SchemaError,
    Standing,
    Step,
    Verdict,
    screen,
    verdict_of,
)
from ._auth import Scope, issue_token
from ._logging import fields

if TYPE_CHECKING:
    from ..registry._store import MigrationReport

log = logging.getLogger("scheduler.registry")
T = TypeVar("T")

#: How many lease intervals the lease lasts.
LEASE_INTERVALS = 3
#: Members asked per round of lease probes (the first by name), and probes at once.
MAX_PROBED: Final = 16
PROBE_THREADS: Final = 4
#: The largest lease probe answer read.
MAX_PROBE_ANSWER: Final = 4096
#: Ignored rows remembered so that each is logged once.
MAX_REPORTED: Final = 1024
#: The admin route a member answers lease probes on.
LEASE_PATH: Final = "/api/v1/lease"


class Store(Protocol):
    """What the registrar needs of `scheduler.registry.RegistryStore` (blocking calls)."""

    def migrate(self) -> MigrationReport: ...
    def register(
        self,
        identity: Identity,
        lease: float,
        *,
        takeover: bool = True,
        rejoining_since: datetime.datetime | None = None,
    ) -> Lease: ...
    def renew(self, registration_id: int, lease: float) -> Lease: ...
    def offline(self, registration_id: int) -> bool: ...
    def roster(self, cluster_id: str) -> Roster: ...
    def close(self) -> None: ...


@final
class Registrar:
    """One process's registration: a task that keeps it, and the reads that depend on it."""

    def __init__(
        self,
        store: Store,
        *,
        interval: float,
        timeout: float,
        migrate: bool = True,
        max_threads: int = 2,
        owns_store: bool = False,
        uniform: Callable[[float, float], float] = random.uniform,
        keys: ClusterKeys | None = None,
        admin_key: bytes | None = None,
        probe: Callable[[str, str | None, str | None, float], dict[str, Any]] | None = None,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.keeper = LeaseKeeper(interval, LEASE_INTERVALS * interval, uniform=uniform)
        self.identity: Identity | None = None
        #: Whether the last registry call got an answer (the ``registry_up`` gauge).
        self.up = False
        #: The cluster key (rows are signed and screened with it), and the admin key
        #: that mints the token of lease probes.
        self.keys = keys
        self._admin_key = admin_key
        self._probe = probe or probe_member
        self.watch = OutageWatch(self.keeper.lease)
        #: Our clock: when the registry last answered, when a lease was last granted,
        #: and when the first failure of the current run of failed calls ended.
        self.answered_at: float | None = None
        self.renewed_at: float | None = None
        self.failing_since: float | None = None
        self._registered_at: datetime.datetime | None = None
        self._migrate = migrate
        self._owns_store = owns_store
        self._limiter = trio.CapacityLimiter(max_threads)
        self._probe_limiter = trio.CapacityLimiter(PROBE_THREADS)
        self._progress = trio.Event()
        self._failing = trio.Event()
        self._retry = trio.Event()
        self._keeping = trio.CancelScope()
        self._roster: tuple[float, Roster] | None = None
        self._reported: OrderedDict[int, None] = OrderedDict()
        #: After an outage: the stale list's members, listed until they register again.
        self._carried: tuple[Member, ...] = ()
        self._carried_until = -math.inf
        self.ignored_rows = 0
        self.errors: Counter | None = None
        self.probes: Counter | None = None
        self.rows_ignored: Counter | None = None

    @property
    def lease(self) -> float:
        return self.keeper.lease

    def holds_lease(self) -> bool:
        """Whether this process may believe it is a member now (its own clock)."""
        return self.keeper.holds(trio.current_time())

    @property
    def stale(self) -> bool:
        """Whether it serves on the member list read before the registry went down."""
        return self.watch.serving_stale(trio.current_time())

    def serving(self) -> bool:
        """Ready as a member: holding its lease, or riding out an outage of the registry
        that every member it could ask sees too (``/readyz``)."""
        return self.holds_lease() or self.stale

    def roster_age(self) -> float | None:
        """Seconds since the member list was read (None: never)."""
        return None if self._roster is None else trio.current_time() - self._roster[0]

    def lease_report(self, nonce: str | None = None) -> dict[str, Any]:
        """``GET /api/v1/lease``: whether and when this member last renewed, and when the
        registry last answered it (durations, by this process's clock). With a cluster
        key and a ``nonce`` the answer carries ``proof``, its HMAC under the key."""
        now = trio.current_time()

        def ago(t: float | None) -> float | None:
            return None if t is None else round(now - t, 3)

        identity = self.identity
        report: dict[str, Any] = {
            "name": None if identity is None else identity.name,
            "boot_id": None if identity is None else identity.boot_id,
            "registration_id": self.keeper.registration_id,
            "lease_held": self.keeper.holds(now),
            "standing": self.watch.standing.value,
            "renewed_ago": ago(self.renewed_at),
            "registry_answered_ago": ago(self.answered_at),
            "registry_failing_for": ago(self.failing_since),
            "nonce": nonce,
        }
        proof = None
        if nonce is not None and self.keys is not None:
            proof = self.keys.prove(nonce, _canonical(report))
        return report | {"proof": proof}

    def register_metrics(self, registry: CollectorRegistry) -> None:
        """``registry_up`` (0/1), ``scheduler_registry_lease_held``, the outage gauges,
        and the counters of errors, probes and ignored rows."""
        registry.register(_RegistryCollector(self))
        self.errors = Counter(
            "scheduler_registry_errors",
            "Registry calls that failed, by operation and reason",
            ["op", "reason"],
            registry=registry,
        )
        self.probes = Counter(
            "scheduler_registry_probes",
            "Lease probes of other members while the registry failed, by answer",
            ["answer"],
            registry=registry,
        )
        self.rows_ignored = Counter(
            "scheduler_registry_rows_ignored",
            "Registry rows never listed nor respected (unsafe, unsigned, bad signature), "
            "each counted once",
            ["reason"],
            registry=registry,
        )

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one blocking store call in a worker thread, within ``timeout``."""
        try:
            with trio.fail_after(self.timeout):
                return await trio.to_thread.run_sync(
                    functools.partial(function, *args, **kwargs),
                    limiter=self._limiter,
                    abandon_on_cancel=True,
                )
        except trio.TooSlowError:
            raise RegistryUnavailable(
                f"registry call did not answer within {self.timeout:g} s"
            ) from None

    def members(self) -> list[Member]:
        """The cluster's active members (see `listing`)."""
        return [member for member, _ in self.listing()]

    def listing(self) -> list[tuple[Member, bool]]:
        """The members to list, each with whether it is listed from a stale read.

        Normally: the members as last read, without the ones whose lease has run out
        since (each member's remaining lease, a duration by the database's clock, counts
        from when the read was sent, by this process's clock). While it serves on a stale
        list (`stale`): the whole list as last read, all stale. For one lease after an
        outage (ended by the registry's answer or another member's): the fresh list,
        plus the members of the stale one not registered again yet (stale), so that
        clients do not drop them meanwhile.
        """
        if self._roster is None:
            return []
        sent_at, roster = self._roster
        if self.stale:
            return [(m, True) for m in roster.members]
        now = trio.current_time()
        fresh = [(m, False) for m in roster.members if sent_at + roster.remaining(m) > now]
        if now < self._carried_until:
            names = {m.name for m, _ in fresh}
            fresh += [(m, True) for m in self._carried if m.name not in names]
            fresh.sort(key=lambda pair: pair[0].name)
        return fresh

    async def _read_roster(self, cluster_id: str) -> None:
        sent_at = trio.current_time()
        try:
            roster = await self.call(self.store.roster, cluster_id)
        except RegistryError as exc:
            self._count("roster", "unavailable")
            log.debug("registry roster read failed", extra=fields(error=str(exc)))
        else:
            screened = screen(roster.members, self.keys)
            self.ignored_rows = len(screened.ignored)
            for member, why in screened.ignored:
                self._report_ignored(member.registration_id, why.value, member)
            self._roster = (sent_at, Roster(roster.db_now, screened.accepted))

    def _report_ignored(self, registration_id: int, reason: str, member: Member | None) -> None:
        """Log and count an ignored row once (the last `MAX_REPORTED` are remembered)."""
        if registration_id in self._reported:
            return
        self._reported[registration_id] = None
        if len(self._reported) > MAX_REPORTED:
            self._reported.popitem(last=False)
        if self.rows_ignored is not None:
            self.rows_ignored.labels(reason).inc()
        described = {} if member is None else {"name": member.name, "url": member.url}
        log.warning(
            "registry row ignored: %s",
            reason,
            extra=fields(registration=registration_id, reason=reason, **described),
        )

    async def wait_progress(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds after some registry step (for tests and start-up)."""
        while not predicate():
            await self._progress.wait()

    def _stepped(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    def _count(self, op: str, reason: str) -> None:
        if self.errors is not None:
            self.errors.labels(op, reason).inc()

    async def run(
        self, identity: Identity, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Register, renew every interval, and retry with backoff; until `leave` or cancel.

        Reports started at once: the service serves its sessions whether or not the
        database answers. If cancelled while registered, it offlines (shielded, bounded),
        and closes the store if it owns it.
        """
        self.identity = identity
        task_status.started()
        try:
            with self._keeping:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._watch_outage, identity)
                    await self._keep(identity)
        finally:
            with trio.CancelScope(shield=True):
                await self._offline()
                if self._owns_store:
                    with trio.move_on_after(self.timeout):
                        await trio.to_thread.run_sync(self.store.close, abandon_on_cancel=True)

    async def leave(self) -> None:
        """Stop renewing and offline the registration, within ``timeout`` (graceful shutdown)."""
        self._keeping.cancel()
        await self._offline()

    async def _keep(self, identity: Identity) -> None:
        keeper = self.keeper
        wake = trio.current_time()
        migrated = not self._migrate
        while True:
            with trio.move_on_at(wake):
                await self._retry.wait()
            self._retry = trio.Event()
            sent_at = trio.current_time()
            step = keeper.step
            op = step.value
            try:
                if not migrated:
                    op = "migrate"
                    report = await self.call(self.store.migrate)
                    migrated = True
                    if report.applied:
                        log.info("registry migrated", extra=fields(applied=list(report.applied)))
                    op = step.value
                if step is Step.RENEW:
                    assert keeper.registration_id is not None
                    try:
                        lease = await self.call(
                            self.store.renew, keeper.registration_id, keeper.lease
                        )
                    except LeaseLost as exc:
                        # Still believing the old lease, ask for the name back at once: a
                        # row that proves nothing (or an expired one) does not take it.
                        self._count(op, "lease_lost")
                        log.warning("registry lease lost; rejoining", extra=fields(error=str(exc)))
                        op, step, sent_at = Step.REJOIN.value, Step.REJOIN, trio.current_time()
                        lease = await self._register(identity, takeover=False)
                else:
                    lease = await self._register(identity, takeover=step is Step.REGISTER)
            except NameTaken as exc:
                self._answered()
                self._count(op, "name_taken")
                log.warning("registry name held by a newer process", extra=fields(error=str(exc)))
                if keeper.step is Step.RENEW:
                    keeper.lost(trio.current_time())  # refused on the rejoin after a loss
                wake = keeper.refused(trio.current_time())
            except RegistryError as exc:
                if step is Step.REJOIN and keeper.step is Step.RENEW:
                    keeper.lost(trio.current_time())  # the rejoin after a loss failed
                self.up = False
                if self.failing_since is None:
                    self.failing_since = trio.current_time()
                    self._failing.set()
                self._count(op, "schema" if isinstance(exc, SchemaError) else "unavailable")
                wake = keeper.failed(trio.current_time())
                log.warning(
                    "registry %s failed; serving on, retrying",
                    op,
                    extra=fields(
                        error=str(exc),
                        retry_in=round(wake - trio.current_time(), 3),
                        lease_believed=self.holds_lease(),
                    ),
                )
            else:
                self._answered()
                self.renewed_at = sent_at
                if step is not Step.RENEW:
                    self._registered_at = lease.db_now
                    for forged in lease.forged:
                        self._report_ignored(forged, "name_held_by_unproven_row", None)
                    log.info(
                        "registered in the cluster",
                        extra=fields(
                            cluster=identity.cluster_id,
                            name=identity.name,
                            registration=lease.registration_id,
                            superseded=list(lease.superseded),
                            lease_expires_at=lease.lease_expires_at.isoformat(),
                        ),
                    )
                wake = keeper.succeeded(sent_at, lease)
                await self._read_roster(identity.cluster_id)
            self._stepped()

    async def _register(self, identity: Identity, *, takeover: bool) -> Lease:
        return await self.call(
            functools.partial(
                self.store.register,
                identity,
                self.keeper.lease,
                takeover=takeover,
                rejoining_since=None if takeover else self._registered_at,
            )
        )

    def _answered(self) -> None:
        """The registry answered: no outage to believe in any more."""
        now = trio.current_time()
        self.up = True
        self.answered_at = now
        self.failing_since = None
        if self._failing.is_set():
            self._failing = trio.Event()
        self._apply(now, Verdict.REGISTRY_ANSWERED)

    def _apply(self, now: float, verdict: Verdict) -> None:
        before = self.watch.standing
        changed = self.watch.apply(now, verdict)
        if changed is None:
            return
        if before is Standing.OUTAGE and self._roster is not None:
            self._carried = self._roster[1].members
            self._carried_until = now + self.keeper.lease
        what = {
            Standing.OUTAGE: "registry down for every member asked: serving on the stale "
            "member list",
            Standing.CUT_OFF: "registry unreachable from here while another member renews: "
            "not ready once the lease runs out",
            Standing.NORMAL: "registry outage over"
            if verdict is Verdict.REGISTRY_ANSWERED
            else "registry outage unconfirmed for a lease: not ready",
        }[changed]
        log.warning(
            what,
            extra=fields(
                standing=changed.value,
                was=before.value,
                verdict=verdict.value,
                roster_age=None if self._roster is None else round(now - self._roster[0], 3),
            ),
        )

    async def _watch_outage(self, identity: Identity) -> None:
        """While registry calls fail, probe the other members every ``interval / 2``."""
        while True:
            if self.failing_since is None:
                await self._failing.wait()
                continue
            await self._probe_round(identity)
            now = trio.current_time()
            if self.watch.aged(now):
                self._apply(now, Verdict.AGED)
            await trio.sleep(self.keeper.interval / 2)

    async def _probe_round(self, identity: Identity) -> None:
        failing_since = self.failing_since
        if failing_since is None:
            return
        others = [
            m
            for m in (() if self._roster is None else self._roster[1].members)
            if m.name != identity.name and m.admin_url
        ][:MAX_PROBED]
        answers: list[ProbeAnswer] = []
        if others:
            token = None
            if self._admin_key is not None:
                token = issue_token(
                    self._admin_key,
                    scopes=(Scope.ADMIN_READ,),
                    ttl=60,
                    cluster_id=identity.cluster_id,
                )
            async with trio.open_nursery() as nursery:
                for member in others:
                    nursery.start_soon(self._ask, member, token, answers)
        if self.failing_since != failing_since:
            return  # the registry answered meanwhile: the round says nothing
        now = trio.current_time()
        verdict = verdict_of(
            answers,
            ended_at=now,
            failing_since=failing_since,
            believed_until=self.keeper.believed_until,
        )
        before = self.watch.standing
        self._apply(now, verdict)
        if verdict is Verdict.PEER_RENEWS and before is not Standing.CUT_OFF:
            self._retry.set()  # someone reaches the registry: try again now
        self._stepped()

    async def _ask(self, member: Member, token: str | None, answers: list[ProbeAnswer]) -> None:
        assert member.admin_url is not None
        nonce = secrets.token_hex(16) if self.keys is not None else None
        answer = ProbeAnswer(member.name, answered=False)
        outcome = "no_answer"
        try:
            with trio.fail_after(self.timeout):
                report = await trio.to_thread.run_sync(
                    self._probe,
                    member.admin_url,
                    token,
                    nonce,
                    self.timeout,
                    limiter=self._probe_limiter,
                    abandon_on_cancel=True,
                )
        except (trio.TooSlowError, OSError, ValueError) as exc:
            log.debug("lease probe failed", extra=fields(member=member.name, error=str(exc)))
        else:
            answer, outcome = self._judge_answer(member, nonce, report)
        if self.probes is not None:
            self.probes.labels(outcome).inc()
        answers.append(answer)

    def _judge_answer(
        self, member: Member, nonce: str | None, report: dict[str, Any]
    ) -> tuple[ProbeAnswer, str]:
        silent = ProbeAnswer(member.name, answered=False)
        if report.get("name") != member.name or report.get("nonce") != nonce:
            return silent, "mismatch"
        if self.keys is not None:
            assert nonce is not None
            proof = report.get("proof")
            body = {k: v for k, v in report.items() if k != "proof"}
            if not isinstance(proof, str) or not self.keys.proven(nonce, _canonical(body), proof):
                return silent, "unproven"
        try:
            answered_ago = _duration(report.get("registry_answered_ago"))
            failing_for = _duration(report.get("registry_failing_for"))
        except ValueError:
            return silent, "malformed"
        outcome = "failing" if failing_for is not None else "answered"
        return ProbeAnswer(member.name, True, answered_ago, failing_for), outcome

    async def _offline(self) -> None:
        registration = self.keeper.registration_id
        if registration is None:
            return
        self.keeper.released()
        self._roster = None
        try:
            ended = await self.call(self.store.offline, registration)
        except RegistryError as exc:
            self.up = False
            self._count("offline", "unavailable")
            log.warning(
                "registry offline failed; the lease will run out by itself",
                extra=fields(error=str(exc), lease=self.keeper.lease),
            )
        else:
            self.up = True
            log.info("left the cluster", extra=fields(registration=registration, ended=ended))
        self._stepped()


def _duration(value: object) -> float | None:
    """A duration of a probe answer (None stays None); ValueError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected seconds, got {value!r}")  # noqa: TRY004 (one error kind)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"expected seconds, got {value!r}")
    return float(value)


def _canonical(report: dict[str, Any]) -> bytes:
    """The bytes a lease probe's ``proof`` covers: the answer without it, keys sorted."""
    return orjson.dumps(report, option=orjson.OPT_SORT_KEYS)


def probe_member(
    admin_url: str, token: str | None, nonce: str | None, timeout: float
) -> dict[str, Any]:
    """``GET {admin_url}/api/v1/lease``, blocking, each socket wait within ``timeout``.

    Raises OSError (unreachable, an HTTP error) or ValueError (not a JSON object).
    An ``https`` URL is verified against the system's trust store.
    """
    query = "" if nonce is None else "?" + urllib.parse.urlencode({"nonce": nonce})
    request = urllib.request.Request(admin_url.rstrip("/") + LEASE_PATH + query)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context() if admin_url.startswith("https:") else None
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        body = response.read(MAX_PROBE_ANSWER + 1)
    if len(body) > MAX_PROBE_ANSWER:
        raise ValueError(f"lease probe answer over {MAX_PROBE_ANSWER} bytes")
    payload = orjson.loads(body)
    if not isinstance(payload, dict):
        raise ValueError("lease probe answer is not a JSON object")  # noqa: TRY004
    return payload


@final
class _RegistryCollector(Collector):
    def __init__(self, registrar: Registrar) -> None:
        self._registrar = registrar

    def collect(self) -> Iterator[GaugeMetricFamily]:
        registrar = self._registrar
        yield GaugeMetricFamily(
            "registry_up",
            "1 if the last call to the cluster registry got an answer, else 0",
            value=int(registrar.up),
        )
        yield GaugeMetricFamily(
            "scheduler_registry_lease_held",
            "1 while this process believes its registry lease (renewed within the lease)",
            value=int(registrar.holds_lease()),
        )
        yield GaugeMetricFamily(
            "scheduler_registry_outage",
            "1 while the registry is down for every member asked and this process serves "
            "on its stale member list",
            value=int(registrar.stale),
        )
        yield GaugeMetricFamily(
            "scheduler_registry_cut_off",
            "1 while this process cannot reach the registry and another member can",
            value=int(registrar.watch.standing is Standing.CUT_OFF),
        )
        age = registrar.roster_age()
        yield GaugeMetricFamily(
            "scheduler_registry_roster_age_seconds",
            "Seconds since the member list was read from the registry",
            value=math.nan if age is None else age,
        )
        yield GaugeMetricFamily(
            "scheduler_registry_ignored_rows",
            "Rows of the last roster read that were not listed (unsafe or unproven)",
            value=registrar.ignored_rows,
        )
