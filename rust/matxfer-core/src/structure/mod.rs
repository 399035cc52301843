//! Crystal structures: a periodic (or partly periodic) cell with atoms, plus file parsers.
//!
//! Conventions (used everywhere in the crate):
//! - `lattice` is 3x3 in angstrom, one lattice vector per row (a, b, c).
//! - Cartesian position `r = f @ lattice` for fractional coordinates `f` (row vector).
//! - Fractional coordinates are kept as given (not wrapped); neighbor image shifts are relative to
//!   them, so they agree with pymatgen for the same input.

pub mod cif;
pub mod jsonl;
pub mod linalg;
pub mod poscar;
pub mod symmetry;
pub mod xyz;

use crate::error::CoreError;
use crate::limits::{MAX_ABS_FRAC, MAX_IMAGES, MAX_LATTICE_ENTRY};
use linalg::{det3, frac_to_cart, inv3, Mat3, Vec3};

/// One structure: lattice, fractional coordinates, atomic numbers and periodicity.
#[derive(Debug, Clone, PartialEq)]
pub struct Structure {
    /// Lattice vectors as rows, angstrom.
    pub lattice: Mat3,
    /// Fractional coordinates, one row per site.
    pub frac_coords: Vec<Vec3>,
    /// Atomic numbers (1..=118), one per site.
    pub numbers: Vec<u8>,
    /// Periodicity along a, b, c.
    pub pbc: [bool; 3],
    /// Identifier (dataset id or file name), used in error messages.
    pub id: Option<String>,
}

/// The smallest accepted |cell volume| in cubic angstrom.
pub const MIN_VOLUME: f64 = 1e-6;

impl Structure {
    /// A structure from fractional coordinates (no validation; call [`Structure::validate`]).
    pub fn new(lattice: Mat3, frac_coords: Vec<Vec3>, numbers: Vec<u8>, pbc: [bool; 3]) -> Self {
        Self { lattice, frac_coords, numbers, pbc, id: None }
    }

    /// A structure from Cartesian coordinates in angstrom.
    pub fn from_cartesian(
        lattice: Mat3,
        cart_coords: &[Vec3],
        numbers: Vec<u8>,
        pbc: [bool; 3],
    ) -> Result<Self, CoreError> {
        let inv =
            inv3(&lattice).ok_or_else(|| CoreError::InvalidArgument("lattice is singular (zero volume)".into()))?;
        let frac = cart_coords.iter().map(|r| frac_to_cart(r, &inv)).collect();
        Ok(Self::new(lattice, frac, numbers, pbc))
    }

    pub fn n_sites(&self) -> usize {
        self.numbers.len()
    }

    /// Signed cell volume a . (b x c), cubic angstrom.
    pub fn signed_volume(&self) -> f64 {
        det3(&self.lattice)
    }

    pub fn volume(&self) -> f64 {
        self.signed_volume().abs()
    }

    /// Cartesian coordinates `f @ lattice`, angstrom.
    pub fn cart_coords(&self) -> Vec<Vec3> {
        self.frac_coords.iter().map(|f| frac_to_cart(f, &self.lattice)).collect()
    }

    /// Check the invariants the algorithms rely on. `index` names the structure in errors.
    ///
    /// Rejects: non-finite lattice or entries above [`MAX_LATTICE_ENTRY`], infinite volume, |volume| below [`MIN_VOLUME`] (left-handed cells are accepted,
    /// negative volume is reported only when `allow_left_handed` is false), NaN/inf coordinates,
    /// atomic numbers outside 1..=118, and site/number count mismatch.
    pub fn validate(&self, index: usize) -> Result<(), CoreError> {
        let err = |reason: String| CoreError::Structure { index, name: self.id.clone(), reason };
        if self.frac_coords.len() != self.numbers.len() {
            return Err(err(format!("{} coordinates but {} species", self.frac_coords.len(), self.numbers.len())));
        }
        if self.lattice.iter().flatten().any(|x| !x.is_finite()) {
            return Err(err("lattice has NaN or infinite entries".into()));
        }
        if let Some(x) = self.lattice.iter().flatten().find(|x| x.abs() > MAX_LATTICE_ENTRY) {
            return Err(err(format!("lattice entry {x:e} A is larger than {MAX_LATTICE_ENTRY:e} A in magnitude")));
        }
        let v = self.signed_volume();
        if !v.is_finite() {
            return Err(err(format!("cell volume {v} is not finite")));
        }
        if v.abs() < MIN_VOLUME {
            return Err(err(format!("cell volume {v:.3e} A^3 is zero or too small")));
        }
        if v < 0.0 {
            return Err(err(format!(
                "cell volume {v:.6} A^3 is negative (left-handed lattice); reorder the lattice vectors"
            )));
        }
        for (k, f) in self.frac_coords.iter().enumerate() {
            if f.iter().any(|x| !x.is_finite()) {
                return Err(err(format!("site {k} has NaN or infinite coordinates")));
            }
            if f.iter().any(|x| x.abs() > MAX_ABS_FRAC) {
                return Err(err(format!("site {k} has a fractional coordinate beyond {MAX_ABS_FRAC:e} ({f:?})")));
            }
        }
        for (k, &z) in self.numbers.iter().enumerate() {
            if z == 0 || z as usize > crate::elements::N_ELEMENTS {
                return Err(err(format!("site {k} has unknown species (Z = {z})")));
            }
        }
        Ok(())
    }

