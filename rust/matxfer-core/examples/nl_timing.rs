//! Times the batch neighbor list on a JSON-lines dataset: `cargo run --release --example nl_timing -- FILE CUTOFF THREADS [REPEAT]`.
use matxfer_core::neighbors::cell_list::neighbor_list_batch;
use matxfer_core::structure::jsonl::parse_jsonl;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).expect("file");
    let cutoff: f64 = args[2].parse().expect("cutoff");
    let threads: usize = args[3].parse().expect("threads");
    let s = parse_jsonl(&text, &args[1]).expect("parse");
    let repeat: usize = args.get(4).map(|r| r.parse().expect("repeat")).unwrap_or(3);
    let mut best = f64::INFINITY;
    let mut n_pairs = 0;
    for _ in 0..repeat {
        let t = std::time::Instant::now();
        let nl = neighbor_list_batch(&s, cutoff, false, None, Some(threads)).expect("nl");
        best = best.min(t.elapsed().as_secs_f64());
        n_pairs = nl.pairs.len();
    }
    println!(
        "{n_pairs} pairs, best of {repeat}: {:.6} s ({:.1} ns per pair)",
        best,
        best * 1e9 / n_pairs.max(1) as f64
    );
}
