//! Mutation fuzzer of the core, seeded from the shared datasets.
//!
//! `cargo run --release -p matxfer-core --example fuzz -- [--formulas N] [--structures N]
//! [--parser-inputs N] [--seed S] [--data DIR]`
//!
//! - formulas: every formula of the composition CSVs under `DIR/composition`, mutated (bytes
//!   inserted, deleted, swapped, digits replaced by huge/tiny numbers, brackets and adduct dots
//!   added), then parsed and featurized (`magpie_full`, errors kept per row).
//! - structures: the JSON-lines datasets under `DIR/structures`, mutated (lattice entries scaled
//!   by up to 1e+-300 or set to NaN/inf, nearly singular cells, coordinates moved, duplicated or
//!   set to huge values, atomic numbers out of range, periodicity flipped); each is passed to the
//!   neighbor list, graph and descriptor functions with their default settings.
//! - parser inputs: mutated text of the CIF, JSON-lines, POSCAR and XYZ seeds through the public
//!   parse functions.
//!
//! Every call runs under `catch_unwind`: a panic is counted and printed (the run goes on). The
//! slowest single input is reported, to spot hangs. Exit status 1 if anything panicked.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use matxfer_core::composition::{featurize_batch, ErrorMode, Featurizer};
use matxfer_core::graph::{build_graphs, EdgeSelection, GraphOptions};
use matxfer_core::neighbors::{neighbor_list_batch_with, NeighborOptions};
use matxfer_core::structure::{cif, jsonl, poscar, xyz, Structure};
use matxfer_core::structure_descriptors as desc;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const PIECES: &[&str] = &[
    "(", ")", "[", "]", "{", "}", ".", "·", "*", "e", "E", "-", "+", "0", "1", "2", ".5", "1e308", "1e-320", "9e999",
    "H2O", "Fe", "Xx", " ", "\u{0}", "é", "ﬁ", "(((((", ")))))", "NaN", "inf", "0.0", "5H2O", "Uuo",
];

fn mutate_formula(rng: &mut Rng, seed: &str) -> String {
    let mut s: Vec<char> = seed.chars().collect();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(s.len() + 1);
        match rng.below(6) {
            0 if !s.is_empty() => {
                s.remove(at.min(s.len() - 1));
            }
            1 => {
                let p = PIECES[rng.below(PIECES.len())];
                for (k, c) in p.chars().enumerate() {
                    s.insert((at + k).min(s.len()), c);
                }
            }
            2 if s.len() > 1 => {
                let (a, b) = (at.min(s.len() - 1), rng.below(s.len()));
                s.swap(a, b);
            }
            3 => {
                let c = char::from_u32(rng.below(0x3000) as u32).unwrap_or('?');
                s.insert(at.min(s.len()), c);
            }
            4 if !s.is_empty() => {
                // Duplicate a slice (nesting, repeated groups).
                let a = rng.below(s.len());
                let b = (a + 1 + rng.below(8)).min(s.len());
                let part: Vec<char> = s[a..b].to_vec();
                for (k, c) in part.into_iter().enumerate() {
                    s.insert((at + k).min(s.len()), c);
                }
            }
            _ => {
                // Replace a digit by an extreme number.
                if let Some(k) = s.iter().position(|c| c.is_ascii_digit()) {
                    s.remove(k);
                    for (j, c) in ["1e308", "1e-308", "99999999999999999999", "0"][rng.below(4)].chars().enumerate() {
                        s.insert(k + j, c);
                    }
                }
            }
        }
    }
    s.into_iter().collect()
}

fn extreme(rng: &mut Rng) -> f64 {
    match rng.below(8) {
        0 => f64::NAN,
        1 => f64::INFINITY,
        2 => -f64::INFINITY,
        3 => 10f64.powi(rng.below(601) as i32 - 300),
        4 => -(10f64.powi(rng.below(601) as i32 - 300)),
        5 => 0.0,
        6 => 1e-7,
        _ => (rng.unit() - 0.5) * 100.0,
    }
}

