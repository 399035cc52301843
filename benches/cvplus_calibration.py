"""Why ``auto``'s CV+ intervals over-cover at 68 %: an offline study of what ``benches/transfer_auto.py`` saved.

    python benches/cvplus_calibration.py --target expt_gap_srcall

``transfer_auto.py`` writes, per outer fold of a regression target, the inputs of auto's CV+
intervals: the out-of-fold residuals ``R_i`` of the calibration (training) rows with the inner fold
that did not see each row, and the predictions of the K inner fold models on the outer test rows.
From these this script reports, pooled over the outer folds:

- CV+ coverage at 68 % and 95 % (recomputed: must equal the bench's figures);
- the test MAE of the K-model average (what ``auto`` predicts) beside the mean test MAE of the single
  inner fold models and the mean |R| (the calibration residuals come from single fold models);
- the coverage of the plain "CV" interval: the K-model average +- the (1 - a)(n + 1)-th smallest |R|
  (no per-model centring; ``AutoTransfer.predict_interval(..., method="cv")``), and of the same
  interval around one fold model (model 0).

If the average is more accurate than the single fold models that produced the residuals, every
interval built from those residuals is too wide for it: that is the over-coverage, measured.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out" / "transfer_auto"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="expt_gap_srcall", help="file stem in benches/out/transfer_auto")
    args = parser.parse_args(argv)
    from matxfer.transfer.auto import cv_plus_bounds, residual_quantile  # the functions auto's intervals use

    files = sorted(OUT.glob(f"{args.target}_fold*_intervals.npz"))
    if not files:
        raise SystemExit(f"no {args.target}_fold*_intervals.npz in {OUT}: run benches/transfer_auto.py first")
    rows = {c: {"cvplus": [], "cv_avg": [], "cv_model0": []} for c in (0.68, 0.95)}
    mae_avg, mae_single, mean_R, n_test = [], [], [], 0
    for f in files:
        d = np.load(f)
        y, P, R, fold_of = d["y_test"], d["fold_predictions"], d["cal_residuals"], d["cal_fold"]
        avg = P.mean(axis=0)
        mae_avg.append(np.abs(avg - y).sum())
        mae_single.append(np.mean([np.abs(p - y).sum() for p in P]))
        mean_R.append(float(np.mean(np.abs(R))))
        n_test += len(y)
        for c in rows:
            lo, hi = cv_plus_bounds(P, R, fold_of, c)
            rows[c]["cvplus"].append(((y >= lo) & (y <= hi)).sum())
            q = residual_quantile(R, c)
            rows[c]["cv_avg"].append((np.abs(y - avg) <= q).sum())
            rows[c]["cv_model0"].append((np.abs(y - P[0]) <= q).sum())
    print(f"{args.target}: {len(files)} outer folds, {n_test} test rows, K = {P.shape[0]} inner fold models")
    print(f"test MAE of the K-model average {sum(mae_avg) / n_test:.4f}; mean test MAE of one fold model "
          f"{sum(mae_single) / n_test:.4f}; mean |OOF residual| of the calibration rows {np.mean(mean_R):.4f}")
    print("| interval | coverage at 68 % | coverage at 95 % |\n|---|---|---|")
    for name, label in (("cvplus", "CV+ (auto)"), ("cv_avg", "average +- |R| quantile"),
                        ("cv_model0", "fold model 0 +- |R| quantile")):
        print(f"| {label} | {sum(rows[0.68][name]) / n_test:.3f} | {sum(rows[0.95][name]) / n_test:.3f} |")


if __name__ == "__main__":
    main()
