"""The README's examples, run: every Python snippet against the live test server, every CLI line it shows
parsed by the real parser, and the layout's command list compared with the parser, so the README cannot drift.

The Python snippets run in order in one namespace (as a reader pastes them into one session), in a folder
holding the files they name, as a fresh tenant. Only what a reader fills in is substituted: the server
address, the API key and its S3 credentials, and the default profile's chat model (the test profile's runs
the same code).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from inferline import catalog
from inferline.areas.conversations.webhooks import WebhookSigner
from inferline.cli import build_parser
from inferline.keys import s3_credentials
from tests.conftest import REPO, LiveServer

README = (REPO / "README.md").read_text()


def python_snippets(readme: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", readme, re.S)


PYTHON_SNIPPETS = python_snippets(README)
BASH_BLOCKS = re.findall(r"```bash\n(.*?)```", README, re.S)
DEFAULT_CHAT = next(e.id for e in catalog.for_profile("default") if e.kind == "chat")
TEST_CHAT = next(e.id for e in catalog.for_profile("test") if e.kind == "chat")


@contextmanager
def reader_session(url: str, key: str, signer: WebhookSigner, folder: Path) -> Iterator[dict[str, Any]]:
    """The reader's session on the server at `url` as `key`'s tenant: its training file in `my-bucket`, a
    `handbook.pdf` in `folder` (the working directory meanwhile), and the names the webhook snippet expects a
    receiving handler to have (an event body signed by the server's `signer`, and its headers)."""
    access_key_id, secret = s3_credentials(key)
    s3 = boto3.client(
        "s3",
        endpoint_url=url + "/s3",
        region_name="us-east-1",
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
    )
    s3.create_bucket(Bucket="my-bucket")
    line = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    s3.put_object(Bucket="my-bucket", Key="train.jsonl", Body=json.dumps(line) + "\n")
    (folder / "handbook.pdf").write_bytes(b"%PDF-1.4\n% a placeholder the snippet uploads\n")
    raw_body = json.dumps({"data": {"event_type": "call.conversation_insights.generated", "payload": {}}})
    namespace: dict[str, Any] = {
        "raw_body": raw_body,
        "request_headers": signer.headers(raw_body),
        "PUBLIC_KEY": signer.public_key(),
    }
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        yield {"namespace": namespace, "key": key, "s3": (access_key_id, secret), "url": url}
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def session(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The reader's session as a new tenant of the test server."""
    _, key = server.container.keys.create("readme", name="README snippets")
    folder = tmp_path_factory.mktemp("reader")
    with reader_session(server.url, key, server.container.webhooks.signer, folder) as session:
        yield session


def adapt(code: str, session: dict[str, Any]) -> str:
    """The snippet as the reader runs it: their server, key, S3 credentials; the test profile's chat model."""
    access_key_id, secret = session["s3"]
    return (
        code.replace("http://127.0.0.1:8000", session["url"])
        .replace('"KEY..."', repr(session["key"]))
        .replace('"IL..."', repr(access_key_id))
        .replace('"<S3 secret>"', repr(secret))
        .replace(DEFAULT_CHAT, TEST_CHAT)
    )


def test_the_readme_has_python_snippets() -> None:
    assert len(PYTHON_SNIPPETS) >= 6


def run_snippet(snippet: str, number: int, session: dict[str, Any]) -> None:
    """Run a README Python snippet in the session's namespace (a traceback names it by its `number`)."""
    code = adapt(snippet, session)
    exec(compile(code, f"README.md python snippet {number}", "exec"), session["namespace"])


@pytest.mark.parametrize("index", range(len(PYTHON_SNIPPETS)))
def test_python_snippet_runs(index: int, session: dict[str, Any]) -> None:
    run_snippet(PYTHON_SNIPPETS[index], index + 1, session)


def _cli_lines() -> list[list[str]]:
    """Every `inferline …` (or `.venv/bin/inferline …`) line of the README's shell blocks, as arguments."""
    lines = []
    for block in BASH_BLOCKS:
        for line in block.splitlines():
            if line.startswith(("inferline ", ".venv/bin/inferline ")):
                lines.append(shlex.split(line.split(" #", 1)[0])[1:])
    return lines


@pytest.mark.parametrize("args", _cli_lines(), ids=" ".join)
def test_cli_line_parses(args: list[str]) -> None:
    parsed = build_parser().parse_args([a.replace("<", "").replace(">", "") for a in args])
    assert callable(parsed.func)


def test_the_layout_lists_every_command() -> None:
    layout = README[README.index("## Layout") :]
    cli_line = layout[layout.index("cli.py") : layout.index("logs.py")]
    documented = {}
    for segment in re.findall(r"`(?:inferline )?([a-z0-9-]+(?: [a-z0-9|-]+)?)`", cli_line):
        name, _, subs = segment.partition(" ")
        documented[name] = set(subs.split("|")) if subs else set()
    commands = {}
    for action in build_parser()._subparsers._group_actions:  # type: ignore[union-attr]
        for name, command in action.choices.items():
            nested = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
            commands[name] = set(nested[0].choices) if nested else set()
    assert documented == commands


JAVASCRIPT_SNIPPETS = re.findall(r"```javascript\n(.*?)```", README, re.S)


@pytest.mark.node
@pytest.mark.parametrize("index", range(len(JAVASCRIPT_SNIPPETS)))
def test_javascript_snippet_runs(index: int, server: LiveServer) -> None:
    """Each README JavaScript snippet runs as an ES module with node and the `telnyx` npm package (the one
    `make test` installs under tests/js), against the live server, and prints what it promises."""
    js_dir = REPO / "tests" / "js"
    node = shutil.which("node")
    if node is None or not (js_dir / "node_modules" / "telnyx").is_dir():
        pytest.fail("node and tests/js/node_modules are required: run `make test`, which installs them")
    _, key = server.container.keys.create("readme-js", name="README JavaScript snippet")
    code = JAVASCRIPT_SNIPPETS[index].replace("http://127.0.0.1:8000", server.url)
    code = code.replace("'KEY...'", repr(key))
    module = js_dir / f"readme-snippet-{index + 1}.mjs"
    module.write_text(code)
    try:
        result = subprocess.run(
            [node, module.name], cwd=js_dir, capture_output=True, text=True, timeout=120, check=False
        )
    finally:
        module.unlink()
    assert result.returncode == 0, result.stdout + result.stderr
    assert TEST_CHAT in result.stdout, result.stdout  # the models list it prints names the installed model
