#!/bin/sh
# inferline's offline installer, inside a bundle made by `make bundle` / `inferline bundle`. It needs no network:
# it checks every file of the bundle against SHA256SUMS, makes a virtual environment, installs the bundled
# wheels (`pip install --no-index --require-hashes`), copies the verified models, and starts the server.
#
#   ./install.sh [--prefix DIR] [--data-dir DIR] [--models-dir DIR] [--no-start] [--systemd]
#
#   --prefix DIR      the virtual environment (DIR/venv), registered models and the models file
#                     (default /opt/inferline as root, ~/.local/lib/inferline otherwise)
#   --data-dir DIR    INFERLINE_DATA_DIR: database, objects, models
#                     (default /var/lib/inferline as root, ~/.local/share/inferline otherwise)
#   --models-dir DIR  where the profile's models go (default DATA_DIR/models)
#   --no-start        install only (otherwise `inferline serve` runs in the foreground once installed)
#   --systemd         install the inferline-api and inferline-worker units (run as user `inferline`) and start
#                     them instead (root, on a systemd host)
#   --write-units DIR also write the two units, rendered for this install, into DIR (e.g. for review)
#
# The environment: PYTHON (the interpreter; default python3.X of the bundle's version, else python3 if it is
# that version); any INFERLINE_* setting (e.g. INFERLINE_API_KEY, INFERLINE_PORT) reaches the started server.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
say() { echo "install.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

if [ "$(id -u)" = 0 ]; then
    prefix=/opt/inferline
    data_dir=/var/lib/inferline
else
    prefix="$HOME/.local/lib/inferline"
    data_dir="${XDG_DATA_HOME:-$HOME/.local/share}/inferline"
fi
models_dir=
units_dir=
start=serve
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --data-dir) data_dir=$2; shift 2 ;;
        --models-dir) models_dir=$2; shift 2 ;;
        --no-start) start=; shift ;;
        --systemd) start=systemd; shift ;;
        --write-units) units_dir=$2; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
models_dir=${models_dir:-$data_dir/models}
case "$prefix$data_dir$models_dir" in
    *'"'*|*'\'*|*'|'*) die "paths may not contain \", \\ or |" ;;
esac

# shellcheck disable=SC1091
. "$here/bundle.env"

say "checking the bundle's files against SHA256SUMS"
(cd "$here" && sha256sum --quiet --strict -c SHA256SUMS) || die "the bundle is damaged (see above)"

version_of() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
python=
for candidate in ${PYTHON:-} "python$BUNDLE_PYTHON" python3; do
    if command -v "$candidate" >/dev/null 2>&1 && [ "$(version_of "$candidate")" = "$BUNDLE_PYTHON" ]; then
        python=$(command -v "$candidate")
        break
    fi
done
[ -n "$python" ] || die "the bundle's wheels are for Python $BUNDLE_PYTHON and none is on the PATH (set PYTHON)"

venv="$prefix/venv"
if [ -x "$venv/bin/python" ] && [ "$(version_of "$venv/bin/python")" != "$BUNDLE_PYTHON" ]; then
    say "$venv is not Python $BUNDLE_PYTHON; recreating it"
    rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv with $python"
    mkdir -p "$prefix"
    "$python" -m venv --without-pip "$venv" || die "'$python -m venv' failed"
fi
# pip runs from its bundled wheel, so the interpreter needs no ensurepip; the same build of inferline is
# installed again (its version may not have changed).
pip="$here/wheels/$BUNDLE_PIP_WHEEL/pip"
# Neither a pip.conf nor PIP_* variables of this machine add indexes, constraints or options.
for var in $(env | sed -n 's/^\(PIP_[A-Z0-9_]*\)=.*/\1/p'); do unset "$var"; done
export PIP_CONFIG_FILE=/dev/null
"$venv/bin/python" "$pip" uninstall --yes --quiet inferline >/dev/null 2>&1 || true
say "installing $(grep -c . "$here/requirements.txt") wheels into $venv (no network, hashes required)"
"$venv/bin/python" "$pip" install --quiet --no-index --find-links "$here/wheels" --require-hashes \
    --no-cache-dir --disable-pip-version-check --no-warn-script-location -r "$here/requirements.txt" \
    || die "pip could not install the bundled wheels"

