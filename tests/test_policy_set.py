"""PolicySet: every hook gets what its spec names, answers combine as documented, and a
broken plugin is contained (counted, logged, reported) while the others still decide."""

from __future__ import annotations

import logging
import math
import types
from typing import Any

import pytest

from scheduler import hookimpl
from scheduler.core import (
    ConfigError,
    ContactSource,
    Eviction,
    Expiry,
    Host,
    HostInfo,
    Peer,
    PolicySet,
    RecordKind,
    ScheduleLimits,
    Task,
    Verdict,
    plugin_name,
)

VIEW: Any = object()  # PolicySet hands the view on untouched
INFO = HostInfo("alpha", "10.0.0.1")
HOST = Host(INFO.id, INFO, None, 0.0, 0.0, 0.0)
TASK = Task("t1", "", 1, -1, -1, 0.0, 0.0)
CHILD = Peer("child", "t1", INFO.id, 0.0, 0.0, 0.0)
P1 = Peer("p1", "t1", INFO.id, 0.0, 0.0, 0.0)
P2 = Peer("p2", "t1", INFO.id, 0.0, 0.0, 0.0)
P3 = Peer("p3", "t1", INFO.id, 0.0, 0.0, 0.0)
EVICTION = Eviction(RecordKind.HOST, INFO.id, "admin", 1.0, 0.0)
LIMITS = ScheduleLimits(candidate_parent_limit=2)


class Answers:
    """A plugin that answers every hook, taking every argument its spec names."""

    def __init__(self, name: str, **answers: Any) -> None:
        self.name = name
        self.answers = answers
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def _answer(self, hook: str, *args: Any) -> Any:
        self.calls.append((hook, args))
        answer = self.answers.get(hook)
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return answer(*args)
        return answer

    @hookimpl
    def scheduler_host_expiry(self, host: Host, view: Any, now: float) -> Any:
        return self._answer("host_expiry", host, view, now)

    @hookimpl
    def scheduler_peer_expiry(self, peer: Peer, view: Any, now: float) -> Any:
        return self._answer("peer_expiry", peer, view, now)

    @hookimpl
    def scheduler_task_expiry(self, task: Task, view: Any, now: float) -> Any:
        return self._answer("task_expiry", task, view, now)

    @hookimpl
    def scheduler_sweep(self, kind: RecordKind, view: Any, now: float) -> Any:
        return self._answer("sweep", kind, view, now)

    @hookimpl
    def scheduler_host_supersedes(self, host: Host, view: Any, now: float) -> Any:
        return self._answer("host_supersedes", host, view, now)

    @hookimpl
    def scheduler_schedule_limits(self) -> Any:
        return self._answer("schedule_limits")

    @hookimpl
    def scheduler_candidate_veto(self, child: Peer, parent: Peer, view: Any, now: float) -> Any:
        return self._answer("candidate_veto", child, parent, view, now)

    @hookimpl
    def scheduler_candidate_score(self, child: Peer, parent: Peer, view: Any, now: float) -> Any:
        return self._answer("candidate_score", child, parent, view, now)

    @hookimpl
    def scheduler_select_parents(
        self, child: Peer, candidates: list[Peer], view: Any, now: float
    ) -> Any:
        return self._answer("select_parents", child, candidates, view, now)

    @hookimpl
    def scheduler_proactive_push(
        self, child: Peer, lost_parent: Peer, view: Any, now: float
    ) -> Any:
        return self._answer("proactive_push", child, lost_parent, view, now)

    @hookimpl
    def scheduler_host_contact(self, host: Host, source: ContactSource, now: float) -> None:
        self._answer("host_contact", host, source, now)

    @hookimpl
    def scheduler_host_disconnected(self, host: Host, now: float) -> None:
        self._answer("host_disconnected", host, now)

    @hookimpl
    def scheduler_host_reconnected(self, host: Host, disconnected_for: float, now: float) -> None:
        self._answer("host_reconnected", host, disconnected_for, now)

    @hookimpl
    def scheduler_evicted(self, eviction: Eviction) -> None:
        self._answer("evicted", eviction)


