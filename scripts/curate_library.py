"""Copy the curated default set from a built library into the package (python/matxfer/library/models).

    python scripts/curate_library.py --library /path/to/built/library --scan benches/out/library/scan_expt_gap.csv
    python scripts/curate_library.py --library /path/to/built/library --extra-names mp_gap/band_gap/cromel/mlp ...

Selection (only sources whose card says the data may be redistributed: MP, OQMD, JARVIS, matbench;
never AFLOW, the matminer re-uploads without a licence, or anything derived from the glass data):
every redistributable magpie_full model (one per source property, the preset with the best
transfer in the expt_gap scan), plus the ``--extra`` best other-preset models of the expt_gap
scan (measured usefulness) or the ``--extra-names`` given, plus the ``--structure`` models,
within ``--max-mb`` in all. Writes NOTICE.md with attribution.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd

import matxfer.library as lib

DEST = Path(__file__).resolve().parents[1] / "python" / "matxfer" / "library" / "models"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", required=True)
    picks = parser.add_mutually_exclusive_group(required=True)
    picks.add_argument("--scan", help="scan table CSV (benches/library.py --sections scan)")
    picks.add_argument("--extra-names", nargs="*", help="the other-preset models to ship, by name (instead of --scan)")
    parser.add_argument("--extra", type=int, default=6)
    parser.add_argument("--structure", nargs="*", default=["perov5/heat_of_formation/crystal_graph/cgcnn"],
                        help="structure models to ship")
    parser.add_argument("--max-mb", type=float, default=25.0)
    args = parser.parse_args(argv)
    models = lib.list(args.library)
    ok = models[models.shippable.astype(bool)]
    assert not ok.dataset.str.contains("glass").any()
    chosen = ok[(ok.preset == "magpie_full") & (ok.modality == "composition")].name.tolist()
    if args.scan is not None:
        scan = pd.read_csv(args.scan)
        ranked = scan[(scan.kind == "source") & scan.name.isin(ok.name) & ~scan.name.isin(chosen)]
        extra = ranked.drop_duplicates("name").name.head(args.extra).tolist()
    else:
        extra = list(args.extra_names)
    chosen += extra + list(args.structure)
    missing = sorted(set(chosen) - set(ok.name))
    if missing:  # a name given (or a structure model) that the library lacks or may not redistribute
        raise SystemExit(f"error: not shippable models of {args.library}: {missing}")
    if DEST.exists():
        shutil.rmtree(DEST)
    total = 0
    cards = []
    for name in chosen:
        src = Path(ok[ok.name == name].path.iloc[0])
        dst = DEST / name
        shutil.copytree(src, dst)
        total += sum(f.stat().st_size for f in dst.iterdir())
        cards.append(lib.load(str(dst)).card)
    assert total <= args.max_mb * 1e6, f"{total / 1e6:.1f} MB > {args.max_mb} MB"
    lines = [
        "# Pretrained models shipped with matxfer: data sources and attribution",
        "",
        "Each directory holds a model trained by matxfer (`matxfer library build`) on the public data set",
        "named in its `card.json` (`source`: file, rows sha256, licence, citation). The weights are",
        "matxfer's own (MIT, as the package); the training data remain their owners'. Only data whose",
        "licence allows redistribution of derived models were used:",
        "",
        "- Materials Project data: CC BY 4.0 (https://materialsproject.org); cite Jain et al., APL Mater. 1, 011002 (2013)",
        "  and the property papers named in the cards.",
        "- OQMD: CC BY 4.0; cite Saal et al., JOM 65, 1501 (2013) and Kirklin et al., npj Comput. Mater. 1, 15010 (2015).",
        "- JARVIS-DFT (NIST): public; cite Choudhary et al., npj Comput. Mater. 6, 173 (2020).",
        "- matbench and CrabNet data files (MIT): Dunn et al., npj Comput. Mater. 6, 138 (2020); Wang et al.,",
        "  npj Comput. Mater. 7, 77 (2021). Castelli perovskites: Castelli et al., Energy Environ. Sci. 5, 9034 (2012).",
        "",
        "Selection: every redistributable magpie_full source, "
        + (f"the structure model{'s' if len(args.structure) > 1 else ''} {', '.join(args.structure)}, " if args.structure else "")
        + "plus the best other-preset sources of the",
        f"expt_gap shotgun scan ({', '.join(extra)}).",
        "",
        "| model | property | units | training rows | hold-out metric | licence |",
        "|---|---|---|---|---|---|",
    ]
    for c in cards:
        m = c["metrics"]
        metric = f"MAE {m['mae']:.4g}" if "mae" in m else f"ROC AUC {m.get('roc_auc', float('nan')):.3f}"
        prop = c["property"]["name"] + (f" (structure model, {c['arch'].upper()})" if c.get("modality") == "structure" else "")
        licence = c["source"]["license"] + (f"; {c['source']['citation']}" if c.get("modality") == "structure" else "")
        lines.append(f"| `{c['name']}` | {prop} | {c['property']['units']} | {c['source']['n_rows_train']} | "
                     f"{metric} | {licence} |")
    (DEST / "NOTICE.md").write_text("\n".join(lines) + "\n")
    print(f"{len(chosen)} models, {total / 1e6:.2f} MB -> {DEST}")


if __name__ == "__main__":
    main()
