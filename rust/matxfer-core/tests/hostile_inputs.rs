//! Short seeded fuzz of the structure entry points (the long run is `examples/fuzz.rs`, see
//! benches/RESULTS.md): lattices with extreme, NaN or infinite entries, nearly singular cells,
//! extreme coordinates, out-of-range species and cutoffs. Every call must return (Ok or a
//! CoreError) without panicking, quickly, and never refuse with a panic-like internal error.

use std::time::{Duration, Instant};

use matxfer_core::graph::{build_graphs, GraphOptions, Rbf};
use matxfer_core::neighbors::{neighbor_list_batch_with, NeighborOptions};
use matxfer_core::structure::Structure;
use matxfer_core::structure_descriptors as desc;
use matxfer_core::CoreError;
use proptest::prelude::*;

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(1e308),
        Just(1e-300),
        Just(0.0),
        Just(1e-7),
        -10.0..10.0f64,
        (1.0..6.0f64),
    ]
}

fn structure() -> impl Strategy<Value = Structure> {
    (
        proptest::array::uniform3(proptest::array::uniform3(value())),
        proptest::collection::vec((proptest::array::uniform3(-1.5..1.5f64), 0u8..121), 0..6),
        proptest::array::uniform3(any::<bool>()),
    )
        .prop_map(|(lattice, sites, pbc)| {
            let (frac, numbers) = sites.into_iter().unzip();
            Structure::new(lattice, frac, numbers, pbc)
        })
}

fn cutoff() -> impl Strategy<Value = f64> {
    prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-1.0), Just(0.0), Just(1e5), 0.5..8.0f64]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]
    #[test]
    fn structure_calls_never_panic_or_hang(s in structure(), r in cutoff(), n_rbf in 0usize..200_000) {
        let t0 = Instant::now();
        let one = std::slice::from_ref(&s);
        let nl = neighbor_list_batch_with(one, &NeighborOptions { min_distance: 0.1, ..NeighborOptions::new(r) }, Some(1));
        let rbf = Some(Rbf { start: 0.0, stop: 5.0, n: n_rbf, width: None });
        let g = build_graphs(one, &GraphOptions { cutoff: r, rbf, min_distance: 0.1, ..GraphOptions::default() }, Some(1));
        let edges = desc::rdf_edges(r, 0.1);
        if let Ok(e) = &edges {
            let _ = desc::radial_distribution(&s, 0, e);
        }
        let _ = desc::sine_coulomb_eigenvalues(&s, 0);
        let _ = desc::density_features(&s, 0);
        // Non-finite or out-of-range cutoffs are refused as arguments, before any structure work.
        if !(r.is_finite() && r > 0.0 && r <= 1e4) {
            prop_assert!(matches!(nl, Err(CoreError::InvalidArgument(_))), "{nl:?}");
            prop_assert!(matches!(g, Err(CoreError::InvalidArgument(_))));
        }
        if n_rbf == 0 || n_rbf > 4096 {
            prop_assert!(g.is_err());
        }
        prop_assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
    }
}

#[test]
fn singular_and_tiny_cells_are_refused_in_milliseconds() {
    let cells = [
        [[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 1e-7]],
        [[0.0126, 0.0, 0.0], [0.0, 0.0126, 0.0], [0.0, 0.0, 0.0126]],
        [[1e200, 0.0, 0.0], [0.0, 1e200, 0.0], [0.0, 0.0, 1e200]],
    ];
    for lattice in cells {
        let s = Structure::new(lattice, vec![[0.0; 3], [0.5; 3]], vec![11, 17], [true; 3]);
        let t0 = Instant::now();
        let err = neighbor_list_batch_with(&[s], &NeighborOptions::new(5.0), Some(1)).unwrap_err();
        assert!(matches!(err, CoreError::Structure { index: 0, .. }), "{err}");
        assert!(t0.elapsed() < Duration::from_millis(50), "{:?}", t0.elapsed());
    }
}

#[test]
fn thread_counts_are_bounded() {
    let s = Structure::new([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]], vec![[0.0; 3]], vec![11], [true; 3]);
    for n in [0usize, 100_000, usize::MAX] {
        let err = neighbor_list_batch_with(std::slice::from_ref(&s), &NeighborOptions::new(3.0), Some(n)).unwrap_err();
        assert!(err.to_string().contains("n_threads"), "{err}");
    }
}
