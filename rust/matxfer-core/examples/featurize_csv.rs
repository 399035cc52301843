//! Featurize the first column of a CSV of formulas on one thread and print a checksum.
//! Used to count instructions of the hot path reproducibly (`valgrind --tool=callgrind`):
//!
//!     cargo build --release -p matxfer-core --example featurize_csv
//!     valgrind --tool=callgrind target/release/examples/featurize_csv FILE.csv magpie 20000

use matxfer_core::composition::{featurize_batch, ErrorMode, Featurizer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or("usage: featurize_csv FILE.csv [preset] [n_rows]")?;
    let preset = args.get(2).map_or("magpie", String::as_str);
    let limit: usize = args.get(3).map_or(Ok(usize::MAX), |s| s.parse())?;
    let text = std::fs::read_to_string(path)?;
    let formulas: Vec<&str> = text.lines().skip(1).take(limit).map(|l| l.split(',').next().unwrap_or("")).collect();
    let f = Featurizer::from_preset(preset, None)?;
    let mut out = vec![0.0f64; formulas.len() * f.n_features()];
    let rejected = featurize_batch(&f, &formulas[..], &mut out, ErrorMode::Nan, Some(1))?;
    let checksum: f64 = out.iter().filter(|v| v.is_finite()).sum();
    println!(
        "{} rows x {} features, {} rejected, checksum {checksum:.6e}",
        formulas.len(),
        f.n_features(),
        rejected.len()
    );
    Ok(())
}
