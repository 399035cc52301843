//! Criterion benchmarks of the composition hot path on real formulas.
//!
//! Formulas: a fixed, evenly strided subset of Materials Project formulas (matbench mp_gap) read at
//! run time from `<repo>/../shared/data/composition/dft/mp_gap_matbench.csv` (override with the
//! `MATXFER_BENCH_CSV` environment variable). Without the file every benchmark is skipped with a
//! message, so `cargo bench` still succeeds on a checkout without the shared data.
//!
//! Groups (throughput is in formulas):
//! - `parse`: `FormulaParser::parse_into` (reused buffers) and `parse_formula` (allocating).
//! - `featurize_into`: `Featurizer::featurize_into` on already parsed compositions, i.e. the
//!   statistics alone, for `magpie`, `magpie_full` and `xenonpy`.
//! - `featurize_batch`: the whole batch driver (parse + statistics + copy into the output) at one
//!   thread, float64 and float32 output, plus `magpie` on the default pool for reference.
//!
//! Quick run: `cargo bench -p matxfer-core --bench composition -- --quick`
//! (or `-- --warm-up-time 1 --measurement-time 2`).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::OnceLock;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use matxfer_core::composition::{featurize_batch, ErrorMode, Featurizer, Scratch};
use matxfer_core::{parse_formula, Composition, FormulaParser};

/// Number of formulas in a benchmark batch.
const N_FORMULAS: usize = 4096;

fn csv_path() -> PathBuf {
    match std::env::var_os("MATXFER_BENCH_CSV") {
        Some(p) => PathBuf::from(p),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/composition/dft/mp_gap_matbench.csv")
        }
    }
}

/// The formula column of the CSV (first column, header skipped), as strings. The formula `NaN`
/// (sodium nitride) is kept as a formula.
fn read_formulas(path: &PathBuf) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header = lines.next().ok_or("empty file")?;
    if header.split(',').next() != Some("formula") {
        return Err(format!("first column is not 'formula' (header: {header:?})"));
    }
    Ok(lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').next().unwrap_or("").trim_matches('"').to_string())
        .collect())
}

/// `N_FORMULAS` formulas evenly strided over the file (deterministic), or `None` if the data file
/// is absent (a message is printed once).
fn formulas() -> Option<&'static [String]> {
    static DATA: OnceLock<Option<Vec<String>>> = OnceLock::new();
    DATA.get_or_init(|| {
        let path = csv_path();
        match read_formulas(&path) {
            Ok(all) if !all.is_empty() => {
                let stride = (all.len() / N_FORMULAS).max(1);
                let picked: Vec<String> = all.into_iter().step_by(stride).take(N_FORMULAS).collect();
                let bytes: usize = picked.iter().map(String::len).sum();
                eprintln!(
                    "composition benches: {} formulas from {} (mean {:.1} bytes)",
                    picked.len(),
                    path.display(),
                    bytes as f64 / picked.len() as f64
                );
                Some(picked)
            }
            Ok(_) => {
                eprintln!("composition benches SKIPPED: {} has no formulas", path.display());
                None
            }
            Err(e) => {
                eprintln!("composition benches SKIPPED: cannot read the shared formula data ({e}); set MATXFER_BENCH_CSV to a CSV whose first column is 'formula'");
                None
            }
        }
    })
    .as_deref()
}

fn bench_parse(c: &mut Criterion) {
    let Some(formulas) = formulas() else { return };
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(formulas.len() as u64));
    group.bench_function("FormulaParser::parse_into", |b| {
        let mut parser = FormulaParser::new();
        let mut comp = Composition::default();
        b.iter(|| {
            let mut n_elements = 0usize;
            for f in formulas {
                parser.parse_into(black_box(f), &mut comp).expect("real formulas parse");
                n_elements += comp.len();
            }
            black_box(n_elements)
        })
    });
    group.bench_function("parse_formula", |b| {
        b.iter(|| {
            let mut n_elements = 0usize;
            for f in formulas {
                n_elements += parse_formula(black_box(f)).expect("real formulas parse").len();
            }
            black_box(n_elements)
        })
    });
    group.finish();
}

fn bench_featurize_into(c: &mut Criterion) {
    let Some(formulas) = formulas() else { return };
    let comps: Vec<Composition> = formulas.iter().map(|f| parse_formula(f).expect("real formulas parse")).collect();
    let mut group = c.benchmark_group("featurize_into");
    group.throughput(Throughput::Elements(comps.len() as u64));
    for preset in ["magpie", "magpie_full", "xenonpy"] {
        let f = Featurizer::from_preset(preset, None).expect("preset exists");
        group.bench_function(preset, |b| {
            let mut row = vec![0.0f64; f.n_features()];
            let mut scratch = Scratch::default();
            b.iter(|| {
                for comp in &comps {
                    // xenonpy propagates NaN and never rejects; magpie imputes: always Ok here.
                    let _ = f.featurize_into(black_box(comp), &mut row, &mut scratch);
                    black_box(&row);
                }
            })
        });
    }
    group.finish();
}

fn bench_featurize_batch(c: &mut Criterion) {
    let Some(formulas) = formulas() else { return };
    let mut group = c.benchmark_group("featurize_batch");
    group.throughput(Throughput::Elements(formulas.len() as u64));
    let magpie = Featurizer::from_preset("magpie", None).expect("preset exists");
    let n = formulas.len() * magpie.n_features();

    let mut out64 = vec![0.0f64; n];
    group.bench_function("magpie/f64/1thread", |b| {
        b.iter(|| {
            featurize_batch(&magpie, formulas, &mut out64, ErrorMode::Raise, Some(1)).expect("ok");
            black_box(&out64);
        })
    });
    let mut out32 = vec![0.0f32; n];
    group.bench_function("magpie/f32/1thread", |b| {
        b.iter(|| {
            featurize_batch(&magpie, formulas, &mut out32, ErrorMode::Raise, Some(1)).expect("ok");
            black_box(&out32);
        })
    });
    group.bench_function("magpie/f64/nan-mode/1thread", |b| {
        b.iter(|| {
            let rejected = featurize_batch(&magpie, formulas, &mut out64, ErrorMode::Nan, Some(1)).expect("ok");
            black_box(rejected);
        })
    });
    group.bench_function("magpie/f64/all-threads", |b| {
        b.iter(|| {
            featurize_batch(&magpie, formulas, &mut out64, ErrorMode::Raise, None).expect("ok");
            black_box(&out64);
        })
    });
    for preset in ["magpie_full", "xenonpy"] {
        let f = Featurizer::from_preset(preset, None).expect("preset exists");
        let mut out = vec![0.0f64; formulas.len() * f.n_features()];
        group.bench_function(format!("{preset}/f64/1thread"), |b| {
            b.iter(|| {
                featurize_batch(&f, formulas, &mut out, ErrorMode::Nan, Some(1)).expect("ok");
                black_box(&out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse, bench_featurize_into, bench_featurize_batch);
criterion_main!(benches);
