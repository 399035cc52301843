//! Local structure order parameters, as pymatgen's `LocalStructOrderParams` computes them
//! (Zimmermann et al.; Steinhardt et al. for `q2`, `q4`, `q6`), for every type that matminer's
//! `CrystalNNFingerprint.from_preset("ops")` uses, with pymatgen's default parameters.
//!
//! # Interface
//!
//! - [`OpType`]: the order-parameter types, named as in pymatgen (`"oct_max"`, `"q6"`, ...).
//! - [`OrderParameter`]: a type with its parameters. [`OrderParameter::new`] takes pymatgen's
//!   defaults (`op_params.yaml`); [`OrderParameter::set`] changes one parameter by its pymatgen
//!   key (`"TA"`, `"IGW_TA"`, `"IGW_EP"`, `"fac_AA"`, `"exp_cos_AA"`, `"min_SPP"`, `"IGW_SPP"`,
//!   `"w_SPP"`, `"norm"`, and `"2"`, `"4"`, `"5"`, `"6"` for `cuboct_max`); only the keys of the
//!   type's default parameter set are accepted, and a key that is not given keeps its default.
//! - [`CRYSTALNN_OPS`]: matminer's table of (coordination number, motif label, type, parameters)
//!   behind `CrystalNNFingerprint.from_preset("ops")` (minus the `"wt"` entries), in its order;
//!   [`crystalnn_ops`] builds the [`OrderParameter`]s.
//! - [`order_parameters`]: the pure function. Input: the Cartesian vectors from one center to its
//!   neighbors, `r_j - r_i + S @ lattice` in angstrom (images already applied), in the order the
//!   neighbors are listed. Output: one `Option<f64>` per requested type, `None` exactly where
//!   pymatgen returns `None` (too few neighbors for the type). [`order_parameters_with`] is the same
//!   with a reusable [`Workspace`] and a caller-owned output slice (no allocation per call).
//! - [`order_parameters_batch`]: every site of a batch of structures, with explicit neighbor lists
//!   given as rows `(i, j, S)` ([`NeighborRows`]: the layout of [`crate::neighbors`] and
//!   [`crate::voronoi`] outputs). Output `(N_sites, n_types)` row-major, NaN where pymatgen
//!   returns `None`. Rayon-parallel over sites; bitwise identical for any thread count. Every size
//!   and index is checked before any work; errors name the structure and the site.
//!
//! # Semantics, and where they differ from pymatgen
//!
//! Each type is computed as pymatgen computes it in a `LocalStructOrderParams` holding that type
//! alone, which is how matminer uses it (one instance per type). pymatgen's instances with several
//! types add the "south pole" terms of `tri_bipyr`, `sq_bipyr`, `pent_bipyr`, `hex_bipyr`,
//! `oct_max`, `sq_plan_max`, `hex_plan_max` and `see_saw_rect` only to the *last* type of the
//! instance (a loop variable leaks in `get_order_parameters`); here every type gets its own.
//! pymatgen's `bcc` counts each unordered neighbor pair once, with the first-listed neighbor as
//! the pole, so it depends on the neighbor order (kept here as given); the other types do not.
//! Floating-point operations follow pymatgen's order (sums, products, `acos`/`exp`/`pow` from the
//! platform libm), so results agree to rounding of the 3-vector dot products (numpy may use BLAS).
//!
//! Definitions, with `u_j` the unit vector to neighbor `j`, `theta_jk = acos(u_j . u_k)`, and for
//! each ordered pair `(j, k)` the azimuth `phi_m` of a third neighbor `m` around `u_j` measured
//! from the plane of `u_j, u_k`: see pymatgen's docstring of `LocalStructOrderParams`. For the
//! "max" types (all but `bent`, `bcc`, `cn`, `sgl_bd`, `q*`) the value is the largest, over `(j, k)`,
//! of the weighted mean of the Gaussian terms; `bent` is the mean over all pairs; `bcc` the sum
//! over `j < k` normalised by `n (6 + (n - 2)(n - 3)) / 2`.

use rayon::prelude::*;

use crate::error::CoreError;
use crate::parallel::with_threads;
use crate::structure::linalg::{frac_to_cart, Vec3};
use crate::structure::Structure;

/// Most neighbors accepted for one site (the work grows as `n^3`).
pub const MAX_NEIGHBORS_PER_SITE: usize = 256;
/// pymatgen's `very_small`: a perpendicular component shorter than this gives no azimuth.
const VERY_SMALL: f64 = 1e-12;
/// pymatgen's `left_of_unity`: closer than this to the poles, a bond has azimuth 0 (`q*`).
const LEFT_OF_UNITY: f64 = 1.0 - 1e-12;
/// Sites per parallel task in [`order_parameters_batch`].
const SITES_PER_TASK: usize = 64;

/// An order-parameter type, named as in pymatgen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpType {
    Cn,
    SglBd,
    Bent,
    TriPlanMax,
    TetMax,
    T,
    SqPlanMax,
    SeeSawRect,
    TriPyr,
    PentPlanMax,
    SqPyr,
    TriBipyr,
    HexPlanMax,
    OctMax,
    PentPyr,
    HexPyr,
    SqBipyr,
    PentBipyr,
    HexBipyr,
    Bcc,
    CuboctMax,
    Q2,
    Q4,
    Q6,
}

impl OpType {
    /// Every supported type.
    pub const ALL: [OpType; 24] = [
        OpType::Cn,
        OpType::SglBd,
        OpType::Bent,
        OpType::TriPlanMax,
        OpType::TetMax,
        OpType::T,
        OpType::SqPlanMax,
        OpType::SeeSawRect,
        OpType::TriPyr,
        OpType::PentPlanMax,
        OpType::SqPyr,
        OpType::TriBipyr,
        OpType::HexPlanMax,
        OpType::OctMax,
        OpType::PentPyr,
        OpType::HexPyr,
        OpType::SqBipyr,
        OpType::PentBipyr,
        OpType::HexBipyr,
        OpType::Bcc,
        OpType::CuboctMax,
        OpType::Q2,
        OpType::Q4,
        OpType::Q6,
    ];

