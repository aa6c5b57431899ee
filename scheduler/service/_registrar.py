"""The service's membership in the cluster registry: register, renew, leave.

psycopg is blocking, so each registry call runs in a worker thread
(``trio.to_thread.run_sync``) bounded by a ``CapacityLimiter`` (the store's pool size).
Every call has three deadlines: the trio one here (``timeout``), and the store's own
(``connect_timeout``, the pool wait, ``statement_timeout``). A call the trio deadline
gives up on is abandoned; its thread ends by the store's deadlines and holds its limiter
token until then, so threads never pile up behind a dead database.

What the process believes is `LeaseKeeper`'s (``scheduler/registry/_lease.py``): a
lease counts from the moment the request was *sent*, by this process's clock, and a
renewal that failed extends nothing. `Registrar.holds_lease` is what ``/readyz`` and
``GET /api/v1/schedulers`` consult; ``registry_up`` is whether the last call got an
answer.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, final

import trio
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from ..registry import (
    Identity,
    Lease,
    LeaseKeeper,
    LeaseLost,
    Member,
    NameTaken,
    RegistryError,
    RegistryUnavailable,
    Roster,
    SchemaError,
    Step,
)
from ._logging import fields

if TYPE_CHECKING:
    from ..registry._store import MigrationReport

log = logging.getLogger("scheduler.registry")
T = TypeVar("T")

#: How many lease intervals the lease lasts.
LEASE_INTERVALS = 3


class Store(Protocol):
    """What the registrar needs of `scheduler.registry.RegistryStore` (blocking calls)."""

    def migrate(self) -> MigrationReport: ...
    def register(self, identity: Identity, lease: float, *, takeover: bool = True) -> Lease: ...
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
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.keeper = LeaseKeeper(interval, LEASE_INTERVALS * interval, uniform=uniform)
        self.identity: Identity | None = None
        #: Whether the last registry call got an answer (the ``registry_up`` gauge).
        self.up = False
        self._migrate = migrate
        self._owns_store = owns_store
        self._limiter = trio.CapacityLimiter(max_threads)
        self._progress = trio.Event()
        self._keeping = trio.CancelScope()
        self._roster: tuple[float, Roster] | None = None
        self.errors: Counter | None = None

    @property
    def lease(self) -> float:
        return self.keeper.lease

    def holds_lease(self) -> bool:
        """Whether this process may believe it is a member now (its own clock)."""
        return self.keeper.holds(trio.current_time())

    def register_metrics(self, registry: CollectorRegistry) -> None:
        """``registry_up`` (0/1) and ``scheduler_registry_errors_total{op,reason}``."""
        registry.register(_RegistryCollector(self))
        self.errors = Counter(
            "scheduler_registry_errors",
            "Registry calls that failed, by operation and reason",
            ["op", "reason"],
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
        """The cluster's active members, as last read, without the ones whose lease has
        run out since: each member's remaining lease (a duration, by the database's clock)
        counts from when the read was sent, by this process's clock."""
        if self._roster is None:
            return []
        sent_at, roster = self._roster
        now = trio.current_time()
        return [m for m in roster.members if sent_at + roster.remaining(m) > now]

    async def _read_roster(self, cluster_id: str) -> None:
        sent_at = trio.current_time()
        try:
            roster = await self.call(self.store.roster, cluster_id)
        except RegistryError as exc:
            self._count("roster", "unavailable")
            log.debug("registry roster read failed", extra=fields(error=str(exc)))
        else:
            self._roster = (sent_at, roster)

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
            await trio.sleep_until(wake)
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
                    lease = await self.call(self.store.renew, keeper.registration_id, keeper.lease)
                else:
                    lease = await self.call(
                        self.store.register, identity, keeper.lease, takeover=step is Step.REGISTER
                    )
            except LeaseLost as exc:
                self.up = True
                self._count(op, "lease_lost")
                log.warning("registry lease lost; rejoining", extra=fields(error=str(exc)))
                wake = keeper.lost(trio.current_time())
            except NameTaken as exc:
                self.up = True
                self._count(op, "name_taken")
                log.warning("registry name held by a newer process", extra=fields(error=str(exc)))
                wake = keeper.refused(trio.current_time())
            except RegistryError as exc:
                self.up = False
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
                self.up = True
                if step is not Step.RENEW:
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
