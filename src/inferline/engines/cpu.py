"""How many CPU cores the engines may use: the default thread count of llama.cpp."""

from __future__ import annotations

import math
import os
from pathlib import Path

SYS_CPU = Path("/sys/devices/system/cpu")


def _cgroup_cpus() -> float | None:
    """The CPU quota of this process's cgroup (v2 `cpu.max`), in CPUs; None when unlimited or unknown."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def physical_cores() -> int:
    """Physical cores this process may run on: its CPUs (affinity) with SMT siblings counted once (Linux
    topology; elsewhere psutil's physical count, else the logical CPUs), capped by a cgroup CPU quota."""
    usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    try:
        siblings = {(SYS_CPU / f"cpu{n}/topology/thread_siblings_list").read_text().strip() for n in usable}
        cores = len(siblings)
    except OSError:
        try:
            import psutil

            cores = psutil.cpu_count(logical=False) or 0
        except ImportError:
            cores = 0
        cores = min(cores or len(usable), len(usable)) if usable else cores or (os.cpu_count() or 1)
    quota = _cgroup_cpus()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)
