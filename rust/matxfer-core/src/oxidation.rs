//! Oxidation-state guessing for compositions, with the semantics of pymatgen's
//! `Composition.oxi_state_guesses()` (default `oxi_states_override=None`, `max_sites=None`).
//!
//! For each element with integer amount `n`, every multiset of `n` oxidation states drawn from the
//! element's list (pymatgen's `icsd_oxidation_states`, or `common_oxidation_states` when that is
//! empty; `oxidation_states` with `all_oxi_states`) is scored by the sum of the ICSD occurrence
//! probabilities of its states (pymatgen `analysis/icsd_bv.yaml`, key `occurrence`; 0 for a state
//! not listed). Per element, each reachable total charge keeps the best score (the first multiset
//! in `itertools.combinations_with_replacement` order wins ties). Every choice of one total per
//! element (in `itertools.product` order over the totals in first-seen order) that sums to the
//! target charge is a guess `{element: total / n}` with the score summed over the elements; the
//! guesses are returned best first, ties in product order (a stable sort, as Python's `sorted`).
//!
//! The answers are identical to pymatgen's, ties included. The search itself is different: the
//! best score per total of an element comes from a knapsack over the state counts (not from
//! walking every multiset), the charge-balanced choices are enumerated depth-first with a
//! reachability set of the remaining elements' totals (so the product of all totals is never
//! walked), and a row whose search would exceed `max_work` steps is refused with an error naming
//! it (pymatgen would run for hours or exhaust memory on such a row).

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::composition::{parse_row, ErrorMode, Rejected, StrSource};
use crate::elements::{symbol, N_ELEMENTS};
use crate::error::CoreError;
use crate::formula::{Composition, FormulaParser};
use crate::parallel::{check_cancelled, effective_threads, with_threads};

/// Default bound on the search steps of one row (knapsack cells + reachability words + search
/// nodes): at most a few tenths of a second and some 30 MB here; pymatgen's enumeration of such
/// a row takes hours.
pub const DEFAULT_MAX_WORK: u64 = 10_000_000;

/// Default bound on the guesses kept for one row when all guesses are requested.
pub const DEFAULT_MAX_GUESSES: usize = 1_000_000;

/// Rows per parallel task.
const CHUNK_ROWS: usize = 256;

/// pymatgen's oxidation-state lists and ICSD occurrence probabilities, one entry per element.
#[derive(Debug)]
pub struct OxidationData {
    icsd: Vec<Vec<i8>>,
    common: Vec<Vec<i8>>,
    all: Vec<Vec<i8>>,
    /// `(state, count)` pairs present in pymatgen's `occurrence` table.
    occurrence: Vec<Vec<(i8, i64)>>,
}

