"""A process's CPU time and resident memory, read from ``/proc`` (Linux)."""

from __future__ import annotations

import contextlib
import os
import resource

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process, all its threads, in seconds (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK  # fields 14 and 15 of stat(5)


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads, in seconds."""
    user, system = proc_cpu_split(pid)
    return user + system


def proc_rss_kb(pid: int) -> int:
    """``VmRSS`` of a process, in KiB (``/proc/PID/status``)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot (``/proc/stat``)."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return float(sum(values) - idle), float(sum(values))


def load_average() -> float:
    """The 1-minute load average (how busy the machine was: other work skews rates)."""
    return os.getloadavg()[0]
