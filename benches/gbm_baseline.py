"""How much the inner-CV gradient-boosting baseline differs from one fixed setting (issue 13 item 6).

    nice -n 5 python benches/gbm_baseline.py

expt_gap (matbench folds, magpie_full descriptors, predictions clipped at 0, one OpenMP thread):
- fixed: ``HistGradientBoostingRegressor(max_iter=500, learning_rate=0.05)`` (what
  ``matxfer.library.scan`` used before its baseline took the inner-CV grid);
- inner-CV grid without the tree count (learning rate x leaves at 300 trees: the grid until 2026-12-07);
- inner-CV grid: :func:`matxfer._trees.fit_tree` ("gbm", :data:`matxfer.transfer.BASELINE_GRIDS`,
  tree count {300, 1000} included, 3 inner folds), the baseline of the scan, ``cross_validate``,
  ``auto`` and the transfer benches.
Prints MAE (mean ± sd over the 5 folds), the settings chosen per fold and the seconds.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("MATXFER_SHARED_DATA", HERE.parents[1] / "shared" / "data"))


def main() -> None:
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    import matxfer
    from matxfer._trees import fit_tree
    from matxfer.transfer import matbench_kfold

    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    e = pd.read_csv(DATA / "composition/experimental/expt_gap_matbench.csv", keep_default_na=False, dtype={"formula": str})
    X = matxfer.featurize(e.formula.tolist(), preset="magpie_full", errors="nan", dtype=np.float32).values.astype(np.float64)
    y = e.band_gap_expt_eV.to_numpy(float)
    folds = list(matbench_kfold().split(X))
    print("| gbm | MAE (eV) | settings per fold | seconds |\n|---|---|---|---|")
    for name in ("fixed: 500 trees, learning rate 0.05", "inner-CV grid without the tree count (300 trees)",
                 "inner-CV grid (BASELINE_GRIDS)"):
        t = time.perf_counter()
        maes, chosen = [], []
        for train, test in folds:
            with threadpool_limits(limits=1, user_api="openmp"):
                if name.startswith("fixed"):
                    model = HistGradientBoostingRegressor(max_iter=500, learning_rate=0.05, early_stopping=False,
                                                          random_state=0).fit(X[train], y[train])
                    chosen.append("-")
                else:
                    n_trees = 300 if "without" in name else None  # fixing the count drops it from the grid
                    model, params = fit_tree("gbm", X[train], y[train], False, seed=18012019, n_estimators=n_trees)
                    chosen.append(",".join(f"{k}={v}" for k, v in sorted(params.items())))
                maes.append(np.mean(np.abs(np.maximum(model.predict(X[test]), 0.0) - y[test])))
        print(f"| {name} | {np.mean(maes):.4f} ± {np.std(maes):.4f} | {'; '.join(chosen)} | {time.perf_counter() - t:.0f} |",
              flush=True)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
