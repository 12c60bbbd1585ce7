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