    /// pymatgen's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            OpType::Cn => "cn",
            OpType::SglBd => "sgl_bd",
            OpType::Bent => "bent",
            OpType::TriPlanMax => "tri_plan_max",
            OpType::TetMax => "tet_max",
            OpType::T => "T",
            OpType::SqPlanMax => "sq_plan_max",
            OpType::SeeSawRect => "see_saw_rect",
            OpType::TriPyr => "tri_pyr",
            OpType::PentPlanMax => "pent_plan_max",
            OpType::SqPyr => "sq_pyr",
            OpType::TriBipyr => "tri_bipyr",
            OpType::HexPlanMax => "hex_plan_max",
            OpType::OctMax => "oct_max",
            OpType::PentPyr => "pent_pyr",
            OpType::HexPyr => "hex_pyr",
            OpType::SqBipyr => "sq_bipyr",
            OpType::PentBipyr => "pent_bipyr",
            OpType::HexBipyr => "hex_bipyr",
            OpType::Bcc => "bcc",
            OpType::CuboctMax => "cuboct_max",
            OpType::Q2 => "q2",
            OpType::Q4 => "q4",
            OpType::Q6 => "q6",
        }
    }

    /// The type of a pymatgen name; `None` if unknown or not supported.
    pub fn from_name(name: &str) -> Option<OpType> {
        OpType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// pymatgen's default parameters (`op_params.yaml`), as `(key, value)`; the keys are the
    /// parameters [`OrderParameter::set`] accepts for the type.
    pub fn default_parameters(self) -> &'static [(&'static str, f64)] {
        const SPP: f64 = 2.356194490192345;
        match self {
            OpType::Cn => &[("norm", 1.0)],
            OpType::SglBd | OpType::Q2 | OpType::Q4 | OpType::Q6 => &[],
            OpType::Bent => &[("TA", 1.0), ("IGW_TA", 8.667)],
            OpType::T => &[("IGW_EP", 15.5), ("fac_AA", 1.0), ("exp_cos_AA", 2.0)],
            OpType::SeeSawRect => {
                &[("min_SPP", SPP), ("IGW_SPP", 11.5), ("IGW_EP", 27.0), ("fac_AA", 2.0), ("exp_cos_AA", 2.0)]
            }
            OpType::TetMax => &[("IGW_TA", 18.5), ("TA", 0.6081734479693927), ("fac_AA", 1.5), ("exp_cos_AA", 2.0)],
            OpType::OctMax => &[
                ("min_SPP", SPP),
                ("IGW_SPP", 15.0),
                ("IGW_EP", 18.0),
                ("w_SPP", 1.0),
                ("fac_AA", 2.0),
                ("exp_cos_AA", 2.0),
            ],
            OpType::Bcc => &[("min_SPP", 2.5261129449194057), ("IGW_SPP", 15.0), ("w_SPP", 6.0)],
            OpType::TriPlanMax => &[("IGW_TA", 17.5), ("TA", 0.66666666667), ("fac_AA", 1.0), ("exp_cos_AA", 2.0)],
            OpType::SqPlanMax => &[
                ("min_SPP", SPP),
                ("IGW_SPP", 13.5),
                ("IGW_EP", 17.7),
                ("w_SPP", 1.0),
                ("fac_AA", 1.0),
                ("exp_cos_AA", 2.0),
            ],
            OpType::PentPlanMax => &[("TA", 0.6), ("IGW_TA", 19.333)],
            OpType::TriPyr => &[("IGW_EP", 15.5), ("fac_AA", 1.5), ("exp_cos_AA", 2.0)],
            OpType::SqPyr => &[("IGW_EP", 14.9), ("fac_AA", 2.0), ("exp_cos_AA", 2.0)],
            OpType::PentPyr => &[("IGW_EP", 13.8), ("fac_AA", 2.5), ("exp_cos_AA", 2.0)],
            OpType::HexPyr => &[("IGW_EP", 12.5), ("fac_AA", 3.0), ("exp_cos_AA", 2.0)],
            OpType::TriBipyr => &[
                ("min_SPP", SPP),
                ("IGW_SPP", 12.0),
                ("IGW_EP", 16.6),
                ("fac_AA", 1.5),
                ("exp_cos_AA", 2.0),
                ("w_SPP", 1.0),
            ],
            OpType::SqBipyr => &[
                ("min_SPP", SPP),
                ("IGW_SPP", 15.0),
                ("IGW_EP", 18.0),
                ("fac_AA", 2.0),
                ("exp_cos_AA", 2.0),
                ("w_SPP", 1.0),
            ],
            OpType::PentBipyr => &[
                ("min_SPP", SPP),
                ("IGW_SPP", 12.5),
                ("IGW_EP", 14.75),
                ("fac_AA", 2.5),
                ("exp_cos_AA", 2.0),
                ("w_SPP", 1.0),
            ],
            OpType::HexBipyr => &[
                ("min_SPP", SPP),
                ("IGW_SPP", 14.1),
                ("IGW_EP", 13.6),
                ("fac_AA", 3.0),
                ("exp_cos_AA", 2.0),
                ("w_SPP", 1.0),
            ],
            OpType::CuboctMax => &[
                ("min_SPP", 2.792526803190927),
                ("IGW_SPP", 28.75),
                ("2", 1.8325957145940461),
                ("w_SPP", 1.8),
                ("4", 1.3089969389957472),
                ("5", 25.5),
                ("6", 31.25),
            ],
            OpType::HexPlanMax => &[
                ("min_SPP", 2.6179938779914944),
                ("IGW_SPP", 7.5),
                ("w_SPP", 1.0),
                ("fac_AA", 1.0),
                ("exp_cos_AA", 2.0),
                ("IGW_TA", 25.0),
                ("TA", 0.16666667),
            ],
        }
    }

    /// Types whose value is the largest normalised `(j, k)` term.
    fn is_max_type(self) -> bool {
        !matches!(self, OpType::Cn | OpType::SglBd | OpType::Bent | OpType::Bcc | OpType::Q2 | OpType::Q4 | OpType::Q6)
    }

    /// Types with "south pole" terms of the third neighbor `m`.
    fn has_south_pole(self) -> bool {
        matches!(
            self,
            OpType::TriBipyr
                | OpType::SqBipyr
                | OpType::PentBipyr
                | OpType::HexBipyr
                | OpType::OctMax
                | OpType::SqPlanMax
                | OpType::HexPlanMax
                | OpType::SeeSawRect
        )
    }

    /// Types built from the angles between neighbors (pymatgen's `_geomops`).
    fn is_geometric(self) -> bool {
        !matches!(self, OpType::Cn | OpType::SglBd | OpType::Q2 | OpType::Q4 | OpType::Q6)
    }
}

