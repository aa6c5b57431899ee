"""The settings of ``scheduler serve``: every one declared here, once.

Eleven TOML tables: ``[server]``, ``[liveness]``, ``[limits]``, ``[records]``, ``[gc]``,
``[jobs]``, ``[plugins]``, ``[log]``, ``[auth]``, ``[tls]`` and ``[cluster]``. Each setting is
also a ``serve`` flag and an environment variable ``SCHEDULER_<SECTION>_<KEY>``.
Precedence: flag > environment > file > default.

The ``[gc]`` keys ``host_ttl``, ``peer_ttl``, ``piece_timeout`` and
``task_idle_ttl`` are aliases of built-in policies' settings, and
``liveness.reconnect_grace`` is the ``disconnect_grace`` policy's setting: their
type, default and bounds come from the policy's declaration.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, final

import attrs

from ..core import DEFAULT_SWEEP_INTERVAL, ConfigError, RecordLimits
from ..jobs import JobLimits
from ..policies import (
    _announce_ttl,
    _disconnect_grace,
    _peer_lifetime,
    _peer_start,
    _task_idle,
)
from ..settings._section import PLUGIN_PREFIX, Section
from ..settings._setting import (
    Kind,
    Setting,
    boolean,
    choice,
    duration,
    integer,
    number,
    str_list,
    string,
)

ENV_PREFIX: Final = "SCHEDULER_"
#: Settings that no longer exist, and why. A file or an environment variable that still
#: sets one loads, with a one-line warning (``Resolved.deprecated``); a flag is an error.
REMOVED: Final[Mapping[str, str]] = {
    "server.inbox_size": "no longer used: each frame is handled as it is read, and a client "
    "that sends without reading is held back by TCP and dropped after liveness.send_timeout",
}
LOG_FORMATS: Final = ("text", "json")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
#: Where a value in force came from, lowest precedence first.
SOURCES: Final = ("default", "file", "env", "flag")

_GRACE = _disconnect_grace.SETTINGS["reconnect_grace"]


def _alias(section: Section, key: str, details: str = "") -> Setting:
    return section[key].alias(
        section.plugin_name, details=f"{details} Stored as `[{section.name}] {key}`.".strip()
    )


SERVER: Final = Section(
    "server",
    (
        string(
            "bind",
            "127.0.0.1",
            "address of the peers' WebSocket listener",
            metavar="ADDRESS",
            details="and of the admin listener unless `admin_bind` is set.",
        ),
        integer(
            "port",
            8002,
            "port of the peers' WebSocket listener (path `/ws`); 0 lets the OS pick one",
            minimum=0,
            maximum=65535,
        ),
        string(
            "admin_bind",
            None,
            "address of the admin HTTP listener",
            optional=True,
            unset="the value of bind",
            metavar="ADDRESS",
        ),
        integer(
            "admin_port",
            8000,
            "port of the admin HTTP listener; 0 lets the OS pick one",
            details="Must differ from `port` when both listeners share an address.",
            minimum=0,
            maximum=65535,
        ),
        integer(
            "max_sessions",
            10_000,
            "most WebSocket sessions open at once, handshakes in progress included",
            details="Past it, a handshake is rejected with HTTP 503 "
            '(`scheduler_handshake_rejections_total{status="503"}`) and the client '
            "should retry with backoff.",
            minimum=1,
        ),
        integer(
            "max_message_size",
            64 * 1024,
            "longest message a client may send, fragments together",
            unit="bytes",
            details=(
                "A longer message closes the session with 1009 (so does one of over 1,024 frames)."
            ),
            minimum=1,
        ),
        integer(
            "outbox_size",
            64,
            "unsolicited messages (pushed `schedule`, `fetch_task`) waiting to be sent "
            "on one session",
            details="Queueing one never blocks the scheduler; one more than this closes "
            "the session with 1008 (session end cause `outbox_overflow`): its client "
            "stopped reading.",
            minimum=1,
        ),
    ),
)

#: The policy's setting, described for the service (it also tells clients).
_GRACE_IN_LIVENESS: Final = attrs.evolve(
    _GRACE,
    help="evict a host whose session dropped without `leave_host` this long after",
    details="(reason `disconnected`), unless it announces again on a new session. "
    "Applied by the built-in `disconnect_grace` policy and sent to clients in "
    "`host_accepted`. `0` evicts at once.",
)


LIVENESS: Final = Section(
    "liveness",
    (
        duration(
            "ping_interval",
            2.5,
            "ping a session once it has been silent this long",
            details="(no frame, ping or pong from it); a busy session is never pinged. One "
            "timer task serves every session. A hung host is found at most "
            "`ping_interval + ping_timeout` (5.4 s by default) after its last frame. Sent to "
            "clients in `host_accepted`.",
            positive=True,
        ),
        duration(
            "ping_timeout",
            2.9,
            "drop a session that sends nothing within this long of a ping",
            details="Close 1001, end cause `ping_timeout`; its host becomes disconnected "
            "(unschedulable) at once.",
            positive=True,
        ),
        duration(
            "send_timeout",
            5,
            "bound on every send to a client",
            details="(replies, and the handshake's accept or reject). A send that takes "
            "longer drops the session: close 1001, cause `send_timeout`. A web console "
            "stream whose browser does not acknowledge an update within this long is "
            "closed with 4408.",
            positive=True,
        ),
        duration(
            "close_timeout",
            2,
            "bound on closing one connection",
            details="and on stopping the admin listener at shutdown.",
            positive=True,
        ),
        duration(
            "announce_timeout",
            10,
            "bound on the wait for the first `announce_host` after the handshake",
            details="A session that does not announce in time is closed with 1008, "
            "cause `announce_timeout`, and frees its slot (see `[limits]`).",
            positive=True,
        ),
        _GRACE_IN_LIVENESS,
        integer(
            "error_limit",
            20,
            "errors per `error_window` before a session is closed",
            details="A session that gets more `error` replies gets `too_many_errors` "
            "and is closed with 1008.",
            minimum=1,
        ),
        duration("error_window", 10, "the sliding window of `error_limit`", positive=True),
        duration(
            "shutdown_timeout",
            4,
            "on SIGINT or SIGTERM, wait this long for sessions to close",
            details="then stop anyway.",
            positive=True,
        ),
    ),
)

LIMITS: Final = Section(
    "limits",
    (
        integer(
            "max_connections",
            11_000,
            "most TCP connections open at once on the peers' port, before and after the handshake",
            details="Counted from the accept, so idle connections that never handshake "
            "cannot use up file descriptors unseen; keep it above `server.max_sessions` "
            "and below the process's file limit (`ulimit -n`). Past it a connection gets "
            "HTTP 503 and is closed at once "
            '(`scheduler_connection_rejections_total{reason="max_connections"}`).',
            minimum=1,
        ),
        integer(
            "max_connections_per_address",
            1_000,
            "most TCP connections open at once from one client address",
            details="Past it a connection gets HTTP 503 and is closed at once "
            '(`scheduler_connection_rejections_total{reason="address_connections"}`). '
            "Stops one address from filling `max_connections`; raise it for many hosts "
            "behind one NAT address.",
            minimum=1,
        ),
        integer(
            "max_sessions_per_address",
            1_000,
            "most WebSocket sessions open at once from one client address, handshakes "
            "in progress included",
            details="Past it a handshake is rejected with HTTP 503 "
            '(`scheduler_handshake_rejections_total{status="503"}`, '
            '`scheduler_connection_rejections_total{reason="address_sessions"}`). '
            "Stops one address from filling `server.max_sessions`.",
            minimum=1,
        ),
        duration(
            "handshake_timeout",
            5,
            "bound on reading the upgrade request of a new TCP connection and "
            "completing the WebSocket handshake",
            details="A connection that sends no complete request in time is closed "
            '(`scheduler_connection_rejections_total{reason="handshake_timeout"}`). '
            "Also the bound on a web console stream's first message (its hello).",
            positive=True,
        ),
        number(
            "message_rate",
            1_000,
            "how fast one session may send messages, on average",
            unit="messages per second",
            details="A token bucket of `message_burst` tokens refilled at this rate; a "
            "message finding it empty is answered `rate_limited` and changes nothing "
            "(`scheduler_rate_limited_total`).",
            positive=True,
        ),
        integer(
            "message_burst",
            2_000,
            "messages one session may send at once above `message_rate` (the bucket's size)",
            minimum=1,
        ),
        integer(
            "rate_violation_limit",
            100,
            "`rate_limited` replies per `liveness.error_window` before a session is closed",
            details="One more closes the session with 1008 (session end cause `rate_limited`).",
            minimum=1,
        ),
        str_list(
            "allowed_origins",
            "`Origin` header values allowed to open a session (repeatable)",
            details="Browsers send `Origin` with every WebSocket handshake, daemons do "
            "not: a handshake with an `Origin` not listed here is rejected with HTTP 403 "
            "before the upgrade, so a web page cannot open sessions. Values are compared "
            'exactly (e.g. `"https://console.example.com"`); `"*"` allows any origin. '
            "The flag adds to the list.",
            flag="--allow-origin",
            metavar="ORIGIN",
        ),
        str_list(
            "refused_host_networks",
            "networks whose addresses no host may announce (repeatable)",
            default=("auto",),
            details="An `announce_host` with an `ip` in one of them is answered `forbidden`, "
            "so no child is ever told to download from there. Entries are networks "
            '(`"10.0.0.0/8"`, `"fe80::/10"`) or `"auto"`: loopback, link-local (cloud '
            "metadata services among them), unspecified, multicast and broadcast addresses "
            "when `server.bind` is not a loopback address, nothing when it is (a scheduler "
            "and its daemons on one machine announce 127.0.0.1). `[]` refuses nothing. The "
            "flag adds to the list.",
            flag="--refuse-host-network",
            metavar="NETWORK",
        ),
        integer(
            "console_streams",
            8,
            "most web console live streams open at once on the admin listener",
            details="One per open console page (`GET /`). Past it a stream is closed "
            "with 1013 at once and the page retries "
            '(`scheduler_console_stream_ends_total{cause="full"}`); the page still '
            "works, without live updates.",
            minimum=1,
        ),
    ),
)

GC: Final = Section(
    "gc",
    (
        duration(
            "sweep_interval",
            DEFAULT_SWEEP_INTERVAL,
            "period of each record kind's sweep",
            positive=True,
        ),
        integer(
            "evictions_per_slice",
            100,
            "the most due records one GC slice evicts before the loop lets other tasks run",
            details="A mass expiry is collected in slices, so that no GC pass blocks the "
            "event loop for long: a host eviction costs about 20 µs, or 50 µs with its "
            "log line at level info, so 100 take 2 to 5 ms.",
            minimum=1,
        ),
        _alias(_announce_ttl.SETTINGS, "host_ttl"),
        _alias(_peer_lifetime.SETTINGS, "peer_ttl"),
        _alias(_peer_lifetime.SETTINGS, "piece_timeout"),
        _alias(_peer_start.SETTINGS, "start_timeout"),
        _alias(_task_idle.SETTINGS, "task_idle_ttl"),
    ),
)

_JOB_DEFAULTS: Final = JobLimits()


def _job(make: Any, key: str, help: str, **options: Any) -> Setting:
    """A ``[jobs]`` setting: its attribute and flag carry the section's name."""
    default = getattr(_JOB_DEFAULTS, key)
    setting: Setting = make(
        key, default, help, attr=f"jobs_{key}", flag=f"--jobs-{key.replace('_', '-')}", **options
    )
    return setting


