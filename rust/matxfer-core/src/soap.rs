//! SOAP power spectra with the GTO radial basis, matching dscribe's `SOAP(rbf="gto")` (no
//! weighting, no compression).
//!
//! The neighbor density of a center (species `Z` separately) is a sum of unnormalised Gaussians
//! `exp(-|r - r_i|^2 / (2 sigma^2))` over every atom `i` (the center itself and periodic images
//! included) within `r_cut + sigma sqrt(-2 ln 1e-3)` angstrom, the distance at which a Gaussian
//! has decayed to 1e-3. It is expanded on `g_nl(r) Y_lm(r^)`:
//!
//! * radial basis: `g_nl(r) = sum_k beta_lnk r^l exp(-alpha_lk r^2)`, with `a_k` spaced evenly on
//!   `[1, r_cut]` and `alpha_lk = -ln(1e-3 / a_k^l) / a_k^2` (each primitive decays to 1e-3 at
//!   `a_k`); `beta_l = S_l^(-1/2)` orthonormalises them (Loewdin), where
//!   `S_l,jk = Gamma(l + 3/2) / (2 (alpha_lj + alpha_lk)^(l + 3/2))` is their overlap with weight
//!   `r^2`;
//! * `Y_lm`: real, orthonormal spherical harmonics.
//!
//! The projection is analytic: `r^l Y_lm(r^)` is a harmonic polynomial (a regular solid harmonic
//! `R_lm`), the product of the two Gaussians is one Gaussian centred at `eta r_i / (eta + alpha)`
//! (`eta = 1 / (2 sigma^2)`), and a harmonic polynomial averages to its value at the centre of a
//! Gaussian. Hence
//!
//! `c_nlm = (pi / eta)^(3/2) sum_i sum_k beta_lnk q_lk^-(l + 3/2) exp(-alpha_lk r_i^2 / q_lk) R_lm(r_i)`
//!
//! with `q_lk = 1 + alpha_lk / eta`. The power spectrum is
//! `p(Z1, Z2, l, n, n') = pi sqrt(8 / (2l + 1)) sum_m c(Z1)_nlm c(Z2)_n'lm`, the prefactor of the
//! SOAP paper's erratum as dscribe applies it.
//!
//! Output layout (dscribe's): species pairs `Z1 <= Z2` in increasing atomic number, then `l`,
//! then `n`, `n'` (row-major; `n <= n'` when `Z1 == Z2`). `average`: `Off` one row per site,
//! `Inner` the power spectrum of the site-averaged coefficients, `Outer` the site average of the
//! power spectra (one row per structure).
//!
//! Every row is computed by one sequential loop in a fixed order, so the output is bitwise the
//! same for any thread count.

use nalgebra::{DMatrix, SymmetricEigen};
use rayon::prelude::*;

use crate::elements::{symbol, N_ELEMENTS};
use crate::error::CoreError;
use crate::limits::check_output_bytes;
use crate::neighbors::cell_list::CellList;
use crate::neighbors::PairSink;
use crate::parallel::{check_cancelled, with_threads};
use crate::structure::Structure;

/// The largest `l_max` accepted (dscribe's limit).
pub const MAX_L_MAX: usize = 20;
/// The largest `n_max` accepted (the GTO overlap matrix is numerically singular well before).
pub const MAX_N_MAX: usize = 64;
/// Value to which the primitives and the atomic Gaussians decay at their cutoffs.
const DECAY_THRESHOLD: f64 = 1e-3;
/// Neighbors whose harmonics and radial factors are tabulated at once.
const NEIGHBOR_BLOCK: usize = 32;
/// Structures with at least this many sites are also split over sites.
const PARALLEL_MIN_SITES: usize = 32;

/// How site power spectra are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoapAverage {
    /// One row per site.
    Off,
    /// Average the expansion coefficients over the sites, then form the power spectrum.
    Inner,
    /// Average the power spectra of the sites.
    Outer,
}

impl SoapAverage {
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        match text {
            "off" => Ok(Self::Off),
            "inner" => Ok(Self::Inner),
            "outer" => Ok(Self::Outer),
            o => Err(CoreError::InvalidArgument(format!("average must be 'off', 'inner' or 'outer', got {o:?}"))),
        }
    }
}

/// SOAP settings: cutoff `r_cut` and Gaussian width `sigma` in angstrom, `n_max` radial and
/// `l_max + 1` angular channels, the species (atomic numbers) of the output.
#[derive(Debug, Clone, PartialEq)]
pub struct SoapOptions {
    pub r_cut: f64,
    pub n_max: usize,
    pub l_max: usize,
    pub sigma: f64,
    pub species: Vec<u8>,
    pub average: SoapAverage,
    /// `false`: ignore the structures' periodicity (isolated atoms, as dscribe `periodic=False`);
    /// `true`: periodic along the axes the structure's `pbc` marks.
    pub periodic: bool,
}

