"""One typed settings object, read from `INFERLINE_*` environment variables, built once and passed down."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from inferline.net.policy import AllowList

CONFIG_NAME = "inferline.env"


def default_data_dir() -> Path:
    """The per-user data directory: `$XDG_DATA_HOME/inferline`, else `~/.local/share/inferline`.

    It does not depend on the working directory, so the server and every CLI command find the same data.
    """
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "inferline"


def config_file() -> Path | None:
    """The `KEY=VALUE` file read beneath the environment (environment variables win over it).

    `$INFERLINE_CONFIG` names it (empty: none); otherwise the first that exists of `<venv>/inferline.env`
    (written by `make`, so the venv's `inferline` uses the data directory `make serve` uses, from any folder)
    and `$XDG_CONFIG_HOME/inferline/inferline.env` (default `~/.config/inferline/inferline.env`).
    """
    named = os.environ.get("INFERLINE_CONFIG")
    if named is not None:
        return Path(named).expanduser() if named else None
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    for candidate in (Path(sys.prefix) / CONFIG_NAME, config_home / "inferline" / CONFIG_NAME):
        if candidate.is_file():
            return candidate
    return None


def display_url(url: str) -> str:
    """A database URL fit for logs and messages: its password masked."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: show only its scheme
        return url.partition(":")[0] + ":…"


class RemoteModel(BaseModel):
    """A model served by a remote OpenAI-compatible server (vLLM in production), one entry per model id."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Base URL of the OpenAI-compatible API, e.g. `http://vllm:8000/v1`.")
    model: str | None = Field(default=None, description="The upstream's name for it; default: the id.")
    api_key: str | None = Field(default=None, description="Bearer token for the upstream.")
    timeout_seconds: float = Field(default=60.0, gt=0, description="Per-request timeout (then 504).")
    max_tokens: int = Field(default=512, gt=0, description="Longest input the model takes, in tokens.")
    dimensions: int | None = Field(default=None, description="Vector width; default: probed once.")


WARMUP_KINDS = ("embeddings", "tts", "stt", "chat")  # the order they warm in (`ops.warmup`): quick ones first


def warmup_kinds(value: str) -> tuple[str, ...]:
    """`INFERLINE_WARMUP` (`all`, `none` or a comma list of kinds) as kinds in warming order; ValueError names
    an unknown one."""
    words = [w.strip().lower() for w in value.split(",") if w.strip()]
    if words in ([], ["none"]):
        return ()
    if words == ["all"]:
        return WARMUP_KINDS
    unknown = [w for w in words if w not in WARMUP_KINDS]
    if unknown:
        raise ValueError(
            f"unknown model kind {unknown[0]!r}: use all, none, or some of {', '.join(WARMUP_KINDS)}"
        )
    return tuple(k for k in WARMUP_KINDS if k in words)


class Settings(BaseSettings):
    """Every knob of an inferline process. Field docs are the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="INFERLINE_", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the database, objects and models live; default `$XDG_DATA_HOME/inferline` "
        "(`~/.local/share/inferline`). `make` sets it to the checkout's `data/`.",
    )
    models_dir_override: Path | None = Field(
        default=None,
        alias="INFERLINE_MODELS_DIR",
        description="Where installed models are assembled; default `<data_dir>/models`.",
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(default=8000, description="Port the HTTP server listens on.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default `sqlite:///<data_dir>/inferline.db`. "
        "`postgresql+psycopg://…` selects PostgreSQL.",
    )
    api_key: str | None = Field(
        default=None, description="An API key seeded at start-up (tenant `default`), handy for local use."
    )
    profile: str = Field(
        default="default",
        description="Model profile to install and serve: `default` (Qwen2.5-Coder-1.5B, Whisper base) "
        "or `test` (SmolLM2-135M, Whisper tiny.en).",
    )
    chat_model: str | None = Field(
        default=None, description="Model id served when a chat request names none; default: the profile's."
    )
    max_request_bytes: int = Field(default=100 * 1024 * 1024, description="Largest accepted request body.")
    s3_max_body_bytes: int = Field(
        default=256 * 1024 * 1024,
        description="Largest body of one S3 request (PutObject or UploadPart; it is held in memory). Larger "
        "objects go up in multipart uploads (S3 itself allows 5 GiB per request).",
    )
    embedded_worker: bool = Field(
        default=True,
        description="Run a job worker inside the API process (off when using `inferline worker`).",
    )
    worker_concurrency: int = Field(default=1, description="Job threads per worker.")
    warmup: str = Field(
        default="all",
        description="Model kinds whose default model an API process loads and runs once at start-up, "
        "before `/ready` answers 200: `all`, `none`, or a comma list of chat, embeddings, stt, tts.",
    )
    job_lease_seconds: float = Field(
        default=30.0, description="A job whose worker is silent this long is re-run."
    )
    tts_variation: float = Field(
        default=1.0,
        ge=0.0,
        le=2.0,
        description="Scales the sampling noise of Piper voices (their `noise_scale` and `noise_w`): 1 speaks "
        "with each voice's own variation, 0 speaks the same samples for the same text every time.",
    )
    tts_audio_ttl_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="How long speech made with `output_type: audio_id` can be fetched "
        "(`GET /v2/text-to-speech/speech/{audio_id}`); then a 404, deleted by the next such request.",
    )
    webhook_allowed_hosts: str = Field(
        default="",
        description="Comma-separated hosts, IPs or CIDRs that webhooks may target although they are "
        "private or loopback (e.g. `127.0.0.1,10.0.0.0/8`); others are refused.",
    )
    log_level: str = Field(default="info", description="Log level of the server.")
    log_format: Literal["text", "json"] = Field(
        default="text", description="Request log lines: `text` (one readable line) or `json` (JSON objects)."
    )
    metrics_token: str = Field(
        default="", description="When set, `GET /metrics` needs `Authorization: Bearer <token>`; empty: open."
    )
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="When set, /metrics is served only on this port (unauthenticated, bound to "
        "metrics_host), not on the API port.",
    )
    metrics_host: str = Field(default="127.0.0.1", description="Address the metrics_port listener binds to.")
    # -- buckets, embeddings, crawl (issue 4) --
    s3_endpoint: str | None = Field(
        default=None,
        description="Store objects on this S3-compatible service instead of `<data_dir>/objects`.",
    )
    s3_bucket: str = Field(default="inferline", description="Service bucket holding every tenant's objects.")
    s3_access_key: str | None = Field(default=None, description="Access key id for `s3_endpoint`.")
    s3_secret_key: str | None = Field(default=None, description="Secret access key for `s3_endpoint`.")
    s3_region: str = Field(default="us-east-1", description="Region used to sign requests to `s3_endpoint`.")
    embedding_model: str = Field(
        default="sentence-transformers/all-MiniLM-L6-v2", description="Default embedding model."
    )
    embedding_aliases: str = Field(
        default="thenlper/gte-large,intfloat/multilingual-e5-large",
        description="Comma-separated model names served by the default embedding model (the response "
        "names the model actually used). Empty: only installed model ids are accepted.",
    )
    remote_embedding_models: dict[str, RemoteModel] = Field(
        default_factory=dict,
        description="JSON object routing embedding model ids to OpenAI-compatible servers, e.g. "
        '`{"BAAI/bge-base-en-v1.5": {"url": "http://vllm:8000/v1", "dimensions": 768}}`.',
    )
    ingest_max_file_bytes: int = Field(
        default=100 * 1024 * 1024, description="Files larger than this fail ingestion with a reason."
    )
    vector_ann_min_chunks: int = Field(
        default=20_000,
        ge=1,
        description="Buckets with at least this many chunks are searched through an HNSW index (usearch "
        "files beside the database; pgvector on PostgreSQL); smaller ones exactly.",
    )
    fetch_allow_hosts: str = Field(
        default="",
        description="Comma-separated hosts/IPs/CIDRs the URL crawler may reach although they are private, "
        "loopback or link-local (SSRF allow-list). Empty: only public addresses.",
    )
    crawl_max_pages: int = Field(default=50, description="Most pages one URL crawl fetches.")
    crawl_max_page_bytes: int = Field(default=5 * 1024 * 1024, description="Largest page a crawl keeps.")
    crawl_timeout_seconds: float = Field(default=10.0, description="Per-request timeout of the crawler.")
    # -- chat completions (issue 3) --
    chat_parallel: int = Field(
        default=2, ge=1, description="Requests one chat model decodes at once (llama.cpp slots, batched)."
    )
    chat_max_queue: int = Field(
        default=16,
        ge=0,
        description="Chat requests that may wait per model beyond those running; more get 429.",
    )
    chat_context: int = Field(default=4096, ge=256, description="Context window (tokens) of each chat slot.")
    chat_max_models: int = Field(
        default=3,
        ge=1,
        description="Chat models kept loaded; beyond, the least recently used idle one unloads.",
    )
    chat_threads: int = Field(
        default=0, ge=0, description="CPU threads per chat model; 0 = the physical cores the process may use."
    )
    chat_stream_interval_ms: float = Field(
        default=10,
        ge=0,
        le=1000,
        description="A streamed chat token that comes less than this after the HTTP loop was last woken for "
        "the stream waits for the next token, and both are sent together (fast models: fewer wake-ups of the "
        "loop per token); the first token never waits. 0 = each at once.",
    )
    chat_contended_threads: int = Field(
        default=1,
        ge=0,
        description="Threads of a second llama.cpp context of each CPU chat model that has more: requests "
        "starting while embedding batches or Whisper windows run (or ran beside a generation in the last "
        "0.5 s) decode there (docs/DEVELOPING.md); 0 = none.",
    )
    background_yield: float = Field(
        default=0.5,
        ge=0,
        description="While a chat generation runs, each embedding batch is followed by a pause of this many "
        "times its own duration, so decoding keeps its share of the cores (docs/DEVELOPING.md); 0 = off.",
    )
    transcription_niceness: int = Field(
        default=19,
        ge=0,
        le=19,
        description="Added to the niceness of the transcription engine's threads, so Whisper yields the "
        "cores to chat decoding and HTTP when they compete (full speed otherwise; docs/DEVELOPING.md); "
        "0 = off.",
    )
    fine_tune_merge: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="After a fine-tuning job: `auto` merges the LoRA adapter into the base weights and "
        "keeps the merged model when it decodes at least 1.1 times faster than the base with the adapter "
        "applied at run time (both measured then; small models gain, large ones lose: docs/DEVELOPING.md); "
        "`always`; `never`.",
    )
    training_device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="Where LoRA fine-tuning runs: `auto` = torch's CUDA GPU where torch sees one, else the "
        "CPU; `cuda` refuses to start without one.",
    )
    remote_chat_models: dict[str, RemoteModel] = Field(
        default_factory=dict,
        description="JSON object routing chat model ids to OpenAI-compatible servers (vLLM, llama.cpp), e.g. "
        '`{"meta-llama/Llama-3.1-8B-Instruct": {"url": "http://vllm:8000/v1", "timeout_seconds": 120}}`.',
    )
    # -- models (issue 13) --
    models_file: Path | None = Field(
        default=None,
        description="YAML or TOML file declaring the models: local (packaged, registered, or a `source` path "
        "or `hf://` URI registered at start-up) and remote ones, with per-model settings, aliases and "
        "tenants (README, Use your own model). A setting that cannot be honoured stops the start-up.",
    )
    # -- summarize --
    summarize_max_pdf_pages: int = Field(
        default=200, ge=1, description="PDFs with more pages are refused (400) before any page is read."
    )
    summarize_max_chars: int = Field(
        default=200_000, ge=1, description="Texts longer than this (characters) are refused (400)."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then `INFERLINE_*` variables, then the config file (`config_file()`), then defaults."""
        path = config_file()
        if path is None:
            return init_settings, env_settings
        return init_settings, env_settings, DotEnvSettingsSource(settings_cls, env_file=path)

    @field_validator("data_dir", "models_dir_override")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        """`~` expanded and relative paths made absolute once, so a later `cd` cannot move the data."""
        return value.expanduser().absolute() if value is not None else None

    @field_validator("warmup")
    @classmethod
    def _warmup_kinds(cls, value: str) -> str:
        warmup_kinds(value)  # an unknown kind fails at start-up
        return value

    @field_validator("webhook_allowed_hosts", "fetch_allow_hosts")
    @classmethod
    def _allow_list_entries(cls, value: str) -> str:
        AllowList.parse(value)  # an entry that is no host, IP or CIDR fails at start-up
        return value

    @property
    def webhook_allow(self) -> AllowList:
        """`webhook_allowed_hosts` parsed: canonical host names and networks."""
        return AllowList.parse(self.webhook_allowed_hosts)

    @property
    def fetch_allow(self) -> AllowList:
        """`fetch_allow_hosts` parsed: canonical host names and networks."""
        return AllowList.parse(self.fetch_allow_hosts)

    @property
    def base_url(self) -> str:
        """Where this server is reached from this machine (a wildcard bind address on loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def models_dir(self) -> Path:
        return self.models_dir_override or self.data_dir / "models"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'inferline.db').resolve()}"
