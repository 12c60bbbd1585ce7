"""The models file's `tenants` for every kind of model, and buckets that remember their embedding model.

A server whose models directory holds only registered models: two open embedding models (MiniLM with mean
pooling and with CLS pooling: the same 384 dimensions, different vectors) and, kept for tenant B, an
embedding model, a Whisper model and a Piper voice. Tenant A is answered about B's models exactly as about
models that do not exist (no list shows them, no endpoint uses them); tenant B uses them through the official
SDKs.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import openai
import pytest
import telnyx
import uvicorn
from botocore.config import Config
from sqlalchemy import select

from inferline.app import create_app
from inferline.areas.models.registry import ModelRegistry
from inferline.config import Settings
from inferline.container import Container, build_container
from inferline.stores.db import Database
from inferline.stores.embeddings_tables import EmbeddingChunk
from tests import audio_samples as audio
from tests.conftest import API_KEY, MODELS_DIR, free_port, s3_auth
from tests.databases import DatabaseFactory

MINILM_DIR = MODELS_DIR / "sentence-transformers--all-MiniLM-L6-v2"
WHISPER_DIR = MODELS_DIR / "openai--whisper-tiny.en"
VOICE_DIR = MODELS_DIR / "rhasspy--piper-en_US-joe-medium"
HELLO = "Please call me back tomorrow morning."
FINAL = {"success", "failure", "partial_success"}
MODELS_FILE = """
models:
  - id: acme/minilm-b
    tenants: [tenant-b]
  - id: acme/whisper-b
    tenants: [tenant-b]
  - id: acme/joe-b
    tenants: [tenant-b]
