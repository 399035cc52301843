//! Composition descriptors: a [`Featurizer`] turns a parsed [`Composition`] into a fixed-length
//! feature row with stable names.
//!
//! Presets (see [`Featurizer::from_preset`]):
//! - `magpie`: matminer `ElementProperty.from_preset("magpie")`, 132 features, same names/order.
//! - `magpie_full`: matminer `Stoichiometry()` + `ElementProperty(magpie)` + `ValenceOrbital()` +
//!   `IonProperty(fast=True)` (Ward et al. 2016 as matminer computes it), 149 features.
//! - `xenonpy`: the 7 XenonPy statistics over the `xenonpy` element table.
//! - `cromel` / `cromel:<table>`: fraction-weighted mean, min, max over an embedding table
//!   (matscholar by default).
//! - `fraction`: the 118 element fractions (ElemNet style).
//! - `onehot`, `cgcnn`, `megnet16`, `mat2vec`, `oliynyk`, `magpie_table`: XenonPy statistics over that
//!   table (any embedded table works as `stats:<table>`).

mod batch;
mod stats;
mod vectorized;

pub(crate) use batch::parse_row;
pub use batch::{featurize_batch, BadEntry, ErrorMode, OutFloat, Rejected, StrSource};
pub use stats::{compute as compute_stat, Stat, MAGPIE_STATS, XENONPY_STATS};

use std::sync::OnceLock;

use crate::elements::{embedded_table, ElementTable, N_ELEMENTS, SYMBOLS};
use crate::error::CoreError;
use crate::formula::Composition;
use crate::oxidation::{charge_balance_possible, GuessScratch};

/// The 22 Magpie properties of matminer's "magpie" preset, in matminer's order.
pub const MAGPIE_PROPERTIES: [&str; 22] = [
    "Number",
    "MendeleevNumber",
    "AtomicWeight",
    "MeltingT",
    "Column",
    "Row",
    "CovalentRadius",
    "Electronegativity",
    "NsValence",
    "NpValence",
    "NdValence",
    "NfValence",
    "NValence",
    "NsUnfilled",
    "NpUnfilled",
    "NdUnfilled",
    "NfUnfilled",
    "NUnfilled",
    "GSvolume_pa",
    "GSbandgap",
    "GSmagmom",
    "SpaceGroupNumber",
];

/// Missing element values: what a table-statistics block does with NaN in its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingPolicy {
    /// Replace NaN by the column mean over all 118 elements (matminer `impute_nan=True`).
    ImputeMean,
    /// Keep NaN; statistics that touch it are NaN.
    Propagate,
    /// A composition containing an element whose row has a NaN is rejected (embeddings).
    Reject,
}

impl std::str::FromStr for MissingPolicy {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        match s {
            "impute" => Ok(Self::ImputeMean),
            "nan" => Ok(Self::Propagate),
            "reject" => Ok(Self::Reject),
            o => Err(CoreError::InvalidArgument(format!("missing must be 'impute', 'nan' or 'reject', got {o:?}"))),
        }
    }
}

/// How the labels of a statistics block are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// matminer: for each property, for each stat; label `"{prefix} {stat} {property}"`.
    PropertyMajor,
    /// XenonPy: for each stat, for each property; label `"{stat}:{property}"`.
    StatMajor,
}

#[derive(Debug, Clone)]
struct TableStats {
    table: ElementTable,
    stats: Vec<Stat>,
    layout: Layout,
    reject_missing: bool,
}

