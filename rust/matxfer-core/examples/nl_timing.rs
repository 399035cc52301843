//! Times the batch neighbor list on a JSON-lines dataset: `cargo run --release --example nl_timing -- FILE CUTOFF THREADS`.
use matxfer_core::neighbors::cell_list::neighbor_list_batch;
use matxfer_core::structure::jsonl::parse_jsonl;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).expect("file");
    let cutoff: f64 = args[2].parse().expect("cutoff");
    let threads: usize = args[3].parse().expect("threads");
    let s = parse_jsonl(&text, &args[1]).expect("parse");
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let nl = neighbor_list_batch(&s, cutoff, false, None, Some(threads)).expect("nl");
        println!(
            "{} pairs in {:.3} s",
            nl.pairs.len(),
            t.elapsed().as_secs_f64()
        );
    }
}