/// The parameters of one type, by pymatgen key (unused ones are 0).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Params {
    ta: f64,
    igw_ta: f64,
    igw_ep: f64,
    fac_aa: f64,
    exp_cos_aa: f64,
    min_spp: f64,
    igw_spp: f64,
    w_spp: f64,
    norm: f64,
    /// `cuboct_max` keys 2, 4, 5, 6.
    c2: f64,
    c4: f64,
    c5: f64,
    c6: f64,
}

impl Params {
    fn slot(&mut self, key: &str) -> Option<&mut f64> {
        Some(match key {
            "TA" => &mut self.ta,
            "IGW_TA" => &mut self.igw_ta,
            "IGW_EP" => &mut self.igw_ep,
            "fac_AA" => &mut self.fac_aa,
            "exp_cos_AA" => &mut self.exp_cos_aa,
            "min_SPP" => &mut self.min_spp,
            "IGW_SPP" => &mut self.igw_spp,
            "w_SPP" => &mut self.w_spp,
            "norm" => &mut self.norm,
            "2" => &mut self.c2,
            "4" => &mut self.c4,
            "5" => &mut self.c5,
            "6" => &mut self.c6,
            _ => return None,
        })
    }
}

/// One order parameter to compute: a type and its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderParameter {
    pub op_type: OpType,
    params: Params,
}

impl OrderParameter {
    /// `op_type` with pymatgen's default parameters.
    pub fn new(op_type: OpType) -> Self {
        let mut params = Params::default();
        for &(key, value) in op_type.default_parameters() {
            if let Some(slot) = params.slot(key) {
                *slot = value;
            }
        }
        Self { op_type, params }
    }

    /// The type named `name` (pymatgen's name) with its default parameters.
    pub fn from_name(name: &str) -> Result<Self, CoreError> {
        OpType::from_name(name).map(Self::new).ok_or_else(|| {
            let known: Vec<&str> = OpType::ALL.iter().map(|t| t.name()).collect();
            CoreError::InvalidArgument(format!(
                "unknown or unsupported order parameter type {name:?}; supported: {}",
                known.join(", ")
            ))
        })
    }

    /// Set parameter `key` (a pymatgen key of this type's default set) to a finite `value`.
    pub fn set(&mut self, key: &str, value: f64) -> Result<(), CoreError> {
        let allowed = self.op_type.default_parameters();
        if !allowed.iter().any(|(k, _)| *k == key) {
            let keys: Vec<&str> = allowed.iter().map(|(k, _)| *k).collect();
            return Err(CoreError::InvalidArgument(format!(
                "order parameter {:?} has no parameter {key:?} (its parameters: {})",
                self.op_type.name(),
                if keys.is_empty() { "none".to_string() } else { keys.join(", ") }
            )));
        }
        if !value.is_finite() {
            return Err(CoreError::InvalidArgument(format!(
                "parameter {key:?} of order parameter {:?} must be finite, got {value}",
                self.op_type.name()
            )));
        }
        if key == "norm" && value == 0.0 {
            return Err(CoreError::InvalidArgument(
                "parameter \"norm\" of order parameter \"cn\" must not be 0".into(),
            ));
        }
        if let Some(slot) = self.params.slot(key) {
            *slot = value;
        }
        Ok(())
    }

    /// Builder form of [`OrderParameter::set`].
    pub fn with(mut self, key: &str, value: f64) -> Result<Self, CoreError> {
        self.set(key, value)?;
        Ok(self)
    }

    /// The current value of parameter `key`, `None` if the type has no such parameter.
    pub fn parameter(&self, key: &str) -> Option<f64> {
        if !self.op_type.default_parameters().iter().any(|(k, _)| *k == key) {
            return None;
        }
        let mut p = self.params;
        p.slot(key).map(|v| *v)
    }
}

/// One entry of [`CRYSTALNN_OPS`]: coordination number, motif label, pymatgen type, parameters.
pub type PresetEntry = (usize, &'static str, &'static str, &'static [(&'static str, f64)]);

/// matminer 0.10.1 `CrystalNNFingerprint.from_preset("ops")` without the `"wt"` entries:
/// `(coordination number, motif label, pymatgen type, parameters)` in matminer's order; the
/// parameters are pymatgen's `CN_OPT_PARAMS` (`cn_opt_params.yaml`), an empty list meaning the
/// type's defaults. matminer labels its features `"{label} CN_{cn}"`.
pub const CRYSTALNN_OPS: &[PresetEntry] = &[
    (1, "sgl_bd", "sgl_bd", &[]),
    (2, "L-shaped", "bent", &[("TA", 0.5), ("IGW_TA", 15.15)]),
    (2, "water-like", "bent", &[("TA", 0.5802777777777778), ("IGW_TA", 13.95)]),
    (2, "bent 120 degrees", "bent", &[("TA", 0.666666666667), ("IGW_TA", 13.25)]),
    (2, "bent 150 degrees", "bent", &[("TA", 0.833333333333333), ("IGW_TA", 12.45)]),
    (2, "linear", "bent", &[("TA", 1.0), ("IGW_TA", 8.667)]),
    (3, "trigonal planar", "tri_plan_max", &[]),
    (
        3,
        "trigonal non-coplanar",
        "tet_max",
        &[("TA", 0.6081734479693927), ("IGW_TA", 18.33), ("fac_AA", 1.5), ("exp_cos_AA", 2.0)],
    ),
    (3, "T-shaped", "T", &[]),
    (4, "square co-planar", "sq_plan_max", &[]),
    (4, "tetrahedral", "tet_max", &[]),
    (4, "rectangular see-saw-like", "see_saw_rect", &[]),
    (
        4,
        "see-saw-like",
        "tri_bipyr",
        &[
            ("min_SPP", 2.356194490192345),
            ("IGW_EP", 15.75),
            ("IGW_SPP", 12.75),
            ("fac_AA", 1.5),
            ("exp_cos_AA", 2.0),
            ("w_SPP", 1.0),
        ],
    ),
    (4, "trigonal pyramidal", "tri_pyr", &[]),
    (5, "pentagonal planar", "pent_plan_max", &[]),
    (5, "square pyramidal", "sq_pyr", &[]),
    (5, "trigonal bipyramidal", "tri_bipyr", &[]),
    (6, "hexagonal planar", "hex_plan_max", &[]),
    (6, "octahedral", "oct_max", &[]),
    (6, "pentagonal pyramidal", "pent_pyr", &[]),
    (7, "hexagonal pyramidal", "hex_pyr", &[]),
    (7, "pentagonal bipyramidal", "pent_bipyr", &[]),
    (8, "body-centered cubic", "bcc", &[]),
    (8, "hexagonal bipyramidal", "hex_bipyr", &[]),
    (9, "q2", "q2", &[]),
    (9, "q4", "q4", &[]),
    (9, "q6", "q6", &[]),
    (10, "q2", "q2", &[]),
    (10, "q4", "q4", &[]),
    (10, "q6", "q6", &[]),
    (11, "q2", "q2", &[]),
    (11, "q4", "q4", &[]),
    (11, "q6", "q6", &[]),
    (12, "cuboctahedral", "cuboct_max", &[]),
    (12, "q2", "q2", &[]),
    (12, "q4", "q4", &[]),
    (12, "q6", "q6", &[]),
];

