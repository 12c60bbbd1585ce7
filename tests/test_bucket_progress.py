"""`inferline bucket upload` shows its progress (issue 14): each file's bytes as they are written, then with
`--embed` the embedding task's status per file until it ends, run by the live server's worker.
tests/test_walkthrough.py does the same on a fresh clone's `make serve`; these run on either database."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path
from typing import Any

from inferline.config import Settings
from tests.conftest import LiveServer
from tests.procs import INFERLINE, base_env


def _upload(settings: Settings, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """`inferline bucket upload ARGS` on the live server's data and database."""
    env = base_env(settings.data_dir, settings.resolved_database_url)
    return subprocess.run([*INFERLINE, "bucket", "upload", *args], env=env, timeout=300, **kwargs)


def test_a_task_whose_files_all_fail_ends_with_its_reason(
    server: LiveServer, settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "junk.bin").write_bytes(bytes(range(256)) * 8)
    done = _upload(
        settings,
        ["progress-fail", str(tmp_path / "junk.bin"), "--key", server.key_a, "--embed"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    tenant = server.container.keys.authenticate(server.key_a).tenant_id
    lines = done.stderr.splitlines()
    assert lines[:3] == [
        "upload progress-fail/junk.bin: 0 B of 2.0 kB (0%)",
        "upload progress-fail/junk.bin: 2.0 kB of 2.0 kB (100%)",
        f"uploaded 1 file(s) to progress-fail (tenant {tenant})",
    ]
    assert lines[3].startswith("embed progress-fail: task ") and lines[3].endswith(" queued")
    assert any(x.startswith("embed progress-fail/junk.bin: failed: unsupported binary file") for x in lines)
    assert lines[-1] == (
        "embed progress-fail: failure: all 1 file(s) failed; see GET /v2/ai/embeddings/buckets/progress-fail"
    )


def test_an_unchanged_file_is_not_embedded_again(
    server: LiveServer, settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("The quick brown fox.\n")
    args = ["progress-again", str(tmp_path / "a.txt"), "--key", server.key_a, "--embed"]
    first = _upload(settings, args, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "embed progress-again/a.txt: success" in first.stderr.splitlines()
    again = _upload(settings, args, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    embedding = again.stderr[again.stderr.index("embed progress-again: task ") :].splitlines()
    assert len(embedding) == 2 and embedding[-1] == "embed progress-again: success", again.stderr


def test_on_a_terminal_a_files_progress_redraws_one_line(
    server: LiveServer, settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "b.txt").write_text("hello\n")
    controller, terminal = pty.openpty()
    try:
        done = _upload(
            settings, ["progress-tty", str(tmp_path / "b.txt")], stdout=subprocess.PIPE, stderr=terminal
        )
        os.close(terminal)
        terminal = -1
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal's other side is closed and everything was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    assert done.returncode == 0, shown
    text = shown.decode().replace("\r\n", "\n")  # the terminal turns "\n" into "\r\n"
    redraw = "\r\x1b[Kupload progress-tty/b.txt: "
    assert text.startswith(f"{redraw}0 B of 6 B (0%){redraw}6 B of 6 B (100%)\n"), text
