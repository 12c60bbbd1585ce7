"""OpenMP spinning for the whole process, set before any engine library loads libgomp.

llama.cpp (xllamacpp), torch and ctranslate2 run their threads under libgomp, and llama.cpp waits at an
OpenMP barrier after every operation of its graph (hundreds per token). libgomp spins at a barrier for
`GOMP_SPINCOUNT` iterations (300,000 by default) before it sleeps on a futex, but for only 100 once the
process holds more OpenMP threads than it has CPUs. That happens as soon as a second thread team exists: a
second chat model, torch's pool after a diarization or a fine-tune, a baseline server in the same process.
From then on every barrier sleeps and wakes; on the 2-core machine SmolLM2's decode fell from ~150 to ~100
tok/s (measured with one idle second team, and with torch's pool after one matrix product).

`OMP_WAIT_POLICY=ACTIVE` with an explicit `GOMP_SPINCOUNT` keeps libgomp's own 300,000-iteration spin (idle
teams still go to sleep after it) and raises the crowded-process spin to 1,000 iterations, which measured the
same decode with the second team as without it. Left alone when the operator sets either variable.

numpy's OpenBLAS (pthreads, not OpenMP) keeps its worker threads spinning for 2^28 cycles (~0.1 s) after
every matrix product: each Whisper feature extraction (a mel-filter product) and each exact vector search
left a core busy for that long, at normal priority, next to chat decoding (measured: a quarter of a core
under back-to-back transcriptions). `OPENBLAS_THREAD_TIMEOUT=20` (2^20 cycles, ~0.4 ms) stops that spin;
also left alone when the operator sets it. OpenBLAS reads it when numpy loads, hence here.

One libgomp per engine (`load_engine_libraries`). The spin rule above counts the threads of one libgomp
copy, and the process holds several: xllamacpp links the system's, ctranslate2 and numkong (usearch's
SIMD kernels) bundle their own, torch asks for the system's name. usearch loads numkong with RTLD_GLOBAL,
which puts numkong's libgomp first in the search order of every library loaded after it, and Python binds
an extension's symbols when it loads it. In a server that opened its vector index before its first chat and
transcription, llama.cpp and CTranslate2 therefore ran their teams in numkong's libgomp: after the first
transcription that copy held 3 threads for 2 CPUs, llama.cpp's barriers spun only 1,000 iterations, and
SmolLM2's decode beside embedding requests fell from ~99 to ~54 tok/s (each barrier a futex sleep, ~50,000
per run, while the embedding threads took the CPU). Importing xllamacpp and ctranslate2 before usearch
binds each to its own copy; torch, imported later, binds to numkong's (first in the global order), so a
diarization or a fine-tune leaves llama.cpp's copy alone too. (Importing torch first would instead make the
system libgomp global through torch's `libtorch_global_deps`, and everything after it would share
llama.cpp's.) Two chat models in one process still share xllamacpp's copy.
"""

from __future__ import annotations

import importlib
import os

SPIN_COUNT = "300000"  # libgomp's default spin when the process has no more OpenMP threads than CPUs
OPENBLAS_TIMEOUT = "20"  # log2 of the cycles OpenBLAS workers spin after a product (its default: 28)
# In this order: the engines bind their libgomp before usearch makes numkong's global (torch comes after).
ENGINE_LIBRARIES = ("xllamacpp", "ctranslate2", "usearch.index")

_loaded = False


def configure() -> None:
    """Set the spin policies unless the environment already chooses them (libgomp and OpenBLAS read them
    once, when they load)."""
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", OPENBLAS_TIMEOUT)
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    os.environ["OMP_WAIT_POLICY"] = "ACTIVE"
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT


def load_engine_libraries() -> None:
    """Import the installed engine libraries in the order that gives each its own libgomp (see above). Call
    before anything imports usearch or torch; later calls do nothing."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in ENGINE_LIBRARIES:
        try:
            importlib.import_module(name)
        except ImportError:  # that engine's extra is not installed
            continue
