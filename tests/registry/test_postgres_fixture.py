"""The PostgreSQL fixture says in one line what it needs when it cannot run."""

from __future__ import annotations

import pytest

from tests.registry import postgres


def test_without_binaries_it_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCHEDULER_TEST_PG_BINDIR", raising=False)
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    monkeypatch.setattr(postgres.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(postgres.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(postgres.Unavailable) as missing:
        postgres.find_bindir()
    message = str(missing.value)
    assert "\n" not in message
    assert "apt install postgresql" in message
    assert "'.[postgres]'" in message


def test_as_root_without_an_unprivileged_user_it_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres.os, "geteuid", lambda: 0)

    def no_user(name: str) -> object:
        raise KeyError(name)

    monkeypatch.setattr(postgres.pwd, "getpwnam", no_user)
    with pytest.raises(postgres.Unavailable, match="refuses to run as root"):
        postgres._run_as()


def test_as_root_it_drops_to_the_postgres_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres.os, "geteuid", lambda: 0)
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None if name == "runuser" else name)
    entry = type("Entry", (), {"pw_uid": 101, "pw_gid": 104})()
    monkeypatch.setattr(postgres.pwd, "getpwnam", lambda name: entry)
    prefix, uid, gid = postgres._run_as()
    assert prefix[0] == "setpriv"
    assert (uid, gid) == (101, 104)
