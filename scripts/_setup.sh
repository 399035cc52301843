# Shared set-up for scripts/demo.sh and scripts/test.sh (sourced, not run).
# Creates ./.venv (or $MATXFER_VENV) and installs matxfer from this checkout with the given extras;
# pip builds the Rust extension in release mode through maturin.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${MATXFER_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo (the Rust toolchain) is needed to build matxfer from source: https://rustup.rs" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[$1]"
