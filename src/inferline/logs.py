"""What the server and worker log: the start-up summary, model loads (time and memory), one line per
request; third-party progress bars and FutureWarnings stay out.

Lines go through uvicorn's formatters (`INFO:     …`): the `inferline` loggers and uvicorn's to stderr.
uvicorn's access lines are off in both formats: the ops middleware's line is the one line of each request
(`GET /v2/ai/models 200 request_id=… tenant=… latency_ms=…`, or a JSON object on stdout with
`INFERLINE_LOG_FORMAT=json`). uvicorn's errors and WebSocket lines stay.
"""

from __future__ import annotations

import copy
import functools
import logging
import logging.config
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from inferline.config import Settings
    from inferline.container import Container

log = logging.getLogger("inferline")
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
"""The current request's id, set by `RequestIdMiddleware` (uvicorn writes access lines inside the request)."""

Load = TypeVar("Load", bound=Callable[..., Any])
_logged_lock = threading.Lock()


class RequestIdFilter(logging.Filter):
    """Gives every record a `request_id` attribute (the current request's, or `-`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def log_config(level: str, log_format: str = "text") -> dict[str, Any]:
    """uvicorn's logging configuration with the `inferline` loggers. uvicorn's access lines are off (the ops
    middleware logs each request once, text or JSON); enabled again, they carry the request id."""
    import uvicorn.config

    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["filters"] = {"request_id": {"()": RequestIdFilter}}
    config["formatters"]["access"]["fmt"] += " request_id=%(request_id)s"
    config["handlers"]["access"]["filters"] = ["request_id"]
    config["loggers"]["inferline"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    config["loggers"]["py.warnings"] = {"handlers": ["default"], "level": "WARNING", "propagate": False}
    config["handlers"]["null"] = {"class": "logging.NullHandler"}
    config["loggers"]["uvicorn.access"] = {"handlers": ["null"], "level": "CRITICAL", "propagate": False}
    return config


def configure(level: str, log_format: str = "text") -> dict[str, Any]:
    """Set up logging for a server or worker process and silence third-party noise; returns the config."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # tqdm bars (transformers' GGUF loading, hub downloads)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.showwarning = _log_warning  # other warnings: one log line each, without their source line
    config = log_config(level, log_format)
    logging.config.dictConfig(config)
    return config


def _log_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, *args: Any, **kwargs: Any
) -> None:
    logging.getLogger("py.warnings").warning("%s: %s (%s:%d)", category.__name__, message, filename, lineno)


def rss_bytes() -> int:
    """This process's resident memory (Linux `/proc`; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _mb(n: int) -> str:
    return f"{n / 1e6:+.0f} MB"


def logged_load(kind: str, attribute: str) -> Callable[[Load], Load]:
    """Decorates an engine's lazy `_load`: when the call loads the model (`attribute` goes from None to set),
    logs the model, the seconds it took and how much the process's RSS grew; a failed load is a warning."""

    def decorate(load: Load) -> Load:
        @functools.wraps(load)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(self, attribute, None) is not None:
                return load(self, *args, **kwargs)
            name = getattr(self, "model_id", None) or getattr(self, "name", "?")
            start, rss = time.monotonic(), rss_bytes()
            try:
                result = load(self, *args, **kwargs)
            except Exception as exc:
                log.warning(
                    "%s model %s failed to load after %.1f s: %s", kind, name, time.monotonic() - start, exc
                )
                raise
            with _logged_lock:  # two threads may wait on the same load: one line for it
                loaded = getattr(self, attribute, None) is not None
                first = loaded and not getattr(self, "_load_logged", False)
                if first:
                    self._load_logged = True
            if first:
                grew = _mb(rss_bytes() - rss) if rss else "unknown"
                log.info("loaded %s model %s in %.1f s (RSS %s)", kind, name, time.monotonic() - start, grew)
            return result

        return wrapper  # type: ignore[return-value]

    return decorate


def startup_summary(settings: Settings, container: Container) -> None:
    """Log what a new user needs to know: version, where the data is, models per kind, keys, URLs."""
    from inferline import __version__
    from inferline.config import display_url
    from inferline.health import MODEL_KINDS, missing_models

    log.info("inferline %s (Python %s), profile %s", __version__, sys.version.split()[0], settings.profile)
    log.info("data directory: %s", settings.data_dir)
    log.info("database: %s", display_url(settings.resolved_database_url))
    log.info("models directory: %s", settings.models_dir)
    for kind in MODEL_KINDS:
        ids = [e.id for e in container.models.installed(kind)]
        log.info("%s models: %s", kind, ", ".join(ids) or "none")
    missing = missing_models(container)
    if missing:
        log.warning(
            "no %s model is installed: run `inferline models install` (the %s profile's models)",
            "/".join(missing),
            settings.profile,
        )
    active = sum(1 for k in container.keys.list(None) if k.revoked_at is None)
    if active:
        log.info("API keys: %d active", active)
    else:
        log.warning("no API key exists: create one with `inferline keys create` (or set INFERLINE_API_KEY)")
    base = settings.base_url
    log.info("API: %s/v2 (OpenAI-compatible: %s/v2/ai/openai), docs: %s/docs", base, base, base)