impl SoapOptions {
    /// Check every size and cutoff; returns the species sorted by atomic number.
    pub fn validate(&self) -> Result<Vec<u8>, CoreError> {
        let bad = |m: String| Err(CoreError::InvalidArgument(m));
        if !(self.r_cut.is_finite() && self.r_cut > 1.0 && self.r_cut <= crate::limits::MAX_CUTOFF) {
            return bad(format!(
                "r_cut must be a finite number of angstrom above 1 (the GTO basis starts at 1 A) and at most {}, got {}",
                crate::limits::MAX_CUTOFF,
                self.r_cut
            ));
        }
        if !(self.sigma.is_finite() && self.sigma > 0.0 && self.sigma <= crate::limits::MAX_CUTOFF) {
            return bad(format!("sigma must be a positive finite number of angstrom, got {}", self.sigma));
        }
        if self.n_max == 0 || self.n_max > MAX_N_MAX {
            return bad(format!("n_max must be between 1 and {MAX_N_MAX}, got {}", self.n_max));
        }
        if self.l_max > MAX_L_MAX {
            return bad(format!("l_max must be between 0 and {MAX_L_MAX}, got {}", self.l_max));
        }
        if self.species.is_empty() {
            return bad("species must name at least one element".into());
        }
        let mut sorted = self.species.clone();
        sorted.sort_unstable();
        for w in sorted.windows(2) {
            if w[0] == w[1] {
                return bad(format!("species lists {} twice", symbol(w[0]).unwrap_or("?")));
            }
        }
        if let Some(&z) = sorted.iter().find(|&&z| z == 0 || z as usize > N_ELEMENTS) {
            return bad(format!("species has an unknown atomic number {z}"));
        }
        Ok(sorted)
    }

    /// `sigma sqrt(-2 ln 1e-3)`: where an atomic Gaussian has decayed to 1e-3, angstrom.
    pub fn cutoff_padding(&self) -> f64 {
        self.sigma * (-2.0 * DECAY_THRESHOLD.ln()).sqrt()
    }
}

/// Number of features for `n_species` species: `(S n)(S n + 1) / 2 (l_max + 1)`.
pub fn n_features(n_species: usize, n_max: usize, l_max: usize) -> usize {
    let sn = n_species * n_max;
    sn * (sn + 1) / 2 * (l_max + 1)
}

/// Feature names in output order, e.g. `"SOAP O-Ti l=2 n=0 n'=1"`; `species` sorted.
pub fn feature_names(species: &[u8], n_max: usize, l_max: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n_features(species.len(), n_max, l_max));
    for (a, &z1) in species.iter().enumerate() {
        for &z2 in &species[a..] {
            let (s1, s2) = (symbol(z1).unwrap_or("?"), symbol(z2).unwrap_or("?"));
            for l in 0..=l_max {
                for n1 in 0..n_max {
                    let start = if z1 == z2 { n1 } else { 0 };
                    for n2 in start..n_max {
                        out.push(format!("SOAP {s1}-{s2} l={l} n={n1} n'={n2}"));
                    }
                }
            }
        }
    }
    out
}

/// The orthonormalised GTO radial basis: `alpha[l][k]` and `beta[l][n][k]` (flat).
#[derive(Debug, Clone)]
pub struct GtoBasis {
    pub n_max: usize,
    pub l_max: usize,
    /// `(l_max + 1) x n_max`, 1/angstrom^2.
    pub alpha: Vec<f64>,
    /// `(l_max + 1) x n_max x n_max`.
    pub beta: Vec<f64>,
}

impl GtoBasis {
    pub fn new(r_cut: f64, n_max: usize, l_max: usize) -> Result<Self, CoreError> {
        let mut alpha = vec![0.0; (l_max + 1) * n_max];
        let mut beta = vec![0.0; (l_max + 1) * n_max * n_max];
        let a: Vec<f64> = (0..n_max)
            .map(|k| if n_max == 1 { 1.0 } else { 1.0 + (r_cut - 1.0) * k as f64 / (n_max - 1) as f64 })
            .collect();
        for l in 0..=l_max {
            let lf = l as f64;
            let al = &mut alpha[l * n_max..(l + 1) * n_max];
            for k in 0..n_max {
                al[k] = -(DECAY_THRESHOLD / a[k].powi(l as i32)).ln() / (a[k] * a[k]);
            }
            let g = libm::tgamma(lf + 1.5);
            let s = DMatrix::from_fn(n_max, n_max, |i, j| 0.5 * g * (al[i] + al[j]).powf(-lf - 1.5));
            let eig = SymmetricEigen::new(s);
            let smallest = eig.eigenvalues.iter().cloned().fold(f64::INFINITY, f64::min);
            let largest = eig.eigenvalues.iter().cloned().fold(0.0, f64::max);
            if smallest.is_nan() || smallest <= largest * 1e-15 {
                return Err(CoreError::InvalidArgument(format!(
                    "the GTO basis with n_max = {n_max}, r_cut = {r_cut} is numerically linearly dependent at l = {l} \
                     (overlap eigenvalues {smallest:.3e} .. {largest:.3e}); use a smaller n_max or another r_cut"
                )));
            }
            let v = &eig.eigenvectors;
            for n in 0..n_max {
                for k in 0..n_max {
                    let mut x = 0.0;
                    for e in 0..n_max {
                        x += v[(n, e)] * v[(k, e)] / eig.eigenvalues[e].sqrt();
                    }
                    beta[(l * n_max + n) * n_max + k] = x;
                }
            }
        }
        Ok(Self { n_max, l_max, alpha, beta })
    }

    /// `g_nl(r)`, for tests and plots.
    pub fn radial(&self, n: usize, l: usize, r: f64) -> f64 {
        let nm = self.n_max;
        (0..nm)
            .map(|k| self.beta[(l * nm + n) * nm + k] * r.powi(l as i32) * (-self.alpha[l * nm + k] * r * r).exp())
            .sum()
    }
}

