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


def test_write_docs_regenerates_the_readme_load_table(tmp_path: Path) -> None:
    """`bench/run.py --write-docs` rewrites the README's Load table (between its markers) from a bench_load
    run; a smoke run, a failed run or a run without bench_load leaves it alone."""
    from bench.bench_load import THREADS_ROW, Tally, _rows
    from bench.run import LOAD_END, LOAD_START, machine, write_readme

    assert LOAD_START in (REPO / "README.md").read_text() and LOAD_END in (REPO / "README.md").read_text()
    readme = tmp_path / "README.md"
    readme.write_text(f"# Load\n\n{LOAD_START}\nold table\n{LOAD_END}\n\nafter\n")
    one, many = Tally([0.1, 0.2, 0.3], 0, 2.0), Tally([0.5] * 40, 4, 10.0)
    rows = [{"name": THREADS_ROW, "value": 1.0}]
    for label, tally in (("chat, 1 client", one), ("chat, 16 clients", many)):
        rows += [{"name": r.name, "value": r.value} for r in _rows(label, tally, one, "chat, 1 client")]
    results = {
        "machine": {**machine(), "smoke": False},
        "modules": [{"name": "bench_load", "error": "", "rows": rows}],
    }
    for skipped in (
        {**results, "machine": {**results["machine"], "smoke": True}},
        {**results, "modules": [{"name": "bench_load", "error": "Traceback", "rows": rows}]},
        {**results, "modules": [{"name": "bench_search", "error": "", "rows": rows}]},
    ):
        assert not write_readme(skipped, readme)
    assert "old table" in readme.read_text()
    assert write_readme(results, readme)
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# Load") and text.endswith("after\n")
    assert "| chat, 1 client | 1.5 req/s | 200 ms | 290 ms | 0.0 % |" in text, text
    assert "| chat, 16 clients | 4.0 req/s | 500 ms | 500 ms | 9.1 % |" in text, text
    assert "Chat threads: 1" in text and "Measured" in text