impl OxidationData {
    /// The embedded table (`data/elements/pymatgen_oxidation_guess.csv`).
    pub fn embedded() -> &'static OxidationData {
        static DATA: OnceLock<OxidationData> = OnceLock::new();
        DATA.get_or_init(|| {
            Self::parse(include_str!("../data/elements/pymatgen_oxidation_guess.csv"))
                .expect("the embedded oxidation table is valid (checked by a unit test)")
        })
    }

    fn parse(text: &str) -> Result<Self, String> {
        let mut data = OxidationData { icsd: vec![], common: vec![], all: vec![], occurrence: vec![] };
        let states = |cell: &str, line: usize| -> Result<Vec<i8>, String> {
            cell.split_whitespace().map(|t| t.parse::<i8>().map_err(|e| format!("line {line}: {t:?}: {e}"))).collect()
        };
        for (k, line) in text.lines().skip(1).filter(|l| !l.is_empty()).enumerate() {
            let cells: Vec<&str> = line.split(',').collect();
            if cells.len() != 6 || cells[0].parse::<usize>().ok() != Some(k + 1) {
                return Err(format!("line {}: expected Z={} and 6 cells", k + 2, k + 1));
            }
            data.icsd.push(states(cells[2], k + 2)?);
            data.common.push(states(cells[3], k + 2)?);
            data.all.push(states(cells[4], k + 2)?);
            let mut occurrence = Vec::new();
            for pair in cells[5].split_whitespace() {
                let (s, p) = pair.split_once(':').ok_or_else(|| format!("line {}: bad pair {pair:?}", k + 2))?;
                let s = s.parse::<i8>().map_err(|e| format!("line {}: {e}", k + 2))?;
                // Integers, which keeps every score sum exact (as Python's int sums are); a table
                // with fractional values would need the summation order of pymatgen's loop.
                let p = p.parse::<i64>().map_err(|e| format!("line {}: occurrence {p:?}: {e}", k + 2))?;
                if !(0..=1 << 31).contains(&p) {
                    return Err(format!("line {}: occurrence {p} out of range", k + 2));
                }
                occurrence.push((s, p));
            }
            data.occurrence.push(occurrence);
        }
        if data.icsd.len() != N_ELEMENTS {
            return Err(format!("expected {N_ELEMENTS} elements, got {}", data.icsd.len()));
        }
        Ok(data)
    }

    /// The states pymatgen searches for element `z` (1-based).
    pub fn states(&self, z: u8, all_oxi_states: bool) -> &[i8] {
        let i = z as usize - 1;
        if all_oxi_states {
            &self.all[i]
        } else if !self.icsd[i].is_empty() {
            &self.icsd[i]
        } else {
            &self.common[i]
        }
    }

    /// ICSD occurrence count of `z` in state `state` (0 when pymatgen has none): pymatgen's
    /// "probability", an integer in its table.
    pub fn count(&self, z: u8, state: i8) -> i64 {
        self.occurrence[z as usize - 1].iter().find(|&&(s, _)| s == state).map_or(0, |&(_, p)| p)
    }
}

/// Options of [`guess_composition`] and [`guess_batch`].
#[derive(Debug, Clone, Copy)]
pub struct GuessOptions {
    /// Total charge the guesses must sum to (pymatgen `target_charge`, default 0).
    pub target_charge: f64,
    /// Search every known state of an element (pymatgen `all_oxi_states`).
    pub all_oxi_states: bool,
    /// Keep every guess (sorted best first) rather than the best one only.
    pub all_guesses: bool,
    /// Refuse a row whose search would take more steps than this.
    pub max_work: u64,
    /// Refuse a row with more guesses than this (only when `all_guesses`).
    pub max_guesses: usize,
}

impl Default for GuessOptions {
    fn default() -> Self {
        Self {
            target_charge: 0.0,
            all_oxi_states: false,
            all_guesses: false,
            max_work: DEFAULT_MAX_WORK,
            max_guesses: DEFAULT_MAX_GUESSES,
        }
    }
}

/// The guesses for one composition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Guesses {
    /// `(Z, amount)` in the formula's order (the order of pymatgen's dict keys).
    pub elements: Vec<(u8, f64)>,
    /// Total oxidation state per element, `n_guesses x n_elements` row-major, best guess first.
    pub totals: Vec<i64>,
    /// Score of each guess (sum of ICSD occurrence probabilities), descending.
    pub scores: Vec<f64>,
}

impl Guesses {
    pub fn n_guesses(&self) -> usize {
        self.scores.len()
    }

    /// Guess `k` as `(Z, average oxidation state)`: total / amount, as pymatgen divides.
    pub fn guess(&self, k: usize) -> impl Iterator<Item = (u8, f64)> + '_ {
        let m = self.elements.len();
        self.elements.iter().zip(&self.totals[k * m..(k + 1) * m]).map(|(&(z, n), &t)| (z, t as f64 / n))
    }
}

