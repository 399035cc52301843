//! Criterion benchmarks of the batch neighbor list and graph builder on the shared datasets
//! (`cargo bench -p matxfer-core --bench neighbors`). Skips datasets that are not present.

use criterion::{criterion_group, criterion_main, Criterion};
use matxfer_core::graph::{build_graphs, GraphOptions, Rbf};
use matxfer_core::neighbors::cell_list::neighbor_list_batch;
use matxfer_core::structure::jsonl::parse_jsonl;
use matxfer_core::structure::Structure;

fn load(name: &str) -> Option<Vec<Structure>> {
    let path = format!("{}/../../../shared/data/structures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).ok()?;
    parse_jsonl(&text, name).ok()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("neighbors");
    group.sample_size(10);
    for name in ["perov5_valtest_cdvae.jsonl", "carbon24_valtest_cdvae.jsonl"] {
        let Some(structures) = load(name) else {
            continue;
        };
        for cutoff in [4.0, 8.0] {
            for threads in [1usize, 2] {
                group.bench_function(format!("{name}/cutoff={cutoff}/threads={threads}"), |b| {
                    b.iter(|| {
                        neighbor_list_batch(&structures, cutoff, false, None, Some(threads)).map(|nl| nl.pairs.len())
                    })
                });
            }
        }
        let opts = GraphOptions {
            cutoff: 4.0,
            rbf: Some(Rbf { start: 1.0, stop: 4.0, n: 64, width: Some(0.5) }),
            ..Default::default()
        };
        group.bench_function(format!("{name}/graphs+rbf64/cutoff=4/threads=1"), |b| {
            b.iter(|| build_graphs(&structures, &opts, Some(1)).map(|g| g.distances.len()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