JOBS: Final = Section(
    "jobs",
    (
        _job(
            integer,
            "max_running",
            "preheat jobs running at once",
            details="A job submitted past it waits `pending`, in submission order.",
            minimum=1,
        ),
        _job(
            integer,
            "max_jobs",
            "unfinished jobs (pending and running) kept at once",
            details="One more `POST /api/v1/jobs` is answered 429 and changes nothing.",
            minimum=1,
        ),
        _job(
            integer,
            "max_hosts",
            "most hosts one job may ask",
            details="A scope that chooses more is answered 409; give `count` or "
            "`percentage`. Also the bound of `count` and of the length of `ips`.",
            minimum=1,
        ),
        _job(
            duration,
            "deadline",
            "a running job finishes within this",
            details="Then each host not done fails with `deadline`, and so does the job.",
            positive=True,
        ),
        _job(
            duration,
            "keep_finished",
            "how long a finished job stays in `GET /api/v1/jobs`",
            positive=True,
        ),
        _job(
            integer,
            "finished_kept",
            "most finished jobs kept; the oldest is forgotten first",
            minimum=1,
        ),
        _job(
            integer,
            "hosts_in_flight",
            "hosts of one job fetching at once, once a peer holds the whole task",
            details="They download from their parents, as the scheduler decides.",
            minimum=1,
        ),
        _job(
            integer,
            "origin_fetches",
            "hosts of one job fetching at once while no peer holds the whole task",
            details="Those go to the origin (or to a seed fetching it): a preheat adds at "
            "most this many to the task's back-to-source peers, and never more than the "
            "task's back-to-source limit leaves.",
            minimum=1,
        ),
        _job(
            duration,
            "register_timeout",
            "a host asked to fetch must register its peer within this",
            details="Else its part fails with `not_registered`: it refused the task (a "
            "limit of `[records]`), or the message never reached it.",
            positive=True,
        ),
    ),
)