class Recorder:
    """``on_error``: every contained failure, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, BaseException]] = []

    def __call__(self, plugin: str, hook: str, exc: BaseException) -> None:
        self.seen.append((plugin, hook, exc))

    def messages(self) -> list[tuple[str, str, str]]:
        return [(plugin, hook, str(exc)) for plugin, hook, exc in self.seen]


def policies(*plugins: object) -> tuple[PolicySet, Recorder]:
    """Plugins are called last registered first: pass them in the reverse of call order."""
    recorder = Recorder()
    return PolicySet.from_plugins(plugins, on_error=recorder), recorder


# --- every hook gets every argument -----------------------------------------------------------


def test_every_hook_gets_exactly_the_arguments_of_its_call() -> None:
    plugin = Answers(
        "all",
        host_expiry=Expiry(5.0, "h"),
        peer_expiry=Expiry(6.0, "p"),
        task_expiry=Expiry(7.0, "t"),
        sweep=[Verdict(RecordKind.TASK, "t1", "idle")],
        host_supersedes=["old"],
        schedule_limits=LIMITS,
        candidate_veto=None,
        candidate_score=1.5,
        select_parents=["p2"],
        proactive_push=True,
    )
    ps, recorder = policies(plugin)
    assert ps.host_expiry(HOST, VIEW, 1.0) == Expiry(5.0, "h")
    assert ps.peer_expiry(CHILD, VIEW, 2.0) == Expiry(6.0, "p")
    assert ps.task_expiry(TASK, VIEW, 3.0) == Expiry(7.0, "t")
    assert ps.sweep(RecordKind.TASK, VIEW, 4.0) == [Verdict(RecordKind.TASK, "t1", "idle")]
    assert ps.host_supersedes(HOST, VIEW, 5.0) == ["old"]
    assert ps.schedule_limits() == LIMITS
    assert ps.fit_candidates(CHILD, [P1], VIEW, 6.0) == [P1]
    assert ps.candidate_veto(CHILD, P1, VIEW, 7.0) is None
    assert ps.candidate_score(CHILD, P1, VIEW, 8.0) == 1.5
    assert ps.select_parents(CHILD, [P1, P2], VIEW, 9.0) == ["p2"]
    assert ps.proactive_push(CHILD, P1, VIEW, 10.0) is True
    ps.host_contact(HOST, ContactSource.PONG, 11.0)
    ps.host_disconnected(HOST, 12.0)
    ps.host_reconnected(HOST, 3.5, 13.0)
    ps.evicted(EVICTION)
    assert plugin.calls == [
        ("host_expiry", (HOST, VIEW, 1.0)),
        ("peer_expiry", (CHILD, VIEW, 2.0)),
        ("task_expiry", (TASK, VIEW, 3.0)),
        ("sweep", (RecordKind.TASK, VIEW, 4.0)),
        ("host_supersedes", (HOST, VIEW, 5.0)),
        ("schedule_limits", ()),
        ("candidate_veto", (CHILD, P1, VIEW, 6.0)),
        ("candidate_veto", (CHILD, P1, VIEW, 7.0)),
        ("candidate_score", (CHILD, P1, VIEW, 8.0)),
        ("select_parents", (CHILD, [P1, P2], VIEW, 9.0)),
        ("proactive_push", (CHILD, P1, VIEW, 10.0)),
        ("host_contact", (HOST, ContactSource.PONG, 11.0)),
        ("host_disconnected", (HOST, 12.0)),
        ("host_reconnected", (HOST, 3.5, 13.0)),
        ("evicted", (EVICTION,)),
    ]
    assert recorder.seen == []
    assert ps.errors == {}


def test_with_no_plugin_every_hook_has_its_neutral_answer() -> None:
    ps, _ = policies()
    assert ps.host_expiry(HOST, VIEW, 1.0) is None
    assert ps.sweep(RecordKind.HOST, VIEW, 1.0) == []
    assert ps.host_supersedes(HOST, VIEW, 1.0) == []
    assert ps.schedule_limits() == ScheduleLimits()
    candidates = [P1, P2]
    fit = ps.fit_candidates(CHILD, candidates, VIEW, 1.0)
    assert fit == candidates
    assert fit is not candidates
    assert ps.candidate_veto(CHILD, P1, VIEW, 1.0) is None
    assert ps.candidate_scores(CHILD, candidates, VIEW, 1.0) == [0.0, 0.0]
    assert ps.select_parents(CHILD, candidates, VIEW, 1.0) is None
    assert ps.proactive_push(CHILD, P1, VIEW, 1.0) is True


# --- containment ------------------------------------------------------------------------------


def test_a_raising_plugin_is_counted_per_call_logged_with_its_exception_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    boom = RuntimeError("boom")
    ps, recorder = policies(
        Answers("good", host_expiry=Expiry(9.0, "ok")), Answers("bad", host_expiry=boom)
    )
    with caplog.at_level(logging.ERROR, logger="scheduler.plugins"):
        assert ps.host_expiry(HOST, VIEW, 1.0) == Expiry(9.0, "ok")
        assert ps.host_expiry(HOST, VIEW, 2.0) == Expiry(9.0, "ok")
    assert ps.errors == {("bad", "scheduler_host_expiry"): 2}
    assert recorder.seen == [("bad", "scheduler_host_expiry", boom)] * 2
    assert (
        caplog.messages == ["plugin bad raised in scheduler_host_expiry; ignoring its answer"] * 2
    )
    record = caplog.records[0]
    assert record.exc_info is not None
    assert record.exc_info[0] is RuntimeError
    assert record.exc_info[1] is boom


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("soon", "expected Expiry or None, got 'soon'"),
        (Expiry(math.nan, "x"), "expected Expiry or None, got Expiry(at=nan, reason='x')"),
    ],
)
def test_a_malformed_expiry_is_contained_and_named(answer: object, message: str) -> None:
    ps, recorder = policies(
        Answers("good", task_expiry=Expiry(4.0, "ok")), Answers("bad", task_expiry=answer)
    )
    assert ps.task_expiry(TASK, VIEW, 1.0) == Expiry(4.0, "ok")
    assert recorder.messages() == [("bad", "scheduler_task_expiry", message)]


def test_the_earliest_expiry_wins_and_a_tie_keeps_the_first_answer() -> None:
    first = Answers("first", peer_expiry=Expiry(5.0, "first"))
    ps, _ = policies(
        Answers("later", peer_expiry=Expiry(9.0, "later")),
        Answers("tie", peer_expiry=Expiry(5.0, "tie")),
        first,
        Answers("none", peer_expiry=None),
    )
    assert ps.peer_expiry(CHILD, VIEW, 1.0) == Expiry(5.0, "first")


def test_list_answers_are_concatenated_and_a_malformed_one_is_dropped_alone() -> None:
    verdict = Verdict(RecordKind.HOST, "h1", "capacity")
    ps, recorder = policies(
        Answers("good", sweep=[verdict], host_supersedes=["a", "b"]),
        Answers("wrong_items", sweep=["h1"], host_supersedes=[3]),
        Answers("not_iterable", sweep=7, host_supersedes=ValueError("no")),
        Answers("also_good", sweep=(verdict,), host_supersedes=("c",)),
    )
    assert ps.sweep(RecordKind.HOST, VIEW, 1.0) == [verdict, verdict]
    assert ps.host_supersedes(HOST, VIEW, 1.0) == ["c", "a", "b"]
    assert recorder.messages() == [
        ("not_iterable", "scheduler_sweep", "'int' object is not iterable"),
        ("wrong_items", "scheduler_sweep", "expected items of type Verdict: ['h1']"),
        ("not_iterable", "scheduler_host_supersedes", "no"),
        ("wrong_items", "scheduler_host_supersedes", "expected items of type str: [3]"),
    ]
    assert isinstance(recorder.seen[1][2], TypeError)


def test_a_plugin_without_an_answer_leaves_the_list_to_the_others() -> None:
    # pluggy calls the last registered first: "silent" answers None before "later" speaks.
    ps, recorder = policies(
        Answers("later", host_supersedes=["x"]),
        Answers("silent"),
    )
    assert ps.host_supersedes(HOST, VIEW, 1.0) == ["x"]
    assert recorder.messages() == []


# --- scheduling hooks -------------------------------------------------------------------------


def test_the_first_plugin_with_limits_decides_them() -> None:
    ps, recorder = policies(
        Answers("second", schedule_limits=ScheduleLimits(candidate_parent_limit=3)),
        Answers("first", schedule_limits=LIMITS),
        Answers("bad", schedule_limits={"candidate_parent_limit": 1}),
    )
    assert ps.schedule_limits() == LIMITS
    assert recorder.messages() == [
        (
            "bad",
            "scheduler_schedule_limits",
            "expected ScheduleLimits or None, got {'candidate_parent_limit': 1}",
        )
    ]


def test_any_plugins_veto_removes_a_candidate_and_a_malformed_veto_removes_nothing() -> None:
    def veto_p2(child: Peer, parent: Peer, view: Any, now: float) -> str | None:
        return "too far" if parent.id == "p2" else None

    ps, recorder = policies(
        Answers("vetoer", candidate_veto=veto_p2),
        Answers("bad", candidate_veto=lambda c, p, v, n: 1 if p.id == "p1" else None),
    )
    assert ps.fit_candidates(CHILD, [P1, P2, P3], VIEW, 1.0) == [P1, P3]
    assert ps.candidate_veto(CHILD, P2, VIEW, 1.0) == "too far"
    assert ps.candidate_veto(CHILD, P1, VIEW, 1.0) is None
    assert recorder.messages() == [
        ("bad", "scheduler_candidate_veto", "expected str or None, got 1"),
        ("bad", "scheduler_candidate_veto", "expected str or None, got 1"),
    ]


def test_a_veto_from_a_plugin_after_a_malformed_one_still_counts() -> None:
    ps, _ = policies(
        Answers("vetoer", candidate_veto="busy"),
        Answers("bad", candidate_veto=["not", "a", "reason"]),
    )
    assert ps.fit_candidates(CHILD, [P1], VIEW, 1.0) == []
    assert ps.candidate_veto(CHILD, P1, VIEW, 1.0) == "busy"


def test_a_candidates_score_is_the_sum_of_every_plugins_finite_number() -> None:
    def by_parent(child: Peer, parent: Peer, view: Any, now: float) -> float | None:
        return {"p1": 1.0, "p2": 2, "p3": None}[parent.id]

    ps, recorder = policies(
        Answers("base", candidate_score=by_parent),
        Answers("raises", candidate_score=ZeroDivisionError("zero")),
        Answers("bonus", candidate_score=0.5),
        Answers("abstains", candidate_score=None),  # asked first: the others still score
    )
    assert ps.candidate_scores(CHILD, [P1, P2, P3], VIEW, 1.0) == [1.5, 2.5, 0.5]
    assert ps.candidate_score(CHILD, P2, VIEW, 1.0) == 2.5
    assert [(plugin, hook) for plugin, hook, _ in recorder.seen] == [
        ("raises", "scheduler_candidate_score")
    ] * 4
    assert ps.errors == {("raises", "scheduler_candidate_score"): 4}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (True, "expected a finite number, got True"),
        (math.inf, "expected a finite number, got inf"),
        (math.nan, "expected a finite number, got nan"),
        ("1", "expected a finite number, got '1'"),
    ],
)
def test_a_score_that_is_not_a_finite_number_is_contained(answer: object, message: str) -> None:
    ps, recorder = policies(
        Answers("good", candidate_score=2.0), Answers("bad", candidate_score=answer)
    )
    assert ps.candidate_scores(CHILD, [P1], VIEW, 1.0) == [2.0]
    assert recorder.messages() == [("bad", "scheduler_candidate_score", message)]


def test_the_first_plugins_selection_of_parents_wins() -> None:
    ps, recorder = policies(
        Answers("second", select_parents=["p3"]),
        Answers("first", select_parents=("p2", "p1")),
        Answers("no_opinion", select_parents=None),
    )
    assert ps.select_parents(CHILD, [P1, P2, P3], VIEW, 1.0) == ["p2", "p1"]
    assert recorder.seen == []


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("p1", "expected a sequence of peer ids, got one string"),
        (["p1", 2], "expected peer ids: ['p1', 2]"),
        (5, "'int' object is not iterable"),
    ],
)
def test_a_malformed_selection_is_contained_and_the_next_plugin_decides(
    answer: object, message: str
) -> None:
    ps, recorder = policies(
        Answers("good", select_parents=["p3"]), Answers("bad", select_parents=answer)
    )
    assert ps.select_parents(CHILD, [P1, P2, P3], VIEW, 1.0) == ["p3"]
    assert recorder.messages() == [("bad", "scheduler_select_parents", message)]


def test_a_push_is_off_if_any_plugin_says_so_and_every_plugin_is_asked() -> None:
    yes = Answers("yes", proactive_push=True)
    no = Answers("no", proactive_push=False)
    ps, recorder = policies(
        yes, Answers("bad", proactive_push="no"), no, Answers("none", proactive_push=None)
    )
    assert ps.proactive_push(CHILD, P1, VIEW, 1.0) is False
    assert len(yes.calls) == len(no.calls) == 1
    assert recorder.messages() == [
        ("bad", "scheduler_proactive_push", "expected bool or None, got 'no'")
    ]
    ps, _ = policies(yes, Answers("bad", proactive_push=0))
    assert ps.proactive_push(CHILD, P1, VIEW, 1.0) is True


def test_a_raising_notification_does_not_stop_the_others() -> None:
    first = Answers("first")
    ps, recorder = policies(
        first, Answers("raises", evicted=RuntimeError("x"), host_contact=RuntimeError("y"))
    )
    ps.evicted(EVICTION)
    ps.host_contact(HOST, ContactSource.ANNOUNCE, 1.0)
    assert [hook for hook, _ in first.calls] == ["evicted", "host_contact"]
    assert recorder.messages() == [
        ("raises", "scheduler_evicted", "x"),
        ("raises", "scheduler_host_contact", "y"),
    ]


# --- configuration ----------------------------------------------------------------------------


class Configurable:
    def __init__(self, name: str) -> None:
        self.name = name
        self.config: dict[str, Any] | None = None

    @hookimpl
    def scheduler_configure(self, config: dict[str, Any]) -> None:
        self.config = config


class ReplacesOld:
    name = "new"

    @hookimpl
    def scheduler_replaces(self) -> list[str]:
        return ["old"]


def test_settings_for_an_unknown_plugin_name_the_section() -> None:
    with pytest.raises(ConfigError) as info:
        PolicySet.from_plugins([Configurable("ttl")], config={"tll": {"x": 1}})
    assert str(info.value) == "plugins.tll: no plugin of that name is loaded"


def test_defaults_go_under_the_config_of_loaded_plugins_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ttl, old = Configurable("ttl"), Configurable("old")
    with caplog.at_level(logging.WARNING, logger="scheduler.plugins"):
        PolicySet.from_plugins(
            [ttl, old, ReplacesOld()],
            config={"ttl": {"ttl": 5}, "old": {"x": 1}},
            defaults={"ttl": {"ttl": 1, "grace": 2}, "old": {"y": 3}, "absent": {"z": 4}},
        )
    assert caplog.messages == [
        "settings in [plugins.old] have no effect: that plugin is disabled or replaced"
    ]
    assert ttl.config is not None
    assert ttl.config["ttl"] == {"ttl": 5, "grace": 2}
    assert "absent" not in ttl.config
    assert ttl.config["old"] == {"x": 1}  # the blocked plugin's own settings, no defaults
    assert old.config is None  # blocked: never configured


def test_defaults_alone_configure_a_plugin_with_no_section() -> None:
    ttl = Configurable("ttl")
    PolicySet.from_plugins([ttl], defaults={"ttl": {"grace": 2}})
    assert ttl.config == {"ttl": {"grace": 2}}


def test_a_plugins_name_is_its_name_attribute_else_its_module_or_class_name() -> None:
    assert plugin_name(Configurable("ttl")) == "ttl"
    module = types.ModuleType("my_policy")
    assert plugin_name(module) == "my_policy"

    class Unnamed:
        pass

    class OddName:
        name = 42

    assert plugin_name(Unnamed()) == "Unnamed"
    assert plugin_name(Unnamed) == "Unnamed"
    assert plugin_name(OddName()) == "OddName"
    assert plugin_name(OddName) == "OddName"


def test_a_raising_veto_is_counted_against_the_veto_hook_and_vetoes_nothing() -> None:
    ps, recorder = policies(Answers("raises", candidate_veto=LookupError("gone")))
    assert ps.fit_candidates(CHILD, [P1, P2], VIEW, 1.0) == [P1, P2]
    assert ps.errors == {("raises", "scheduler_candidate_veto"): 2}
    assert recorder.messages() == [("raises", "scheduler_candidate_veto", "gone")] * 2


# --- the batch score hook ---------------------------------------------------------------------


class BatchScores:
    """A plugin that scores every candidate of a decision in one call."""

    def __init__(self, name: str, answer: Any) -> None:
        self.name = name
        self.answer = answer
        self.calls: list[tuple[Peer, list[Peer], Any, float]] = []

    @hookimpl
    def scheduler_candidate_scores(
        self, child: Peer, candidates: list[Peer], view: Any, now: float
    ) -> Any:
        self.calls.append((child, list(candidates), view, now))
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer(candidates) if callable(self.answer) else self.answer


def test_batch_scores_are_asked_once_per_decision_and_summed_with_the_per_candidate_ones() -> None:
    def by_parent(scores: dict[str, float]) -> Any:
        return lambda candidates: tuple(scores[c.id] for c in candidates)  # any sequence

    first = BatchScores("first", by_parent({"p1": 1.0, "p2": 2.0, "p3": 3.0}))
    second = BatchScores("second", by_parent({"p1": 0.25, "p2": -1, "p3": 0.5}))  # ints count
    ps, recorder = policies(Answers("each", candidate_score=10.0), second, first)
    assert ps.candidate_scores(CHILD, [P1, P2, P3], VIEW, 4.0) == [11.25, 11.0, 13.5]
    assert first.calls == [(CHILD, [P1, P2, P3], VIEW, 4.0)]
    assert second.calls == [(CHILD, [P1, P2, P3], VIEW, 4.0)]
    assert ps.candidate_score(CHILD, P2, VIEW, 5.0) == 2.0 - 1 + 10.0
    assert first.calls[-1] == (CHILD, [P2], VIEW, 5.0)
    assert recorder.seen == []


def test_a_lone_batch_answer_is_the_score_and_the_plugins_list_is_left_alone() -> None:
    answer = [0.5, 0.75]
    ps, _ = policies(Answers("each", candidate_score=1.0), BatchScores("batch", answer))
    assert ps.candidate_scores(CHILD, [P1, P2], VIEW, 1.0) == [1.5, 1.75]
    assert answer == [0.5, 0.75]
    ps, _ = policies(BatchScores("batch", answer))
    scores = ps.candidate_scores(CHILD, [P1, P2], VIEW, 1.0)
    assert scores == answer
    assert scores is not answer


def test_a_batch_with_no_opinion_or_no_candidate_adds_nothing() -> None:
    ps, recorder = policies(BatchScores("abstains", None), Answers("each", candidate_score=2.0))
    assert ps.candidate_scores(CHILD, [P1, P2], VIEW, 1.0) == [2.0, 2.0]
    ps, recorder = policies(BatchScores("empty", lambda candidates: []))
    assert ps.candidate_scores(CHILD, [], VIEW, 1.0) == []
    assert recorder.seen == []


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ([1.0], "expected 2 scores, got 1: [1.0]"),
        ([1.0, 2.0, 3.0], "expected 2 scores, got 3: [1.0, 2.0, 3.0]"),
        ([1.0, math.nan], "expected finite numbers: [1.0, nan]"),
        ([math.inf, 1.0], "expected finite numbers: [inf, 1.0]"),
        ([True, 1.0], "expected finite numbers: [True, 1.0]"),
        ([1.0, "2"], "expected finite numbers: [1.0, '2']"),
        ("12", "expected a sequence of numbers, got '12'"),
        (b"12", "expected a sequence of numbers, got b'12'"),
        (3.0, "'float' object is not iterable"),
        (ZeroDivisionError("zero"), "zero"),
    ],
)
@pytest.mark.parametrize("bad_first", [False, True])
def test_a_bad_batch_is_ignored_whole_and_contained(
    answer: object, message: str, bad_first: bool
) -> None:
    bad, good = BatchScores("bad", answer), BatchScores("good", [1.0, 2.0])
    # The last registered is asked first: the others still score either way.
    ps, recorder = policies(good, bad) if bad_first else policies(bad, good)
    assert ps.candidate_scores(CHILD, [P1, P2], VIEW, 1.0) == [1.0, 2.0]
    assert recorder.messages() == [("bad", "scheduler_candidate_scores", message)]
    assert ps.errors == {("bad", "scheduler_candidate_scores"): 1}


def test_a_plugin_registered_or_removed_after_a_call_counts_from_the_next_call() -> None:
    """The calls made of a hook's implementations follow pluggy's list as it changes."""
    early = Expiry(5.0, "early")
    later = Answers("later", host_expiry=Expiry(9.0, "later"))
    ps, _ = policies(later)
    assert ps.host_expiry(HOST, VIEW, 0.0) == Expiry(9.0, "later")
    first = Answers("first", host_expiry=early)
    ps.pm.register(first, name="first")
    assert ps.host_expiry(HOST, VIEW, 0.0) == early
    ps.pm.unregister(first)
    assert ps.host_expiry(HOST, VIEW, 0.0) == Expiry(9.0, "later")
    ps.pm.register(Answers("again", host_expiry=early), name="again")
    assert ps.host_expiry(HOST, VIEW, 0.0) == early
