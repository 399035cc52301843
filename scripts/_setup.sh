# Shared set-up for scripts/demo.sh and scripts/test.sh (sourced, not run).
# Creates ./.venv (or $MATXFER_VENV) and installs matxfer from this checkout with the given extras;
# pip builds the Rust extension through maturin: the release profile (fat LTO) for the tests, the
# quick-to-build `demo` profile (Cargo.toml) for the demo unless MATURIN_PEP517_ARGS says otherwise.
# A venv whose stamp matches pyproject.toml, Cargo.lock and the Rust sources is not reinstalled.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${MATXFER_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo (the Rust toolchain) is needed to build matxfer from source: https://rustup.rs" >&2
    exit 1
fi
STAMP_ID="$(cat pyproject.toml Cargo.lock Cargo.toml $(find rust -type f \( -name '*.rs' -o -name '*.toml' \) | sort) | sha256sum | cut -c1-16)"
if [ -x "$VENV/bin/python" ] && [ -f "$VENV/.matxfer-$1-$STAMP_ID" ]; then
    # shellcheck disable=SC1091
    source "$VENV/bin/activate"
    return 0 2>/dev/null || exit 0
fi
if [ "$1" = "demo" ]; then
    # The demo needs no torch: numpy inference of a shipped library model and scikit-learn. The steps
    # run side by side on a fresh clone: cargo downloads the crates while the venv is made, then pip
    # installs the Python dependencies while maturin compiles the extension (the longest step).
    cargo fetch --quiet --target "$(rustc -vV | sed -n 's/^host: //p')" &
    fetch=$!
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    # shellcheck disable=SC1091
    source "$VENV/bin/activate"
    # matxfer's own requirements and its `demo` extra, read from pyproject.toml (tomllib from Python
    # 3.11, pip's vendored copy of the same parser on 3.10)
    mapfile -t requirements < <(python -c '
try:
    import tomllib
except ImportError:
    from pip._vendor import tomli as tomllib
with open("pyproject.toml", "rb") as fh:
    project = tomllib.load(fh)["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["demo"]))')
    python -m pip install --quiet "${requirements[@]}" &
    deps=$!
    trap 'kill "$deps" 2>/dev/null || true' EXIT
    # pip prepares maturin's build environment while the crates arrive; cargo waits for the download
    # (the package cache is locked) and a failed download fails the build itself
    export MATURIN_PEP517_ARGS="${MATURIN_PEP517_ARGS:---profile demo}"
    python -m pip install --quiet --no-deps -e .
    wait "$fetch" || true
    wait "$deps"
    trap - EXIT
    rm -f "$VENV"/.matxfer-"$1"-*; touch "$VENV/.matxfer-$1-$STAMP_ID"
    return 0 2>/dev/null || exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
# No wheel cache: the CUDA torch wheels would otherwise be kept twice on disk (about 3 GB more);
# fresh CI machines are sometimes short of disk.
export PIP_NO_CACHE_DIR=1
free_kib="$(df -Pk . | awk 'NR==2 {print $4}')"
echo "== set-up: $((free_kib / 1024 / 1024)) GiB free on the disk of $(pwd)"
if ! python -c "import torch" >/dev/null 2>&1 && [ "$free_kib" -lt $((8 * 1024 * 1024)) ]; then
    echo "warning: torch from PyPI (the CUDA build) needs about 6 GiB and the Rust build about 1 GiB;" \
        "only $((free_kib / 1024)) MiB are free here" >&2
fi
python -m pip install --quiet --upgrade pip
# PyPI's Linux torch wheel is the CUDA build (about 2.8 GB with its nvidia-* wheels). Without an
# NVIDIA GPU, take the CPU build (about 0.2 GB) from the PyTorch index first; if that index cannot
# be reached (no retries: an unreachable index would cost a minute of back-off), pip falls back to
# PyPI below. MATXFER_TORCH_INDEX overrides the index.
if ! python -c "import torch" >/dev/null 2>&1 && ! command -v nvidia-smi >/dev/null 2>&1; then
    python -m pip install --quiet --retries 0 --timeout 15 torch --index-url "${MATXFER_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}" \
        || echo "note: the PyTorch CPU index is unreachable; installing torch from PyPI" >&2
fi
if ! python -m pip install --quiet -e ".[$1]"; then
    echo "error: installing matxfer[$1] and its dependencies failed (see pip's message above);" \
        "$(df -Pk . | awk 'NR==2 {print int($4 / 1024)}') MiB are free on this disk" >&2
    exit 1
fi
rm -f "$VENV"/.matxfer-"$1"-*; touch "$VENV/.matxfer-$1-$STAMP_ID"