#[derive(Debug, Clone)]
enum Block {
    Table(TableStats),
    /// matminer `Stoichiometry(p_list)`.
    Stoichiometry(Vec<u32>),
    /// matminer `ValenceOrbital()` (avg then frac, for s, p, d, f).
    ValenceOrbital(ElementTable),
    /// matminer `IonProperty(fast=True)` with `PymatgenData`.
    IonProperty {
        electronegativity: Vec<f64>,
        oxidation_states: &'static [Vec<i8>],
    },
    /// matminer `IonProperty()` (its default `fast=False`): "compound possible" from pymatgen's
    /// `oxi_state_guesses` over the common oxidation states ([`charge_balance_possible`]).
    IonPropertyGuess {
        electronegativity: Vec<f64>,
        max_work: u64,
    },
    /// Element fractions over Z = 1..118.
    Fraction,
}

/// A composition featurizer: an ordered list of descriptor blocks with their feature names.
#[derive(Debug, Clone)]
pub struct Featurizer {
    blocks: Vec<Block>,
    names: Vec<String>,
}

fn parse_oxidation_csv(text: &str) -> Vec<Vec<i8>> {
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let states = line.splitn(3, ',').nth(2).unwrap_or("");
            states.split_whitespace().filter_map(|t| t.parse().ok()).collect()
        })
        .collect()
}

fn pymatgen_oxidation_states() -> &'static [Vec<i8>] {
    static STATES: OnceLock<Vec<Vec<i8>>> = OnceLock::new();
    STATES.get_or_init(|| parse_oxidation_csv(include_str!("../../data/elements/pymatgen_common_oxidation_states.csv")))
}

/// pymatgen `Element.X` with matminer's `PymatgenData(impute_nan=True)` rule: a missing (or zero)
/// value becomes the mean over the elements that have one.
fn pymatgen_electronegativity() -> Vec<f64> {
    let text = include_str!("../../data/elements/pymatgen_electronegativity.csv");
    let mut values: Vec<f64> = text
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|line| line.splitn(3, ',').nth(2).and_then(|v| v.trim().parse().ok()).unwrap_or(f64::NAN))
        .collect();
    let known: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    let mean = stats::np_sum(known.len(), |i| known[i]) / known.len() as f64;
    for v in &mut values {
        if v.is_nan() {
            *v = mean;
        }
    }
    values
}

