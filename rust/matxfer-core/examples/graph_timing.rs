//! Times batched graph construction with a 64-center RBF:
//! `cargo run --release --example graph_timing -- FILE CUTOFF THREADS [f32]`.
use matxfer_core::graph::{build_graphs, GraphOptions, Rbf};
use matxfer_core::structure::jsonl::parse_jsonl;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).expect("file");
    let cutoff: f64 = args[2].parse().expect("cutoff");
    let threads: usize = args[3].parse().expect("threads");
    let f32_out = args.get(4).is_some_and(|a| a == "f32");
    let s = parse_jsonl(&text, &args[1]).expect("parse");
    let opts = GraphOptions {
        cutoff,
        rbf: Some(Rbf { start: 1.0, stop: cutoff, n: 64, width: Some(0.5) }),
        rbf_float32: f32_out,
        ..Default::default()
    };
    let no_rbf = GraphOptions { rbf: None, ..opts };
    let (mut best_plain, mut best_rbf, mut n_edges) = (f64::INFINITY, f64::INFINITY, 0);
    for _ in 0..7 {
        let t = std::time::Instant::now();
        let g = build_graphs(&s, &no_rbf, Some(threads)).expect("graphs");
        best_plain = best_plain.min(t.elapsed().as_secs_f64());
        drop(g);
        let t = std::time::Instant::now();
        let g = build_graphs(&s, &opts, Some(threads)).expect("graphs");
        best_rbf = best_rbf.min(t.elapsed().as_secs_f64());
        n_edges = g.distances.len();
    }
    println!("{n_edges} edges, best of 7: no rbf {best_plain:.4} s, with rbf {best_rbf:.4} s");
}