PLUGINS: Final = Section(
    "plugins",
    (
        str_list(
            "enable",
            "plugins to add: an installed plugin's name, or MODULE:OBJECT (repeatable)",
            details="Installed names are entry points in the `scheduler.plugins` group "
            '(`"phi_accrual"`, `"dragonfly_compat"`). The flag adds to the list.',
            flag="--plugin",
            metavar="NAME|MODULE:OBJECT",
        ),
        str_list(
            "disable",
            "plugins to leave out, by name, built-ins included (repeatable)",
            details="The flag adds to the list.",
            flag="--disable-plugin",
            metavar="NAME",
        ),
        boolean(
            "entrypoints",
            False,
            "enable every installed plugin, minus `disable`",
            flag="--all-plugins",
        ),
    ),
)

LOG: Final = Section(
    "log",
    (
        choice(
            "format",
            "text",
            LOG_FORMATS,
            "log line format",
            details="`text`: one `key=value` line per event; `json`: one object per line.",
            attr="log_format",
            flag="--log-format",
        ),
        choice(
            "level",
            "info",
            LOG_LEVELS,
            "lowest level logged",
            attr="log_level",
            flag="--log-level",
        ),
    ),
)

_RECORD_DEFAULTS: Final = RecordLimits()

RECORDS: Final = Section(
    "records",
    (
        integer(
            "max_piece_count",
            _RECORD_DEFAULTS.max_piece_count,
            "highest piece count a task may have",
            details="Piece numbers must be below it, and a `total_piece_count` above it is "
            "`invalid_message`. It bounds the memory one `pieces_finished` can cost "
            "(a peer's piece set takes at most 8 bytes per piece it holds).",
            minimum=1,
            maximum=10_000_000,
        ),
        integer(
            "max_peers_per_host",
            _RECORD_DEFAULTS.max_peers_per_host,
            "most peers one host may hold at once",
            details="One more `register_peer` is answered `limit_exceeded`.",
            minimum=1,
        ),
        integer(
            "max_tasks_per_host",
            _RECORD_DEFAULTS.max_tasks_per_host,
            "most live tasks the peers of one host may have created",
            details="A task outlives its peers until `task_idle_ttl`; a `register_peer` "
            "that would create one more is answered `limit_exceeded`.",
            minimum=1,
        ),
        integer(
            "max_back_to_source_per_host",
            _RECORD_DEFAULTS.max_back_to_source_per_host,
            "most back-to-source slots of one task that the peers of one host may hold",
            details="Of the task's 200: the scheduler sends no more of that host's peers to "
            "the origin, and a `back_to_source` past it is answered `conflict`.",
            minimum=1,
        ),
        number(
            "max_upload_share",
            _RECORD_DEFAULTS.max_upload_share,
            "share of one host's upload slots that the peers of one other host may hold at once",
            details="At least one slot. A parent whose host has given this share of its "
            "`concurrent_upload_limit` to one host's peers is not handed to another peer of "
            "that host, so no host can take every slot of a task's feeders.",
            positive=True,
            maximum=1,
        ),
        duration(
            "failure_report_window",
            _RECORD_DEFAULTS.failure_report_window,
            "a parent's host is charged a failed upload at most once per reporting host "
            "in this window",
            details="A `reschedule` naming a failed parent counts against it only if the "
            "scheduler handed that parent to the peer; however many peers of one host "
            "report it, the parent's host is charged once per window.",
            positive=True,
        ),
        integer(
            "seed_fetches_per_host",
            _RECORD_DEFAULTS.seed_fetches_per_host,
            "most seed fetches the peers of one host may cause per `seed_fetch_window`",
            details="A task's URL is its first peer's word, and a seed fetches the tasks "
            "nobody can feed yet; past this, that host's peers go to the origin themselves "
            "(or wait) instead of a seed fetching for them.",
            minimum=1,
        ),
        duration(
            "seed_fetch_window",
            _RECORD_DEFAULTS.seed_fetch_window,
            "the sliding window of `seed_fetches_per_host`",
            positive=True,
        ),
    ),
)