/// Real regular solid harmonics `r^l Y_lm(r^)` (orthonormal `Y`) of `v` for `l <= l_max`, written
/// to `out[l^2 ..(l + 1)^2]` in the order `m = 0, (cos 1, sin 1), (cos 2, sin 2), ...`.
///
/// `r^l P_l^m(cos t) = Q_lm(z, r^2) (r sin t)^m` with the polynomial recurrences
/// `Q_mm = (2m - 1)!!`, `Q_(m+1)m = (2m + 1) z Q_mm`,
/// `Q_lm = ((2l - 1) z Q_(l-1)m - (l + m - 1) r^2 Q_(l-2)m) / (l - m)`, and
/// `(r sin t)^m (cos m phi, sin m phi) = (Re, Im) (x + i y)^m`.
pub struct SolidHarmonics {
    l_max: usize,
    /// Normalisation `sqrt((2 - delta_m0) (2l + 1) / (4 pi) (l - m)! / (l + m)!)`, index `l (l_max+1) + m`.
    norm: Vec<f64>,
    /// Recurrence factors `(2l - 1) / (l - m)` and `(l + m - 1) / (l - m)`, same indexing.
    up: Vec<f64>,
    down: Vec<f64>,
}

impl SolidHarmonics {
    pub fn new(l_max: usize) -> Self {
        let w = l_max + 1;
        let mut norm = vec![0.0; w * w];
        let mut up = vec![0.0; w * w];
        let mut down = vec![0.0; w * w];
        for l in 0..=l_max {
            for m in 0..=l {
                // (l - m)! / (l + m)! as a product of reciprocals (no overflow for l <= 20).
                let mut ratio = 1.0;
                for t in (l - m + 1)..=(l + m) {
                    ratio /= t as f64;
                }
                let two = if m == 0 { 1.0 } else { 2.0 };
                norm[l * w + m] = (two * (2 * l + 1) as f64 / (4.0 * std::f64::consts::PI) * ratio).sqrt();
                if l > m {
                    up[l * w + m] = (2 * l - 1) as f64 / (l - m) as f64;
                    down[l * w + m] = (l + m - 1) as f64 / (l - m) as f64;
                }
            }
        }
        Self { l_max, norm, up, down }
    }

    pub fn eval(&self, v: [f64; 3], out: &mut [f64]) {
        let (x, y, z) = (v[0], v[1], v[2]);
        let r2 = x * x + y * y + z * z;
        let w = self.l_max + 1;
        let mut c = 1.0; // Re (x + iy)^m
        let mut s = 0.0; // Im (x + iy)^m
        let mut qmm = 1.0; // (2m - 1)!!
        for m in 0..=self.l_max {
            if m > 0 {
                qmm *= (2 * m - 1) as f64;
                let (c1, s1) = (x * c - y * s, x * s + y * c);
                c = c1;
                s = s1;
            }
            // Q_(l-2)m, Q_(l-1)m while l runs up from m.
            let (mut before, mut q) = (0.0, qmm);
            for l in m..=self.l_max {
                if l > m {
                    let next = self.up[l * w + m] * z * q - self.down[l * w + m] * r2 * before;
                    before = q;
                    q = next;
                }
                let a = self.norm[l * w + m] * q;
                if m == 0 {
                    out[l * l] = a;
                } else {
                    out[l * l + 2 * m - 1] = a * c;
                    out[l * l + 2 * m] = a * s;
                }
            }
        }
    }
}

impl SolidHarmonics {
    /// [`SolidHarmonics::eval`] for up to [`NEIGHBOR_BLOCK`] vectors at once, as columns:
    /// `out[lm * n + i]` for vector `i` of `n`. The same operations in the same order per vector
    /// (so the same bits), with the vectors innermost so that the loops vectorise.
    #[inline(always)]
    fn eval_block(&self, v: &[(usize, [f64; 3])], r2: &[f64], out: &mut [f64]) {
        const B: usize = NEIGHBOR_BLOCK;
        let n = v.len().min(B);
        let w = self.l_max + 1;
        let (mut x, mut y, mut z) = ([0.0; B], [0.0; B], [0.0; B]);
        for (i, &(_, p)) in v.iter().take(n).enumerate() {
            x[i] = p[0];
            y[i] = p[1];
            z[i] = p[2];
        }
        let r2 = &r2[..n];
        let (mut c, mut s) = ([1.0; B], [0.0; B]);
        let mut qmm = 1.0;
        let (mut before, mut q) = ([0.0; B], [0.0; B]);
        for m in 0..=self.l_max {
            if m > 0 {
                qmm *= (2 * m - 1) as f64;
                for i in 0..n {
                    let (c1, s1) = (x[i] * c[i] - y[i] * s[i], x[i] * s[i] + y[i] * c[i]);
                    c[i] = c1;
                    s[i] = s1;
                }
            }
            before[..n].fill(0.0);
            q[..n].fill(qmm);
            for l in m..=self.l_max {
                if l > m {
                    let (up, down) = (self.up[l * w + m], self.down[l * w + m]);
                    for i in 0..n {
                        let next = up * z[i] * q[i] - down * r2[i] * before[i];
                        before[i] = q[i];
                        q[i] = next;
                    }
                }
                let a = self.norm[l * w + m];
                if m == 0 {
                    let column = &mut out[l * l * n..(l * l + 1) * n];
                    for i in 0..n {
                        column[i] = a * q[i];
                    }
                } else {
                    let (cos, sin) = out[(l * l + 2 * m - 1) * n..(l * l + 2 * m + 1) * n].split_at_mut(n);
                    for i in 0..n {
                        let b = a * q[i];
                        cos[i] = b * c[i];
                        sin[i] = b * s[i];
                    }
                }
            }
        }
    }
}