    /// Periodic images of the cell that a sphere of radius `cutoff` spans:
    /// `prod_k (2 ceil(r_c / d_k) + 1)` over periodic axes, `d_k` the distance between the cell
    /// faces (an upper bound of the lattice translations a neighbor search visits).
    pub fn periodic_images(&self, cutoff: f64) -> f64 {
        let d = linalg::face_distances(&self.lattice);
        (0..3).filter(|&k| self.pbc[k]).map(|k| 2.0 * (cutoff / d[k]).ceil() + 1.0).product()
    }

    /// [`Structure::validate`] plus the geometry checks of a neighbor search at `cutoff`: the
    /// number of periodic images within the cutoff is at most [`MAX_IMAGES`] (a nearly singular
    /// or tiny cell is refused here, in O(1), instead of being enumerated).
    pub fn validate_for_cutoff(&self, index: usize, cutoff: f64) -> Result<(), CoreError> {
        self.validate(index)?;
        let images = self.periodic_images(cutoff);
        if !crate::limits::at_most(images, MAX_IMAGES) {
            let d = linalg::face_distances(&self.lattice);
            return Err(CoreError::Structure {
                index,
                name: self.id.clone(),
                reason: format!(
                    "cutoff {cutoff} A spans about {images:.3e} periodic images of the cell (perpendicular widths {:.3e}, {:.3e}, {:.3e} A), above the limit of {MAX_IMAGES:e}",
                    d[0], d[1], d[2]
                ),
            });
        }
        Ok(())
    }
}

/// Atomic number from a species label such as `Fe`, `Fe2+`, `O2-`, `Fe1` or `fe`: leading letters,
/// the longest prefix (2 then 1 letters) that is an element symbol. `None` if none matches.
pub fn species_to_z(label: &str) -> Option<u8> {
    let letters: Vec<char> = label.trim().chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    for len in [2usize, 1] {
        if letters.len() >= len {
            let mut s = String::new();
            s.push(letters[0].to_ascii_uppercase());
            for c in &letters[1..len] {
                s.push(c.to_ascii_lowercase());
            }
            if let Some(z) = crate::elements::z_from_symbol(&s) {
                return Some(z);
            }
        }
    }
    None
}

/// A batch of structures in flat arrays (the layout handed to and from Python).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StructureBatch {
    /// One lattice per structure.
    pub lattices: Vec<Mat3>,
    /// All fractional coordinates, structure after structure.
    pub frac_coords: Vec<Vec3>,
    /// All atomic numbers.
    pub numbers: Vec<u8>,
    pub pbc: Vec<[bool; 3]>,
    /// Site offsets: structure `s` owns sites `ptr[s]..ptr[s+1]`.
    pub ptr: Vec<usize>,
    pub ids: Vec<Option<String>>,
}

impl StructureBatch {
    pub fn from_structures(structures: Vec<Structure>) -> Self {
        let mut b = StructureBatch { ptr: vec![0], ..Default::default() };
        for s in structures {
            b.lattices.push(s.lattice);
            b.frac_coords.extend_from_slice(&s.frac_coords);
            b.numbers.extend_from_slice(&s.numbers);
            b.pbc.push(s.pbc);
            b.ptr.push(b.numbers.len());
            b.ids.push(s.id);
        }
        b
    }

    pub fn len(&self) -> usize {
        self.lattices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lattices.is_empty()
    }

    /// Structure `s` as an owned value.
    pub fn get(&self, s: usize) -> Structure {
        let (a, b) = (self.ptr[s], self.ptr[s + 1]);
        Structure {
            lattice: self.lattices[s],
            frac_coords: self.frac_coords[a..b].to_vec(),
            numbers: self.numbers[a..b].to_vec(),
            pbc: self.pbc[s],
            id: self.ids[s].clone(),
        }
    }
}

/// Parse a number as written in CIF/POSCAR files: accepts a trailing standard uncertainty
/// `1.234(5)`; returns `None` for anything else that is not a finite float.
pub fn parse_number(text: &str) -> Option<f64> {
    let t = text.trim();
    let t = match t.find('(') {
        Some(p) if t.ends_with(')') => &t[..p],
        Some(_) => return None,
        None => t,
    };
    let v: f64 = t.parse().ok()?;
    if v.is_finite() {
        Some(v)
    } else {
        None
    }
}
