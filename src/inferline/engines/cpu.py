"""How many CPU cores the engines may use (the default thread count of llama.cpp), and how engine kinds
share them (`CpuShares`)."""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
SYS_CPU = Path("/sys/devices/system/cpu")
# How long after a background run that overlapped a chat generation the CPU still counts as contended: the
# gaps between the micro-batches of steady embedding traffic are far shorter.
CONTENDED_SECONDS = 0.5


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


class CpuShares:
    """CPU admission per engine kind: chat generations are foreground, batch engine runs (embedding and
    search-query batches, Whisper's windows) background.

    With no chat generation running, background runs are not held. While one runs, background runs go one at
    a time over all engines, and each is followed by a pause of `yield_ratio` times its own duration (cut
    short when the last generation ends), so decoding keeps about 1 / (1 + 1 / yield_ratio) of the cores
    and the batch engines the rest. Requests arriving during the pause join the next micro-batch, so they
    lose less throughput than the time they yield. `yield_ratio` 0 turns the pauses off.

    `contended()` tells a chat engine that a batch engine holds the CPU now, or that one ran beside a chat
    generation within the last `CONTENDED_SECONDS` (steady concurrent load, with or without pauses): a
    generation starting then decodes on fewer threads (`LlamaCppChatEngine`, `contended_threads`). A run
    with no generation beside it does not count once it has ended, so a chat right after a transcription
    (a voice agent's turn) decodes on all its threads. Nor does a run whose threads have a lowered
    priority (`background(contends=False)`: Whisper's windows, `build_at_niceness`): the kernel gives
    decoding the cores first, so a generation keeps all its threads beside it (bench_chat_load,
    transcription load: first token 48 to 53 ms instead of 77 to 82 on one thread).
    """

    def __init__(self, yield_ratio: float = 1.0) -> None:
        self.yield_ratio = yield_ratio
        self.chat = 0  # chat generations running
        self.chat_started = 0  # chat generations started so far
        self.background_running = 0  # background runs in progress, their pauses included
        self.contending_running = 0  # those of them whose threads compete with decoding at equal priority
        self.shared_run_ended = -math.inf  # when the last run that overlapped a generation ended (monotonic)
        self._cond = threading.Condition()

    def contended(self) -> bool:
        """Whether a contending background run holds the CPU now, or one that overlapped a chat generation
        ended within the last `CONTENDED_SECONDS`."""
        return self.contending_running > 0 or time.monotonic() - self.shared_run_ended < CONTENDED_SECONDS

    @contextmanager
    def foreground(self) -> Iterator[None]:
        """Held by a chat generation while it decodes."""
        with self._cond:
            self.chat += 1
            self.chat_started += 1
        try:
            yield
        finally:
            with self._cond:
                self.chat -= 1
                self._cond.notify_all()

    @contextmanager
    def background(self, contends: bool = True) -> Iterator[None]:
        """Held by a batch engine run (see the class docstring); `contends`: its threads compete with decoding
        at equal priority (False for threads of lowered priority: it still yields, but `contended()` ignores
        it)."""
        pausing = self.yield_ratio > 0
        with self._cond:
            if pausing:
                self._cond.wait_for(lambda: self.chat == 0 or self.background_running == 0)
            self.background_running += 1
            self.contending_running += contends
            running, started_so_far = self.chat, self.chat_started
        started = time.monotonic()
        try:
            yield
        finally:
            pause = (time.monotonic() - started) * self.yield_ratio
            with self._cond:
                if pausing and self.chat:  # the pause counts as the run's: no other background run meanwhile
                    self._cond.wait_for(lambda: self.chat == 0, timeout=pause)
                self.background_running -= 1
                self.contending_running -= contends
                if contends and (running or self.chat_started != started_so_far):  # a generation beside it
                    self.shared_run_ended = time.monotonic()
                self._cond.notify_all()


# The process's one policy: engines share the process's cores (`Settings.background_yield` sets the ratio).
SHARES = CpuShares()


def lowers_priority(niceness: int) -> bool:
    """Whether `build_at_niceness(build, niceness)` lowers the engine's priority (Linux, niceness > 0)."""
    return niceness > 0 and sys.platform == "linux"


def build_at_niceness(build: Callable[[], T], niceness: int) -> T:
    """`build()` called in a new thread whose niceness is raised by `niceness` (Linux, where niceness is per
    thread; elsewhere, or at 0, `build()` as is). The native threads the built engine starts inherit it
    (CTranslate2's workers and their OpenMP team), so its runs yield the cores to chat decoding and to the
    HTTP loop when they compete, and use them fully when nothing else does. Raising niceness needs no
    privilege; it cannot be lowered again, so it is set only on threads the engine owns."""
    if not lowers_priority(niceness):
        return build()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))
            outcome.append(build())
        except BaseException as exc:  # re-raised in the caller
            failure.append(exc)

    thread = threading.Thread(target=body, name="inferline-engine-load", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]
