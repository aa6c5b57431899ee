"""The task ledger (the README's TaskManager): tasks are created by their first peer."""

from __future__ import annotations

from collections import Counter
from typing import ClassVar, Final, final

from ._events import Event, Eviction, Expiry, TaskCreated
from ._ledger import Ledger, PeerCascade
from ._lifecycle import PeerState, TaskEvent, TaskState, task_transition
from ._model import Peer, RecordKind, Task, TaskInfo
from ._policy import PolicySet

#: Distinct size claims a task counts confirmations for; a further one is not counted.
MAX_SIZE_CLAIMS: Final = 8


@final
class TaskLedger(Ledger[Task]):
    """Tasks by id, with live counts per state."""

    kind: ClassVar[RecordKind] = RecordKind.TASK
    #: Whose records go when a task goes (set once by the facade: the peer ledger).
    peers: PeerCascade

    def __init__(self, policies: PolicySet, *, now: float, sweep_interval: float) -> None:
        super().__init__(policies, now=now, sweep_interval=sweep_interval)
        self._states: Counter[TaskState] = Counter()
        #: Live tasks by the host whose peer created them, and the reverse.
        self._by_creator: dict[str, set[str]] = {}
        self._creator_of: dict[str, str] = {}

    def created_by(self, host_id: str) -> int:
        """O(1): live tasks that a peer of ``host_id`` created."""
        return len(self._by_creator.get(host_id, ()))

    def counts_by_state(self) -> dict[TaskState, int]:
        return {state: self._states[state] for state in TaskState if state is not TaskState.LEAVE}

    def expiry(self, record: Task, now: float) -> Expiry | None:
        return self.policies.task_expiry(record, self.view, now)

    # --- mutations (the peer ledger calls these; it validated everything first) ---------

    def obtain(
        self, info: TaskInfo, now: float, back_to_source_limit: int, creator: str
    ) -> tuple[Task, list[Event]]:
        """The task ``info`` names, created if new (by a peer of host ``creator``).

        A known task whose size is unconfirmed and unknown takes the claim as its
        size. The caller schedules the task once its new peer is indexed.
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
            self._creator_of[task.id] = creator
            self._by_creator.setdefault(creator, set()).add(task.id)
            return task, [TaskCreated(task.id, now)]
        if not task.size_confirmed:
            if task.content_length < 0 <= info.content_length:
                task.content_length = info.content_length
            if task.total_piece_count < 0 <= info.total_piece_count:
                task.total_piece_count = info.total_piece_count
        task.updated_at = now
        return task, []

    def confirm_size(self, task: Task, peer: Peer) -> None:
        """``peer`` finished: if it holds every piece of its claim, the claim gets a vote.

        The task's size becomes the claim with the most votes (the earlier one on a tie).
        """
        if peer.total_piece_count < 0 or len(peer.finished_pieces) != peer.total_piece_count:
            return
        claim = (peer.content_length, peer.total_piece_count)
        votes = task.size_votes
        if claim not in votes and len(votes) >= MAX_SIZE_CLAIMS:
            return
        votes[claim] = votes.get(claim, 0) + 1
        current = (task.content_length, task.total_piece_count)
        # Once confirmed, the current size is a claim with votes.
        if not task.size_confirmed or votes[claim] > votes[current]:
            task.content_length, task.total_piece_count = claim
            task.size_confirmed = True

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
        creator = self._creator_of.pop(task.id)
        created = self._by_creator[creator]
        created.discard(task.id)
        if not created:
            del self._by_creator[creator]
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
            by_host = Counter(
                p.host_id
                for p in self.peers.of_task(task.id)
                if p.state is PeerState.BACK_TO_SOURCE
            )
            if by_host.total() != task.back_to_source_count:
                problems.append(f"task {task.id}: back_to_source_count {task.back_to_source_count}")
            if by_host != task.back_to_source_by_host:
                problems.append(f"task {task.id}: back-to-source peers by host disagree")
        counts = Counter(t.state for t in self._records.values())
        if +counts != +self._states:
            problems.append(f"task state counts {dict(self._states)} != {dict(counts)}")
        by_creator: dict[str, set[str]] = {}
        for task_id, creator in self._creator_of.items():
            by_creator.setdefault(creator, set()).add(task_id)
        if set(self._creator_of) != set(self._records) or by_creator != self._by_creator:
            problems.append("tasks-by-creator index disagrees with the task records")
        return problems
