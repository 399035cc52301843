#!/usr/bin/env bash
# Set up (venv, Rust build, Python deps incl. the reference tools) and run the whole test suite:
# the Rust core's unit/property tests, then pytest. Needs ../shared/data (or MATXFER_SHARED_DATA).
source "$(dirname "$0")/_setup.sh" test
echo "== cargo test (matxfer-core)"
# no debug info and no incremental cache in the test build: about 1.5 GiB less on disk
CARGO_PROFILE_TEST_DEBUG=0 CARGO_PROFILE_DEV_DEBUG=0 CARGO_INCREMENTAL=0 cargo test --quiet -p matxfer-core
echo "== pytest"
python -m pytest -q "$@"
