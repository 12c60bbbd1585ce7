#!/bin/sh
# scripts/venv.sh VENV EXTRAS: create (or update) the virtual environment VENV and `pip install -e .[EXTRAS]`.
#
# The interpreter: $PYTHON if set, else the first of python3.11, python3.12, python3.13, python3 that is
# Python 3.11-3.13 (the versions every pinned dependency has wheels for). An environment made by an
# unsupported Python, or by another version than an explicit $PYTHON, is replaced. A new environment whose
# creation or install fails is deleted, so the next run starts clean instead of reusing a half-built one; an
# existing one whose update fails is left as it was (pip stops before changing anything when it cannot
# resolve) and the next run retries.
#
# BASE_VENV=/path/to/.venv (`make BASE_VENV=...`) builds VENV offline from another environment's packages (a
# second checkout, CI, tests/test_walkthrough.py): VENV gets a .pth naming BASE_VENV's site-packages and only
# this checkout's inferline is installed into it (editable, no dependencies, no package index). BASE_VENV must
# already hold the extras.
set -eu
venv=$1
extras=$2

supported() {
    "$1" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null
}

if [ -n "${BASE_VENV:-}" ]; then
    if ! supported "$BASE_VENV/bin/python"; then
        echo "inferline: BASE_VENV=$BASE_VENV has no Python 3.11, 3.12 or 3.13 in bin/python." >&2
        exit 1
    fi
    if [ -e "$venv" ] && [ "$(cd "$venv" && pwd -P)" = "$(cd "$BASE_VENV" && pwd -P)" ]; then
        echo "inferline: BASE_VENV is $venv itself; name another environment." >&2
        exit 1
    fi
    purelib='import sysconfig; print(sysconfig.get_path("purelib"))'
    rm -rf "$venv"
    echo "inferline: creating $venv on the packages of $BASE_VENV (no package index)"
    if ! "$BASE_VENV/bin/python" -m venv --without-pip "$venv" ||
        ! "$BASE_VENV/bin/python" -c "$purelib" >"$("$venv/bin/python" -c "$purelib")/inferline-base.pth" ||
        ! PIP_NO_INDEX=1 "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation --ignore-installed -e .
    then
        rm -rf "$venv"
        echo "inferline: building $venv on $BASE_VENV failed (the message is above); $venv was removed" >&2
        exit 1
    fi
    exit 0
fi

python=
if [ -n "${PYTHON:-}" ]; then
    if ! supported "$PYTHON"; then
        echo "inferline: PYTHON=$PYTHON is not Python 3.11, 3.12 or 3.13." >&2
        exit 1
    fi
    python=$PYTHON
else
    for candidate in python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && supported "$candidate"; then
            python=$candidate
            break
        fi
    done
fi
if [ -z "$python" ]; then
    cat >&2 <<'EOF'
inferline needs Python 3.11, 3.12 or 3.13, and none is on the PATH. Install one, then run make again:
  Debian/Ubuntu:  sudo apt install python3.11 python3.11-venv   (or python3.12 / python3.13 where packaged)
  macOS:          brew install python@3.12
  any system:     pyenv install 3.12 && pyenv local 3.12
or point make at one: make PYTHON=/path/to/python3.12
EOF
    exit 1
fi

version() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}
# A venv of an unsupported Python is replaced, and so is one of another version than an explicit $PYTHON.
if [ -x "$venv/bin/python" ] && { ! supported "$venv/bin/python" ||
    { [ -n "${PYTHON:-}" ] && [ "$(version "$venv/bin/python")" != "$(version "$python")" ]; }; }; then
    echo "inferline: $venv was made by $("$venv/bin/python" -V 2>&1); recreating it with $python" >&2
    rm -rf "$venv"
fi

fresh=
if [ ! -x "$venv/bin/python" ]; then
    fresh=1
    rm -rf "$venv"
    echo "inferline: creating $venv with $python ($("$python" -V 2>&1))"
    if ! "$python" -m venv "$venv"; then
        rm -rf "$venv"
        echo "inferline: '$python -m venv' failed; on Debian/Ubuntu install its venv module:" \
            "sudo apt install $(basename "$python")-venv" >&2
        exit 1
    fi
fi

if ! "$venv/bin/python" -m pip install --upgrade pip || ! "$venv/bin/python" -m pip install -e ".[$extras]"; then
    if [ -n "$fresh" ]; then
        rm -rf "$venv"
        echo "inferline: installing failed (pip's message is above); $venv was removed, run make again" >&2
    else
        echo "inferline: updating $venv failed (pip's message is above); run make again to retry" >&2
    fi
    exit 1
fi