/// `exp(x)` for `x <= 0` (0 below -708), within a few ulp of libm, branch-free so that loops over
/// it vectorise: `x = k ln 2 + r`, `|r| <= ln 2 / 2`, `e^r` by its Taylor polynomial of degree 13
/// (truncation below 1e-17; within 3 ulp of libm), `2^k` assembled in the exponent bits.
#[inline(always)]
fn exp_nonpositive(x: f64) -> f64 {
    const INV_LN2: f64 = std::f64::consts::LOG2_E;
    // ln 2 split into a head with trailing zero bits (exact products k ln2_hi) and a tail.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    // Adding 1.5 * 2^52 rounds to an integer held in the low mantissa bits.
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    let xc = x.max(-708.0);
    let t = xc * INV_LN2 + SHIFTER;
    let k = t - SHIFTER;
    let r = xc - k * LN2_HI - k * LN2_LO;
    // Estrin's scheme: short dependency chains, so consecutive calls overlap in the pipeline.
    const C: [f64; 14] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5_040.0,
        1.0 / 40_320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
        1.0 / 479_001_600.0,
        1.0 / 6_227_020_800.0,
    ];
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let q0 = (C[0] + C[1] * r) + (C[2] + C[3] * r) * r2;
    let q1 = (C[4] + C[5] * r) + (C[6] + C[7] * r) * r2;
    let q2 = (C[8] + C[9] * r) + (C[10] + C[11] * r) * r2;
    let q3 = C[12] + C[13] * r;
    let p = (q0 + q1 * r4) + (q2 + q3 * r4) * r8;
    let k_int = t.to_bits().wrapping_sub(SHIFTER.to_bits());
    let scale = f64::from_bits(k_int.wrapping_add(1023) << 52);
    if x < -708.0 {
        0.0
    } else {
        p * scale
    }
}

/// Per-(l, k) constants of the analytic projection.
struct Projection {
    n_species: usize,
    n_max: usize,
    l_max: usize,
    /// `alpha_lk / q_lk`, index `l n_max + k`.
    decay: Vec<f64>,
    /// `(pi/eta)^(3/2) beta_lnk q_lk^-(l + 3/2)`, index `(l n_max + n) n_max + k`.
    weight: Vec<f64>,
    /// `pi sqrt(8 / (2l + 1))`.
    prefactor: Vec<f64>,
    /// Species index of each atomic number (`usize::MAX`: not in the list).
    species_index: [usize; 256],
    cutoff: f64,
    kernel: Kernel,
}

impl Projection {
    fn new(opts: &SoapOptions, species: &[u8]) -> Result<Self, CoreError> {
        let basis = GtoBasis::new(opts.r_cut, opts.n_max, opts.l_max)?;
        let (nm, lm) = (opts.n_max, opts.l_max);
        let eta = 1.0 / (2.0 * opts.sigma * opts.sigma);
        let scale = (std::f64::consts::PI / eta).powf(1.5);
        let mut decay = vec![0.0; (lm + 1) * nm];
        let mut weight = vec![0.0; (lm + 1) * nm * nm];
        for l in 0..=lm {
            for k in 0..nm {
                let alpha = basis.alpha[l * nm + k];
                let q = 1.0 + alpha / eta;
                decay[l * nm + k] = alpha / q;
                let f = scale * q.powf(-(l as f64) - 1.5);
                for n in 0..nm {
                    let i = (l * nm + n) * nm + k;
                    weight[i] = basis.beta[i] * f;
                }
            }
        }
        let prefactor = (0..=lm).map(|l| std::f64::consts::PI * (8.0 / (2 * l + 1) as f64).sqrt()).collect();
        let mut species_index = [usize::MAX; 256];
        for (i, &z) in species.iter().enumerate() {
            species_index[z as usize] = i;
        }
        Ok(Self {
            n_species: species.len(),
            n_max: nm,
            l_max: lm,
            decay,
            weight,
            prefactor,
            species_index,
            cutoff: opts.r_cut + opts.cutoff_padding(),
            kernel: Kernel::detect(),
        })
    }

    fn n_lm(&self) -> usize {
        (self.l_max + 1) * (self.l_max + 1)
    }

    /// Length of one site's coefficients: species x n x (l, m).
    fn coefficient_len(&self) -> usize {
        self.n_species * self.n_max * self.n_lm()
    }

    fn n_features(&self) -> usize {
        n_features(self.n_species, self.n_max, self.l_max)
    }

    /// Power spectrum of coefficients `c` (species, l, n, m: index `(s n_lm + l^2) n_max + n (2l+1) + m`)
    /// into `out`, which must hold zeros (`ADD = false`) or a running sum (`ADD = true`).
    /// `present[s]`: species `s` has atoms within the cutoff; else its coefficients are zero and
    /// its blocks are left untouched (zero), which saves the products and, in a freshly
    /// allocated output, even the page writes (many species make mostly-zero rows).
    fn power<const ADD: bool>(&self, c: &[f64], present: &[bool], out: &mut [f64]) {
        let (nm, ns, nlm) = (self.n_max, self.n_species, self.n_lm());
        let mut t = 0;
        for s1 in 0..ns {
            for s2 in s1..ns {
                if !(present[s1] && present[s2]) {
                    t += if s1 == s2 { nm * (nm + 1) / 2 } else { nm * nm } * (self.l_max + 1);
                    continue;
                }
                for l in 0..=self.l_max {
                    let width = 2 * l + 1;
                    let p = self.prefactor[l];
                    let b1 = (s1 * nlm + l * l) * nm;
                    let b2 = (s2 * nlm + l * l) * nm;
                    for n1 in 0..nm {
                        let x = &c[b1 + n1 * width..b1 + (n1 + 1) * width];
                        let start = if s1 == s2 { n1 } else { 0 };
                        for n2 in start..nm {
                            let y = &c[b2 + n2 * width..b2 + (n2 + 1) * width];
                            let mut acc = 0.0;
                            for m in 0..width {
                                acc += x[m] * y[m];
                            }
                            if ADD {
                                out[t] += p * acc;
                            } else {
                                out[t] = p * acc;
                            }
                            t += 1;
                        }
                    }
                }
            }
        }
    }
}