/// The order parameters of [`CRYSTALNN_OPS`], in its order.
pub fn crystalnn_ops() -> Vec<OrderParameter> {
    CRYSTALNN_OPS
        .iter()
        .map(|(_, _, name, params)| {
            let mut op = OrderParameter::new(OpType::from_name(name).expect("CRYSTALNN_OPS names supported types"));
            for &(key, value) in params.iter() {
                op.set(key, value).expect("CRYSTALNN_OPS parameters are valid");
            }
            op
        })
        .collect()
}

/// Scratch space reused between calls of [`order_parameters_with`].
#[derive(Debug, Default, Clone)]
pub struct Workspace {
    units: Vec<Vec3>,
    dists: Vec<f64>,
    /// `theta[j * n + m]`: angle between neighbors `j` and `m`, radian.
    theta: Vec<f64>,
    /// `perp[j * n + m]`: unit component of `u_m` perpendicular to `u_j`, if not degenerate.
    perp: Vec<Option<Vec3>>,
    /// Per type: the `(j, k)` term and its weight, the row sum, the running total / max.
    cell: Vec<f64>,
    weight: Vec<f64>,
    row: Vec<f64>,
    row_weight: Vec<f64>,
    total: Vec<f64>,
    total_weight: Vec<f64>,
    best: Vec<f64>,
}

#[inline]
fn dot(a: &Vec3, b: &Vec3) -> f64 {
    // numpy's `inner` on 3-vectors, left to right.
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

#[inline]
fn clamp_unit(x: f64) -> f64 {
    // Python's max(-1.0, min(x, 1.0)).
    let y = if x < 1.0 { x } else { 1.0 };
    if -1.0 > y {
        -1.0
    } else {
        y
    }
}

#[inline]
fn gauss(x: f64) -> f64 {
    (-0.5 * x * x).exp()
}

/// The order parameters `ops` of one center with neighbor vectors `vectors` (angstrom, center to
/// neighbor, images applied), one entry per type, `None` where pymatgen returns `None`.
///
/// Errors (`InvalidArgument`, naming the neighbor): a vector that is not finite or has zero
/// length, more than [`MAX_NEIGHBORS_PER_SITE`] neighbors.
pub fn order_parameters(vectors: &[Vec3], ops: &[OrderParameter]) -> Result<Vec<Option<f64>>, CoreError> {
    let mut out = vec![None; ops.len()];
    order_parameters_with(vectors, ops, &mut Workspace::default(), &mut out)?;
    Ok(out)
}

/// [`order_parameters`] writing into `out` (length `ops.len()`), with scratch space `work`.
pub fn order_parameters_with(
    vectors: &[Vec3],
    ops: &[OrderParameter],
    work: &mut Workspace,
    out: &mut [Option<f64>],
) -> Result<(), CoreError> {
    if out.len() != ops.len() {
        return Err(CoreError::InvalidArgument(format!(
            "output has {} slots for {} order parameters",
            out.len(),
            ops.len()
        )));
    }
    let n = vectors.len();
    if n > MAX_NEIGHBORS_PER_SITE {
        return Err(CoreError::InvalidArgument(format!(
            "{n} neighbors, more than the {MAX_NEIGHBORS_PER_SITE} accepted per site"
        )));
    }
    work.units.clear();
    work.dists.clear();
    for (k, r) in vectors.iter().enumerate() {
        let d = dot(r, r).sqrt();
        if !(d.is_finite() && d > 0.0) {
            return Err(CoreError::InvalidArgument(format!(
                "neighbor {k}: vector {r:?} is not finite or has zero length"
            )));
        }
        work.dists.push(d);
        work.units.push([r[0] / d, r[1] / d, r[2] / d]);
    }
    for (slot, op) in out.iter_mut().zip(ops) {
        *slot = match op.op_type {
            OpType::Cn => Some(n as f64 / op.params.norm),
            OpType::SglBd => Some(single_bond(&work.dists)),
            _ => None,
        };
    }
    if ops.iter().any(|o| matches!(o.op_type, OpType::Q2 | OpType::Q4 | OpType::Q6)) {
        bond_orientational(&work.units, ops, out);
    }
    if ops.iter().any(|o| o.op_type.is_geometric()) {
        geometric(work, ops, out);
    }
    Ok(())
}

/// `sgl_bd`: 1 - d_1 / d_2 of the two shortest bonds (1 for one neighbor, 0 for none).
fn single_bond(dists: &[f64]) -> f64 {
    match dists.len() {
        0 => 0.0,
        1 => 1.0,
        _ => {
            let (mut a, mut b) = (f64::INFINITY, f64::INFINITY);
            for &d in dists {
                if d < a {
                    b = a;
                    a = d;
                } else if d < b {
                    b = d;
                }
            }
            1.0 - a / b
        }
    }
}

/// Steinhardt's `q2`, `q4`, `q6`, with pymatgen's spherical-harmonic expansions and summation
/// order (polar axis z, prime meridian x).
fn bond_orientational(units: &[Vec3], ops: &[OrderParameter], out: &mut [Option<f64>]) {
    let n = units.len();
    if n == 0 {
        return; // None for every q
    }
    let mut thetas = Vec::with_capacity(n);
    let mut phis = Vec::with_capacity(n);
    for v in units {
        thetas.push(clamp_unit(v[2]).acos());
        let mut phi = 0.0;
        if -LEFT_OF_UNITY < v[2] && v[2] < LEFT_OF_UNITY {
            phi = clamp_unit(v[0] / (v[0] * v[0] + v[1] * v[1]).sqrt()).acos();
            if v[1] < 0.0 {
                phi = -phi;
            }
        }
        phis.push(phi);
    }
    // pow_sin[p][i] = sin(theta_i)^p, pow_cos likewise, by repeated products as pymatgen;
    // sin_np[p][i] = sin(p phi_i).
    let mut pow_sin = vec![vec![0.0; n]; 7];
    let mut pow_cos = vec![vec![0.0; n]; 7];
    let mut sin_np = vec![vec![0.0; n]; 7];
    let mut cos_np = vec![vec![0.0; n]; 7];
    for i in 0..n {
        pow_sin[1][i] = thetas[i].sin();
        pow_cos[1][i] = thetas[i].cos();
        sin_np[1][i] = phis[i].sin();
        cos_np[1][i] = phis[i].cos();
        for p in 2..7 {
            pow_sin[p][i] = pow_sin[p - 1][i] * pow_sin[1][i];
            pow_cos[p][i] = pow_cos[p - 1][i] * pow_cos[1][i];
            sin_np[p][i] = (p as f64 * phis[i]).sin();
            cos_np[p][i] = (p as f64 * phis[i]).cos();
        }
    }
    let t = Trig { s: &pow_sin, c: &pow_cos, sp: &sin_np, cp: &cos_np, n };
    let (mut q2, mut q4, mut q6) = (None, None, None);
    for (slot, op) in out.iter_mut().zip(ops) {
        *slot = match op.op_type {
            OpType::Q2 => Some(*q2.get_or_insert_with(|| t.q2())),
            OpType::Q4 => Some(*q4.get_or_insert_with(|| t.q4())),
            OpType::Q6 => Some(*q6.get_or_insert_with(|| t.q6())),
            _ => continue,
        };
    }
}

struct Trig<'a> {
    s: &'a [Vec<f64>],
    c: &'a [Vec<f64>],
    sp: &'a [Vec<f64>],
    cp: &'a [Vec<f64>],
    n: usize,
}

