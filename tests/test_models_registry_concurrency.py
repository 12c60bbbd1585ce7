"""Several processes sharing one models directory and database register the models file's models at start
(API replicas and workers starting together): every one starts, each model is registered once, and a record
never exists without its verified files, nor files in a model's folder without a record, even when one of the
processes is killed while copying."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from inferline import catalog
from inferline.areas.models.registry import ModelRegistry, sha256_of
from inferline.stores.db import Database
from tests.conftest import MODELS_DIR
from tests.databases import DatabaseFactory
from tests.procs import base_env

SMOL = MODELS_DIR / "HuggingFaceTB--SmolLM2-135M-Instruct" / "model.gguf"
MINILM = MODELS_DIR / "sentence-transformers--all-MiniLM-L6-v2"
IDS = ("race/smol", "race/minilm")
PROCESSES = 4


def embeddings_dir(root: Path) -> Path:
    emb = root / "minilm"
    (emb / "1_Pooling").mkdir(parents=True)
    shutil.copyfile(MINILM / "model.onnx", emb / "model.onnx")
    shutil.copyfile(MINILM / "tokenizer.json", emb / "tokenizer.json")
    pooling = {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}
    (emb / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return emb


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "inferline", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        out.append((proc.returncode, stdout, stderr))
    return out


def check_consistent(registry: ModelRegistry, models_dir: Path, staging_allowed: bool = False) -> None:
    """Each model has a record and its complete verified folder, or neither."""
    for model_id in IDS:
        record = registry.get(model_id)
        folder = models_dir / model_id.replace("/", "--")
        if record is None:
            assert not folder.exists(), f"{folder} holds files no record owns"
            continue
        assert catalog.is_installed(models_dir, record.entry()), f"{model_id} is recorded without its files"
        for f in record.files:
            assert sha256_of(folder / f["name"]) == f["sha256"]
    if not staging_allowed:
        assert not [p.name for p in models_dir.glob(".*-*") if p.is_dir()]


def test_processes_registering_one_models_file_together(tmp_path: Path, databases: DatabaseFactory) -> None:
    gguf = tmp_path / "src" / "smol.gguf"
    gguf.parent.mkdir()
    shutil.copyfile(SMOL, gguf)
    emb = embeddings_dir(tmp_path / "src")
    models_file = tmp_path / "models.yaml"
    models_file.write_text(
        f"models:\n  - id: race/smol\n    source: {gguf}\n  - id: race/minilm\n    source: {emb}\n"
    )
    data, db_url = tmp_path / "data", databases.new("race")
    models_dir = data / "models"
    env = base_env(data, db_url, INFERLINE_MODELS_DIR=str(models_dir), INFERLINE_MODELS_FILE=str(models_file))
    db = Database(db_url)
    db.migrate()
    registry = ModelRegistry(db, models_dir)

    # A process killed while it copies the GGUF leaves neither a record nor a model folder.
    victim = start(env, "models", "list")
    deadline = time.monotonic() + 300
    while victim.poll() is None and time.monotonic() < deadline:
        partial = [p for p in models_dir.glob("*race--smol*/model.gguf") if p.stat().st_size > 0]
        if partial:
            os.killpg(victim.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    victim.communicate(timeout=60)
    check_consistent(registry, models_dir, staging_allowed=True)

    # Several processes start together: all succeed, each model is registered once, complete.
    results = finish([start(env, "models", "list") for _ in range(PROCESSES)])
    for code, stdout, stderr in results:
        assert code == 0, stderr
        rows = {line.split()[0]: line.split() for line in stdout.splitlines()[1:]}
        assert all(rows[model_id][-2] == "installed" for model_id in IDS), stdout
    assert [r.id for r in registry.all()] == sorted(IDS)
    check_consistent(registry, models_dir)

    # A removal while processes start with the file (and register the model again): never half a model.
    procs = [start(env, "models", "remove", "race/smol")] + [
        start(env, "models", "list") for _ in range(PROCESSES - 1)
    ]
    for code, _, stderr in finish(procs):
        assert code == 0 and "Traceback" not in stderr, stderr
    check_consistent(registry, models_dir)
    db.dispose()