AUTH: Final = Section(
    "auth",
    (
        string(
            "key_file",
            None,
            "file holding the HMAC key (at least 32 bytes) that signs tokens",
            optional=True,
            unset="off",
            attr="auth_key_file",
            flag="--auth-key-file",
            metavar="FILE",
            details="Turns authentication on: a peer's handshake needs "
            "`Authorization: Bearer <token>` (else HTTP 401), an announce must name the "
            "token's hostname (else `forbidden`), and the admin API needs an `admin:read` "
            "or `admin:write` token. Tokens come from `scheduler token issue`.",
        ),
        string(
            "previous_key_file",
            None,
            "the key before the last rotation: tokens it signed are still accepted",
            optional=True,
            unset="none",
            attr="auth_previous_key_file",
            flag="--auth-previous-key-file",
            metavar="FILE",
            details="New tokens are signed with `key_file`; drop this once the old tokens "
            "have expired.",
        ),
        boolean(
            "private_metrics",
            False,
            "require an `admin:read` token for `/metrics` too",
            details="(when authentication is on; `/healthz` and `/readyz` stay open).",
        ),
        str_list(
            "allowed_hosts",
            "more names the admin API answers to in the `Host` header (repeatable)",
            details="Loopback names, IP literals and the admin bind address are always "
            'allowed; any other name is refused with 403 (DNS rebinding). `"*"` allows '
            "every name. The flag adds to the list.",
            flag="--allowed-host",
            metavar="NAME",
        ),
        boolean(
            "insecure",
            False,
            "allow binding a non-loopback address with no authentication configured",
            details="Without it `serve` refuses to start (protected mode, exit status 2).",
        ),
    ),
)