impl Trig<'_> {
    /// `|sum_i pre_i e^{i m phi_i}|^2` for `m != 0` with pymatgen's signs: `sign_re` multiplies
    /// the cosine part, `sign_im` the sine part.
    fn term(&self, pre: &[f64], m: usize, sign_re: f64, sign_im: f64) -> f64 {
        let (mut re, mut im) = (0.0, 0.0);
        for ((p, c), s) in pre.iter().zip(&self.cp[m]).zip(&self.sp[m]) {
            if sign_re > 0.0 {
                re += p * c;
            } else {
                re -= p * c;
            }
            if sign_im > 0.0 {
                im += p * s;
            } else {
                im -= p * s;
            }
        }
        re * re + im * im
    }

    fn finish(&self, acc: f64, two_l_plus_one: f64) -> f64 {
        (4.0 * std::f64::consts::PI * acc / (two_l_plus_one * (self.n * self.n) as f64)).sqrt()
    }

    fn q2(&self) -> f64 {
        let pi = std::f64::consts::PI;
        let sqrt_15_2pi = (15.0 / (2.0 * pi)).sqrt();
        let sqrt_5_pi = (5.0 / pi).sqrt();
        let (s, c) = (self.s, self.c);
        let p22: Vec<f64> = (0..self.n).map(|i| 0.25 * sqrt_15_2pi * s[2][i]).collect();
        let p21: Vec<f64> = (0..self.n).map(|i| 0.5 * sqrt_15_2pi * s[1][i] * c[1][i]).collect();
        let mut acc = 0.0;
        acc += self.term(&p22, 2, 1.0, -1.0);
        acc += self.term(&p21, 1, 1.0, -1.0);
        let mut re = 0.0;
        for c2 in &c[2] {
            re += 0.25 * sqrt_5_pi * (3.0 * c2 - 1.0);
        }
        acc += re * re;
        acc += self.term(&p21, 1, -1.0, -1.0);
        acc += self.term(&p22, 2, 1.0, 1.0);
        self.finish(acc, 5.0)
    }

    fn q4(&self) -> f64 {
        let pi = std::f64::consts::PI;
        let i16_3 = 3.0 / 16.0;
        let i8_3 = 3.0 / 8.0;
        let sqrt_35_pi = (35.0 / pi).sqrt();
        let sqrt_35_2pi = (35.0 / (2.0 * pi)).sqrt();
        let sqrt_5_pi = (5.0 / pi).sqrt();
        let sqrt_5_2pi = (5.0 / (2.0 * pi)).sqrt();
        let sqrt_1_pi = (1.0 / pi).sqrt();
        let (s, c, n) = (self.s, self.c, self.n);
        let p44: Vec<f64> = (0..n).map(|i| i16_3 * sqrt_35_2pi * s[4][i]).collect();
        let p43: Vec<f64> = (0..n).map(|i| i8_3 * sqrt_35_pi * s[3][i] * c[1][i]).collect();
        let p42: Vec<f64> = (0..n).map(|i| i8_3 * sqrt_5_2pi * s[2][i] * (7.0 * c[2][i] - 1.0)).collect();
        let p41: Vec<f64> = (0..n).map(|i| i8_3 * sqrt_5_pi * s[1][i] * (7.0 * c[3][i] - 3.0 * c[1][i])).collect();
        let mut acc = 0.0;
        acc += self.term(&p44, 4, 1.0, -1.0);
        acc += self.term(&p43, 3, 1.0, -1.0);
        acc += self.term(&p42, 2, 1.0, -1.0);
        acc += self.term(&p41, 1, 1.0, -1.0);
        let mut re = 0.0;
        for (c4, c2) in c[4].iter().zip(&c[2]) {
            re += i16_3 * sqrt_1_pi * (35.0 * c4 - 30.0 * c2 + 3.0);
        }
        acc += re * re;
        acc += self.term(&p41, 1, -1.0, -1.0);
        acc += self.term(&p42, 2, 1.0, 1.0);
        acc += self.term(&p43, 3, -1.0, -1.0);
        acc += self.term(&p44, 4, 1.0, 1.0);
        self.finish(acc, 9.0)
    }

    fn q6(&self) -> f64 {
        let pi = std::f64::consts::PI;
        let i64_ = 1.0 / 64.0;
        let i32_ = 1.0 / 32.0;
        let i32_3 = 3.0 / 32.0;
        let i16 = 1.0 / 16.0;
        let sqrt_3003_pi = (3003.0 / pi).sqrt();
        let sqrt_1001_pi = (1001.0 / pi).sqrt();
        let sqrt_91_2pi = (91.0 / (2.0 * pi)).sqrt();
        let sqrt_1365_pi = (1365.0 / pi).sqrt();
        let sqrt_273_2pi = (273.0 / (2.0 * pi)).sqrt();
        let sqrt_13_pi = (13.0 / pi).sqrt();
        let (s, c, n) = (self.s, self.c, self.n);
        let p66: Vec<f64> = (0..n).map(|i| i64_ * sqrt_3003_pi * s[6][i]).collect();
        let p65: Vec<f64> = (0..n).map(|i| i32_3 * sqrt_1001_pi * s[5][i] * c[1][i]).collect();
        let p64: Vec<f64> = (0..n).map(|i| i32_3 * sqrt_91_2pi * s[4][i] * (11.0 * c[2][i] - 1.0)).collect();
        let p63: Vec<f64> = (0..n).map(|i| i32_ * sqrt_1365_pi * s[3][i] * (11.0 * c[3][i] - 3.0 * c[1][i])).collect();
        let p62: Vec<f64> =
            (0..n).map(|i| i64_ * sqrt_1365_pi * s[2][i] * (33.0 * c[4][i] - 18.0 * c[2][i] + 1.0)).collect();
        let p61: Vec<f64> =
            (0..n).map(|i| i16 * sqrt_273_2pi * s[1][i] * (33.0 * c[5][i] - 30.0 * c[3][i] + 5.0 * c[1][i])).collect();
        let mut acc = 0.0;
        acc += self.term(&p66, 6, 1.0, -1.0);
        acc += self.term(&p65, 5, 1.0, -1.0);
        acc += self.term(&p64, 4, 1.0, -1.0);
        acc += self.term(&p63, 3, 1.0, -1.0);
        acc += self.term(&p62, 2, 1.0, -1.0);
        acc += self.term(&p61, 1, 1.0, -1.0);
        let mut re = 0.0;
        for ((c6, c4), c2) in c[6].iter().zip(&c[4]).zip(&c[2]) {
            re += i32_ * sqrt_13_pi * (231.0 * c6 - 315.0 * c4 + 105.0 * c2 - 5.0);
        }
        acc += re * re;
        acc += self.term(&p61, 1, -1.0, -1.0);
        acc += self.term(&p62, 2, 1.0, 1.0);
        acc += self.term(&p63, 3, -1.0, -1.0);
        acc += self.term(&p64, 4, 1.0, 1.0);
        acc += self.term(&p65, 5, -1.0, -1.0);
        acc += self.term(&p66, 6, 1.0, 1.0);
        self.finish(acc, 13.0)
    }
}

