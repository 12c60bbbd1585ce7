"""The process-wide OpenMP spin policy (engines/openmp.py) is set before libgomp loads, unless the operator
chose one: a crowded process otherwise spins 100 iterations at llama.cpp's barriers (see the module)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


BINDING_PROBE = """
import sys
if sys.argv[1] == "server":  # what a server does: the composition root first, torch later (diarization)
    from inferline.engines import openmp
    openmp.load_engine_libraries()
from inferline.stores import hnsw_files
hnsw_files.usearch_available()  # the vector index opens before the first chat or transcription
import xllamacpp, ctranslate2, torch
"""


BINDING = re.compile(r"binding file (\S+) \[\d+\] to (\S+) \[\d+\]: normal symbol `GOMP_parallel'")


def _gomp_bindings(mode: str, tmp_path: Path) -> dict[str, str]:
    """Which libgomp file each engine library's `GOMP_parallel` was bound to (the dynamic linker's log)."""
    env = {**os.environ, "LD_DEBUG": "bindings", "LD_DEBUG_OUTPUT": str(tmp_path / "ld")}
    done = subprocess.run(
        [sys.executable, "-c", BINDING_PROBE, mode], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    bound: dict[str, str] = {}
    for log in tmp_path.glob("ld.*"):
        for line in log.read_text(errors="replace").splitlines():
            found = re.search(
                r"binding file (\S+) \[\d+\] to (\S+) \[\d+\]: normal symbol `GOMP_parallel'", line
            )
            if found:
                user = Path(found[1]).name.split(".")[0].split("-")[0]
                bound[user] = os.path.realpath(found[2])
    return bound


def test_each_engine_runs_its_threads_in_its_own_libgomp(tmp_path: Path) -> None:
    """usearch loads numkong with RTLD_GLOBAL; when the vector index opened first, llama.cpp and CTranslate2
    both bound to numkong's libgomp, and once a transcription had run that copy held more threads than CPUs:
    llama.cpp's barriers stopped spinning and SmolLM2's decode beside embedding requests fell from ~99 to
    ~54 tok/s. The stores load the engines first (engines/openmp.py), so no engine shares llama.cpp's copy."""
    if not sys.platform.startswith("linux"):
        pytest.skip("LD_DEBUG is glibc's")
    for name in ("xllamacpp", "ctranslate2", "usearch", "torch"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed")
    for mode in ("stores", "server"):
        (tmp_path / mode).mkdir()
        bound = _gomp_bindings(mode, tmp_path / mode)
        llama = bound["xllamacpp"]
        others = {user: lib for user, lib in bound.items() if user != "xllamacpp"}
        assert {"libctranslate2", "libtorch_cpu", "_numkong"} <= set(others), bound
        assert llama not in others.values(), f"{mode}: llama.cpp shares its libgomp: {bound}"
        assert bound["libctranslate2"] != bound["_numkong"], f"{mode}: CTranslate2 shares numkong's: {bound}"
