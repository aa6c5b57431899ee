"""Routing in a cluster, without sockets: which scheduler owns a task, and ``moved``.

The client (`ClusterRoutes`) and the scheduler (`owner_elsewhere`) place a task by the
same rendezvous over the active members' names, so removing a member remaps only its
tasks; a scheduler answers ``register_peer`` for a task it does not own with ``moved``,
naming the owner, and applies nothing.
"""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from scheduler.client import ClusterRoutes, SchedulerMember
from scheduler.core import SchedulerState
from scheduler.policies import load_policies
from scheduler.protocol import ErrorCode, ErrorReply, Schedule, TaskPayload, decode_server, encode
from scheduler.rendezvous import rendezvous_owner
from scheduler.session import HostSessions, SessionLimits, SessionProtocol, owner_elsewhere

names = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12),
    min_size=2,
    max_size=8,
    unique=True,
)
task_ids = st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=60, unique=True)


def member(
    name: str, lease: str | None = "2026-01-01T00:00:05+00:00", boot: str = "b1"
) -> SchedulerMember:
    return SchedulerMember(
        name=name,
        url=f"ws://{name}.example:8002/ws",
        lease_expires_at=lease,
        admin_url=f"http://{name}.example:8000",
        boot_id=boot,
    )


@given(names, task_ids, st.data())
def test_losing_a_member_remaps_only_its_tasks(
    members: list[str], tasks: list[str], data: st.DataObject
) -> None:
    routes = ClusterRoutes(member(n) for n in members)
    gone = data.draw(st.sampled_from(members))
    before = {t: routes.owner(t) for t in tasks}
    assert routes.lost(gone)
    after = {t: routes.owner(t) for t in tasks}
    for task in tasks:
        was, now = before[task], after[task]
        assert was is not None
        assert now is not None
        if was.name == gone:
            assert now.name != gone
        else:
            assert now == was  # nobody else's task moved
    # The client's owner is the scheduler's: the one rendezvous rule on both sides.
    for task in tasks:
        assert after[task] == routes.get(str(rendezvous_owner(task, routes.names)))


@given(names, task_ids)
def test_the_client_and_every_scheduler_agree_on_the_owner(
    members: list[str], tasks: list[str]
) -> None:
    routes = ClusterRoutes(member(n) for n in members)
    urls = {n: member(n).url for n in members}
    for task in tasks:
        owner = routes.owner(task)
        assert owner is not None
        for me in members:
            elsewhere = owner_elsewhere(task, me, urls)
            if me == owner.name:
                assert elsewhere is None
            else:
                assert elsewhere == (owner.name, owner.url)


def test_a_scheduler_that_does_not_see_itself_owns_everything() -> None:
    urls = {"s0": "ws://s0/ws", "s1": "ws://s1/ws"}
    assert all(owner_elsewhere(f"t{i}", "s9", urls) is None for i in range(50))
    assert all(owner_elsewhere(f"t{i}", "s0", {}) is None for i in range(50))


def test_a_lost_member_stays_out_until_it_renews_or_restarts() -> None:
    routes = ClusterRoutes()
    assert routes.refreshed([member("s0"), member("s1")]) == ({"s0", "s1"}, set())
    generation = routes.generation
    assert routes.lost("s1")
    assert not routes.lost("s1")  # already out
    assert routes.names == ["s0"]
    assert routes.generation == generation + 1
    # The same row again (its lease has not run out yet, but it was not renewed): still out.
    assert routes.refreshed([member("s0"), member("s1")]) == (set(), set())
    assert routes.names == ["s0"]
    # Renewed: it is alive after all.
    renewed = member("s1", lease="2026-01-01T00:00:09+00:00")
    assert routes.refreshed([member("s0"), renewed]) == ({"s1"}, set())
    # Lost again, then restarted under the same name (a new boot_id): back.
    routes.lost("s1")
    assert routes.refreshed([member("s0"), member("s1", lease=renewed.lease_expires_at, boot="b2")])
    assert routes.names == ["s0", "s1"]
    # Lost, then gone from the list: forgotten, so a later listing is taken as it is.
    routes.lost("s1")
    routes.refreshed([member("s0")])
    assert routes.refreshed([member("s0"), member("s1")]) == ({"s1"}, set())


def test_a_member_without_a_lease_comes_back_at_the_next_refresh() -> None:
    routes = ClusterRoutes([member("solo", lease=None)])
    routes.lost("solo")
    assert routes.owner("t") is None
    assert routes.refreshed([member("solo", lease=None)]) == ({"solo"}, set())


def test_moved_carries_the_owner_and_round_trips() -> None:
    reply = ErrorReply(id=3, code=ErrorCode.MOVED, message="m", owner="s1", url="ws://s1/ws")
    text = encode(reply)
    assert orjson.loads(text) == {
        "type": "error",
        "id": 3,
        "code": "moved",
        "message": "m",
        "owner": "s1",
        "url": "ws://s1/ws",
    }
    assert decode_server(text) == reply
    # Other errors keep their shape: no owner, no url.
    assert set(orjson.loads(encode(ErrorReply(id=1, code="not_found", message="x")))) == {
        "type",
        "id",
        "code",
        "message",
    }


LIMITS = SessionLimits(
    ping_interval=5.0, ping_timeout=4.0, announce_timeout=10.0, error_limit=1, error_window=10.0
)


def frame(message: dict[str, object]) -> str:
    return orjson.dumps(message).decode()


def test_register_peer_for_a_task_owned_elsewhere_is_moved_and_changes_nothing() -> None:
    state = SchedulerState(load_policies(), now=0.0)
    urls = {"s0": "ws://s0/ws", "s1": "ws://s1/ws", "s2": "ws://s2/ws"}
    session = SessionProtocol(
        state,
        HostSessions(state),
        LIMITS,
        opened_at=0.0,
        placement=lambda task_id: owner_elsewhere(task_id, "s0", urls),
    )
    host = {"hostname": "alpha", "ip": "10.0.0.1", "port": 8002, "download_port": 8001}
    session.receive(frame({"type": "announce_host", "id": 1, "host": host}), 0.0)
    urls_by_owner: dict[str, str] = {}
    for i in range(40):
        url = f"https://example.com/f{i}"
        owner = rendezvous_owner(TaskPayload(url=url).task_id, urls)
        assert owner is not None
        urls_by_owner.setdefault(owner, url)
    assert set(urls_by_owner) == set(urls)
    # Elsewhere, twice: more than error_limit, yet the session stays open.
    for request_id, name in ((2, "s1"), (3, "s2"), (4, "s1")):
        message = {
            "type": "register_peer",
            "id": request_id,
            "peer_id": f"p{request_id}",
            "task": {"url": urls_by_owner[name]},
        }
        outcome = session.receive(frame(message), 1.0)
        (reply,) = outcome.replies
        task_id = TaskPayload(url=urls_by_owner[name]).task_id
        assert reply == ErrorReply(
            id=request_id,
            code="moved",
            message=f"task {task_id} belongs to scheduler {name!r}",
            owner=name,
            url=urls[name],
        )
        assert outcome.close is None
        assert outcome.message_type == "register_peer"
    assert list(state.view.peers()) == []
    assert list(state.view.tasks()) == []
    # Here: registered and scheduled as ever.
    message = {
        "type": "register_peer",
        "id": 5,
        "peer_id": "p5",
        "task": {"url": urls_by_owner["s0"]},
    }
    (reply,) = session.receive(frame(message), 2.0).replies
    assert isinstance(reply, Schedule)
    assert state.has_peer("p5")