fn mutate_structure(rng: &mut Rng, seed: &Structure) -> Structure {
    let mut s = seed.clone();
    for _ in 0..1 + rng.below(2) {
        match rng.below(10) {
            0 => {
                let (r, c) = (rng.below(3), rng.below(3));
                s.lattice[r][c] = extreme(rng);
            }
            1 => {
                // Below ~0.3 the RDF to 20 A of a compressed cell is legitimately 1e8 pairs (seconds): the
                // tiny and singular cells come from the entry mutations, which are refused in O(1).
                let f = 10f64.powf(rng.unit() * 4.5 - 0.5);
                for v in s.lattice.iter_mut().flatten() {
                    *v *= f;
                }
            }
            2 => {
                // Nearly singular: the third vector almost in the plane of the first two.
                let e = 10f64.powi(-(rng.below(12) as i32));
                s.lattice[2] = [
                    s.lattice[0][0] + s.lattice[1][0] + e,
                    s.lattice[0][1] + s.lattice[1][1],
                    s.lattice[0][2] + s.lattice[1][2],
                ];
            }
            3 if !s.frac_coords.is_empty() => {
                let k = rng.below(s.frac_coords.len());
                s.frac_coords[k][rng.below(3)] = extreme(rng);
            }
            4 if !s.frac_coords.is_empty() => {
                // Duplicate an atom (overlap) or put one very close to another.
                let k = rng.below(s.frac_coords.len());
                let mut f = s.frac_coords[k];
                f[0] += rng.unit() * 1e-3;
                s.frac_coords.push(f);
                s.numbers.push(s.numbers[k]);
            }
            5 if !s.numbers.is_empty() => {
                let k = rng.below(s.numbers.len());
                s.numbers[k] = [0u8, 119, 255, 1, 118][rng.below(5)];
            }
            6 => {
                let k = rng.below(3);
                s.pbc[k] = !s.pbc[k];
            }
            7 if !s.frac_coords.is_empty() => {
                let k = rng.below(s.frac_coords.len());
                s.frac_coords.remove(k);
                s.numbers.remove(k);
            }
            8 => {
                for f in s.frac_coords.iter_mut() {
                    for x in f.iter_mut() {
                        *x += (rng.unit() - 0.5) * 0.2;
                    }
                }
            }
            _ => {
                s.frac_coords.clear();
                s.numbers.clear();
            }
        }
    }
    s
}

