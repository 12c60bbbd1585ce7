#!/usr/bin/env bash
# The GPU check, run on a lent device machine (docs/DEVELOPING.md, "GPU paths").
#
# Here: `.venv/bin/python scripts/gpu_check/prepare.py` packs `.gpu/e1` ... (embeddings) and `.gpu/c1` ...
# (speech: transcription and fine-tuning); `prepare.py chat` packs `.gpu/h1` ... (llama.cpp's CUDA build on
# PyPI, beside the CPU: chat.py). Then one device call per part, back to back (the machine stays warm
# ~30 s between calls), each carrying its part (`carry: [".gpu/e1"]`) and running
# `bash scripts/gpu_check/run.sh`. Each call stashes its part; the first also prints what the machine has. The
# call that completes a set runs scripts/gpu_check/check.py on it, which prints the figures and writes them to
# $OUT/gpu-<set>.json. The embeddings parts go first: that set runs alone as soon as it is complete.
set -u
STASH=${GPU_CHECK_STASH:-/root/inferline-gpu}
mkdir -p "$STASH"
for part in .gpu/*; do
    [ -d "$part" ] && cp -rn "$part"/. "$STASH"/ 2>/dev/null  # (-n: newer cp warns, still works)
done
export PYTHONUNBUFFERED=1
[ "${GPU_CHECK_AGAIN:-}" = 1 ] && rm -f "$STASH"/.done-*  # run the complete sets once more

if [ ! -f "$STASH/.machine-printed" ]; then
    touch "$STASH/.machine-printed"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    nproc; python3 --version
    python3 -c 'import torch, onnxruntime; print("torch", torch.__version__, "cuda", torch.version.cuda,
torch.cuda.is_available(), "| image onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())'
fi

complete() {  # complete LETTER: all of the set's parts are stashed
    local want have
    want=$(cat "$STASH/parts-$1" 2>/dev/null || echo '?')
    have=$(ls "$STASH"/part-"$1"* 2>/dev/null | wc -l)
    echo "set $1: $have of $want parts"
    [ "$have" = "$want" ] && [ ! -f "$STASH/.done-$1" ]
}

if complete e; then
    touch "$STASH/.done-e"
    [ -d "$STASH/ort-site" ] || cat "$STASH"/embeddings.tar.xz.* | python3 -c '
import sys, tarfile; tarfile.open(fileobj=sys.stdin.buffer, mode="r|xz").extractall(sys.argv[1], filter="tar")
' "$STASH" || exit 1
    # onnxruntime-gpu alone (`ort-bare`): no CUDA libraries beside it. Then beside the image's NVIDIA wheels
    # (torch's CUDA 13 build), as pip installs it into the same site-packages: the engine preloads them.
    mkdir -p "$STASH/ort-bare" && ln -sfn "$STASH/ort-site/onnxruntime" "$STASH/ort-bare/onnxruntime"
    PYTHONPATH=$STASH/ort-bare:$PWD/src python3 scripts/gpu_check/check.py "$STASH" "${OUT:-/tmp}" embeddings-bare
    nvidia=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])')
    ln -sfn "$nvidia" "$STASH/ort-site/nvidia"
    PYTHONPATH=$STASH/ort-site:$PWD/src python3 scripts/gpu_check/check.py "$STASH" "${OUT:-/tmp}" embeddings
fi

if complete c; then
    touch "$STASH/.done-c"
    mkdir -p /tmp/site
    for wheel in "$STASH"/*.whl; do
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            "$wheel" || exit 1
    done
    # CTranslate2's PyPI wheel opens CUDA 12's cuBLAS (libcublas.so.12). An image with only CUDA 13's gets a
    # link to that one: the nine cuBLAS functions CTranslate2 calls kept their signatures. (A deployment
    # installs nvidia-cublas-cu12 instead.)
    extra=
    if ! ldconfig -p | grep -q 'libcublas.so.12'; then
        cublas=$(find / -xdev -name 'libcublas.so.12*' -o -name 'libcublas.so.13' 2>/dev/null | sort | head -1)
        if [ -n "$cublas" ]; then
            mkdir -p /tmp/cublas12 && ln -sf "$cublas" /tmp/cublas12/libcublas.so.12
            extra=/tmp/cublas12:$(dirname "$cublas"):
            echo "libcublas.so.12 -> $cublas"
        fi
    fi
    [ -d "$STASH/models/openai--whisper-tiny.en" ] || cat "$STASH"/models.tar.* | tar -x -C "$STASH" || exit 1
    LD_LIBRARY_PATH=$extra${LD_LIBRARY_PATH:-} PYTHONPATH=/tmp/site:$PWD/src \
        python3 scripts/gpu_check/check.py "$STASH" "${OUT:-/tmp}" speech
fi
if complete h; then
    touch "$STASH/.done-h"
    [ -f "$STASH/python.tar.xz" ] || cat "$STASH"/chat.tar.* | tar -x -C "$STASH" || exit 1
    prefix=$(cat "$STASH/python-prefix")
    [ -x "$prefix/bin/python3.11" ] || tar -xJf "$STASH/python.tar.xz" -C / || exit 1
    py=$prefix/bin/python3.11
    for build in legacy pypi cudart; do
        [ -d "/tmp/chat-$build" ] || $py -m zipfile -e "$STASH"/wheels-$build/*.whl "/tmp/chat-$build" || exit 1
    done
    # xllamacpp-cuda12x wants CUDA 12's runtime (PyPI: nvidia-cuda-runtime-cu12, which travels) and cuBLAS
    # (nvidia-cublas-cu12: ~600 MB, which cannot): the image's CUDA 13 cuBLAS stands in, as for CTranslate2.
    cublas=$(find / -xdev -name 'libcublas.so.1[23]' 2>/dev/null | sort | head -1)
    cublaslt=$(find / -xdev -name 'libcublasLt.so.1[23]' 2>/dev/null | sort | head -1)
    echo "cuBLAS: $cublas $cublaslt"
    export CHAT_PRELOAD=/tmp/chat-cudart/nvidia/cuda_runtime/lib/libcudart.so.12:$cublaslt:$cublas
    model=$STASH/models/HuggingFaceTB--SmolLM2-135M-Instruct/model.gguf
    out=${OUT:-/tmp}
    cores=$(nproc)
    lscpu | grep -E '^(Model name|Thread|Core|Socket)'
    # llama.cpp's log goes to a file per run (it comes back under $OUT); the figures are printed.
    PYTHONPATH=/tmp/chat-legacy $py scripts/gpu_check/chat.py "$model" "$out" legacy-gpu 99 "$cores" 2>"$out/legacy-gpu.log"
    grep -hiE 'ggml_cuda_init|Device 0|offload|CUDA0 (model|KV)|error' "$out/legacy-gpu.log" | head -12
    CUDA_VISIBLE_DEVICES= PYTHONPATH=/tmp/chat-legacy $py scripts/gpu_check/chat.py "$model" "$out" legacy-cpu 0 \
        "$cores" $((cores / 2)) 2>"$out/legacy-cpu.log"
    PYTHONPATH=/tmp/chat-pypi $py scripts/gpu_check/chat.py "$model" "$out" pypi-cpu 0 "$cores" $((cores / 2)) $((cores / 4)) 2>"$out/pypi-cpu.log"
    tail -n 3 "$out"/*-cpu.log
fi
exit 0
