"""The task ledger (the README's TaskManager): tasks are created by their first peer."""

from __future__ import annotations

from collections import Counter
from typing import ClassVar, final

from ._events import Event, Eviction, Expiry, TaskCreated
from ._ledger import Ledger, PeerCascade
from ._lifecycle import PeerState, TaskEvent, TaskState, task_transition
from ._model import RecordKind, Task, TaskInfo
from ._policy import PolicySet


@final
class TaskLedger(Ledger[Task]):
    """Tasks by id, with live counts per state."""

    kind: ClassVar[RecordKind] = RecordKind.TASK
    #: Whose records go when a task goes (set once by the facade: the peer ledger).
    peers: PeerCascade

    def __init__(self, policies: PolicySet, *, now: float, sweep_interval: float) -> None:
        super().__init__(policies, now=now, sweep_interval=sweep_interval)
        self._states: Counter[TaskState] = Counter()

    def counts_by_state(self) -> dict[TaskState, int]:
        return {state: self._states[state] for state in TaskState if state is not TaskState.LEAVE}

    def expiry(self, record: Task, now: float) -> Expiry | None:
        return self.policies.task_expiry(record, self.view, now)

    # --- mutations (the peer ledger calls these; it validated everything first) ---------

    def obtain(
        self, info: TaskInfo, now: float, back_to_source_limit: int
    ) -> tuple[Task, list[Event]]:
        """The task ``info`` names, created if new; a known task learns its size if it lacked it.

        The caller schedules the task once its new peer is indexed.
        """
        task = self._records.get(info.id)
        if task is None:
            task = Task(
                id=info.id,
                url=info.url,
                piece_length=info.piece_length,
                content_length=info.content_length,
                total_piece_count=info.total_piece_count,
                created_at=now,
                updated_at=now,
                back_to_source_limit=back_to_source_limit,
            )
            self._add(task)
            self._states[task.state] += 1
            return task, [TaskCreated(task.id, now)]
        if task.content_length < 0 <= info.content_length:
            task.content_length = info.content_length
        if task.total_piece_count < 0 <= info.total_piece_count:
            task.total_piece_count = info.total_piece_count
        task.updated_at = now
        return task, []

    def set_state(self, task: Task, state: TaskState) -> None:
        self._states[task.state] -= 1
        self._states[state] += 1
        task.state = state

    def touch(self, task: Task, now: float) -> None:
        """One of the task's peers changed, joined or left: ask the policies again."""
        task.updated_at = now
        self._schedule(task, now)

    def evict(
        self, record_id: str, reason: str, now: float, deadline: float | None = None
    ) -> list[Event]:
        """Evict the task and, first, its peers (reason ``task_evicted``)."""
        task = self.get(record_id)
        # Read before the cascade: each peer's eviction touches the task.
        last_contact = task.updated_at
        events = self.peers.evict_of_task(task.id, now)
        leave = task_transition(task.state, TaskEvent.LEAVE)
        self._states[task.state] -= 1
        task.state = leave
        self._forget(task.id)
        eviction = Eviction(
            kind=RecordKind.TASK,
            record_id=task.id,
            reason=str(reason),
            at=now,
            last_contact=last_contact,
            deadline=deadline,
            task_id=task.id,
        )
        self.policies.evicted(eviction)
        events.append(eviction)
        return events

    def _record_violations(self) -> list[str]:
        problems: list[str] = []
        for task in self._records.values():
            if task.state is TaskState.LEAVE:
                problems.append(f"task {task.id} is kept in state leave")
            bts = sum(p.state is PeerState.BACK_TO_SOURCE for p in self.peers.of_task(task.id))
            if bts != task.back_to_source_count:
                problems.append(f"task {task.id}: back_to_source_count {task.back_to_source_count}")
        counts = Counter(t.state for t in self._records.values())
        if +counts != +self._states:
            problems.append(f"task state counts {dict(self._states)} != {dict(counts)}")
        return problems