TLS: Final = Section(
    "tls",
    (
        string(
            "cert_file",
            None,
            "PEM certificate chain of both listeners",
            optional=True,
            unset="off",
            attr="tls_cert_file",
            flag="--tls-cert-file",
            metavar="FILE",
            details="With `key_file`, peers connect with `wss://` and the admin API is `https://`.",
        ),
        string(
            "key_file",
            None,
            "PEM private key of `cert_file`",
            optional=True,
            unset="off",
            attr="tls_key_file",
            flag="--tls-key-file",
            metavar="FILE",
        ),
        string(
            "client_ca_file",
            None,
            "CA bundle that peers' client certificates must chain to",
            optional=True,
            unset="off",
            attr="tls_client_ca_file",
            flag="--tls-client-ca-file",
            metavar="FILE",
            details="Requires a client certificate on the peers' port; its subject CN is the "
            "host's identity, like a token's hostname.",
        ),
    ),
)

CLUSTER: Final = Section(
    "cluster",
    (
        string(
            "registry",
            None,
            "PostgreSQL URL of the cluster registry (`postgresql://USER@HOST/DATABASE`)",
            optional=True,
            unset="off: a single scheduler",
            metavar="URL",
            details="Turns the cluster on: the scheduler migrates the registry's schema, "
            "registers under `name`, renews its lease every `lease_interval` and lists the "
            "members at `GET /api/v1/schedulers`. Needs the `cluster` extra (psycopg 3). "
            "See 'Running a cluster'.",
        ),
        string(
            "name",
            None,
            "this scheduler's name in the cluster; one active process per name",
            optional=True,
            unset="this machine's hostname",
            attr="scheduler_name",
            details="A process that starts with the name of a live one takes it over "
            "(the other's row becomes `superseded`), if it holds the cluster key "
            "(`key_file`) or neither does; printable, no whitespace, at most 128 characters.",
        ),
        string(
            "id",
            "default",
            "the cluster this scheduler joins (several may share one registry)",
            attr="cluster_id",
            flag="--cluster",
            metavar="ID",
        ),
        string(
            "advertise",
            None,
            "the peers' WebSocket URL as other machines reach it (`ws://HOST:PORT/ws`)",
            optional=True,
            unset="the bound URL, the hostname for a wildcard bind",
            metavar="URL",
        ),
        string(
            "advertise_admin",
            None,
            "the admin API's URL as other machines reach it",
            optional=True,
            unset="the bound URL, the hostname for a wildcard bind",
            metavar="URL",
        ),
        string(
            "key_file",
            None,
            "file holding the cluster key (at least 32 bytes) that signs registry rows",
            optional=True,
            unset="off: rows are trusted as read",
            attr="cluster_key_file",
            flag="--cluster-key-file",
            metavar="FILE",
            details="Each member signs its row with it; rows that do not verify are ignored "
            "(never listed, never holding a name), and only a holder of the key takes a live "
            "name over. Without it, a registry that is not on loopback is trusted blindly "
            "(a WARNING at start-up). See docs/security.md, 'The cluster registry'.",
        ),
        string(
            "previous_key_file",
            None,
            "a second cluster key that also verifies rows, during a rotation",
            optional=True,
            unset="none",
            attr="cluster_previous_key_file",
            flag="--cluster-previous-key-file",
            metavar="FILE",
            details="Rows are signed with `key_file` only. See 'Running a cluster' for "
            "the three rolling restarts of a rotation.",
        ),
        duration(
            "lease_interval",
            5,
            "renew the registry lease this often; the lease lasts 3 times as long",
            details="A scheduler that could not renew for a whole lease answers 503 on "
            "`/readyz`, and the others stop listing it, unless the registry is down for "
            "every member it can ask: then all serve on, on their last member list "
            "(see 'Running a cluster').",
            positive=True,
        ),
        duration(
            "timeout",
            2,
            "bound on each registry call (connecting, waiting, each statement)",
            details="At most `lease_interval`. Also bounds the offline at shutdown.",
            attr="registry_timeout",
            flag="--registry-timeout",
            positive=True,
        ),
    ),
)