/// Neighbors of one center: species index and vector `r_j - r_center`.
struct SiteNeighbors<'a> {
    numbers: &'a [u8],
    species_index: &'a [usize; 256],
    list: Vec<(usize, [f64; 3])>,
}

impl PairSink for SiteNeighbors<'_> {
    #[inline]
    fn push_pair(&mut self, _i: i64, j: i64, _shift: [i32; 3], _distance: f64, vector: [f64; 3], _want: bool) {
        self.list.push((self.species_index[self.numbers[j as usize] as usize], vector));
    }
}

/// Reusable per-thread buffers.
struct Scratch {
    harmonics: SolidHarmonics,
    /// Primitive sums: species x (l, k) x m, index `(s n_lm + l^2) n_max + k (2l+1) + m`.
    primitive: Vec<f64>,
    /// Neighbors of one species as columns: `r^2`, `R_lm` (index `lm * count + i`) and
    /// `exp(-decay_lk r^2)` (index `(l n_max + k) * count + i`).
    r2: Vec<f64>,
    ylm_columns: Vec<f64>,
    exp_columns: Vec<f64>,
    neighbors: Vec<(usize, [f64; 3])>,
    seen: Vec<bool>,
}

impl Scratch {
    fn new(p: &Projection) -> Self {
        Self {
            harmonics: SolidHarmonics::new(p.l_max),
            primitive: vec![0.0; p.coefficient_len()],
            r2: vec![0.0; NEIGHBOR_BLOCK],
            ylm_columns: vec![0.0; p.n_lm() * NEIGHBOR_BLOCK],
            exp_columns: vec![0.0; (p.l_max + 1) * p.n_max * NEIGHBOR_BLOCK],
            neighbors: Vec::new(),
            seen: vec![false; p.n_species],
        }
    }
}

/// `sum_i a_i b_i` with four partial sums (a fixed order, so the same bits on every run).
#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        acc[0] += x[0] * y[0];
        acc[1] += x[1] * y[1];
        acc[2] += x[2] * y[2];
        acc[3] += x[3] * y[3];
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// The coefficient kernel compiled for the host's widest vectors. Only elementwise IEEE
/// operations are vectorised (no fused multiply-add, fixed summation order), so every variant
/// gives the same bits.
#[derive(Clone, Copy)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                return Self::Avx2;
            }
        }
        Self::Portable
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn coefficients_avx2(
    p: &Projection,
    neighbors: &mut [(usize, [f64; 3])],
    scratch: &mut Scratch,
    out: &mut [f64],
) {
    p.coefficients_body(neighbors, scratch, out)
}

impl Projection {
    /// Coefficients of one center from its neighbor vectors (the center itself included), which
    /// are sorted by species in place (a stable sort: the order within a species is kept).
    fn coefficients(&self, neighbors: &mut [(usize, [f64; 3])], scratch: &mut Scratch, out: &mut [f64]) {
        match self.kernel {
            Kernel::Portable => self.coefficients_body(neighbors, scratch, out),
            // SAFETY: `Avx2` is only chosen after `is_x86_feature_detected!("avx2")`.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { coefficients_avx2(self, neighbors, scratch, out) },
        }
    }

    #[inline(always)]
    fn coefficients_body(&self, neighbors: &mut [(usize, [f64; 3])], scratch: &mut Scratch, out: &mut [f64]) {
        let (nm, nlm, n_radial) = (self.n_max, self.n_lm(), (self.l_max + 1) * self.n_max);
        neighbors.sort_by_key(|&(s, _)| s);
        scratch.seen.fill(false);
        out.fill(0.0);
        let mut start = 0;
        while start < neighbors.len() {
            let s = neighbors[start].0;
            let mut end = start;
            while end < neighbors.len() && neighbors[end].0 == s {
                end += 1;
            }
            let group = &neighbors[start..end];
            start = end;
            scratch.seen[s] = true;
            let primitive = &mut scratch.primitive[s * nlm * nm..(s + 1) * nlm * nm];
            primitive.fill(0.0);
            // Blocks of neighbors small enough for their columns to stay in L1.
            for block in group.chunks(NEIGHBOR_BLOCK) {
                let count = block.len();
                let r2 = &mut scratch.r2[..count];
                let ylm = &mut scratch.ylm_columns[..nlm * count];
                let exps = &mut scratch.exp_columns[..n_radial * count];
                for (r, &(_, v)) in r2.iter_mut().zip(block) {
                    *r = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
                }
                scratch.harmonics.eval_block(block, r2, ylm);
                for (column, &d) in exps.chunks_exact_mut(count).zip(&self.decay) {
                    for (e, &x) in column.iter_mut().zip(r2.iter()) {
                        *e = exp_nonpositive(-d * x);
                    }
                }
                for l in 0..=self.l_max {
                    let width = 2 * l + 1;
                    for k in 0..nm {
                        let e = &exps[(l * nm + k) * count..(l * nm + k + 1) * count];
                        let acc = &mut primitive[l * l * nm + k * width..l * l * nm + (k + 1) * width];
                        for (m, a) in acc.iter_mut().enumerate() {
                            *a += dot(e, &ylm[(l * l + m) * count..(l * l + m + 1) * count]);
                        }
                    }
                }
            }
            for l in 0..=self.l_max {
                let width = 2 * l + 1;
                let base = (s * nlm + l * l) * nm;
                for n in 0..nm {
                    let w = &self.weight[(l * nm + n) * nm..(l * nm + n + 1) * nm];
                    let dst = base + n * width;
                    for (k, &wk) in w.iter().enumerate() {
                        let src = &scratch.primitive[base + k * width..base + (k + 1) * width];
                        for (o, &p) in out[dst..dst + width].iter_mut().zip(src) {
                            *o += wk * p;
                        }
                    }
                }
            }
        }
    }