/// The `(j, k)`-term of neighbor `k` itself (`theta_k` the angle j-center-k).
#[inline]
fn k_term(op: &OrderParameter, theta_k: f64, j_before_k: bool) -> Option<(f64, f64)> {
    let p = &op.params;
    let ipi = 1.0 / std::f64::consts::PI;
    match op.op_type {
        OpType::Bent | OpType::TriPlanMax | OpType::TetMax => Some((gauss(p.igw_ta * (theta_k * ipi - p.ta)), 1.0)),
        OpType::T | OpType::TriPyr | OpType::SqPyr | OpType::PentPyr | OpType::HexPyr => {
            Some((gauss(p.igw_ep * (theta_k * ipi - 0.5)), 1.0))
        }
        OpType::CuboctMax => {
            (theta_k >= p.min_spp).then(|| (p.w_spp * gauss(p.igw_spp * (theta_k * ipi - 1.0)), p.w_spp))
        }
        OpType::Bcc => {
            (j_before_k && theta_k >= p.min_spp).then(|| (p.w_spp * gauss(p.igw_spp * (theta_k * ipi - 1.0)), p.w_spp))
        }
        OpType::HexPlanMax => {
            (theta_k < p.min_spp).then(|| (gauss(p.igw_ta * ((theta_k * ipi - 0.5).abs() - p.ta)), 1.0))
        }
        t if t.has_south_pole() => (theta_k < p.min_spp).then(|| (gauss(p.igw_ep * (theta_k * ipi - 0.5)), 1.0)),
        OpType::PentPlanMax => {
            let centre = if theta_k <= p.ta * std::f64::consts::PI { 0.4 } else { 0.8 };
            Some((gauss(p.igw_ta * (theta_k * ipi - centre)), 1.0))
        }
        _ => None,
    }
}

