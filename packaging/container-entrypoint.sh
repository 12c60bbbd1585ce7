#!/bin/sh
# The container's entry point: `inferline "$@"` (default `serve`; `worker` for a job worker).
#
# The image's verified models live in /opt/inferline/models; the models directory is on the data volume
# (INFERLINE_MODELS_DIR), so that models added at run time (`inferline models add`) persist. Each image model is
# linked into it (atomically, so replicas sharing the volume may start together); a real folder of the same
# name, made by an install on the volume, is left alone.
set -eu
models="${INFERLINE_MODELS_DIR:-${INFERLINE_DATA_DIR:-/var/lib/inferline}/models}"
mkdir -p "$models"
for dir in /opt/inferline/models/*/; do
    [ -d "$dir" ] || continue
    target="$models/$(basename "$dir")"
    if [ -L "$target" ] || [ ! -e "$target" ]; then
        ln -s "${dir%/}" "$target.link.$$"
        mv -Tf "$target.link.$$" "$target"
    fi
done
exec /opt/inferline/bin/inferline "$@"