    /// Coefficients of every site of `s` (`out`: sites x coefficient_len).
    fn structure_coefficients(&self, s: &Structure, index: usize, out: &mut [f64]) -> Result<(), CoreError> {
        let err = |reason: String| CoreError::Structure { index, name: s.id.clone(), reason };
        let cells = CellList::new(s, self.cutoff).map_err(err)?;
        let len = self.coefficient_len();
        // Every site's species was checked against the list before any work (soap_batch).
        let site = |i: usize, row: &mut [f64], scratch: &mut Scratch| {
            let mut sink = SiteNeighbors {
                numbers: &s.numbers,
                species_index: &self.species_index,
                list: std::mem::take(&mut scratch.neighbors),
            };
            sink.list.clear();
            sink.list.push((self.species_index[s.numbers[i] as usize], [0.0; 3]));
            cells.query(i, &mut sink, true);
            self.coefficients(&mut sink.list, scratch, row);
            scratch.neighbors = sink.list;
        };
        if s.n_sites() >= PARALLEL_MIN_SITES {
            out.par_chunks_mut(len)
                .enumerate()
                .for_each_init(|| Scratch::new(self), |scratch, (i, row)| site(i, row, scratch));
        } else {
            let mut scratch = Scratch::new(self);
            for (i, row) in out.chunks_mut(len).enumerate() {
                site(i, row, &mut scratch);
            }
        }
        Ok(())
    }

    /// Output rows of one structure into `out`.
    fn structure_rows(
        &self,
        s: &Structure,
        index: usize,
        average: SoapAverage,
        out: &mut [f64],
    ) -> Result<(), CoreError> {
        let (len, nf, n) = (self.coefficient_len(), self.n_features(), s.n_sites());
        let mut coefficients = vec![0.0; n * len];
        self.structure_coefficients(s, index, &mut coefficients)?;
        let block = len / self.n_species;
        let present = |c: &[f64]| -> Vec<bool> { c.chunks(block).map(|b| b.iter().any(|&x| x != 0.0)).collect() };
        match average {
            SoapAverage::Off => {
                for (c, row) in coefficients.chunks(len).zip(out.chunks_mut(nf)) {
                    self.power::<false>(c, &present(c), row);
                }
            }
            SoapAverage::Inner => {
                let mut mean = vec![0.0; len];
                for c in coefficients.chunks(len) {
                    for (a, b) in mean.iter_mut().zip(c) {
                        *a += b;
                    }
                }
                for a in &mut mean {
                    *a /= n as f64;
                }
                self.power::<false>(&mean, &present(&mean), out);
            }
            SoapAverage::Outer => {
                for c in coefficients.chunks(len) {
                    self.power::<true>(c, &present(c), out);
                }
                for a in out.iter_mut() {
                    *a /= n as f64;
                }
            }
        }
        Ok(())
    }
}

/// SOAP of a batch: a row-major matrix with `rows` rows of `n_features` columns.
#[derive(Debug, Clone, PartialEq)]
pub struct SoapOutput {
    pub values: Vec<f64>,
    pub rows: usize,
    pub n_features: usize,
    /// Species of the columns, sorted by atomic number.
    pub species: Vec<u8>,
}

