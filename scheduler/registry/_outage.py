"""When renewals fail: a database outage for everyone, or this member cut off? Sans-IO.

A member whose renewals fail asks the other members it knows (their admin API, ``GET
/api/v1/schedulers/self``) when the registry last answered them. Their answers decide:

* one of them got an answer *after* our own first failure ended: the database is up and
  this member is the one cut off (`Standing.CUT_OFF`): it goes not-ready when its lease
  runs out and stops claiming its name, as without probes;
* at least one answered and none got an answer since: the database is down for everyone
  that could be asked, and nobody can register or take a name over while it is
  (`Standing.OUTAGE`): the member keeps serving on its last member list, marked stale;
* nobody answered, or only members that have not called the registry since our
  failures began: nothing is known yet, and the standing does not change.

Two rules keep a name from being served twice. ``OUTAGE`` is entered only on evidence
that the registry was down for the members asked from before this process's lease ran
out: after that, someone may have taken the name, and only the registry can say. And an
outage verdict lasts one lease from the last round that confirmed it: without fresh
answers for that long the member goes not-ready. ``CUT_OFF`` is left only when the registry answers.

Durations only: a peer says how long ago (by its clock) the registry last answered it,
and the answer is placed on our clock at the moment the round ended, the later (the
safer) end of when it can have been given.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Final, final

import attrs


class Standing(enum.Enum):
    """What a member believes about the registry (the ``standing`` of its lease probe)."""

    #: No outage believed: readiness is the lease's.
    NORMAL = "normal"
    #: The registry is down for every member that answered: serve on the stale roster.
    OUTAGE = "outage"
    #: Another member still gets answers: this one is cut off until the registry answers.
    CUT_OFF = "cut_off"


class Verdict(enum.Enum):
    """What one round of probes, or the registry itself, said."""

    #: Some member got an answer from the registry after our failures began.
    PEER_RENEWS = "peer_renews"
    #: Members answered, none got one since, and one has failed since before our
    #: lease ran out.
    NOBODY_RENEWS = "nobody_renews"
    #: The same, but their failures began after our lease ran out: too late to start
    #: serving stale (someone may have taken the name in between).
    NOBODY_RENEWS_LAPSED = "nobody_renews_lapsed"
    #: No member answered in time (or none to ask).
    NO_ANSWER = "no_answer"
    #: The last outage verdict is older than one lease.
    AGED = "aged"
    #: The registry answered us (a renewal, a registration, or a refusal).
    REGISTRY_ANSWERED = "registry_answered"


#: The transitions; a pair that is not here is illegal and raises, changing nothing.
TRANSITIONS: Final[dict[tuple[Standing, Verdict], Standing]] = {
    (Standing.NORMAL, Verdict.PEER_RENEWS): Standing.CUT_OFF,
    (Standing.NORMAL, Verdict.NOBODY_RENEWS): Standing.OUTAGE,
    (Standing.NORMAL, Verdict.NOBODY_RENEWS_LAPSED): Standing.NORMAL,
    (Standing.NORMAL, Verdict.NO_ANSWER): Standing.NORMAL,
    (Standing.NORMAL, Verdict.REGISTRY_ANSWERED): Standing.NORMAL,
    (Standing.OUTAGE, Verdict.PEER_RENEWS): Standing.CUT_OFF,
    (Standing.OUTAGE, Verdict.NOBODY_RENEWS): Standing.OUTAGE,
    (Standing.OUTAGE, Verdict.NOBODY_RENEWS_LAPSED): Standing.OUTAGE,
    (Standing.OUTAGE, Verdict.NO_ANSWER): Standing.OUTAGE,
    (Standing.OUTAGE, Verdict.AGED): Standing.NORMAL,
    (Standing.OUTAGE, Verdict.REGISTRY_ANSWERED): Standing.NORMAL,
    (Standing.CUT_OFF, Verdict.PEER_RENEWS): Standing.CUT_OFF,
    (Standing.CUT_OFF, Verdict.NOBODY_RENEWS): Standing.CUT_OFF,
    (Standing.CUT_OFF, Verdict.NOBODY_RENEWS_LAPSED): Standing.CUT_OFF,
    (Standing.CUT_OFF, Verdict.NO_ANSWER): Standing.CUT_OFF,
    (Standing.CUT_OFF, Verdict.REGISTRY_ANSWERED): Standing.NORMAL,
}


@final
class IllegalTransition(Exception):
    def __init__(self, standing: Standing, verdict: Verdict) -> None:
        self.standing = standing
        self.verdict = verdict
        super().__init__(f"no transition from {standing.value} on {verdict.value}")


@final
@attrs.frozen
class ProbeAnswer:
    """One member's answer to a lease probe, or its silence."""

    name: str
    #: True if it answered (in time, and proven under the cluster key when we hold one).
    answered: bool
    #: Seconds, by its clock, since the registry last answered it (None: never).
    registry_answered_ago: float | None = None
    #: Seconds since its current run of failed registry calls began (None: its last call
    #: was answered).
    registry_failing_for: float | None = None