"""


def sources(root: Path) -> dict[str, Path]:
    def embeddings(name: str, cls: bool) -> Path:
        emb = root / name
        (emb / "1_Pooling").mkdir(parents=True)
        shutil.copyfile(MINILM_DIR / "model.onnx", emb / "model.onnx")
        shutil.copyfile(MINILM_DIR / "tokenizer.json", emb / "tokenizer.json")
        pooling = {"pooling_mode_mean_tokens": not cls, "pooling_mode_cls_token": cls}
        (emb / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
        return emb

    whisper = root / "whisper"
    whisper.mkdir(parents=True)
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(WHISPER_DIR / name, whisper / name)
    voice = root / "voice"
    voice.mkdir()
    shutil.copyfile(VOICE_DIR / "voice.onnx", voice / "en_US-joe-medium.onnx")
    shutil.copyfile(VOICE_DIR / "voice.onnx.json", voice / "en_US-joe-medium.onnx.json")
    return {
        "acme/minilm": embeddings("mean", False),
        "acme/minilm-cls": embeddings("cls", True),
        "acme/minilm-b": root / "mean",
        "acme/whisper-b": whisper,
        "acme/joe-b": voice,
    }


@dataclass
class Server:
    url: str
    key_b: str
    container: Container

    def telnyx(self, key: str = API_KEY) -> telnyx.Telnyx:
        return telnyx.Telnyx(
            api_key=key, base_url=self.url + "/v2", _strict_response_validation=True, max_retries=0
        )

    def oai(self, key: str = API_KEY, base: str = "/v2/ai/openai") -> openai.OpenAI:
        return openai.OpenAI(api_key=key, base_url=self.url + base, max_retries=0)

    def s3(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=f"{self.url}/s3",
            **s3_auth(API_KEY),
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}),
        )


def serve(tmp_path_factory: pytest.TempPathFactory, databases: DatabaseFactory) -> Iterator[Server]:
    """The models registered and the server running (until the generator is closed)."""
    root = tmp_path_factory.mktemp("tenants")
    data, db_url = root / "data", databases.new("tenants")
    db = Database(db_url)
    db.migrate()
    registry = ModelRegistry(db, data / "models")
    for model_id, source in sources(root / "user").items():
        registry.add(str(source), model_id=model_id, link=True)
    db.dispose()
    (root / "models.yaml").write_text(MODELS_FILE)
    settings = Settings(
        data_dir=data,
        INFERLINE_MODELS_DIR=data / "models",
        database_url=db_url,
        profile="test",
        api_key=API_KEY,
        models_file=root / "models.yaml",
        embedding_model="acme/minilm",
        log_level="warning",
        tts_variation=0.0,  # the same speech every run, as on the session server (conftest)
    )
    container = build_container(settings)
    _, key_b = container.keys.create("tenant-b", name="second tenant")
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(settings, container), port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield Server(f"http://127.0.0.1:{port}", key_b, container)
    uv.should_exit = True
    thread.join(timeout=10)
    container.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, databases: DatabaseFactory) -> Iterator[Server]:
    yield from serve(tmp_path_factory, databases)


def error_of(exc: pytest.ExceptionInfo[Any]) -> tuple[int, dict[str, Any]]:
    """(status, the envelope's first error) of an SDK's APIStatusError."""
    response = exc.value.response
    return response.status_code, response.json()["errors"][0]


def same_as_unknown(call: Any, kept: str, unknown: str) -> tuple[int, dict[str, Any]]:
    """`call(name)` fails for the model kept for another tenant exactly as for a model that does not exist
    (status, code, title, pointer and detail, the name aside); returns that error."""
    with pytest.raises((telnyx.APIStatusError, openai.APIStatusError)) as hidden:
        call(kept)
    with pytest.raises((telnyx.APIStatusError, openai.APIStatusError)) as missing:
        call(unknown)
    status, error = error_of(hidden)
    assert (status, error | {"detail": error["detail"].replace(kept, unknown)}) == error_of(missing)
    return status, error


def embed_bucket(server: Server, bucket: str, model: str) -> None:
    client = server.telnyx()
    task = client.ai.embeddings.create(bucket_name=bucket, embedding_model=model)  # type: ignore[arg-type]
    deadline = time.monotonic() + 180
    while (status := client.ai.embeddings.retrieve(task.data.task_id).data.status) not in FINAL:
        assert time.monotonic() < deadline, "the embedding task did not finish"
        time.sleep(0.2)
    assert status == "success"


# ---- a bucket remembers its embedding model ---------------------------------------------------------------
def test_a_bucket_is_searched_only_with_the_model_it_was_embedded_with(server: Server) -> None:
    s3, client = server.s3(), server.telnyx()
    s3.create_bucket(Bucket="kb-docs")
    s3.put_object(Bucket="kb-docs", Key="bread.txt", Body=b"Sourdough bread rises slowly with wild yeast.")
    s3.put_object(Bucket="kb-docs", Key="ships.txt", Body=b"Container ships carry goods between harbours.")

    def search(model: str | None) -> Any:
        extra = {"embedding_model": model} if model is not None else None
        return client.ai.embeddings.similarity_search(
            bucket_name="kb-docs", query="baking with yeast", num_of_docs=1, extra_body=extra
        ).data

    for first, then in (("acme/minilm", "acme/minilm-cls"), ("acme/minilm-cls", "acme/minilm")):
        embed_bucket(server, "kb-docs", first)
        for model in (None, first):
            hits = search(model)
            assert hits[0].metadata.filename == "bread.txt" and hits[0].metadata.embedding == first
        with pytest.raises(telnyx.BadRequestError) as caught:
            search(then)  # the same dimensions, but vectors of another model: not comparable
        status, error = error_of(caught)
        assert (status, error["code"], error["source"]) == (400, "10015", {"pointer": "/embedding_model"})
        assert first in error["detail"] and then in error["detail"]
    # The Telnyx names stand for the server's embedding model (acme/minilm), which is not the bucket's now.
    with pytest.raises(telnyx.BadRequestError):
        search("thenlper/gte-large")
    with pytest.raises(telnyx.NotFoundError) as unknown:
        search("acme/nope")
    assert error_of(unknown)[1]["source"] == {"pointer": "/embedding_model"}


NOTES = {
    "a-ships.txt": "Container ships carry goods between harbours.",
    "b-bread.txt": "Sourdough bread rises slowly with wild yeast.",
    "c-cake.txt": "Bake the cake with flour, butter, eggs and yeast.",
    "d-bikes.txt": "Bicycles need their chains oiled every month.",
    "e-rain.txt": "Heavy rain is expected over the mountains tonight.",
}


def test_search_during_a_re_embedding_uses_only_the_new_models_chunks(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket embedded with acme/minilm is re-embedded with acme/minilm-cls (the same dimensions, other
    vectors). Held after its first file, the bucket holds chunks of both models: a search (with the bucket's
    model, now minilm-cls) returns chunks of minilm-cls only, never a mix of incomparable scores."""
    s3, client, query = server.s3(), server.telnyx(), "baking with yeast"
    s3.create_bucket(Bucket="kb-reembed")
    for key, body in NOTES.items():
        s3.put_object(Bucket="kb-reembed", Key=key, Body=body.encode())
    embed_bucket(server, "kb-reembed", "acme/minilm")
    engine = server.container.embeddings.resolve("acme/minilm-cls")
    first_done, release = threading.Event(), threading.Event()
    embed = engine.embed

    def held(texts: list[str]) -> Any:  # the task's files wait after the first; the search query does not
        if texts != [query] and first_done.is_set():
            release.wait(120)
        result = embed(texts)
        first_done.set()
        return result

    monkeypatch.setattr(engine, "embed", held)

    def chunk_models() -> dict[str, str]:
        with server.container.db.session() as s:
            rows = s.execute(
                select(EmbeddingChunk.filename, EmbeddingChunk.model).where(
                    EmbeddingChunk.bucket == "kb-reembed"
                )
            )
            return {row[0]: row[1] for row in rows}

    try:
        task = client.ai.embeddings.create(bucket_name="kb-reembed", embedding_model="acme/minilm-cls")  # type: ignore[arg-type]
        deadline = time.monotonic() + 120
        while "acme/minilm-cls" not in chunk_models().values():
            assert time.monotonic() < deadline, "the re-embedding wrote no chunk"
            time.sleep(0.1)
        models = chunk_models()
        assert set(models.values()) == {"acme/minilm", "acme/minilm-cls"}  # mid-way: both models' chunks
        hits = client.ai.embeddings.similarity_search(
            bucket_name="kb-reembed", query=query, num_of_docs=3
        ).data
        assert hits and {h.metadata.embedding for h in hits} == {"acme/minilm-cls"}
        assert {h.metadata.filename for h in hits} <= {f for f, m in models.items() if m == "acme/minilm-cls"}
        assert chunk_models() == models  # still held: the search ran on the mixed bucket
    finally:
        release.set()
    deadline = time.monotonic() + 180
    while (status := client.ai.embeddings.retrieve(task.data.task_id).data.status) not in FINAL:
        assert time.monotonic() < deadline, "the embedding task did not finish"
        time.sleep(0.2)
    assert status == "success" and set(chunk_models().values()) == {"acme/minilm-cls"}
    hits = client.ai.embeddings.similarity_search(bucket_name="kb-reembed", query=query, num_of_docs=3).data
    assert len(hits) == 3 and {h.metadata.embedding for h in hits} == {"acme/minilm-cls"}
    assert hits[0].metadata.filename in {"b-bread.txt", "c-cake.txt"}


# ---- tenants ----------------------------------------------------------------------------------------------
def test_lists_show_each_tenant_only_its_models(server: Server) -> None:
    kept = {"acme/minilm-b", "acme/whisper-b", "acme/joe-b"}
    seen_a = {m.id for m in server.telnyx().ai.openai.list_models().data}
    seen_b = {m.id for m in server.telnyx(server.key_b).ai.openai.list_models().data}
    assert not kept & seen_a and {"acme/minilm", "acme/minilm-cls"} <= seen_a
    assert kept | {"acme/minilm"} <= seen_b
    assert not kept & {m.id for m in server.oai().models.list()}
    emb_a, emb_b = (
        {m["id"] for m in httpx.get(url, headers={"Authorization": f"Bearer {key}"}).json()["data"]}
        for url, key in [(server.url + "/v2/ai/openai/embeddings/models", k) for k in (API_KEY, server.key_b)]
    )
    assert "acme/minilm-b" not in emb_a and "acme/minilm-b" in emb_b
    voices_a = server.telnyx().text_to_speech.list_voices().voices or []
    voices_b = server.telnyx(server.key_b).text_to_speech.list_voices().voices or []
    assert voices_a == [] and [v.voice_id for v in voices_b] == ["Telnyx.Piper.en_US-joe-medium"]


def test_embedding_model_kept_for_another_tenant(server: Server) -> None:
    oai = server.oai()
    status, error = same_as_unknown(
        lambda m: oai.embeddings.create(model=m, input="hello"), "acme/minilm-b", "acme/nope"
    )
    assert status == 404 and "acme/minilm-b" not in error["detail"].replace("'acme/minilm-b'", "")
    done = server.oai(server.key_b).embeddings.create(model="acme/minilm-b", input="hello")
    assert done.model == "acme/minilm-b"
    # Bucket ingestion and search (the Telnyx SDK) answer the same.
    server.s3().create_bucket(Bucket="kept")
    server.s3().put_object(Bucket="kept", Key="a.txt", Body=b"Some text to embed.")
    client = server.telnyx()
    status, error = same_as_unknown(
        lambda m: client.ai.embeddings.create(bucket_name="kept", embedding_model=m),
        "acme/minilm-b",
        "acme/nope",
    )
    assert (status, error["source"]) == (404, {"pointer": "/embedding_model"})
    embed_bucket(server, "kept", "acme/minilm")
    status, _ = same_as_unknown(
        lambda m: client.ai.embeddings.similarity_search(
            bucket_name="kept", query="text", extra_body={"embedding_model": m}
        ),
        "acme/minilm-b",
        "acme/nope",
    )
    assert status == 404


def test_transcription_model_kept_for_another_tenant(server: Server) -> None:
    wav = audio.wav(audio.speech(HELLO))
    client = server.telnyx()
    same_as_unknown(
        lambda m: client.ai.audio.transcribe(model=m, file=("h.wav", wav, "audio/x-wav")),
        "acme/whisper-b",
        "acme/nope",
    )
    # A Whisper name runs the default model: none that tenant A may use.
    with pytest.raises(openai.NotFoundError):
        server.oai(base="/v2/ai").audio.transcriptions.create(model="whisper-1", file=("h.wav", wav))
    heard = server.telnyx(server.key_b).ai.audio.transcribe(
        model="acme/whisper-b", file=("h.wav", wav, "audio/x-wav")
    )
    assert audio.words(heard.text) == audio.words(HELLO)


def test_voice_kept_for_another_tenant(server: Server) -> None:
    oai = server.oai(base="/v2")
    same_as_unknown(
        lambda v: oai.audio.speech.create(model="tts-1", voice=v, input=HELLO, response_format="wav"),
        "Telnyx.Piper.en_US-joe-medium",
        "Telnyx.Piper.nobody",
    )
    with pytest.raises(openai.NotFoundError):  # an OpenAI voice name speaks with a voice A may use: none
        oai.audio.speech.create(model="tts-1", voice="alloy", input=HELLO, response_format="wav")
    speech = server.oai(server.key_b, base="/v2").audio.speech.create(
        model="tts-1", voice="alloy", input=HELLO, response_format="wav"
    )
    assert speech.response.headers["x-inferline-voice"] == "Telnyx.Piper.en_US-joe-medium"
