"""`make bench`: run every bench/bench_*.py and print its figures side by side with its baseline.

Each benchmark module exposes `run() -> list[Row]`; a row measures one thing through inferline and the same
thing through a baseline (usually the engine called directly in-process), in the same run.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Row


def _load(path: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(names: list[str]) -> None:
    files = sorted(Path(__file__).parent.glob("bench_*.py"))
    if names:
        files = [f for f in files if any(n in f.stem for n in names)]
    rows: list[Row] = []
    for path in files:
        started = time.perf_counter()
        print(f"# {path.stem} ...", flush=True)
        rows.extend(_load(path).run())
        print(f"#   done in {time.perf_counter() - started:.1f} s", flush=True)
    print()
    print(f"{'benchmark':52} {'inferline':>12} {'baseline':>12} {'unit':10} {'ratio':>7}  baseline is")
    for r in rows:
        print(
            f"{r.name:52} {r.value:12.2f} {r.baseline:12.2f} {r.unit:10} {r.ratio:7.2f}  {r.baseline_label}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