def verdict_of(
    answers: Iterable[ProbeAnswer],
    *,
    ended_at: float,
    failing_since: float,
    believed_until: float | None,
) -> Verdict:
    """The verdict of one round of probes that ended at ``ended_at`` (our clock).

    ``failing_since`` is when the first of our current run of failed registry calls
    ended, ``believed_until`` when our lease belief ends (or ended; None: never held).

    * A member the registry answered after ``failing_since`` reaches it: `PEER_RENEWS`.
    * A member whose own calls have failed since before ``believed_until`` shows the
      registry down from before anyone could take our name: `NOBODY_RENEWS` (failing
      only since later: `NOBODY_RENEWS_LAPSED`).
    * A member whose last call was answered before our failures began says nothing yet:
      it has not tried since. With no other answer the verdict is `NO_ANSWER`.
    """
    failing_from: list[float] = []
    for answer in answers:
        if not answer.answered:
            continue
        ago = answer.registry_answered_ago
        if ago is not None and ended_at - ago > failing_since:
            return Verdict.PEER_RENEWS
        if answer.registry_failing_for is not None:
            # The answer was given before ended_at: the latest its failures can have begun.
            failing_from.append(ended_at - answer.registry_failing_for)
    if not failing_from:
        return Verdict.NO_ANSWER
    if believed_until is not None and min(failing_from) < believed_until:
        return Verdict.NOBODY_RENEWS
    return Verdict.NOBODY_RENEWS_LAPSED


@final
class OutageWatch:
    """A member's standing, moved by verdicts; ``lease`` bounds an unconfirmed outage."""

    def __init__(self, lease: float) -> None:
        if not lease > 0:
            raise ValueError(f"lease must be positive, got {lease!r}")
        self.lease = lease
        self.standing = Standing.NORMAL
        #: When the standing last changed, and when an outage was last confirmed.
        self.since: float | None = None
        self.confirmed_at: float | None = None

    def apply(self, now: float, verdict: Verdict) -> Standing | None:
        """Take ``verdict`` at ``now``; returns the new standing if it changed.

        An outage unconfirmed for a lease ages first (`Verdict.AGED`), so a late
        verdict cannot extend it.
        """
        before = self.standing
        if verdict is not Verdict.AGED and self.aged(now):
            self._move(now, Verdict.AGED)
        self._move(now, verdict)
        return None if self.standing is before else self.standing

    def _move(self, now: float, verdict: Verdict) -> None:
        new = TRANSITIONS.get((self.standing, verdict))
        if new is None:
            raise IllegalTransition(self.standing, verdict)
        if new is not self.standing:
            self.since = now
        self.standing = new
        if new is not Standing.OUTAGE:
            self.confirmed_at = None
        elif verdict in (Verdict.NOBODY_RENEWS, Verdict.NOBODY_RENEWS_LAPSED):
            self.confirmed_at = now

    def aged(self, now: float) -> bool:
        """Whether an outage went unconfirmed for more than a lease (apply `Verdict.AGED`)."""
        return (
            self.standing is Standing.OUTAGE
            and self.confirmed_at is not None
            and now - self.confirmed_at > self.lease
        )

    def serving_stale(self, now: float) -> bool:
        """Whether the member serves on its stale roster at ``now`` (ready without a lease)."""
        return self.standing is Standing.OUTAGE and not self.aged(now)
