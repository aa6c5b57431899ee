"""TLS on both listeners, client certificates, and the client over ``wss://``.

A throwaway CA from trustme signs the server's certificate (for 127.0.0.1 and
localhost) and the clients'; every handshake is a real one on loopback.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from pathlib import Path

import attrs
import pytest
import trio
import trustme

from scheduler.client import (
    ConnectError,
    PeerConfig,
    RequestError,
    client_ssl_context,
    fetch_hosts,
    open_scheduler_session,
    run_peer,
)
from scheduler.core import ConfigError
from scheduler.protocol import HostPayload
from scheduler.service import SchedulerService, ServiceConfig
from scheduler.service._auth import Scope, issue_token
from tests.service_support import LOOPBACK, serving

KEY = b"k" * 32


@attrs.frozen
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path
    ca: trustme.CA
    root: Path

    def client(self, name: str) -> tuple[Path, Path]:
        """A client certificate whose subject CN is ``name``, and its key."""
        leaf = self.ca.issue_cert(f"{name}.clients.invalid", common_name=name)
        cert, key = self.root / f"{name}.pem", self.root / f"{name}.key"
        cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        key.write_bytes(leaf.private_key_pem.bytes())
        return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = root / "ca.pem", root / "server.pem", root / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(key_file))
    return Pki(ca_file, cert_file, key_file, ca, root)


def tls_config(pki: Pki, **extra: object) -> ServiceConfig:
    return attrs.evolve(
        LOOPBACK, tls_cert_file=str(pki.cert_file), tls_key_file=str(pki.key_file), **extra
    )


def host(hostname: str = "alpha") -> HostPayload:
    return HostPayload(hostname=hostname, ip="10.0.0.1", port=8002, download_port=8001)


async def test_the_peers_listener_speaks_wss(pki: Pki) -> None:
    context = client_ssl_context(pki.ca_file)
    with trio.fail_after(20):
        async with serving(tls_config(pki)) as live:
            assert live.ws_url.startswith("wss://127.0.0.1:")
            async with open_scheduler_session(
                live.ws_url, host(), interval=None, ssl_context=context
            ) as session:
                assert session.host_id == "10.0.0.1-alpha"
                assert await session.leave(ack_timeout=5)


async def test_a_client_that_does_not_trust_the_ca_or_speaks_plain_ws_fails(pki: Pki) -> None:
    with trio.fail_after(20):
        async with serving(tls_config(pki, announce_timeout=1.0)) as live:
            with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                async with open_scheduler_session(
                    live.ws_url, host(), interval=None, ssl_context=ssl.create_default_context()
                ):
                    pass  # pragma: no cover
            plain = live.ws_url.replace("wss://", "ws://")
            with pytest.raises(ConnectError):
                async with open_scheduler_session(plain, host(), interval=None, connect_timeout=5):
                    pass  # pragma: no cover
            assert live.service.state.host_count() == 0


async def test_the_admin_listener_speaks_https_with_tokens(pki: Pki, tmp_path: Path) -> None:
    key_file = tmp_path / "token.key"
    key_file.write_bytes(KEY)
    config = tls_config(pki, auth_key_file=str(key_file))
    read = issue_token(KEY, scopes=[Scope.ADMIN_READ])
    with trio.fail_after(20):
        async with serving(config) as live:
            assert live.admin_url.startswith("https://127.0.0.1:")
            hosts = await trio.to_thread.run_sync(
                lambda: fetch_hosts(live.admin_url, token=read, ca_file=str(pki.ca_file))
            )
            assert hosts == []

            def untrusted() -> None:
                urllib.request.urlopen(f"{live.admin_url}/healthz", timeout=5)

            with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
                await trio.to_thread.run_sync(untrusted)


async def test_client_certificates_are_required_and_name_the_host(pki: Pki) -> None:
    config = tls_config(pki, tls_client_ca_file=str(pki.ca_file))
    alpha_cert, alpha_key = pki.client("alpha")
    with_cert = client_ssl_context(pki.ca_file, alpha_cert, alpha_key)
    without = client_ssl_context(pki.ca_file)
    with trio.fail_after(20):
        async with serving(config) as live:
            # TLS 1.3: the server checks the client's certificate after the client's
            # handshake is done, so the refusal shows as a connection that ends.
            with pytest.raises(ConnectError):
                async with open_scheduler_session(
                    live.ws_url, host(), interval=None, ssl_context=without, connect_timeout=2
                ):
                    pass  # pragma: no cover
            tls_failures = live.service.metrics.registry.get_sample_value(
                "scheduler_auth_failures_total", {"listener": "peers", "reason": "tls"}
            )
            assert tls_failures == 1
            with pytest.raises(RequestError) as info:
                async with open_scheduler_session(
                    live.ws_url, host("bravo"), interval=None, ssl_context=with_cert
                ):
                    pass  # pragma: no cover
            assert info.value.code == "forbidden"
            async with open_scheduler_session(
                live.ws_url, host(), interval=None, ssl_context=with_cert
            ) as session:
                assert session.host_id == "10.0.0.1-alpha"
                assert await session.leave(ack_timeout=5)


async def test_the_reference_peer_connects_over_wss_with_a_token_file(
    pki: Pki, tmp_path: Path
) -> None:
    key_file = tmp_path / "token.key"
    key_file.write_bytes(KEY)
    config = tls_config(pki, auth_key_file=str(key_file))
    with trio.fail_after(20):
        async with serving(config) as live:
            peer = PeerConfig(
                scheduler_url=live.ws_url,
                hostname="alpha",
                port=8002,
                download_port=8001,
                token=issue_token(KEY, hostname="alpha"),
                ca_file=str(pki.ca_file),
            )
            assert peer.token is not None
            assert peer.token not in repr(peer)  # never printed
            shutdown = trio.Event()
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    lambda task_status: run_peer(peer, shutdown=shutdown, task_status=task_status)
                )
                assert live.service.state.has_host("127.0.0.1-alpha")
                shutdown.set()
            assert not live.service.state.has_host("127.0.0.1-alpha")


def test_unreadable_tls_files_stop_start_up(pki: Pki, tmp_path: Path) -> None:
    missing = attrs.evolve(tls_config(pki), tls_key_file=str(tmp_path / "nope.key"))

    async def build() -> None:
        SchedulerService(missing)

    with pytest.raises(ConfigError, match=r"tls\.cert_file"):
        trio.run(build)
    with pytest.raises(ValueError, match="cannot load the CA file"):
        client_ssl_context(tmp_path / "nope.pem")
    with pytest.raises(ValueError, match="needs its certificate"):
        client_ssl_context(pki.ca_file, key_file=pki.key_file)
