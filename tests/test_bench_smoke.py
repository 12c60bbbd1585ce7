"""Every benchmark runs once in smoke mode (`BENCH_SMOKE=1`: one round, small sizes): none breaks unnoticed.

Only completion is checked: each bench/bench_*.py module produced rows and no error, and the runner wrote its
JSON and Markdown. The figures of a smoke run mean nothing; no timing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.skipif(
    bool(os.environ.get("INFERLINE_TEST_DATABASE_URL")),
    reason="the benchmarks run on their own SQLite servers: once per CI run (the SQLite pass) is enough",
)
def test_every_benchmark_runs_in_smoke_mode(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERLINE_")}
    env.update(BENCH_SMOKE="1", INFERLINE_CONFIG="", INFERLINE_CHAT_THREADS="1")
    if "INFERLINE_MODELS_DIR" in os.environ:
        env["INFERLINE_MODELS_DIR"] = os.environ["INFERLINE_MODELS_DIR"]
    run = subprocess.run(
        [sys.executable, "bench/run.py", "--results", str(tmp_path)],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    results = json.loads((tmp_path / "smoke.json").read_text())
    modules = {m["name"]: m for m in results["modules"]}
    expected = {p.stem for p in (REPO / "bench").glob("bench_*.py")}
    assert set(modules) == expected
    failed = {name: m["error"][-2000:] for name, m in modules.items() if m["error"]}
    assert not failed, failed
    empty = [name for name, m in modules.items() if not m["rows"]]
    assert not empty, f"benchmarks that produced no rows: {empty}"
    assert run.returncode == 0, run.stderr[-4000:]
    assert results["machine"]["smoke"] is True and results["machine"]["cpu"]
    table = (tmp_path / "smoke.md").read_text()
    assert all(name in table for name in expected)
