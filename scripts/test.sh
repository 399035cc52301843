#!/usr/bin/env bash
# Set up (venv, Rust build, Python deps incl. the reference tools) and run the whole test suite:
# the Rust core's unit/property tests, then pytest. Needs ../shared/data (or MATXFER_SHARED_DATA).
source "$(dirname "$0")/_setup.sh" test
echo "== cargo test (matxfer-core)"
cargo test --quiet -p matxfer-core
echo "== pytest"
python -m pytest -q "$@"