impl Featurizer {
    /// Names of the built-in presets.
    pub const PRESETS: [&'static str; 7] =
        ["magpie", "magpie_full", "xenonpy", "cromel", "fraction", "ion_property", "ion_property_fast"];

    /// Build a preset. `impute_nan`: `None` keeps the preset's documented default
    /// (magpie/magpie_full: impute like matminer; xenonpy: propagate NaN; cromel: reject).
    pub fn from_preset(name: &str, impute_nan: Option<bool>) -> Result<Self, CoreError> {
        let policy = |default: MissingPolicy| match impute_nan {
            None => default,
            Some(true) => MissingPolicy::ImputeMean,
            Some(false) => {
                if default == MissingPolicy::Reject {
                    MissingPolicy::Reject
                } else {
                    MissingPolicy::Propagate
                }
            }
        };
        let magpie_block = |policy| -> Result<Block, CoreError> {
            let table = embedded_table("magpie")?.select("magpie", &MAGPIE_PROPERTIES)?;
            Ok(Block::Table(TableStats::new(table, MAGPIE_STATS.to_vec(), Layout::PropertyMajor, policy)))
        };
        let blocks = match name {
            "magpie" => vec![magpie_block(policy(MissingPolicy::ImputeMean))?],
            "magpie_full" => {
                let policy = policy(MissingPolicy::ImputeMean);
                let valence = embedded_table("magpie")?
                    .select("magpie", &["NsValence", "NpValence", "NdValence", "NfValence", "NValence"])?;
                let valence = if policy == MissingPolicy::ImputeMean { valence.impute_column_means() } else { valence };
                vec![
                    Block::Stoichiometry(vec![0, 2, 3, 5, 7, 10]),
                    magpie_block(policy)?,
                    Block::ValenceOrbital(valence),
                    Block::IonProperty {
                        electronegativity: pymatgen_electronegativity(),
                        oxidation_states: pymatgen_oxidation_states(),
                    },
                ]
            }
            "fraction" => vec![Block::Fraction],
            "ion_property" => vec![Block::IonPropertyGuess {
                electronegativity: pymatgen_electronegativity(),
                max_work: crate::oxidation::DEFAULT_MAX_WORK,
            }],
            "ion_property_fast" => vec![Block::IonProperty {
                electronegativity: pymatgen_electronegativity(),
                oxidation_states: pymatgen_oxidation_states(),
            }],
            "xenonpy" => {
                let table = embedded_table("xenonpy")?.clone();
                vec![Block::Table(TableStats::new(
                    table,
                    XENONPY_STATS.to_vec(),
                    Layout::StatMajor,
                    policy(MissingPolicy::Propagate),
                ))]
            }
            _ if name == "cromel" || name.starts_with("cromel:") => {
                let table_name = name.strip_prefix("cromel:").unwrap_or("matscholar");
                let table = embedded_table(table_name)?.clone();
                let stats = vec![Stat::Mean, Stat::Minimum, Stat::Maximum];
                vec![Block::Table(TableStats::new(table, stats, Layout::StatMajor, policy(MissingPolicy::Reject)))]
            }
            _ if name.starts_with("stats:") => {
                let table = embedded_table(&name["stats:".len()..])?.clone();
                vec![Block::Table(TableStats::new(
                    table,
                    XENONPY_STATS.to_vec(),
                    Layout::StatMajor,
                    policy(MissingPolicy::Propagate),
                ))]
            }
            _ => {
                return Err(CoreError::InvalidArgument(format!(
                    "unknown preset '{name}'; known: {}, cromel:<table>, stats:<table>",
                    Self::PRESETS.join(", ")
                )))
            }
        };
        Ok(Self::from_blocks(blocks))
    }

    /// Statistics over a caller-supplied element table (`118 x k`, row z-1 = element z).
    pub fn from_table(table: ElementTable, stats: Vec<Stat>, policy: MissingPolicy) -> Result<Self, CoreError> {
        if stats.is_empty() {
            return Err(CoreError::InvalidArgument("at least one statistic is needed".into()));
        }
        if table.n_columns() == 0 {
            return Err(CoreError::InvalidArgument("element table has no columns".into()));
        }
        Ok(Self::from_blocks(vec![Block::Table(TableStats::new(table, stats, Layout::StatMajor, policy))]))
    }

    fn from_blocks(blocks: Vec<Block>) -> Self {
        let mut names = Vec::new();
        for b in &blocks {
            b.push_names(&mut names);
        }
        Self { blocks, names }
    }

    pub fn n_features(&self) -> usize {
        self.names.len()
    }

    pub fn feature_names(&self) -> &[String] {
        &self.names
    }

    /// Features of one composition into `out` (`out.len() == n_features()`), or the reason it is
    /// rejected. `values` is scratch space reused between calls.
    pub fn featurize_into(&self, comp: &Composition, out: &mut [f64], scratch: &mut Scratch) -> Result<(), String> {
        debug_assert_eq!(out.len(), self.names.len());
        scratch.load(comp);
        let mut offset = 0;
        for b in &self.blocks {
            let n = b.n_features();
            b.featurize(scratch, &mut out[offset..offset + n])?;
            offset += n;
        }
        Ok(())
    }
}

/// Per-thread scratch buffers.
#[derive(Debug, Default)]
pub struct Scratch {
    z: Vec<u8>,
    amounts: Vec<f64>,
    amount_sum: f64,
    values: Vec<f64>,
    acc: vectorized::Accumulators,
    elements: Vec<(u8, f64)>,
    guess: GuessScratch,
}

impl Scratch {
    fn load(&mut self, comp: &Composition) {
        self.z.clear();
        self.amounts.clear();
        for &(z, a) in &comp.elements {
            self.z.push(z);
            self.amounts.push(a);
        }
        self.amount_sum = stats::np_sum(self.amounts.len(), |i| self.amounts[i]);
    }
}

impl TableStats {
    fn new(table: ElementTable, stats: Vec<Stat>, layout: Layout, policy: MissingPolicy) -> Self {
        let table = if policy == MissingPolicy::ImputeMean { table.impute_column_means() } else { table };
        Self { table, stats, layout, reject_missing: policy == MissingPolicy::Reject }
    }
}

impl Block {
    fn n_features(&self) -> usize {
        match self {
            Block::Table(t) => t.table.n_columns() * t.stats.len(),
            Block::Stoichiometry(p) => p.len(),
            Block::ValenceOrbital(_) => 8,
            Block::IonProperty { .. } | Block::IonPropertyGuess { .. } => 3,
            Block::Fraction => N_ELEMENTS,
        }
    }