mkdir -p "$models_dir"
for dir in "$here"/models/*/; do
    [ -d "$dir" ] || continue
    name=$(basename "$dir")
    if cmp -s "$dir/.verified.json" "$models_dir/$name/.verified.json"; then
        say "model $name: already installed in $models_dir"
        continue
    fi
    say "model $name: copying into $models_dir"
    rm -rf "$models_dir/$name.partial"
    cp -R "$dir" "$models_dir/$name.partial"
    rm -rf "$models_dir/$name"
    mv "$models_dir/$name.partial" "$models_dir/$name"
done

models_file=
if [ -f "$here/models.toml.in" ]; then
    say "registered models: copying into $prefix/added (registered by the server at start-up)"
    rm -rf "$prefix/added"
    cp -R "$here/added" "$prefix/added"
    models_file="$prefix/models.toml"
    sed "s|@PREFIX@|$prefix|g" "$here/models.toml.in" > "$models_file"
fi

# The venv's `inferline` reads this file (beneath the environment) from any folder.
{
    echo "INFERLINE_DATA_DIR=$data_dir"
    echo "INFERLINE_MODELS_DIR=$models_dir"
    echo "INFERLINE_PROFILE=$BUNDLE_PROFILE"
    [ -z "$models_file" ] || echo "INFERLINE_MODELS_FILE=$models_file"
} > "$venv/inferline.env"
# The llama.cpp wheel links the system's OpenMP runtime (libgomp.so.1) without carrying it. Where the system
# has none (slim images, minimal installs), the copy another verified wheel carries goes to PREFIX/lib, which
# PREFIX/bin/inferline (the entry point of the server, the worker, the units and the container) puts first.
mkdir -p "$prefix/bin" "$prefix/lib" "$prefix/packaging"
if ! "$venv/bin/python" -c 'import ctypes; ctypes.CDLL("libgomp.so.1")' 2>/dev/null; then
    vendored=$(ls "$venv"/lib/python*/site-packages/*.libs/libgomp-*.so* 2>/dev/null | head -n 1)
    if [ -n "$vendored" ]; then
        say "the system has no libgomp.so.1; using $(basename "$vendored") from the installed wheels"
        cp "$vendored" "$prefix/lib/libgomp.so.1"
    fi
fi
cat > "$prefix/bin/inferline" <<EOF
#!/bin/sh
# inferline as installed by install.sh: the venv's command, with $prefix/lib first on the library path.
export LD_LIBRARY_PATH="$prefix/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "$venv/bin/inferline" "\$@"
EOF
chmod 0755 "$prefix/bin/inferline"
# Each engine's native libraries must load; one that cannot names the system library it lacks.
LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$venv/bin/python" - <<'EOF' >&2 || true
import importlib

for name in ("xllamacpp", "onnxruntime", "ctranslate2", "av", "piper"):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # an installed module fails to import
            print(f"install.sh: warning: {name} cannot load ({exc}); its engine will be unavailable")
    except Exception as exc:  # a missing shared library: OSError or ImportError
        print(f"install.sh: warning: {name} cannot load ({exc}); install the system library it names")
EOF
cp -R "$here/packaging/." "$prefix/packaging/"

# The systemd units with this install's paths.
render_units() {
    mkdir -p "$1"
    for unit in inferline-api inferline-worker; do
        sed -e "s|/opt/inferline|$prefix|g" -e "s|/var/lib/inferline|$data_dir|g" \
            "$here/packaging/systemd/$unit.service" > "$1/$unit.service"
    done
}
[ -z "$units_dir" ] || render_units "$units_dir"
say "installed inferline $BUNDLE_VERSION (profile $BUNDLE_PROFILE) in $prefix; data in $data_dir"

case "$start" in
    serve)
        say "starting: $prefix/bin/inferline serve (Ctrl-C stops it)"
        exec "$prefix/bin/inferline" serve
        ;;
    systemd)
        [ "$(id -u)" = 0 ] || die "--systemd needs root"
        id inferline >/dev/null 2>&1 || useradd --system --home-dir "$data_dir" --shell /usr/sbin/nologin inferline
        mkdir -p "$data_dir" /etc/inferline
        chown -R inferline:inferline "$data_dir"
        if [ ! -f /etc/inferline/inferline.env ]; then
            printf '%s\n' '# INFERLINE_* settings of inferline-api and inferline-worker (docs/DEPLOYMENT.md), e.g.' \
                '# INFERLINE_HOST=0.0.0.0' \
                '# INFERLINE_DATABASE_URL=postgresql+psycopg://inferline:PASSWORD@127.0.0.1:5432/inferline' \
                > /etc/inferline/inferline.env
            chgrp inferline /etc/inferline/inferline.env
            chmod 0640 /etc/inferline/inferline.env
        fi
        render_units /etc/systemd/system
        systemctl daemon-reload
        systemctl enable --now inferline-api.service inferline-worker.service
        say "started inferline-api and inferline-worker (systemctl status inferline-api)"
        ;;
esac
