#!/usr/bin/env bash
# Set up (venv, Rust build, Python deps) and run the main job on the shipped data:
# featurize the 4,604 experimental band gaps of matbench expt_gap to Parquet and print a summary.
source "$(dirname "$0")/_setup.sh" polars
matxfer demo --out matxfer-demo/expt_gap_magpie.parquet "$@"