/// The contribution of a third neighbor `m` to the `(j, k)` term: polar angle `theta_m` from
/// `u_j`, azimuth `phi` from the j-k plane (`None` when `u_m` is (anti)parallel to `u_j`).
#[inline]
fn m_term(op: &OrderParameter, theta_k: f64, theta_m: f64, phi: f64, j_before_k: bool) -> Option<(f64, f64)> {
    let p = &op.params;
    let pi = std::f64::consts::PI;
    let ipi = 1.0 / pi;
    match op.op_type {
        OpType::TriPlanMax | OpType::TetMax => {
            let tmp2 = (p.fac_aa * phi).cos().powf(p.exp_cos_aa);
            Some((1.0 * gauss(p.igw_ta * (theta_m * ipi - p.ta)) * tmp2, 1.0))
        }
        OpType::PentPlanMax => {
            let centre = if theta_m <= p.ta * pi { 0.4 } else { 0.8 };
            let c = phi.cos();
            Some((1.0 * gauss(p.igw_ta * (theta_m * ipi - centre)) * c * c, 1.0))
        }
        OpType::T | OpType::TriPyr | OpType::SqPyr | OpType::PentPyr | OpType::HexPyr => {
            let tmp = (p.fac_aa * phi).cos().powf(p.exp_cos_aa);
            Some((tmp * gauss(p.igw_ep * (theta_m * ipi - 0.5)), 1.0))
        }
        OpType::TriBipyr
        | OpType::SqBipyr
        | OpType::PentBipyr
        | OpType::HexBipyr
        | OpType::OctMax
        | OpType::SqPlanMax
        | OpType::HexPlanMax => (theta_m < p.min_spp && theta_k < p.min_spp).then(|| {
            let tmp = (p.fac_aa * phi).cos().powf(p.exp_cos_aa);
            let tmp2 = if op.op_type == OpType::HexPlanMax {
                p.igw_ta * ((theta_m * ipi - 0.5).abs() - p.ta)
            } else {
                p.igw_ep * (theta_m * ipi - 0.5)
            };
            (tmp * gauss(tmp2), 1.0)
        }),
        OpType::Bcc => (j_before_k && theta_k < p.min_spp).then(|| {
            let fac = if theta_k > pi / 2.0 { 1.0 } else { -1.0 };
            let tmp = (theta_m - pi / 2.0) / (1.0f64 / 3.0).asin();
            let fac_bcc = 1.0 / (-0.5f64).exp();
            (fac * (3.0 * phi).cos() * fac_bcc * tmp * gauss(tmp), 1.0)
        }),
        OpType::SeeSawRect => (theta_m < p.min_spp && theta_k < p.min_spp && phi < 0.75 * pi).then(|| {
            let tmp = (p.fac_aa * phi).cos().powf(p.exp_cos_aa);
            (tmp * gauss(p.igw_ep * (theta_m * ipi - 0.5)), 1.0)
        }),
        OpType::CuboctMax => {
            if !(theta_m < p.min_spp && p.c4 < theta_k && theta_k < p.c2) {
                return None;
            }
            if p.c4 < theta_m && theta_m < p.c2 {
                let c = phi.cos();
                Some((c * c * gauss(p.c5 * (theta_m * ipi - 0.5)), 1.0))
            } else if theta_m < p.c4 {
                let tmp = 0.0556 * ((phi - 0.5 * pi).cos() - 0.81649658);
                Some((gauss(tmp) * gauss(p.c6 * (theta_m * ipi - 1.0 / 3.0)), 1.0))
            } else if theta_m > p.c2 {
                let tmp = 0.0556 * ((phi - 0.5 * pi).cos() - 0.81649658);
                Some((gauss(tmp) * gauss(p.c6 * (theta_m * ipi - 2.0 / 3.0)), 1.0))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The Peters-style motif order parameters (everything but `cn`, `sgl_bd` and `q*`).
fn geometric(work: &mut Workspace, ops: &[OrderParameter], out: &mut [Option<f64>]) {
    let n = work.units.len();
    let n_ops = ops.len();
    work.theta.clear();
    work.theta.resize(n * n, 0.0);
    work.perp.clear();
    work.perp.resize(n * n, None);
    for j in 0..n {
        let z = work.units[j];
        let zz = dot(&z, &z);
        for m in 0..n {
            if m == j {
                continue;
            }
            let v = work.units[m];
            work.theta[j * n + m] = clamp_unit(dot(&z, &v)).acos();
            // pymatgen's gramschmidt(v, z): v - (v.z / z.z) z, then normalised.
            let f = dot(&v, &z) / zz;
            let g = [v[0] - f * z[0], v[1] - f * z[1], v[2] - f * z[2]];
            let gn = dot(&g, &g).sqrt();
            work.perp[j * n + m] = (gn >= VERY_SMALL).then(|| [g[0] / gn, g[1] / gn, g[2] / gn]);
        }
    }
    let Workspace { cell, weight, row, row_weight, total, total_weight, best, theta, perp, .. } = work;
    for v in [&mut *cell, &mut *weight, &mut *row, &mut *row_weight, &mut *total, &mut *total_weight] {
        v.clear();
        v.resize(n_ops, 0.0);
    }
    best.clear();
    best.resize(n_ops, f64::NEG_INFINITY);
    let geometric: Vec<usize> = (0..n_ops).filter(|&o| ops[o].op_type.is_geometric()).collect();
    let needs_m = geometric.iter().any(|&o| ops[o].op_type != OpType::Bent);
    for j in 0..n {
        for &o in &geometric {
            row[o] = 0.0;
            row_weight[o] = 0.0;
        }
        for k in 0..n {
            if k == j {
                continue;
            }
            let theta_k = theta[j * n + k];
            let j_before_k = j < k;
            for &o in &geometric {
                let (c, w) = k_term(&ops[o], theta_k, j_before_k).unwrap_or((0.0, 0.0));
                cell[o] = 0.0 + c;
                weight[o] = 0.0 + w;
            }
            if let (true, Some(xaxis)) = (needs_m, perp[j * n + k]) {
                for m in 0..n {
                    if m == j || m == k {
                        continue;
                    }
                    let theta_m = theta[j * n + m];
                    let phi = perp[j * n + m].map(|x2| clamp_unit(dot(&x2, &xaxis)).acos());
                    for &o in &geometric {
                        let op = &ops[o];
                        if op.op_type.has_south_pole() && theta_m >= op.params.min_spp {
                            cell[o] += gauss(op.params.igw_spp * (theta_m * (1.0 / std::f64::consts::PI) - 1.0));
                            weight[o] += 1.0;
                        }
                        if let Some(phi) = phi {
                            if let Some((c, w)) = m_term(op, theta_k, theta_m, phi, j_before_k) {
                                cell[o] += c;
                                weight[o] += w;
                            }
                        }
                    }
                }
            }
            for &o in &geometric {
                if ops[o].op_type.is_max_type() {
                    let v = if weight[o] > 1e-12 { cell[o] / weight[o] } else { 0.0 };
                    if v > best[o] {
                        best[o] = v;
                    }
                } else {
                    row[o] += cell[o];
                    row_weight[o] += weight[o];
                }
            }
        }
        for &o in &geometric {
            total[o] += row[o];
            total_weight[o] += row_weight[o];
        }
    }
    for &o in &geometric {
        out[o] = match ops[o].op_type {
            OpType::Bent => (total_weight[o] > 1e-12).then(|| total[o] / total_weight[o]),
            OpType::Bcc => (n > 3).then(|| total[o] / (0.5 * (n * (6 + (n - 2) * (n - 3))) as f64)),
            _ => (n > 1).then_some(best[o]),
        };
    }
}

/// Explicit neighbors of every site of a batch, as rows `(i, j, S)`: rows of structure `s` are
/// `pair_ptr[s]..pair_ptr[s + 1]`, `i` and `j` are site indices local to the structure, `S` the
/// integer image of `j` (`r_ij = r_j - r_i + S @ lattice`). Within a structure the rows are grouped
/// by center in increasing `i` (as matxfer's neighbor lists and Voronoi faces are); a site without
/// rows has no neighbors. Each site's neighbors are taken in row order.
#[derive(Debug, Clone, Copy)]
pub struct NeighborRows<'a> {
    pub i: &'a [i64],
    pub j: &'a [i64],
    pub shifts: &'a [[i32; 3]],
    pub pair_ptr: &'a [usize],
}

/// The order parameters `ops` of every site of `structures` with the neighbors `rows`: a
/// `(N_sites, ops.len())` row-major array (sites in batch order), NaN where pymatgen returns
/// `None`. Neighbor vectors are `(f_j + S) @ lattice - f_i @ lattice`, as pymatgen's site
/// coordinates give them.
///
/// Checked before any work (the first offence is reported): `pair_ptr` has one entry per
/// structure plus one, starts at 0, never decreases and ends at the number of rows; `i`, `j`,
/// `shifts` have one entry per row; every structure is valid ([`Structure::validate`]); in every
/// structure `0 <= i, j < n_sites`, `i` never decreases, no site has more than
/// [`MAX_NEIGHBORS_PER_SITE`] rows, and no neighbor coincides with its center. Errors name the
/// structure (and site).
pub fn order_parameters_batch(
    structures: &[Structure],
    rows: &NeighborRows<'_>,
    ops: &[OrderParameter],
    n_threads: Option<usize>,
) -> Result<Vec<f64>, CoreError> {
    crate::parallel::effective_threads(n_threads)?;
    let n_rows = rows.i.len();
    if rows.j.len() != n_rows || rows.shifts.len() != n_rows {
        return Err(CoreError::InvalidArgument(format!(
            "neighbor rows: i has {n_rows} entries, j {}, shifts {}",
            rows.j.len(),
            rows.shifts.len()
        )));
    }
    let ptr = rows.pair_ptr;
    if ptr.len() != structures.len() + 1 {
        return Err(CoreError::InvalidArgument(format!(
            "neighbor rows: pair_ptr has {} entries for {} structures (expected {})",
            ptr.len(),
            structures.len(),
            structures.len() + 1
        )));
    }
    if ptr[0] != 0 || ptr[ptr.len() - 1] != n_rows || ptr.windows(2).any(|w| w[0] > w[1]) {
        return Err(CoreError::InvalidArgument(format!(
            "neighbor rows: pair_ptr must start at 0, never decrease and end at the number of rows ({n_rows})"
        )));
    }
    // site_start[s]: first global site of structure s; site_rows[g]: first row of global site g.
    let mut site_start = Vec::with_capacity(structures.len() + 1);
    let mut n_sites = 0usize;
    for s in structures {
        site_start.push(n_sites);
        n_sites += s.n_sites();
    }
    site_start.push(n_sites);
    crate::limits::check_output_bytes(n_sites as f64 * (ops.len() as f64 * 8.0 + 8.0), || {
        format!("{} order parameters of {n_sites} sites", ops.len())
    })?;
    let mut site_rows = vec![0usize; n_sites + 1];
    let mut vectors: Vec<Vec3> = Vec::with_capacity(n_rows);
    for (index, s) in structures.iter().enumerate() {
        s.validate(index)?;
        let err = |reason: String| CoreError::Structure { index, name: s.id.clone(), reason };
        let n = s.n_sites() as i64;
        let (a, b) = (ptr[index], ptr[index + 1]);
        let base = site_start[index];
        let cart: Vec<Vec3> = s.cart_coords();
        let mut next_site = 0usize; // sites < next_site have their first row recorded
        let mut count = 0usize;
        let mut previous = -1i64;
        for r in a..b {
            let (i, j) = (rows.i[r], rows.j[r]);
            if !(0..n).contains(&i) || !(0..n).contains(&j) {
                return Err(err(format!(
                    "neighbor row {} (row {r} of the batch): site indices ({i}, {j}) outside 0..{n}",
                    r - a
                )));
            }
            if i < previous {
                return Err(err(format!(
                    "neighbor row {} (row {r} of the batch): center {i} after center {previous}; rows must be grouped by center in increasing order",
                    r - a
                )));
            }
            if i != previous {
                count = 0;
                previous = i;
            }
            count += 1;
            if count > MAX_NEIGHBORS_PER_SITE {
                return Err(err(format!(
                    "site {i}: more than {MAX_NEIGHBORS_PER_SITE} neighbors (the work grows as the cube of the count)"
                )));
            }
            while next_site <= i as usize {
                site_rows[base + next_site] = r;
                next_site += 1;
            }
            let sh = rows.shifts[r];
            let fj = s.frac_coords[j as usize];
            let image = [fj[0] + sh[0] as f64, fj[1] + sh[1] as f64, fj[2] + sh[2] as f64];
            let rj = frac_to_cart(&image, &s.lattice);
            let ri = cart[i as usize];
            let v = [rj[0] - ri[0], rj[1] - ri[1], rj[2] - ri[2]];
            let d = dot(&v, &v).sqrt();
            if !(d.is_finite() && d > 0.0) {
                return Err(err(format!(
                    "site {i}: neighbor {j} with image {sh:?} is at distance {d} (the same point or not finite)"
                )));
            }
            vectors.push(v);
        }
        while next_site < n as usize {
            site_rows[base + next_site] = b;
            next_site += 1;
        }
    }
    site_rows[n_sites] = n_rows;
    let n_ops = ops.len();
    let mut out = vec![f64::NAN; n_sites * n_ops];
    if n_ops == 0 || n_sites == 0 {
        return Ok(out);
    }
    let result: Result<(), CoreError> = with_threads(n_threads, || {
        out.par_chunks_mut(n_ops * SITES_PER_TASK).enumerate().try_for_each_init(
            || (Workspace::default(), vec![None; n_ops]),
            |(work, values), (task, chunk)| {
                crate::parallel::check_cancelled()?;
                let first = task * SITES_PER_TASK;
                for (offset, dst) in chunk.chunks_mut(n_ops).enumerate() {
                    let g = first + offset;
                    let neighbors = &vectors[site_rows[g]..site_rows[g + 1]];
                    // Sizes were checked above: this cannot fail.
                    order_parameters_with(neighbors, ops, work, values)?;
                    for (d, v) in dst.iter_mut().zip(values.iter()) {
                        *d = v.unwrap_or(f64::NAN);
                    }
                }
                Ok(())
            },
        )
    })?;
    result?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(vectors: &[Vec3], name: &str) -> Option<f64> {
        order_parameters(vectors, &[OrderParameter::from_name(name).unwrap()]).unwrap()[0]
    }

    fn octahedron() -> Vec<Vec3> {
        vec![[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]
    }

    #[test]
    fn perfect_octahedron_is_one() {
        let v = value(&octahedron(), "oct_max").unwrap();
        assert!((v - 1.0).abs() < 1e-12, "{v}");
    }
}
