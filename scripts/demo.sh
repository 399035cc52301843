#!/usr/bin/env bash
# Set up (venv, Rust build, Python deps incl. CPU torch) and run the main job on shipped data only:
# featurize the 4,604 measured band gaps of matbench expt_gap, train (once, then cached) a source MLP
# on shipped Materials Project DFT gaps, transfer it with Delta learning and compare it in 5-fold CV
# with the same network from scratch, gradient boosting and the matbench leaderboard. Outputs in
# ./matxfer-demo (predictions, parity plot, learning curve).
source "$(dirname "$0")/_setup.sh" demo
matxfer demo --out matxfer-demo "$@"
