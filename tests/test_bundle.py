"""The offline install bundle (issue 17): `inferline bundle` for the test profile plus a model registered with
`inferline models add`, installed and served inside a network namespace whose only interface is loopback
(`unshare -n`, as root) and driven there with the telnyx SDK; its checksums and pinned hashes are enforced.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferline import catalog
from tests import packaging_support
from tests.conftest import REPO
from tests.packaging_smoke import MINILM, SMOL
from tests.packaging_support import ALIAS, REGISTERED, clean_env, extract

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(os.environ.get("INFERLINE_TEST_DATABASE_URL")),
        reason="packaging does not depend on the test database: it runs once per CI run (the SQLite pass)",
    ),
]
offline_bundle = packaging_support.offline_bundle  # the session fixture: the built tarball


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, emptied afterwards: an extracted bundle and an install take over a gigabyte."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def netns_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root: the bundle is installed and served inside `unshare -n` (a new network namespace)"
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "needs unshare (util-linux) and ip (iproute2) to make a network namespace with only loopback"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`unshare -n` is not permitted here: {probe.stderr.strip()}"
    return None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def install(bundle: Path, work: Path) -> subprocess.CompletedProcess[str]:
    """`install.sh --no-start` into `work` (no namespace: used where the install must fail early)."""
    args = [str(bundle / "install.sh"), "--prefix", str(work / "prefix"), "--data-dir", str(work / "data")]
    return subprocess.run([*args, "--no-start"], env=clean_env(), capture_output=True, text=True, timeout=600)


def test_bundle_holds_pinned_hashed_wheels_and_verified_models(offline_bundle: Path, scratch: Path) -> None:
    with tarfile.open(offline_bundle) as tar:
        names = tar.getnames()
    top = names[0].split("/")[0]
    assert all(n.startswith(top + "/") for n in names)
    bundle = extract(offline_bundle, scratch)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["profile"] == "test" and manifest["extras"] == "engines,audio,postgres,s3"
    assert manifest["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert set(manifest["models"]) == {e.id for e in catalog.for_profile("test")}
    assert manifest["registered"] == [REGISTERED]

    # Every wheel is pinned by version and by the hash of the downloaded file; nothing else is listed.
    wheels = {p.name: sha256(p) for p in (bundle / "wheels").iterdir()}
    lines = (bundle / "requirements.txt").read_text().splitlines()
    pinned = {line.split("==")[0]: line for line in lines}
    assert len(pinned) == len(lines) == len(wheels)
    for name, digest in wheels.items():
        dist = name.split("-")[0].lower().replace("_", "-")
        key = next(k for k in pinned if k.split("[")[0] == dist)
        assert f"=={name.split('-')[1]} " in pinned[key] and f"--hash=sha256:{digest}" in pinned[key]
    assert "inferline[engines,audio,postgres,s3]" in pinned
    assert not {"transformers", "peft", "pytest", "telnyx", "ruff"} & set(pinned), "no train/dev extras"

    # The models are the catalog's bytes, with the marker `inferline models install` writes.
    for entry in catalog.for_profile("test"):
        folder = bundle / "models" / entry.slug
        marker = json.loads((folder / catalog.MARKER).read_text())
        assert marker["id"] == entry.id
        for f in entry.files:
            if f.sha256:
                assert sha256(folder / f.name) == f.sha256
    registered = (bundle / "models.toml.in").read_text()
    assert f'id = "{REGISTERED}"' in registered and f'aliases = ["{ALIAS}"]' in registered
    assert (
        "context = 2048" in registered
        and 'source = "@PREFIX@/added/local--smol-copy/model.gguf"' in registered
    )

    # SHA256SUMS covers every other file.
    sums = dict(reversed(line.split("  ", 1)) for line in (bundle / "SHA256SUMS").read_text().splitlines())
    files = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert set(sums) == files
    assert all(
        sha256(bundle / name) == digest for name, digest in sums.items() if not name.startswith("wheels/")
    )


def test_bundle_installs_and_serves_with_no_network(offline_bundle: Path, scratch: Path) -> None:
    if reason := netns_skip_reason():
        pytest.skip(reason)
    bundle = extract(offline_bundle, scratch / "bundle")
    work = scratch / "target"
    work.mkdir()
    out = subprocess.run(
        ["unshare", "-n", sys.executable, str(REPO / "tests" / "packaging_smoke.py"), "offline", str(bundle),
         str(work), "--registered", REGISTERED, "--alias", ALIAS],
        capture_output=True, text=True, timeout=1200, env=clean_env(),
    )  # fmt: skip
    log = (
        (work / "install-and-serve.log").read_text(errors="replace")
        if (work / "install-and-serve.log").exists()
        else ""
    )
    assert out.returncode == 0, (
        f"{out.stdout[-2000:]}\n{out.stderr[-2000:]}\n--- install.sh and server:\n{log[-4000:]}"
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    # The namespace had loopback only, and nothing outside answered.
    assert report["interfaces"] == ["lo"] and report["reached"] is None
    assert {SMOL, MINILM, REGISTERED} <= set(report["models"])
    assert set(report["replies"]) == {SMOL, REGISTERED, ALIAS} and all(report["replies"].values())
    assert report["dimensions"] == 384
    assert report["task"] == "success" and report["top_hit"] == "bread.txt"
    assert "no network, hashes required" in log
    # The install: the venv's settings file names the data directory and the registered model's models file.
    settings = (work / "prefix" / "venv" / "inferline.env").read_text()
    assert f"INFERLINE_DATA_DIR={work / 'data'}" in settings and "INFERLINE_PROFILE=test" in settings
    assert f"INFERLINE_MODELS_FILE={work / 'prefix' / 'models.toml'}" in settings

    # The systemd units, rendered for this install, pass systemd's own checks.
    units = sorted((work / "units").glob("*.service"))
    assert [u.name for u in units] == ["inferline-api.service", "inferline-worker.service"]
    text = units[0].read_text()
    assert (
        f"ExecStart={work / 'prefix'}/bin/inferline serve" in text
        and f"ReadWritePaths={work / 'data'}" in text
    )
    if shutil.which("systemd-analyze"):
        check = subprocess.run(
            ["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True
        )
        assert check.returncode == 0 and not check.stderr.strip(), check.stderr


def test_a_damaged_bundle_installs_nothing(offline_bundle: Path, scratch: Path) -> None:
    bundle = extract(offline_bundle, scratch / "bundle")
    model = bundle / "models" / "sentence-transformers--all-MiniLM-L6-v2" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    out = install(bundle, scratch / "target")
    assert out.returncode != 0
    assert "model.onnx: FAILED" in out.stdout + out.stderr and "the bundle is damaged" in out.stderr
    assert not (scratch / "target").exists()


def test_a_wheel_that_does_not_match_its_pinned_hash_is_refused(offline_bundle: Path, scratch: Path) -> None:
    """With SHA256SUMS made to agree, pip's --require-hashes refuses a wheel that is not the pinned one."""
    bundle = extract(offline_bundle, scratch / "bundle")
    (wheel,) = (bundle / "wheels").glob("six-*.whl")
    with wheel.open("ab") as fh:
        fh.write(b"\0")
    sums = bundle / "SHA256SUMS"
    rel = f"wheels/{wheel.name}"
    sums.write_text(
        "".join(
            f"{sha256(wheel)}  {rel}\n" if line.endswith(f"  {rel}") else line + "\n"
            for line in sums.read_text().splitlines()
        )
    )
    out = install(bundle, scratch / "target")
    assert out.returncode != 0
    assert "DO NOT MATCH THE HASHES" in out.stdout + out.stderr
    assert "pip could not install the bundled wheels" in out.stderr
    assert not (scratch / "target" / "data" / "models").exists()
