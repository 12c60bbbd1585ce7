"""CPU sharing between engine kinds (engines/cpu.py `CpuShares`): while a chat generation decodes, embedding
batches yield to it, one at a time with a pause after each; they still all complete, with the same vectors
as without chat, and the generation completes too. Through the openai SDK; nothing here asserts a duration."""

from __future__ import annotations

import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from inferline.engines.chat import EngineRequest
from inferline.engines.cpu import SHARES
from tests.conftest import MODELS_DIR, LiveServer

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
ENDLESS = {"guided_regex": "[a-z ]{4000}"}  # decodes until the client closes the stream


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0, timeout=300)


def test_embedding_batches_yield_to_a_running_generation_and_all_complete(oai: openai.OpenAI) -> None:
    texts = [[f"harbour crane {i}", f"tide table {i}"] for i in range(6)]
    quiet = [oai.embeddings.create(model=MINILM, input=t, encoding_format="float") for t in texts]
    stream = oai.chat.completions.create(
        model=SMOL,
        messages=[{"role": "user", "content": "Write a long story."}],
        max_tokens=2000,
        temperature=0,
        stream=True,
        extra_body=ENDLESS,
    )
    with stream:
        first = next(c for c in stream if c.choices and c.choices[0].delta.content)
        assert first.choices[0].delta.content
        assert SHARES.chat >= 1  # the generation holds the foreground: embedding batches now yield
        with ThreadPoolExecutor(len(texts)) as pool:
            busy = list(
                pool.map(
                    lambda t: oai.embeddings.create(model=MINILM, input=t, encoding_format="float"), texts
                )
            )
        more = next(c for c in stream if c.choices and c.choices[0].delta.content)
        assert more.choices[0].delta.content  # the generation went on meanwhile
    for a, b in zip(quiet, busy, strict=True):
        for x, y in zip(a.data, b.data, strict=True):
            assert x.embedding == pytest.approx(y.embedding, abs=1e-5)


def test_default_chat_threads_are_the_fastest_measured_at_load(caplog: pytest.LogCaptureFixture) -> None:
    """`INFERLINE_CHAT_THREADS=0`: loading tries the physical cores, half of them and one, keeps the fastest
    and logs the rates; the engine then serves with that count."""
    from inferline.engines.cpu import physical_cores
    from inferline.engines.llamacpp_chat import LlamaCppChatEngine

    gguf = MODELS_DIR / "HuggingFaceTB--SmolLM2-135M-Instruct" / "model.gguf"
    engine = LlamaCppChatEngine("smol", gguf, parallel=1, context=512, threads=0)
    with caplog.at_level(logging.INFO, logger="inferline.chat"):
        engine._load()
    rates = next(r.args[2] for r in caplog.records if "by threads" in r.getMessage())
    cores = physical_cores()
    assert set(rates) == {1, max(1, cores // 2), cores}
    assert engine.threads == max(rates, key=lambda n: rates[n])
    chunks: list[dict] = []
    engine.stream(EngineRequest([{"role": "user", "content": "Hi"}], {"max_tokens": 4}), chunks.append)
    assert any(c.get("usage") for c in chunks)
    engine.close()


def test_a_generation_starting_while_batch_engines_run_decodes_on_one_thread() -> None:
    """A chat model with two threads keeps a second context with `contended_threads` (one): a request that
    starts while an embedding batch or a Whisper window holds the CPU (or one ran beside a generation within
    `CONTENDED_SECONDS`) decodes there, so one thread of this process does the work; a request on a quiet
    CPU decodes on both, also right after a run that had no generation beside it.
    Before, every request ran on both threads, which spin at each barrier while a batch engine takes a core
    from one of them (bench_fairness: chat p95 0.43 of alone beside 20 search clients). Same text on both."""
    from inferline.engines.chat import Constraint
    from inferline.engines.cpu import CONTENDED_SECONDS
    from inferline.engines.llamacpp_chat import LlamaCppChatEngine

    gguf = MODELS_DIR / "HuggingFaceTB--SmolLM2-135M-Instruct" / "model.gguf"
    engine = LlamaCppChatEngine("smol", gguf, parallel=1, context=512, threads=2, contended_threads=1)
    request = EngineRequest(
        [{"role": "user", "content": "Write a long story."}],
        {"max_tokens": 160, "temperature": 0},
        constraint=Constraint("regex", "[a-z ]{400}"),  # decodes all 160 tokens
    )

    def decode() -> tuple[str, int]:
        """(the text, how many threads of this process did at least 40% of the busiest one's work)."""
        chunks: list[dict] = []
        before = _busy_threads()
        engine.stream(request, chunks.append)
        after = _busy_threads()
        ticks = [t - before.get(tid, (0, 0))[1] for tid, (_, t) in after.items()]
        text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))
        return text, sum(t >= 0.4 * max(ticks) for t in ticks)

    engine._load()
    SHARES.shared_run_ended = -float("inf")  # forget runs of earlier tests that overlapped their generations
    with SHARES.background():  # a transcription with no generation beside it: contended while it runs only
        assert SHARES.contended()
    assert not SHARES.contended()  # so a chat right after it (a voice agent's turn) gets every thread
    quiet_text, quiet_threads = decode()
    with SHARES.background():  # an embedding batch holds the CPU
        busy_text, busy_threads = decode()
    assert SHARES.contended()  # it ran beside a generation: steady load, the next request decodes on one
    SHARES.shared_run_ended -= CONTENDED_SECONDS
    assert not SHARES.contended()
    engine.close()
    assert (quiet_threads, busy_threads) == (2, 1)
    assert busy_text == quiet_text and len(quiet_text) > 100