/// Why a row has no answer: a reason code and a message.
pub type RowError = (&'static str, String);

/// Bits of the set of totals reachable by a suffix of the elements, over `lo..=lo + 64*words - 1`.
#[derive(Debug, Default, Clone)]
struct Reach {
    lo: i64,
    bits: Vec<u64>,
    span: usize,
}

impl Reach {
    fn contains(&self, v: i64) -> bool {
        let d = v - self.lo;
        d >= 0 && (d as usize) < self.span && self.bits[d as usize / 64] >> (d as usize % 64) & 1 == 1
    }
}

/// Set bits `shift + j` of `dst` for every set bit `j` of `src`.
fn or_shifted(dst: &mut [u64], src: &[u64], shift: usize) {
    let (word, bit) = (shift / 64, shift % 64);
    for (j, &w) in src.iter().enumerate() {
        if w == 0 {
            continue;
        }
        dst[word + j] |= w << bit;
        if bit != 0 && word + j + 1 < dst.len() {
            dst[word + j + 1] |= w >> (64 - bit);
        }
    }
}

/// Per-element totals: first-seen order and best score of each.
#[derive(Debug, Default)]
struct ElementTotals {
    /// Reachable totals in the order `combinations_with_replacement` first produces them.
    order: Vec<i64>,
    /// Best score per total, indexed by `total - lo` (NaN: not reached).
    best: Vec<f64>,
    lo: i64,
}

/// Reusable buffers of one worker thread.
#[derive(Debug, Default)]
pub struct GuessScratch {
    totals: Vec<ElementTotals>,
    reach: Vec<Reach>,
}

fn too_much(what: String, max_work: u64) -> RowError {
    ("too_many_combinations", format!("{what}: more than max_work={max_work} enumeration steps; refused"))
}

/// The reachable totals of `n` atoms of one element, their best scores and pymatgen's order.
///
/// pymatgen walks every multiset of `n` states in `combinations_with_replacement` order (for
/// `C64` with carbon's six ICSD states, 11 million tuples of 64). The same answer comes from a
/// knapsack over the state counts: `best[j][r][u]` is the best score of `r` atoms in states
/// `j..`, with `u` the total measured from `r * min_state`; adding one atom of state `j` moves
/// `u` by `state_j - min_state`. The scores are integer occurrence counts (checked when the
/// table is loaded), so the maximum is exact whatever the summation order. The order in which
/// pymatgen first meets each total is the lexicographic order of the first index tuple reaching
/// it; that tuple takes as many atoms of state 0 as still allows the total, then of state 1,
/// and so on, and tuples compare by those counts (more atoms of an earlier state come first).
#[allow(clippy::too_many_arguments)]
fn element_totals(
    data: &OxidationData,
    z: u8,
    n: usize,
    states: &[i8],
    out: &mut ElementTotals,
    work: &mut u64,
    max_work: u64,
) -> Result<(), RowError> {
    let k = states.len();
    if k == 1 {
        // One state: one multiset, one total.
        *work += 1;
        out.lo = n as i64 * states[0] as i64;
        out.best.clear();
        out.best.push((n as i64 * data.count(z, states[0])) as f64);
        out.order.clear();
        out.order.push(out.lo);
        return Ok(());
    }
    let min = *states.iter().min().unwrap() as i64;
    let max = *states.iter().max().unwrap() as i64;
    let width = (n as i64 * (max - min) + 1) as usize;
    let layer = (n + 1) * width;
    // Knapsack cells plus the greedy walk of each total: checked before anything is allocated.
    let cost = (2 * k as u128 + 1) * layer as u128;
    if *work as u128 + cost > max_work as u128 {
        let sym = symbol(z).unwrap_or("?");
        return Err(too_much(format!("{n} {sym} atoms with {k} oxidation states ({cost} steps)"), max_work));
    }
    *work += cost as u64;
    let shift: Vec<usize> = states.iter().map(|&s| (s as i64 - min) as usize).collect();
    let prob: Vec<i64> = states.iter().map(|&s| data.count(z, s)).collect();
    const NONE: i64 = i64::MIN;
    // reach[j]: bit (r * width + u) set when r atoms in states j.. can give u.
    let words = layer.div_ceil(64);
    let mut reach = vec![0u64; (k + 1) * words];
    reach[k * words] = 1;
    let mut next = vec![NONE; layer];
    next[0] = 0;
    let mut cur = vec![NONE; layer];
    for j in (0..k).rev() {
        let (d, p) = (shift[j], prob[j]);
        for r in 0..=n {
            for u in 0..width {
                let mut v = next[r * width + u];
                if r > 0 && u >= d {
                    let w = cur[(r - 1) * width + u - d];
                    if w != NONE && w + p > v {
                        v = w + p;
                    }
                }
                cur[r * width + u] = v;
                if v != NONE {
                    let bit = r * width + u;
                    reach[j * words + bit / 64] |= 1 << (bit % 64);
                }
            }
        }
        std::mem::swap(&mut cur, &mut next);
    }
    let best_row = &next[n * width..(n + 1) * width];
    let feasible =
        |j: usize, r: usize, u: usize| reach[j * words + (r * width + u) / 64] >> ((r * width + u) % 64) & 1 == 1;
    out.lo = n as i64 * min;
    out.best.clear();
    out.best.resize(width, f64::NAN);
    let mut keyed: Vec<(Vec<usize>, i64)> = Vec::new();
    for (u, &score) in best_row.iter().enumerate() {
        if score == NONE {
            continue;
        }
        out.best[u] = score as f64;
        // Counts of the first tuple reaching u: greedy, earliest state first.
        let mut counts = vec![0usize; k];
        let (mut r, mut left) = (n, u);
        for j in 0..k {
            let mut c = r;
            while !(c * shift[j] <= left && feasible(j + 1, r - c, left - c * shift[j])) {
                c -= 1;
            }
            counts[j] = c;
            r -= c;
            left -= c * shift[j];
        }
        keyed.push((counts, out.lo + u as i64));
    }
    // More atoms in an earlier state = an earlier tuple.
    keyed.sort_by(|a, b| b.0.cmp(&a.0));
    out.order.clear();
    out.order.extend(keyed.into_iter().map(|(_, total)| total));
    Ok(())
}

/// `reach[i]`: the totals reachable by elements `i..` (`reach[m] = {0}`), as bit sets.
fn build_reach(
    totals: &[ElementTotals],
    reach: &mut Vec<Reach>,
    work: &mut u64,
    max_work: u64,
) -> Result<(), RowError> {
    let m = totals.len();
    reach.resize_with(m + 1, Reach::default);
    reach[m] = Reach { lo: 0, bits: vec![1], span: 1 };
    for i in (0..m).rev() {
        let t = &totals[i];
        let hi_own = t.lo + t.best.len() as i64 - 1;
        let (next_lo, next_span) = (reach[i + 1].lo, reach[i + 1].span);
        let lo = t.lo + next_lo;
        let span = (hi_own + next_lo + next_span as i64 - 1 - lo + 1) as usize;
        let words = span.div_ceil(64);
        let cost = (t.order.len() as u64).saturating_mul(reach[i + 1].bits.len() as u64) + words as u64;
        if work.saturating_add(cost) > max_work {
            return Err(too_much(format!("the charge-balance search over {m} elements"), max_work));
        }
        *work += cost;
        let mut bits = vec![0u64; words];
        let (head, tail) = reach.split_at_mut(i + 1);
        for &v in &t.order {
            or_shifted(&mut bits, &tail[0].bits, (v - t.lo) as usize);
        }
        head[i] = Reach { lo, bits, span };
    }
    Ok(())
}

/// Does `comp` have at least one charge-balanced guess? This is matminer's
/// `IonProperty(fast=False)` test, `len(comp.oxi_state_guesses(oxi_states_override=...)) > 0`,
/// where the override is `PymatgenData().get_oxidation_states(el)`, i.e. pymatgen's
/// `common_oxidation_states`; pymatgen ignores an empty override and then searches
/// `icsd_oxidation_states` (or the empty common list). Answers the same as
/// [`guess_composition`] with those states, without enumerating the guesses: the reachability
/// sets decide it. A single element is always balanced (pymatgen's first rule).
pub fn charge_balance_possible(
    elements: &[(u8, f64)],
    max_work: u64,
    scratch: &mut GuessScratch,
) -> Result<bool, RowError> {
    if elements.len() == 1 {
        return Ok(true);
    }
    for &(z, amount) in elements {
        if amount.fract() != 0.0 || !amount.is_finite() {
            let sym = symbol(z).unwrap_or("?");
            return Err((
                "non_integer_amount",
                format!("charge balance needs integer amounts, but {sym} has {amount} (as in pymatgen)"),
            ));
        }
    }
    let data = OxidationData::embedded();
    let m = elements.len();
    let mut work: u64 = 0;
    let mut totals = std::mem::take(&mut scratch.totals);
    totals.resize_with(m, ElementTotals::default);
    let mut result = Ok(true);
    for (i, &(z, amount)) in elements.iter().enumerate() {
        let common = &data.common[z as usize - 1];
        let states = if common.is_empty() { data.states(z, false) } else { common };
        if states.is_empty() {
            result = Ok(false);
            break;
        }
        if amount > max_work as f64 {
            let sym = symbol(z).unwrap_or("?");
            result = Err(too_much(format!("{amount} {sym} atoms"), max_work));
            break;
        }
        if let Err(e) = element_totals(data, z, amount as usize, states, &mut totals[i], &mut work, max_work) {
            result = Err(e);
            break;
        }
    }
    if result == Ok(true) {
        result =
            build_reach(&totals[..m], &mut scratch.reach, &mut work, max_work).map(|()| scratch.reach[0].contains(0));
    }
    scratch.totals = totals;
    result
}

/// Guess the oxidation states of one composition. `Ok` with no guesses when none balances.
pub fn guess_composition(
    comp: &Composition,
    options: &GuessOptions,
    scratch: &mut GuessScratch,
) -> Result<Guesses, RowError> {
    let data = OxidationData::embedded();
    let mut result = Guesses { elements: comp.elements.clone(), ..Guesses::default() };
    if comp.elements.len() == 1 {
        // pymatgen answers `({element: 0.0},)` for a single element before any other rule (no
        // integer check, no target charge); the score is reported as 0.
        result.totals.push(0);
        result.scores.push(0.0);
        return Ok(result);
    }
    // pymatgen checks `amt == int(amt)` for every element before anything else.
    for &(z, amount) in &comp.elements {
        if amount.fract() != 0.0 || !amount.is_finite() {
            let sym = symbol(z).unwrap_or("?");
            return Err((
                "non_integer_amount",
                format!("charge balance needs integer amounts, but {sym} has {amount} (as in pymatgen)"),
            ));
        }
    }
    let m = comp.elements.len();
    let mut work: u64 = 0;
    let mut totals = std::mem::take(&mut scratch.totals);
    totals.resize_with(m, ElementTotals::default);
    for (i, &(z, amount)) in comp.elements.iter().enumerate() {
        let states = data.states(z, options.all_oxi_states);
        if states.is_empty() {
            // No state for this element: pymatgen's product is empty, so is the answer.
            scratch.totals = totals;
            return Ok(result);
        }
        if amount > options.max_work as f64 {
            let sym = symbol(z).unwrap_or("?");
            return Err(too_much(format!("{amount} {sym} atoms"), options.max_work));
        }
        element_totals(data, z, amount as usize, states, &mut totals[i], &mut work, options.max_work)?;
    }
    let target = options.target_charge;
    if target.fract() != 0.0 || !target.is_finite() || target.abs() > 1e15 {
        // Integer totals never sum to a fractional (or absurd) charge.
        scratch.totals = totals;
        return Ok(result);
    }
    let target = target as i64;
    let reach = &mut scratch.reach;
    if let Err(e) = build_reach(&totals[..m], reach, &mut work, options.max_work) {
        scratch.totals = totals;
        return Err(e);
    }
    if !reach[0].contains(target) {
        scratch.totals = totals;
        return Ok(result);
    }
    // Depth-first over one total per element in product order, entering only branches from
    // which the target is still reachable: each leaf is a charge-balanced guess.
    let mut position = vec![0usize; m];
    let mut prefix_total = vec![0i64; m + 1];
    let mut prefix_score = vec![0.0f64; m + 1];
    let mut best: Option<(f64, Vec<i64>)> = None;
    let mut level = 0usize;
    let mut chosen = vec![0i64; m];
    loop {
        if position[level] >= totals[level].order.len() {
            if level == 0 {
                break;
            }
            level -= 1;
            position[level] += 1;
            continue;
        }
        work += 1;
        if work > options.max_work {
            return Err(too_much(format!("the charge-balance search over {m} elements"), options.max_work));
        }
        let t = &totals[level];
        let v = t.order[position[level]];
        let rest = target - prefix_total[level] - v;
        if !reach[level + 1].contains(rest) {
            position[level] += 1;
            continue;
        }
        chosen[level] = v;
        prefix_total[level + 1] = prefix_total[level] + v;
        prefix_score[level + 1] = prefix_score[level] + t.best[(v - t.lo) as usize];
        if level + 1 < m {
            level += 1;
            position[level] = 0;
            continue;
        }
        let score = prefix_score[m];
        if options.all_guesses {
            if result.scores.len() >= options.max_guesses {
                return Err((
                    "too_many_guesses",
                    format!("more than max_guesses={} charge-balanced guesses; refused", options.max_guesses),
                ));
            }
            result.scores.push(score);
            result.totals.extend_from_slice(&chosen);
        } else if best.as_ref().is_none_or(|(b, _)| score > *b) {
            // The first of equal best scores wins, as in Python's stable sort.
            best = Some((score, chosen.clone()));
        }
        position[level] += 1;
    }
    scratch.totals = totals;
    if options.all_guesses {
        let n = result.scores.len();
        let mut order: Vec<usize> = (0..n).collect();
        // Stable: equal scores keep product order, as `sorted(..., reverse=True)` does.
        order.sort_by(|&a, &b| result.scores[b].total_cmp(&result.scores[a]));
        let scores = order.iter().map(|&k| result.scores[k]).collect();
        let totals = order.iter().flat_map(|&k| result.totals[k * m..(k + 1) * m].iter().copied()).collect();
        result.scores = scores;
        result.totals = totals;
    } else if let Some((score, chosen)) = best {
        result.scores.push(score);
        result.totals = chosen;
    }
    Ok(result)
}

#[derive(Default)]
struct Worker {
    parser: FormulaParser,
    comp: Composition,
    scratch: GuessScratch,
}

impl Worker {
    fn row<S: StrSource + ?Sized>(&mut self, src: &S, i: usize, options: &GuessOptions) -> Result<Guesses, Rejected> {
        let text = parse_row(&mut self.parser, &mut self.comp, src, i)?;
        guess_composition(&self.comp, options, &mut self.scratch)
            .map_err(|(code, message)| Rejected::new(i, text, code, message))
    }
}

/// Guess every row of `src`. Rows come back in input order: `Some(guesses)` (possibly with no
/// guess), or `None` for a rejected row with [`ErrorMode::Nan`] (listed, in index order, in the
/// second vector). With [`ErrorMode::Raise`] the lowest bad row is the error.
pub fn guess_batch<S: StrSource + ?Sized>(
    src: &S,
    options: &GuessOptions,
    mode: ErrorMode,
    n_threads: Option<usize>,
) -> Result<(Vec<Option<Guesses>>, Vec<Rejected>), CoreError> {
    if !options.target_charge.is_finite() {
        return Err(CoreError::InvalidArgument(format!("target_charge must be finite, got {}", options.target_charge)));
    }
    let n = src.len();
    let run_chunk = |w: &mut Worker, first: usize| -> Result<Vec<Result<Guesses, Rejected>>, CoreError> {
        check_cancelled()?;
        let mut out = Vec::with_capacity(CHUNK_ROWS);
        for i in first..(first + CHUNK_ROWS).min(n) {
            let row = w.row(src, i, options);
            let stop = row.is_err() && mode == ErrorMode::Raise;
            out.push(row);
            if stop {
                break;
            }
        }
        Ok(out)
    };
    let starts: Vec<usize> = (0..n).step_by(CHUNK_ROWS).collect();
    let threads = effective_threads(n_threads)?;
    let chunks: Vec<Vec<Result<Guesses, Rejected>>> = if starts.len() <= 1 || threads == 1 {
        let mut w = Worker::default();
        starts.iter().map(|&s| run_chunk(&mut w, s)).collect::<Result<_, _>>()?
    } else {
        with_threads(n_threads, || {
            starts.par_iter().map_init(Worker::default, |w, &s| run_chunk(w, s)).collect::<Result<Vec<_>, CoreError>>()
        })??
    };
    let mut rows = Vec::with_capacity(n);
    let mut rejected = Vec::new();
    for row in chunks.into_iter().flatten() {
        match row {
            Ok(g) => rows.push(Some(g)),
            Err(r) => {
                if mode == ErrorMode::Raise {
                    return Err(r.into_error());
                }
                rows.push(None);
                rejected.push(r);
            }
        }
    }
    Ok((rows, rejected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formula::parse_formula;

    fn best(formula: &str) -> Vec<(u8, f64)> {
        let g = guess_composition(&parse_formula(formula).unwrap(), &GuessOptions::default(), &mut Default::default())
            .unwrap();
        if g.n_guesses() == 0 {
            return vec![];
        }
        g.guess(0).collect()
    }

    #[test]
    fn embedded_table_parses() {
        let data = OxidationData::embedded();
        assert_eq!(data.states(8, false), &[-2]);
        assert!(data.count(26, 3) > 0);
    }

    #[test]
    fn simple_guesses() {
        assert_eq!(best("Fe2O3"), vec![(26, 3.0), (8, -2.0)]);
        assert_eq!(best("NaCl"), vec![(11, 1.0), (17, -1.0)]);
        let fe3o4 = best("Fe3O4");
        assert_eq!(fe3o4[0].0, 26);
        assert!((fe3o4[0].1 - 8.0 / 3.0).abs() < 1e-15);
        // Noble gas: no state at all, hence no guess.
        assert!(best("XeNa").is_empty());
        // A single element is neutral, whatever its amount (pymatgen's rule).
        assert_eq!(best("Cs29"), vec![(55, 0.0)]);
        assert_eq!(best("Fe0.5"), vec![(26, 0.0)]);
    }

    #[test]
    fn non_integer_and_explosive_rows_are_refused() {
        let mut s = GuessScratch::default();
        let err = guess_composition(&parse_formula("Na0.5Cl0.5").unwrap(), &GuessOptions::default(), &mut s);
        assert_eq!(err.unwrap_err().0, "non_integer_amount");
        let options = GuessOptions { max_work: 1000, ..GuessOptions::default() };
        let err = guess_composition(&parse_formula("Mn400O300").unwrap(), &options, &mut s).unwrap_err();
        assert_eq!(err.0, "too_many_combinations");
        assert!(err.1.contains("Mn"), "{}", err.1);
    }

    #[test]
    fn all_guesses_are_sorted_and_start_with_the_best() {
        let comp = parse_formula("Fe3O4").unwrap();
        let mut s = GuessScratch::default();
        let all = guess_composition(&comp, &GuessOptions { all_guesses: true, ..Default::default() }, &mut s).unwrap();
        let one = guess_composition(&comp, &GuessOptions::default(), &mut s).unwrap();
        assert!(all.scores.windows(2).all(|w| w[0] >= w[1]));
        assert_eq!(all.scores[0].to_bits(), one.scores[0].to_bits());
        assert_eq!(all.totals[..2], one.totals[..]);
    }

    #[test]
    fn batch_is_ordered_and_thread_independent() {
        let formulas: Vec<String> =
            (0..2000).map(|i| format!("Fe{}Mn{}O{}", i % 5 + 1, i % 3 + 1, i % 7 + 1)).collect();
        let options = GuessOptions { all_guesses: true, ..Default::default() };
        let (a, _) = guess_batch(&formulas[..], &options, ErrorMode::Raise, Some(1)).unwrap();
        let (b, _) = guess_batch(&formulas[..], &options, ErrorMode::Raise, Some(3)).unwrap();
        assert_eq!(a, b);
        let bad = ["NaCl", "Xx", "Na0.5Cl"];
        let err = guess_batch(&bad[..], &options, ErrorMode::Raise, None).unwrap_err();
        assert!(err.to_string().starts_with("row 1:"), "{err}");
        let (rows, rejected) = guess_batch(&bad[..], &options, ErrorMode::Nan, None).unwrap();
        assert!(rows[0].is_some() && rows[1].is_none() && rows[2].is_none());
        assert_eq!(
            rejected.iter().map(|r| (r.index, r.code)).collect::<Vec<_>>(),
            [(1, "unknown_element"), (2, "non_integer_amount")]
        );
    }
}