    fn push_names(&self, names: &mut Vec<String>) {
        match self {
            Block::Table(t) => match t.layout {
                Layout::PropertyMajor => {
                    for col in t.table.columns() {
                        for s in &t.stats {
                            names.push(format!("MagpieData {} {col}", s.matminer_name()));
                        }
                    }
                }
                Layout::StatMajor => {
                    for s in &t.stats {
                        for col in t.table.columns() {
                            names.push(format!("{}:{col}", s.xenonpy_name()));
                        }
                    }
                }
            },
            Block::Stoichiometry(ps) => names.extend(ps.iter().map(|p| format!("{p}-norm"))),
            Block::ValenceOrbital(_) => {
                for prop in ["avg", "frac"] {
                    for orb in ["s", "p", "d", "f"] {
                        names.push(format!("{prop} {orb} valence electrons"));
                    }
                }
            }
            Block::IonProperty { .. } | Block::IonPropertyGuess { .. } => {
                names.extend(["compound possible", "max ionic char", "avg ionic char"].map(String::from))
            }
            Block::Fraction => names.extend(SYMBOLS.iter().map(|s| s.to_string())),
        }
    }

    fn featurize(&self, s: &mut Scratch, out: &mut [f64]) -> Result<(), String> {
        match self {
            Block::Table(t) => {
                let n_cols = t.table.n_columns();
                if t.reject_missing {
                    if let Some(&z) = s.z.iter().find(|&&z| t.table.row(z).iter().any(|v| v.is_nan())) {
                        return Err(format!(
                            "element {} has no entry in the '{}' table",
                            SYMBOLS[z as usize - 1],
                            t.table.name()
                        ));
                    }
                }
                let n_stats = t.stats.len();
                let slot = |k: usize, c: usize| match t.layout {
                    Layout::PropertyMajor => c * n_stats + k,
                    Layout::StatMajor => k * n_cols + c,
                };
                let table = &t.table;
                let z = &s.z;
                let rows = |i: usize| table.row(z[i]);
                if vectorized::table_stats(
                    rows,
                    z.len(),
                    n_cols,
                    &s.amounts,
                    s.amount_sum,
                    &t.stats,
                    &mut s.acc,
                    out,
                    slot,
                ) {
                    return Ok(());
                }
                for c in 0..n_cols {
                    s.values.clear();
                    s.values.extend(s.z.iter().map(|&z| t.table.get(z, c)));
                    for (k, &stat) in t.stats.iter().enumerate() {
                        out[slot(k, c)] = stats::compute(stat, &s.values, &s.amounts, s.amount_sum);
                    }
                }
            }
            Block::Stoichiometry(ps) => {
                for (slot, &p) in out.iter_mut().zip(ps) {
                    *slot = if p == 0 {
                        s.z.len() as f64
                    } else {
                        // Python: p_norm = 0; p_norm += (amt / n_atoms) ** p; p_norm ** (1/p)
                        let n_atoms: f64 = s.amounts.iter().sum(); // Python's sequential sum()
                        let mut acc = 0.0f64;
                        for &a in &s.amounts {
                            acc += (a / n_atoms).powf(p as f64);
                        }
                        acc.powf(1.0 / p as f64)
                    };
                }
            }
            Block::ValenceOrbital(table) => {
                let mut avg = [0.0; 4];
                for (orb, slot) in avg.iter_mut().enumerate() {
                    s.values.clear();
                    s.values.extend(s.z.iter().map(|&z| table.get(z, orb)));
                    *slot = stats::np_average(&s.values, &s.amounts, s.amount_sum);
                }
                s.values.clear();
                s.values.extend(s.z.iter().map(|&z| table.get(z, 4)));
                let total = stats::np_average(&s.values, &s.amounts, s.amount_sum);
                out[..4].copy_from_slice(&avg);
                for k in 0..4 {
                    out[4 + k] = avg[k] / total;
                }
            }
            Block::IonProperty { electronegativity, .. } | Block::IonPropertyGuess { electronegativity, .. } => {
                let n = s.z.len();
                if n < 2 {
                    out.copy_from_slice(&[1.0, 0.0, 0.0]);
                    return Ok(());
                }
                let possible = match self {
                    Block::IonProperty { oxidation_states, .. } => {
                        neutral_combination_exists(&s.z, &s.amounts, oxidation_states)
                    }
                    Block::IonPropertyGuess { max_work, .. } => {
                        s.elements.clear();
                        s.elements.extend(s.z.iter().copied().zip(s.amounts.iter().copied()));
                        charge_balance_possible(&s.elements, *max_work, &mut s.guess).map_err(|(_, message)| message)?
                    }
                    _ => unreachable!(),
                };
                out[0] = if possible { 1.0 } else { 0.0 };
                let mut max_ionic = f64::NEG_INFINITY;
                let mut avg_ionic = 0.0;
                for i in 0..n {
                    for j in i + 1..n {
                        let d = electronegativity[s.z[i] as usize - 1] - electronegativity[s.z[j] as usize - 1];
                        let ionic = 1.0 - (-0.25 * d.powf(2.0)).exp();
                        max_ionic = if ionic.is_nan() || max_ionic.is_nan() { f64::NAN } else { max_ionic.max(ionic) };
                        avg_ionic += (s.amounts[i] / s.amount_sum) * (s.amounts[j] / s.amount_sum) * ionic;
                    }
                }
                out[1] = max_ionic;
                out[2] = avg_ionic;
            }
            Block::Fraction => {
                out.fill(0.0);
                for (&z, &a) in s.z.iter().zip(&s.amounts) {
                    out[z as usize - 1] = a / s.amount_sum;
                }
            }
        }
        Ok(())
    }
}

/// matminer `IonProperty(fast=True)`: is there one oxidation state per element such that
/// `np.isclose(dot(states, amounts), 0)`? Partial sums are accumulated left to right exactly as
/// `itertools.product` + `np.dot` would, but identical partial sums are merged, so the search is
/// bounded even for many-element formulas.
fn neutral_combination_exists(z: &[u8], amounts: &[f64], oxidation_states: &[Vec<i8>]) -> bool {
    let mut partial: Vec<f64> = vec![0.0];
    let mut next = Vec::new();
    for (&zi, &a) in z.iter().zip(amounts) {
        let states = &oxidation_states[zi as usize - 1];
        if states.is_empty() {
            return false;
        }
        next.clear();
        for &p in &partial {
            for &q in states {
                next.push(p + q as f64 * a);
            }
        }
        next.sort_by(|x, y| x.total_cmp(y));
        next.dedup();
        std::mem::swap(&mut partial, &mut next);
    }
    partial.iter().any(|&v| v.abs() <= 1e-8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formula::parse_formula;

    fn features(preset: &str, formula: &str) -> (Vec<String>, Vec<f64>) {
        let f = Featurizer::from_preset(preset, None).unwrap();
        let mut out = vec![0.0; f.n_features()];
        f.featurize_into(&parse_formula(formula).unwrap(), &mut out, &mut Scratch::default()).unwrap();
        (f.feature_names().to_vec(), out)
    }

    #[test]
    fn magpie_shape_and_names() {
        let (names, x) = features("magpie", "Fe2O3");
        assert_eq!(names.len(), 132);
        assert_eq!(names[0], "MagpieData minimum Number");
        assert_eq!(names[131], "MagpieData mode SpaceGroupNumber");
        assert_eq!(x[0], 8.0); // min Z
        assert_eq!(x[1], 26.0); // max Z
        assert_eq!(x[3], (26.0 * 2.0 + 8.0 * 3.0) / 5.0); // mean Z
        assert_eq!(x[5], 8.0); // mode Z: O is most abundant
    }

    #[test]
    fn magpie_full_shape() {
        let (names, x) = features("magpie_full", "NaCl");
        assert_eq!(names.len(), 149);
        assert_eq!(x[0], 2.0); // 0-norm
        assert_eq!(names[146], "compound possible");
        assert_eq!(x[146], 1.0);
    }

    #[test]
    fn fraction() {
        let (names, x) = features("fraction", "H2O");
        assert_eq!(names.len(), 118);
        assert!((x[0] - 2.0 / 3.0).abs() < 1e-15 && (x[7] - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(x.iter().sum::<f64>(), 1.0);
    }

    #[test]
    fn neutrality() {
        let ox = pymatgen_oxidation_states();
        let c = parse_formula("Fe2O3").unwrap();
        let (z, a): (Vec<u8>, Vec<f64>) = c.elements.iter().copied().unzip();
        assert!(neutral_combination_exists(&z, &a, ox));
        let c = parse_formula("NaCl2").unwrap();
        let (z, a): (Vec<u8>, Vec<f64>) = c.elements.iter().copied().unzip();
        assert!(!neutral_combination_exists(&z, &a, ox));
    }

    #[test]
    fn fast_path_gives_the_scalar_bits() {
        let stats_all = [MAGPIE_STATS.to_vec(), XENONPY_STATS.to_vec()].concat();
        let magpie = embedded_table("magpie").unwrap().select("m", &MAGPIE_PROPERTIES).unwrap().impute_column_means();
        // xenonpy keeps NaN for missing values and has zeros and negative values: every branch.
        for table in [magpie, embedded_table("xenonpy").unwrap().clone()] {
            let f = Featurizer::from_table(table.clone(), stats_all.clone(), MissingPolicy::Propagate).unwrap();
            for formula in [
                "Fe2O3",
                "NaCl",
                "H",
                "Li0.5Co0.25Ni0.25O2",
                "Ba2Na(PO4)3",
                "SiO2",
                "K2Fe0.999Mn0.001O4.5",
                "HeNe2Ar",
                "Og2Fe",
                "UPuAm3Cm",
            ] {
                let comp = parse_formula(formula).unwrap();
                let mut out = vec![0.0; f.n_features()];
                f.featurize_into(&comp, &mut out, &mut Scratch::default()).unwrap();
                let (z, a): (Vec<u8>, Vec<f64>) = comp.elements.iter().copied().unzip();
                let total = stats::np_sum(a.len(), |i| a[i]);
                for (k, &stat) in stats_all.iter().enumerate() {
                    for c in 0..table.n_columns() {
                        let values: Vec<f64> = z.iter().map(|&zz| table.get(zz, c)).collect();
                        let scalar = stats::compute(stat, &values, &a, total);
                        let fast = out[k * table.n_columns() + c];
                        assert!(scalar.to_bits() == fast.to_bits(), "{formula} {stat:?} col {c}: {scalar} vs {fast}");
                    }
                }
            }
        }
    }

    #[test]
    fn unknown_preset() {
        assert!(Featurizer::from_preset("nope", None).is_err());
    }
}