/// SOAP power spectra of every structure (see the module documentation). Rows: one per site
/// (sites in order, structures in order) for [`SoapAverage::Off`], else one per structure.
/// Structures are validated (geometry at `r_cut` + padding, species in the list, at least one
/// site when averaging) and the output size checked before any work.
pub fn soap_batch(
    structures: &[Structure],
    opts: &SoapOptions,
    n_threads: Option<usize>,
) -> Result<SoapOutput, CoreError> {
    let species = opts.validate()?;
    let projection = Projection::new(opts, &species)?;
    let cutoff = projection.cutoff;
    let nonperiodic: Vec<Structure>;
    let list: &[Structure] = if opts.periodic {
        structures
    } else {
        nonperiodic = structures.iter().map(|s| Structure { pbc: [false; 3], ..s.clone() }).collect();
        &nonperiodic
    };
    // Each worker holds the neighbor vectors of one site (32 bytes each, doubled for growth).
    let neighbor_budget = crate::limits::memory_budget()? / crate::parallel::effective_threads(n_threads)? as f64;
    let mut rows_of = Vec::with_capacity(list.len());
    for (index, s) in list.iter().enumerate() {
        s.validate_for_cutoff(index, cutoff)?;
        let per_site = crate::neighbors::cell_list::rough_pair_estimate(s, cutoff) / s.n_sites().max(1) as f64;
        if !crate::limits::at_most(per_site * 64.0, neighbor_budget) {
            return Err(CoreError::Structure {
                index,
                name: s.id.clone(),
                reason: format!(
                    "about {per_site:.3e} atoms per site within r_cut + padding = {cutoff:.3} A would need {:.3} GB of \
                     neighbor vectors per thread, above the memory ceiling (set MATXFER_MAX_MEMORY to change it)",
                    per_site * 64.0 / 1e9
                ),
            });
        }
        if let Some((k, &z)) =
            s.numbers.iter().enumerate().find(|(_, &z)| projection.species_index[z as usize] == usize::MAX)
        {
            return Err(CoreError::Structure {
                index,
                name: s.id.clone(),
                reason: format!(
                    "site {k} is {} (Z = {z}), which is not in species {:?}",
                    symbol(z).unwrap_or("?"),
                    species.iter().map(|&z| symbol(z).unwrap_or("?")).collect::<Vec<_>>()
                ),
            });
        }
        let rows = match opts.average {
            SoapAverage::Off => s.n_sites(),
            _ if s.n_sites() == 0 => {
                return Err(CoreError::Structure {
                    index,
                    name: s.id.clone(),
                    reason: "has no sites to average over".into(),
                })
            }
            _ => 1,
        };
        rows_of.push(rows);
    }
    let nf = projection.n_features();
    let rows: usize = rows_of.iter().sum();
    let largest = list.iter().map(|s| s.n_sites()).max().unwrap_or(0);
    check_output_bytes(rows as f64 * nf as f64 * 8.0, || format!("a {rows} x {nf} SOAP matrix"))?;
    check_output_bytes(largest as f64 * projection.coefficient_len() as f64 * 8.0, || {
        format!("the SOAP coefficients of a {largest}-site structure")
    })?;
    let mut values = vec![0.0; rows * nf];
    let mut parts: Vec<&mut [f64]> = Vec::with_capacity(list.len());
    let mut rest = values.as_mut_slice();
    for &r in &rows_of {
        let (head, tail) = rest.split_at_mut(r * nf);
        parts.push(head);
        rest = tail;
    }
    with_threads(n_threads, || {
        parts.into_par_iter().zip(list.par_iter()).enumerate().try_for_each(|(index, (out, s))| {
            check_cancelled()?;
            projection.structure_rows(s, index, opts.average, out)
        })
    })??;
    Ok(SoapOutput { values, rows, n_features: nf, species })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rocksalt() -> Structure {
        let a = 4.2;
        let lattice = [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]];
        let frac = vec![[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.01, 0.52, 0.49], [0.5, 0.03, 0.5]];
        Structure::new(lattice, frac, vec![11, 17, 11, 17], [true; 3])
    }

    fn opts(average: SoapAverage, periodic: bool) -> SoapOptions {
        SoapOptions { r_cut: 4.5, n_max: 4, l_max: 5, sigma: 0.7, species: vec![17, 11], average, periodic }
    }

    #[test]
    fn radial_basis_is_orthonormal() {
        // Trapezoid rule on a fine grid out to where every primitive has vanished.
        let basis = GtoBasis::new(5.0, 6, 4).unwrap();
        let (h, steps) = (1e-3, 20_000);
        for l in 0..=4 {
            for n1 in 0..6 {
                for n2 in 0..6 {
                    let mut s = 0.0;
                    for t in 1..steps {
                        let r = t as f64 * h;
                        s += r * r * basis.radial(n1, l, r) * basis.radial(n2, l, r);
                    }
                    let want = if n1 == n2 { 1.0 } else { 0.0 };
                    assert!((s * h - want).abs() < 1e-6, "l={l} n={n1} n'={n2}: {}", s * h);
                }
            }
        }
    }

    #[test]
    fn solid_harmonics_are_orthonormal_on_the_sphere() {
        // Midpoint rule in cos(t) (error ~ 1/nt^2) and an exact equispaced rule in phi for |m| <= 6.
        let l_max = 6;
        let sh = SolidHarmonics::new(l_max);
        let n = (l_max + 1) * (l_max + 1);
        let mut gram = vec![0.0; n * n];
        let mut y = vec![0.0; n];
        let (nt, np) = (1000, 32);
        for a in 0..nt {
            let u = -1.0 + (a as f64 + 0.5) * 2.0 / nt as f64;
            let st = (1.0 - u * u).sqrt();
            for b in 0..np {
                let phi = b as f64 * 2.0 * std::f64::consts::PI / np as f64;
                sh.eval([st * phi.cos(), st * phi.sin(), u], &mut y);
                let w = 2.0 / nt as f64 * 2.0 * std::f64::consts::PI / np as f64;
                for i in 0..n {
                    for j in 0..n {
                        gram[i * n + j] += w * y[i] * y[j];
                    }
                }
            }
        }
        for i in 0..n {
            for j in 0..n {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((gram[i * n + j] - want).abs() < 1e-4, "({i}, {j}): {}", gram[i * n + j]);
            }
        }
    }

    #[test]
    fn kernels_give_the_same_bits() {
        let o = opts(SoapAverage::Off, true);
        let species = o.validate().unwrap();
        let mut p = Projection::new(&o, &species).unwrap();
        // 70 neighbors: two full blocks and a remainder, both species, the center first.
        let mut neighbors: Vec<(usize, [f64; 3])> = vec![(0, [0.0; 3])];
        for i in 1..70 {
            let t = i as f64;
            neighbors.push((i % 2, [(t * 0.37).sin() * 4.0, (t * 0.91).cos() * 3.5, (t * 0.13).sin() * 5.0]));
        }
        let mut results = Vec::new();
        #[allow(unused_mut)]
        let mut kernels = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        if matches!(Kernel::detect(), Kernel::Avx2) {
            kernels.push(Kernel::Avx2);
        }
        for kernel in kernels {
            p.kernel = kernel;
            let mut scratch = Scratch::new(&p);
            let mut out = vec![0.0; p.coefficient_len()];
            p.coefficients(&mut neighbors.clone(), &mut scratch, &mut out);
            assert!(out.iter().any(|&x| x != 0.0));
            results.push(out.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        }
        assert!(results.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn block_harmonics_equal_single_ones() {
        let sh = SolidHarmonics::new(9);
        let n_lm = 100;
        let v: Vec<(usize, [f64; 3])> = (0..NEIGHBOR_BLOCK - 3)
            .map(|i| (0, [(i as f64).sin() * 3.0, (i as f64 * 1.7).cos(), i as f64 * 0.1 - 1.0]))
            .collect();
        let r2: Vec<f64> = v.iter().map(|(_, p)| p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).collect();
        let mut columns = vec![0.0; n_lm * v.len()];
        sh.eval_block(&v, &r2, &mut columns);
        let mut one = vec![0.0; n_lm];
        for (i, (_, p)) in v.iter().enumerate() {
            sh.eval(*p, &mut one);
            for lm in 0..n_lm {
                assert_eq!(one[lm].to_bits(), columns[lm * v.len() + i].to_bits(), "lm {lm}, vector {i}");
            }
        }
    }

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0.0f64;
        for i in 0..99_000 {
            let x = -(i as f64) * 7.1e-3 - (i % 7) as f64 * 1e-9;
            let (a, b) = (exp_nonpositive(x), x.exp());
            worst = worst.max(((a - b) / b).abs());
        }
        assert!(worst < 6e-16, "{worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-800.0), 0.0);
    }

    #[test]
    fn layout_and_names() {
        assert_eq!(n_features(2, 4, 5), 8 * 9 / 2 * 6);
        let names = feature_names(&[11, 17], 2, 1);
        assert_eq!(names.len(), n_features(2, 2, 1));
        assert_eq!(names[0], "SOAP Na-Na l=0 n=0 n'=0");
        assert_eq!(names[3], "SOAP Na-Na l=1 n=0 n'=0");
        assert_eq!(names[6], "SOAP Na-Cl l=0 n=0 n'=0");
        assert_eq!(names[7], "SOAP Na-Cl l=0 n=0 n'=1");
    }

    fn rotate(s: &Structure, angle: f64) -> Structure {
        let (c, si) = (angle.cos(), angle.sin());
        let r = [[c, -si, 0.0], [si, c, 0.0], [0.0, 0.0, 1.0]];
        let mut lat = s.lattice;
        for row in lat.iter_mut() {
            let v = *row;
            for (i, ri) in r.iter().enumerate() {
                row[i] = ri[0] * v[0] + ri[1] * v[1] + ri[2] * v[2];
            }
        }
        // Tilt about x as well so that every axis moves.
        let (c2, s2) = (0.3f64.cos(), 0.3f64.sin());
        for row in lat.iter_mut() {
            let v = *row;
            row[1] = c2 * v[1] - s2 * v[2];
            row[2] = s2 * v[1] + c2 * v[2];
        }
        Structure { lattice: lat, ..s.clone() }
    }

    #[test]
    fn invariant_under_rotation_and_identical_for_thread_counts() {
        let s = rocksalt();
        for periodic in [true, false] {
            for average in [SoapAverage::Off, SoapAverage::Inner, SoapAverage::Outer] {
                let o = opts(average, periodic);
                let a = soap_batch(std::slice::from_ref(&s), &o, Some(1)).unwrap();
                let b = soap_batch(&[rotate(&s, 0.7)], &o, Some(1)).unwrap();
                let scale = a.values.iter().fold(0.0f64, |m, x| m.max(x.abs()));
                assert!(scale > 0.0);
                for (x, y) in a.values.iter().zip(&b.values) {
                    assert!((x - y).abs() <= 1e-10 * scale, "{x} vs {y}");
                }
                let many = vec![s.clone(); 40];
                let one = soap_batch(&many, &o, Some(1)).unwrap();
                let three = soap_batch(&many, &o, Some(3)).unwrap();
                assert_eq!(
                    one.values.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    three.values.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn averages_follow_the_site_rows() {
        let s = rocksalt();
        let off = soap_batch(std::slice::from_ref(&s), &opts(SoapAverage::Off, true), Some(1)).unwrap();
        let outer = soap_batch(std::slice::from_ref(&s), &opts(SoapAverage::Outer, true), Some(1)).unwrap();
        let nf = off.n_features;
        assert_eq!(off.rows, 4);
        assert_eq!(outer.rows, 1);
        for f in 0..nf {
            let mean = (0..4).map(|r| off.values[r * nf + f]).sum::<f64>() / 4.0;
            assert!((mean - outer.values[f]).abs() <= 1e-12 * mean.abs().max(1.0));
        }
    }

    #[test]
    fn bad_input_is_refused() {
        let s = rocksalt();
        let mut o = opts(SoapAverage::Off, true);
        o.species = vec![11];
        let e = soap_batch(&[s.clone(), s.clone()], &o, Some(1)).unwrap_err();
        assert!(matches!(e, CoreError::Structure { index: 0, .. }), "{e}");
        assert!(e.to_string().contains("Cl"), "{e}");
        for bad in [
            SoapOptions { r_cut: 1.0, ..opts(SoapAverage::Off, true) },
            SoapOptions { r_cut: f64::NAN, ..opts(SoapAverage::Off, true) },
            SoapOptions { sigma: 0.0, ..opts(SoapAverage::Off, true) },
            SoapOptions { n_max: 0, ..opts(SoapAverage::Off, true) },
            SoapOptions { l_max: 21, ..opts(SoapAverage::Off, true) },
            SoapOptions { species: vec![], ..opts(SoapAverage::Off, true) },
            SoapOptions { species: vec![8, 8], ..opts(SoapAverage::Off, true) },
        ] {
            assert!(matches!(soap_batch(std::slice::from_ref(&s), &bad, Some(1)), Err(CoreError::InvalidArgument(_))));
        }
    }
}
