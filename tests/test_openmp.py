"""The process-wide OpenMP spin policy (engines/openmp.py) is set before libgomp loads, unless the operator
chose one: a crowded process otherwise spins 100 iterations at llama.cpp's barriers (see the module)."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = (
    "import inferline, os, xllamacpp, torch; "
    "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"
)


def _probe(env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_inferline_sets_the_spin_policy_for_the_engines() -> None:
    assert _probe({}) == "ACTIVE 300000"


def test_an_operators_choice_is_kept() -> None:
    assert _probe({"OMP_WAIT_POLICY": "PASSIVE"}) == "PASSIVE None"
    assert _probe({"GOMP_SPINCOUNT": "1000"}) == "None 1000"


SPIN_PROBE = """
import os, sys, threading, time
import inferline
import numpy as np

def others() -> int:  # CPU ticks (1/100 s) of every thread but this one: OpenBLAS's workers
    me, total = threading.get_native_id(), 0
    for tid in os.listdir("/proc/self/task"):
        if int(tid) != me:
            fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total

a = np.random.default_rng(0).random((400, 400))
a @ a
time.sleep(1)
before = others()
for _ in range(5):
    a @ a
    time.sleep(0.3)
print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"), (others() - before) * 10)
"""


def test_numpys_blas_workers_do_not_spin_after_each_product() -> None:
    """OpenBLAS's workers spun ~0.1 s of CPU after every matrix product (Whisper's mel features, exact vector
    search), next to chat decoding: 5 products left ~500 ms of CPU burnt on the 2-core machine. After
    `import inferline` they go to sleep at once (a product itself takes well under a millisecond here)."""
    if not sys.platform.startswith("linux"):
        return
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    done = subprocess.run(
        [sys.executable, "-c", SPIN_PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    timeout, spun_ms = done.stdout.split()
    assert timeout == "20"
    assert int(spun_ms) <= 100, f"OpenBLAS workers burnt {spun_ms} ms of CPU after 5 products"


def test_an_operators_blas_timeout_is_kept() -> None:
    probe = "import inferline, os; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "OPENBLAS_THREAD_TIMEOUT": "28"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip() == "28"