#: Every section of ``scheduler serve``, in file order.
SECTIONS: Final[tuple[Section, ...]] = (
    SERVER,
    LIVENESS,
    LIMITS,
    RECORDS,
    GC,
    JOBS,
    PLUGINS,
    LOG,
    AUTH,
    TLS,
    CLUSTER,
)


def entries() -> Iterator[tuple[Section, Setting]]:
    """Every ``(section, setting)`` of ``serve``, in declaration order."""
    for section in SECTIONS:
        for setting in section:
            yield section, setting


def env_name(section: Section, setting: Setting) -> str:
    """``SCHEDULER_<SECTION>_<KEY>``, e.g. ``SCHEDULER_LIVENESS_RECONNECT_GRACE``."""
    return f"{ENV_PREFIX}{section.name.upper()}_{setting.key.upper()}"


def setting_named(qualified: str) -> Setting:
    """The setting ``section.key`` (``"server.port"``)."""
    section_name, _, key = qualified.partition(".")
    for section in SECTIONS:
        if section.name == section_name:
            return section[key]
    raise KeyError(qualified)


@final
@attrs.frozen
class Resolved:
    """The configuration in force: ``section.key`` -> value, and where each came from.

    ``plugin_sections`` are the file's ``[plugins.<name>]`` tables as written
    (their plugins validate them), with any ``[gc]`` alias given in the file,
    environment or flags written into its policy's table.
    """

    values: Mapping[str, Any]
    sources: Mapping[str, str]
    plugin_sections: Mapping[str, Mapping[str, Any]]
    #: One line per removed setting still set (warned about at start-up).
    deprecated: tuple[str, ...] = ()

    def source_of(self, plugin: str, key: str) -> str:
        """Where a plugin setting comes from: its alias's source, the file, or the default."""
        for section, setting in entries():
            same = setting.target == (plugin, key) or (
                (plugin, key) == ("disconnect_grace", "reconnect_grace")
                and setting is _GRACE_IN_LIVENESS
            )
            if same:
                source = self.sources[section.qualified(setting.key)]
                return _describe(source, section, setting)
        return "file" if key in self.plugin_sections.get(plugin, {}) else "default"