def test_transcription_runs_yield_like_embedding_batches(oai: openai.OpenAI) -> None:
    """Whisper's windows are background runs too: while a generation decodes and another background run holds
    the CPU, a transcription waits for it (it used to run unhindered and collapse decoding, bench_chat_load);
    released, it completes with the same text."""
    from tests import audio_samples as audio

    clip = audio.wav(audio.speech("The harbour crane lifts the blue container."))
    quiet = oai.audio.transcriptions.create(model="whisper-1", file=("c.wav", clip)).text
    with ThreadPoolExecutor(1) as pool:
        with SHARES.foreground(), SHARES.background():  # a generation decoding, an embedding batch running
            pending = pool.submit(
                lambda: oai.audio.transcriptions.create(model="whisper-1", file=("c.wav", clip))
            )
            threading.Event().wait(1.5)
            assert not pending.done(), "the transcription ran while another background run held the CPU"
        assert pending.result(timeout=120).text == quiet


def _busy_threads() -> dict[int, tuple[int, int]]:
    """This process's threads: id -> (niceness, CPU ticks so far)."""
    import os
    from pathlib import Path

    threads = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        threads[int(tid)] = (int(fields[16]), int(fields[11]) + int(fields[12]))
    return threads


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="niceness is per thread on Linux only")
def test_whisper_computes_in_threads_at_the_configured_niceness() -> None:
    """`transcription_niceness` (default 19): CTranslate2's threads inherit it from the thread that builds
    the model, so a window running when a generation starts yields the cores to the decode (bench_chat_load:
    0.63 of llama.cpp's decode under back-to-back transcriptions before). The caller's niceness is untouched,
    the transcription unchanged, and the threads doing the work are the lowered ones."""
    import os

    from inferline.config import Settings
    from inferline.engines.whisper_stt import WhisperEngine
    from tests import audio_samples as audio

    assert Settings.model_fields["transcription_niceness"].default == 19
    samples = audio.speech("The harbour crane lifts the blue container.")
    folder = MODELS_DIR / "openai--whisper-tiny.en"
    plain = WhisperEngine("tiny", folder, english_only=True, cpu_threads=2)
    lowered = WhisperEngine("tiny", folder, english_only=True, cpu_threads=2, niceness=19)
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    before = _busy_threads()
    text = lowered.transcribe(samples).segments[0].text
    for _ in range(2):  # CPU time is counted in 10 ms ticks: enough work to show on a fast machine
        assert lowered.transcribe(samples).segments[0].text == text
    after = _busy_threads()
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
    new = {tid: state for tid, state in after.items() if tid not in before}
    assert new and all(nice == min(19, mine + 19) for nice, _ in new.values() if nice != mine)
    worked = sum(ticks for nice, ticks in new.values() if nice == min(19, mine + 19))
    assert worked > 0, "the lowered threads did not run the model"
    assert plain.transcribe(samples).segments[0].text == text


def test_runs_at_a_lowered_priority_do_not_count_as_contention() -> None:
    """`background(contends=False)`: a run whose threads have a lowered priority still yields (one at a time,
    with its pause), but takes no core from decoding, so `contended()` ignores it, during the run and after
    it (a generation ran beside it). A run at equal priority counts, during and after."""
    from inferline.engines.cpu import CpuShares

    shares = CpuShares(yield_ratio=0)
    with shares.foreground():  # a generation decoding
        with shares.background(contends=False):
            assert not shares.contended()
        assert not shares.contended()
        with shares.background():
            assert shares.contended()
        assert shares.contended()  # it ran beside the generation: steady load


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="niceness is per thread on Linux only")
def test_a_lowered_whisper_window_leaves_a_generation_its_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whisper's windows run in CTranslate2's threads at `transcription_niceness`: a generation starting
    beside one decodes on all its threads (`contended()` is false inside the window). Features and voice
    detection run at the caller's priority and count; at niceness 0 the windows count too. Before, every
    window counted: under back-to-back transcriptions the first token came after 77 to 82 ms on one thread
    instead of 48 to 53 on two (bench_chat_load, SmolLM2, 2 cores)."""
    from contextlib import contextmanager

    from inferline.engines.whisper_stt import WhisperEngine
    from tests import audio_samples as audio

    original = SHARES.background
    inside: list[bool] = []  # contended() as seen inside each background run of a transcription

    def recording(*args: object, **kwargs: object) -> object:
        @contextmanager
        def run() -> object:
            with original(*args, **kwargs):  # type: ignore[arg-type]
                inside.append(SHARES.contended())
                yield

        return run()

    monkeypatch.setattr(SHARES, "background", recording)
    monkeypatch.setattr(SHARES, "shared_run_ended", -float("inf"))  # runs of earlier tests
    samples = audio.speech("The harbour crane lifts the blue container.")
    folder = MODELS_DIR / "openai--whisper-tiny.en"
    for niceness, windows in ((19, False), (0, True)):
        inside.clear()
        engine = WhisperEngine("tiny", folder, english_only=True, cpu_threads=2, niceness=niceness)
        assert engine.transcribe(samples).segments[0].text.strip()
        assert inside[0] is True  # features and voice detection
        assert len(inside) >= 2 and set(inside[1:]) == {windows}, (niceness, inside)
