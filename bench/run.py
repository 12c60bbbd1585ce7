"""`make bench`: run every bench/bench_*.py and print its figures side by side with its baseline.

Each benchmark module exposes `run() -> list[Row]`; a row measures one thing through inferline and the same
thing through a baseline (usually the engine called directly in-process), in the same run.

    bench/run.py [NAME ...] [--write-docs] [--results DIR]   run the modules whose name contains a NAME
    bench/run.py --docs-only                                 docs/BENCHMARKS.md from bench/results/latest.json

A module that fails is reported and the others still run; the exit status is then 1. The table is printed
and written as JSON and Markdown under `bench/results/` (`latest.*` and a timestamped copy; `smoke.*` under
`BENCH_SMOKE=1`), with the machine it ran on. `--write-docs` also regenerates docs/BENCHMARKS.md from it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, SMOKE, Row

RESULTS = REPO / "bench" / "results"
DOCS = REPO / "docs" / "BENCHMARKS.md"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": round(_memory_gib(), 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "smoke": SMOKE,
    }


def _row_line(module: str, r: Row) -> str:
    return (
        f"{module:20} {r.name:56} {r.value:12.2f} {r.baseline:12.2f} {r.unit:10} {r.ratio:7.2f}  "
        f"{r.baseline_label}"
    )


def table(results: dict[str, Any]) -> str:
    """The plain-text table printed at the end."""
    lines = [
        f"{'module':20} {'benchmark':56} {'inferline':>12} {'baseline':>12} {'unit':10} {'ratio':>7}  "
        "baseline is"
    ]
    for module in results["modules"]:
        for row in module["rows"]:
            lines.append(_row_line(module["name"], Row(**_row_fields(row))))
        if module["error"]:
            lines.append(f"{module['name']:20} FAILED: {module['error'].splitlines()[-1]}")
    return "\n".join(lines)


def _row_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "ratio"}


def _cell(value: float) -> str:
    return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"


def markdown(results: dict[str, Any]) -> str:
    """The table as Markdown, under a line naming the machine and the commit."""
    m = results["machine"]
    out = [
        f"Measured {m['date']} on {m['cpu']}, {m['usable_cores']} usable cores "
        f"({m['physical_cores']} physical), {m['memory_gib']} GiB memory, {m['os']}, Python {m['python']}; "
        f"commit `{m['git_commit'][:12]}`{' (with local changes)' if m['git_dirty'] else ''}; "
        f"load average at start {m['load_average_at_start']}"
        f"{'; SMOKE MODE (one round, small sizes: the figures mean nothing)' if m['smoke'] else ''}.",
        "",
        "Ratio: inferline relative to the baseline, above 1 means inferline is better (for times, baseline ÷ "
        "inferline).",
        "",
        "| module | benchmark | inferline | baseline | unit | ratio | baseline is |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    for module in results["modules"]:
        for row in module["rows"]:
            out.append(
                f"| {module['name']} | {row['name']} | {_cell(row['value'])} | {_cell(row['baseline'])} | "
                f"{row['unit']} | {row['ratio']:.2f} | {row['baseline_label']} |"
            )
        if module["error"]:
            out.append(f"| {module['name']} | FAILED: {module['error'].splitlines()[-1]} | | | | | |")
    return "\n".join(out) + "\n"


def write_results(results: dict[str, Any], folder: Path) -> Path:
    """`latest.json`/`latest.md` (`smoke.*` in smoke mode) and a timestamped copy; the JSON path."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = "smoke" if results["machine"]["smoke"] else "latest"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    body, md = json.dumps(results, indent=2) + "\n", markdown(results)
    for name in (stem, f"{stem}-{stamp}"):
        (folder / f"{name}.json").write_text(body)
        (folder / f"{name}.md").write_text(md)
    return folder / f"{stem}.json"


def write_docs(results: dict[str, Any] | None, path: Path = DOCS) -> None:
    """docs/BENCHMARKS.md: how to run the benchmarks and the latest table with its machine (None: no run)."""
    table = markdown(results) if results else "No full run recorded yet: `make bench` on a quiet machine.\n"
    path.write_text(
        "# Benchmarks\n\n"
        "Generated by `bench/run.py --write-docs` (or `--docs-only`, from `bench/results/latest.json`); "
        "do not edit by hand.\n\n"
        "`make bench` runs every `bench/bench_*.py`; each figure is measured through inferline and next to "
        "its baseline (the engine or the SQL called directly, at the baseline's best settings) in the same "
        "run. `BENCH_SMOKE=1` runs each benchmark once with small sizes (CI does, in "
        "`tests/test_bench_smoke.py`). Results go to `bench/results/` as JSON and Markdown.\n\n"
        "## Latest run\n\n" + table
    )


def run_modules(names: list[str]) -> dict[str, Any]:
    """Run the selected modules, each to the end or to its failure; the results document."""
    files = sorted(Path(__file__).parent.glob("bench_*.py"))
    if names:
        files = [f for f in files if any(n in f.stem for n in names)]
    results: dict[str, Any] = {"machine": machine(), "modules": []}
    for path in files:
        started = time.perf_counter()
        print(f"# {path.stem} ...", flush=True)
        rows: list[Row] = []
        error = ""
        try:
            rows = importlib.import_module(f"bench.{path.stem}").run()
        except Exception:  # report it and go on with the next benchmark
            error = traceback.format_exc()
            print(error, file=sys.stderr, flush=True)
        seconds = time.perf_counter() - started
        for row in rows:
            print("#   " + _row_line(path.stem, row), flush=True)
        print(f"#   {'FAILED' if error else 'done'} in {seconds:.1f} s", flush=True)
        results["modules"].append(
            {
                "name": path.stem,
                "seconds": round(seconds, 1),
                "error": error,
                "rows": [{**asdict(r), "ratio": r.ratio} for r in rows],
            }
        )
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="run only the modules whose name contains one of these")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the results")
    parser.add_argument("--write-docs", action="store_true", help="regenerate docs/BENCHMARKS.md")
    parser.add_argument("--docs-only", action="store_true", help="docs from <results>/latest.json; no run")
    args = parser.parse_args(argv)
    if args.docs_only:
        write_docs(json.loads((args.results / "latest.json").read_text()))
        print(f"wrote {DOCS}")
        return 0
    results = run_modules(args.names)
    print()
    print(table(results))
    path = write_results(results, args.results)
    print(f"\nwrote {path} and {path.with_suffix('.md')}")
    if args.write_docs:
        if SMOKE:
            print("not writing docs/BENCHMARKS.md from a smoke run", file=sys.stderr)
        else:
            write_docs(results)
            print(f"wrote {DOCS}")
    failed = [m["name"] for m in results["modules"] if m["error"]]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
