#!/usr/bin/env bash
# The GPU check, run on a lent device machine (docs/DEVELOPING.md, "GPU check").
#
# Here: `.venv/bin/python scripts/gpu_check/prepare.py` packs `.gpu/c1` ... `.gpu/cN`. Then one device call
# per part, in order and back to back (the machine stays warm ~30 s between calls), each carrying `.gpu/cK`
# and running `bash scripts/gpu_check/run.sh`. Each call stashes its part and installs the wheels in it; the
# first also prints what the machine has; the one that completes the set runs scripts/gpu_check/check.py,
# which prints the figures and writes them to $OUT/gpu.json.
set -u
STASH=${GPU_CHECK_STASH:-/root/inferline-gpu}
mkdir -p "$STASH"
for part in .gpu/c*; do
    [ -d "$part" ] && cp -rn "$part"/. "$STASH"/ 2>/dev/null  # (-n: newer cp warns, still works)
done
mkdir -p /tmp/site
for wheel in "$STASH"/*.whl; do  # each wheel once, as its part arrives
    [ -f "$wheel" ] && [ ! -f "/tmp/site/.installed-$(basename "$wheel")" ] || continue
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$wheel" && touch "/tmp/site/.installed-$(basename "$wheel")" || exit 1
done
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1

# CTranslate2's PyPI wheel opens CUDA 12's cuBLAS (libcublas.so.12). An image with only CUDA 13's gets a link
# to that one: the nine cuBLAS functions CTranslate2 calls kept their signatures. (A deployment installs
# nvidia-cublas-cu12 instead.)
if ! ldconfig -p | grep -q 'libcublas.so.12'; then
    cublas=$(find / -xdev -name 'libcublas.so.12*' -o -name 'libcublas.so.13' 2>/dev/null | sort | head -1)
    if [ -n "$cublas" ]; then
        mkdir -p /tmp/cublas12 && ln -sf "$cublas" /tmp/cublas12/libcublas.so.12
        export LD_LIBRARY_PATH=/tmp/cublas12:$(dirname "$cublas")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
        echo "libcublas.so.12 -> $cublas"
    fi
fi

want=$(cat "$STASH/parts" 2>/dev/null || echo '?')
have=$(ls "$STASH"/part-* 2>/dev/null | wc -l)
echo "parts here: $have of $want"
if [ "$have" != "$want" ]; then
    if [ "$have" = 1 ]; then
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
        nproc; python3 --version
        python3 - <<'EOF'
import ctranslate2, torch, transformers, peft
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())
print("transformers", transformers.__version__, "peft", peft.__version__)
print("ctranslate2", ctranslate2.__version__, "cuda devices", ctranslate2.get_cuda_device_count())
print("compute types", sorted(ctranslate2.get_supported_compute_types("cuda")))
EOF
    fi
    exit 0
fi
[ -d "$STASH/models" ] || cat "$STASH"/models.tar.* | tar -x -C "$STASH" || exit 1
python3 scripts/gpu_check/check.py "$STASH" "${OUT:-/tmp}"