def read_file(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Validate the TOML layout: (``{section.key: value}``, ``{plugin: raw table}``)."""
    known = {section.name: section for section in SECTIONS}
    for name in data:
        if name not in known:
            raise ConfigError(name, f"unknown section (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    plugin_sections: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        table = data.get(section.name, {})
        extra: frozenset[str] = frozenset()
        if section is PLUGINS and isinstance(table, Mapping):
            extra = frozenset(table) - {s.key for s in PLUGINS}
        removed = frozenset(
            key
            for key in (table if isinstance(table, Mapping) else ())
            if section.qualified(key) in REMOVED
        )
        for key, value in section.read(table, ignore=extra | removed).items():
            values[section.qualified(key)] = value
        for name in sorted(extra):
            if not isinstance(table[name], Mapping):
                raise ConfigError(f"{PLUGIN_PREFIX}{name}", "must be a table of settings")
            plugin_sections[name] = dict(table[name])
    _fold_reconnect_grace(values, plugin_sections)
    _fold_aliases(values, plugin_sections)
    return values, plugin_sections


def _fold_reconnect_grace(values: dict[str, Any], plugin_sections: dict[str, Any]) -> None:
    # reconnect_grace is one setting: the service reports it to clients, the
    # disconnect-grace policy applies it. It may be written in either place, once.
    section = plugin_sections.get("disconnect_grace", {})
    if "reconnect_grace" in section:
        where = f"{_disconnect_grace.SETTINGS.name}.reconnect_grace"
        if "liveness.reconnect_grace" in values:
            raise ConfigError(where, "also set as liveness.reconnect_grace; set it in one place")
        values["liveness.reconnect_grace"] = _GRACE.parse(section.pop("reconnect_grace"), where)


def _fold_aliases(values: dict[str, Any], plugin_sections: dict[str, Any]) -> None:
    # A [gc] alias not set in [gc] takes the policy section's value, so that the
    # alias always shows the value in force.
    for setting in GC:
        if setting.target is None or GC.qualified(setting.key) in values:
            continue
        plugin, key = setting.target
        if key in plugin_sections.get(plugin, {}):
            where = f"{PLUGIN_PREFIX}{plugin}.{key}"
            values[GC.qualified(setting.key)] = setting.parse(plugin_sections[plugin][key], where)


def read_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """``{section.key: value}`` from ``SCHEDULER_<SECTION>_<KEY>`` variables.

    A bad value, or an unknown variable under a known section's prefix (a typo),
    is a :class:`ConfigError` naming the variable.
    """
    names = {env_name(section, setting): (section, setting) for section, setting in entries()}
    prefixes = tuple(f"{ENV_PREFIX}{section.name.upper()}_" for section in SECTIONS)
    values: dict[str, Any] = {}
    for name, text in environ.items():
        if name in names:
            section, setting = names[name]
            values[section.qualified(setting.key)] = setting.parse_text(text, name)
        elif name in _REMOVED_ENV:
            continue  # reported by deprecated_in()
        elif name.startswith(prefixes):
            raise ConfigError(name, "unknown setting (see `scheduler serve --print-config`)")
    return values


_REMOVED_ENV: Final = {ENV_PREFIX + key.replace(".", "_").upper(): key for key in REMOVED}


def deprecated_in(file: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """One line for each removed setting that ``file`` or ``environ`` still sets."""
    lines = []
    for qualified, why in REMOVED.items():
        section, _, key = qualified.partition(".")
        table = file.get(section)
        if isinstance(table, Mapping) and key in table:
            lines.append(f"{qualified} in the configuration file is {why}; remove it")
    for name, qualified in _REMOVED_ENV.items():
        if name in environ:
            lines.append(f"{name} ({qualified}) is {REMOVED[qualified]}; unset it")
    return lines


def resolve(
    file: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Resolved:
    """Layer defaults, the parsed TOML ``file``, ``environ`` and ``flags`` (flag > env > file).

    ``flags`` maps ``section.key`` to values already parsed (see
    :func:`scheduler.config.add_flags`). List flags (``--plugin``,
    ``--disable-plugin``) add to the lower layers' lists; everything else replaces.
    """
    file_values, plugin_sections = read_file(file or {})
    layers = (file_values, read_env(environ or {}), dict(flags or {}))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for section, setting in entries():
        qualified = section.qualified(setting.key)
        values[qualified], sources[qualified] = setting.default, "default"
        for source, layer in zip(SOURCES[1:], layers, strict=True):
            if qualified not in layer:
                continue
            value = layer[qualified]
            if setting.kind is Kind.STR_LIST and source == "flag":
                value = (*values[qualified], *value)
            values[qualified], sources[qualified] = value, source
    for section, setting in entries():
        qualified = section.qualified(setting.key)
        if setting.target is not None and sources[qualified] != "default":
            plugin, key = setting.target
            plugin_sections.setdefault(plugin, {})[key] = values[qualified]
    return Resolved(
        values, sources, plugin_sections, tuple(deprecated_in(file or {}, environ or {}))
    )


# --- generated surfaces ---------------------------------------------------------------------


def help_text(section: Section, setting: Setting) -> str:
    """The ``--help`` line of a flag: help, unit, default, bounds and environment variable."""
    unit = f", in {setting.unit}" if setting.unit else ""
    bounds = setting.bounds_text()
    extra = f"; {bounds}" if bounds else ""
    text = f"{setting.help}{unit} (default {setting.format(setting.default)}{extra})"
    return f"{text} [env {env_name(section, setting)}]".replace("%", "%%")


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting, grouped by section, each defaulting to None ("not given")."""
    for section in SECTIONS:
        group = parser.add_argument_group(f"[{section.name}]")
        for setting in section:
            if setting.flag:
                _add_flag(group, section, setting)


def _add_flag(group: Any, section: Section, setting: Setting) -> None:
    dest = section.qualified(setting.key)
    help = help_text(section, setting)
    flag = setting.flag
    if setting.kind is Kind.BOOL:
        group.add_argument(flag, dest=dest, action="store_const", const=True, help=help)
        return
    if setting.kind is Kind.CHOICE:
        group.add_argument(flag, dest=dest, choices=setting.choices, help=help)
        return

    def parse(text: str) -> Any:
        try:
            return setting.parse_text(text, setting.key)
        except ConfigError as exc:
            # argparse names the flag; a bound names the setting too ("port must be ...").
            message = str(exc).removeprefix(f"{setting.key}: ")
            if message.startswith("must"):
                message = f"{setting.key} {message}"
            raise argparse.ArgumentTypeError(message) from None

    action = "append" if setting.kind is Kind.STR_LIST else "store"
    group.add_argument(
        flag, dest=dest, type=parse, action=action, metavar=setting.flag_metavar, help=help
    )


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given on the command line, as ``{section.key: value}`` for :func:`resolve`."""
    given: dict[str, Any] = {}
    for section, setting in entries():
        qualified = section.qualified(setting.key)
        value = getattr(args, qualified, None)
        if value is None:
            continue
        if setting.kind is Kind.STR_LIST:  # one tuple per repetition of the flag
            value = tuple(item for items in value for item in items)
        given[qualified] = value
    return given


def markdown_table(section: Section) -> str:
    """The docs table of one section: key, flag, environment variable, default, meaning."""
    rows = [
        "| key | flag | environment | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for setting in section:
        default = setting.format(setting.default)
        default = default if setting.default is None else f"`{default}`"
        meaning = setting.help + (f", in {setting.unit}" if setting.unit else "")
        if setting.details:
            joiner = " " if setting.details[0] in "(a" else ". "
            meaning += joiner + setting.details
        else:
            meaning += "."
        bounds = setting.bounds_text()
        if bounds:
            meaning += f" Allowed: {bounds}."
        flag = f"`{setting.flag}`" if setting.flag else "none"
        row = (f"`{setting.key}`", flag, f"`{env_name(section, setting)}`", default, meaning)
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(rows)


def render(resolved: Resolved, plugins: Sequence[tuple[Section, Mapping[str, Any]]] = ()) -> str:
    """The configuration in force as TOML, each value commented with its source.

    ``plugins`` are the loaded plugins' declarations with the values they hold.
    """
    lines = ["# scheduler serve: the configuration in force; after '#', where each value is from"]

    def table(name: str, rows: list[tuple[str, str]]) -> None:
        lines.extend(["", f"[{name}]"])
        width = max((len(text) for text, _ in rows), default=0)
        lines.extend(f"{text.ljust(width)}  # {source}" for text, source in rows)

    for section in SECTIONS:
        rows = []
        for setting in section:
            qualified = section.qualified(setting.key)
            value = resolved.values[qualified]
            source = _describe(resolved.sources[qualified], section, setting)
            text = f"{setting.key} = {setting.toml(value)}"
            rows.append((f"# {setting.key} = ({setting.unset})" if value is None else text, source))
        table(section.name, rows)
    for section, values in plugins:
        rows = []
        for setting in section:
            value = values[setting.attr]
            source = resolved.source_of(section.plugin_name, setting.key)
            text = f"{setting.key} = {setting.toml(value)}"
            rows.append((f"# {setting.key} = ({setting.unset})" if value is None else text, source))
        table(section.name, rows)
    return "\n".join(lines) + "\n"


def _describe(source: str, section: Section, setting: Setting) -> str:
    if source == "env":
        return f"env ({env_name(section, setting)})"
    if source == "flag":
        return f"flag ({setting.flag})"
    return source
