#!/usr/bin/env bash
# Set up (venv, Rust build in the `demo` profile while pip installs the Python deps; no torch) and run
# the main job on shipped data only:
# featurize the 4,604 measured band gaps of matbench expt_gap, take the shipped library model
# mp_gap/band_gap/magpie_full/mlp (numpy) as the DFT source, transfer it with Delta learning (boosted
# head) and compare it in 5-fold CV with gradient boosting, a network from scratch, the source alone
# and the matbench leaderboard; the fits run side by side, one worker process per core. Outputs in
# ./matxfer-demo (predictions, parity plot, learning curve).
source "$(dirname "$0")/_setup.sh" demo
matxfer demo --out matxfer-demo "$@"