fn mutate_text(rng: &mut Rng, seed: &str) -> String {
    let mut b: Vec<u8> = seed.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(5) {
            0 if !b.is_empty() => {
                let end = (at + rng.below(64)).min(b.len());
                b.drain(at.min(b.len())..end);
            }
            1 => {
                let p = ["\n", "'", "\"", ";", "_", "loop_", "-1e308", "nan", "999999999", "(", "\r\n", " ", "#"];
                let p = p[rng.below(p.len())].as_bytes();
                for (k, &c) in p.iter().enumerate() {
                    b.insert((at + k).min(b.len()), c);
                }
            }
            2 if !b.is_empty() => {
                let k = at.min(b.len() - 1);
                b[k] = rng.below(128) as u8;
            }
            3 if !b.is_empty() => {
                let a = rng.below(b.len());
                let e = (a + rng.below(200)).min(b.len());
                let part = b[a..e].to_vec();
                for (k, c) in part.into_iter().enumerate() {
                    b.insert((at + k).min(b.len()), c);
                }
            }
            _ => b.truncate(at),
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

struct Tally {
    inputs: u64,
    panics: u64,
    errors: u64,
    slowest: Duration,
    slowest_what: String,
}

impl Tally {
    fn new() -> Self {
        Self { inputs: 0, panics: 0, errors: 0, slowest: Duration::ZERO, slowest_what: String::new() }
    }
    /// Run `f`, counting panics, errors and the slowest input.
    fn call<T, E>(&mut self, what: impl Fn() -> String, f: impl FnOnce() -> Result<T, E>) {
        let t0 = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(f));
        let dt = t0.elapsed();
        self.inputs += 1;
        match r {
            Err(_) => {
                self.panics += 1;
                eprintln!("PANIC on {}", what());
            }
            Ok(Err(_)) => self.errors += 1,
            Ok(Ok(_)) => {}
        }
        if dt > self.slowest {
            self.slowest = dt;
            self.slowest_what = what();
        }
    }
}

fn formulas_from(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "csv") {
                let Ok(text) = std::fs::read_to_string(&p) else { continue };
                let mut lines = text.lines();
                let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
                let Some(col) = header.iter().position(|h| h.trim().eq_ignore_ascii_case("formula")) else {
                    continue;
                };
                out.extend(lines.filter_map(|l| l.split(',').nth(col)).map(|f| f.trim_matches('"').to_string()));
            }
        }
    }
    out
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|k| args.get(k + 1)).cloned().unwrap_or_else(|| default.to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n_formulas: u64 = arg(&args, "--formulas", "10000000").parse().expect("--formulas");
    let n_structures: u64 = arg(&args, "--structures", "200000").parse().expect("--structures");
    let n_parser: u64 = arg(&args, "--parser-inputs", "50000").parse().expect("--parser-inputs");
    let seed: u64 = arg(&args, "--seed", "1").parse().expect("--seed");
    let data = PathBuf::from(arg(&args, "--data", "../shared/data"));
    // Quiet panics: they are counted and named by the tally.
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);

    // ---- formulas
    let seeds = formulas_from(&data.join("composition"));
    assert!(!seeds.is_empty(), "no formulas under {}", data.display());
    let featurizer = Featurizer::from_preset("magpie_full", None).expect("preset");
    let t0 = Instant::now();
    let mut formula_tally = Tally::new();
    let mut rejected = 0u64;
    let batch = 100_000usize;
    let mut done = 0u64;
    let mut out = vec![0f64; batch * featurizer.n_features()];
    while done < n_formulas {
        let k = batch.min((n_formulas - done) as usize);
        let rows: Vec<String> = (0..k)
            .map(|_| {
                let seed = &seeds[rng.below(seeds.len())];
                mutate_formula(&mut rng, seed)
            })
            .collect();
        let out = &mut out[..k * featurizer.n_features()];
        let t = Instant::now();
        let r =
            catch_unwind(AssertUnwindSafe(|| featurize_batch(&featurizer, &rows[..], out, ErrorMode::Nan, Some(1))));
        match r {
            Ok(Ok(rej)) => rejected += rej.len() as u64,
            Ok(Err(e)) => eprintln!("batch error: {e}"),
            Err(_) => {
                // Find the row that panics.
                for row in &rows {
                    formula_tally.call(|| format!("formula {row:?}"), || matxfer_core::parse_formula(row));
                }
                formula_tally.panics += 1;
            }
        }
        if t.elapsed() > formula_tally.slowest {
            formula_tally.slowest = t.elapsed();
            formula_tally.slowest_what = format!("a batch of {k} formulas");
        }
        done += k as u64;
    }
    formula_tally.inputs = done;
    println!(
        "formulas: {done} mutated inputs ({} seeds), {rejected} rejected rows, {} panics, {:.1} s, slowest batch {:.3} s",
        seeds.len(),
        formula_tally.panics,
        t0.elapsed().as_secs_f64(),
        formula_tally.slowest.as_secs_f64()
    );

    // ---- structures
    let mut structures = Vec::new();
    let mut texts: Vec<(String, &'static str)> = Vec::new();
    for name in [
        "perov5_valtest_cdvae.jsonl",
        "carbon24_valtest_cdvae.jsonl",
        "mp_bulk_moduli100_megnet.jsonl",
        "jarvis_dft_2d_matminer.jsonl",
        "pt_clusters_matdeeplearn.jsonl",
        "jarvis_sample50_alignn.jsonl",
    ] {
        let path = data.join("structures").join(name);
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        for line in text.lines().take(200) {
            texts.push((line.to_string(), "jsonl"));
        }
        if let Ok(mut s) = jsonl::parse_jsonl(&text, name) {
            s.truncate(2000);
            structures.extend(s);
        }
    }
    if let Ok(entries) = std::fs::read_dir(data.join("cif")) {
        for e in entries.flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                texts.push((t, "cif"));
            }
        }
    }
    texts.push(("Si\n1.0\n5.43 0 0\n0 5.43 0\n0 0 5.43\nSi\n2\nDirect\n0 0 0\n0.25 0.25 0.25\n".into(), "poscar"));
    texts.push((
        "2\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3 pbc=\"T T T\"\nNa 0 0 0\nCl 2 2 2\n".into(),
        "xyz",
    ));
    assert!(!structures.is_empty(), "no structures under {}", data.display());
    let t1 = Instant::now();
    let mut st = Tally::new();
    let nl_opts = NeighborOptions { min_distance: 0.1, ..NeighborOptions::new(5.0) };
    let graph_default = GraphOptions { min_distance: 0.1, ..GraphOptions::default() };
    let graph_knn = GraphOptions {
        cutoff: 8.0,
        selection: EdgeSelection::Knn { k: 12, tie_tolerance: 1e-6, cutoff_step: 1.0, max_cutoff: 16.0 },
        three_body_cutoff: Some(4.0),
        ..graph_default
    };
    let edges: Vec<f64> = (0..201).map(|k| k as f64 * 0.1).collect();
    let mut n_ok = 0u64;
    for k in 0..n_structures {
        let pick = rng.below(structures.len());
        let s = mutate_structure(&mut rng, &structures[pick]);
        let one = std::slice::from_ref(&s);
        let sref = &s;
        let what = |call: &'static str| move || format!("{call} of structure {k}: {sref:?}");
        let before = st.errors;
        st.call(what("neighbor_list"), || neighbor_list_batch_with(one, &nl_opts, Some(1)));
        st.call(what("build_graphs"), || build_graphs(one, &graph_default, Some(1)));
        if k % 16 == 0 {
            st.call(what("build_graphs(k=12, three_body)"), || build_graphs(one, &graph_knn, Some(1)));
        }
        st.call(what("radial_distribution"), || desc::radial_distribution(&s, 0, &edges));
        st.call(what("density_features"), || desc::density_features(&s, 0));
        st.call(what("sine_coulomb_eigenvalues"), || desc::sine_coulomb_eigenvalues(&s, 0));
        if st.errors == before {
            n_ok += 1;
        }
    }
    println!(
        "structures: {n_structures} mutated inputs ({} seeds, {n_ok} accepted by every call), {} calls, {} refused, {} panics, {:.1} s, slowest call {:.3} s",
        structures.len(),
        st.inputs,
        st.errors,
        st.panics,
        t1.elapsed().as_secs_f64(),
        st.slowest.as_secs_f64()
    );

    // ---- parsers
    let t2 = Instant::now();
    let mut pt = Tally::new();
    for k in 0..n_parser {
        let pick = rng.below(texts.len());
        let (seed_text, format) = &texts[pick];
        let text = mutate_text(&mut rng, seed_text);
        let what = || format!("{format} input {k}: {text:?}");
        match *format {
            "cif" => pt.call(what, || cif::parse_cif(&text, "fuzz.cif", &cif::CifOptions::default())),
            "jsonl" => pt.call(what, || jsonl::parse_jsonl(&text, "fuzz.jsonl")),
            "poscar" => pt.call(what, || poscar::parse_poscar(&text, "POSCAR")),
            _ => pt.call(what, || xyz::parse_xyz(&text, "fuzz.xyz")),
        }
    }
    println!(
        "parsers: {n_parser} mutated inputs, {} refused, {} panics, {:.1} s, slowest {:.3} s",
        pt.errors,
        pt.panics,
        t2.elapsed().as_secs_f64(),
        pt.slowest.as_secs_f64()
    );
    if st.slowest > Duration::from_secs(1) {
        println!("slowest structure call: {}", &st.slowest_what[..st.slowest_what.len().min(400)]);
    }
    if formula_tally.panics + st.panics + pt.panics > 0 {
        std::process::exit(1);
    }
}
