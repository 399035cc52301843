//! matxfer-core: the pure-Rust engine of matxfer (no Python).
//!
//! - [`formula`]: chemical formula parser.
//! - [`elements`]: element symbols and embedded property tables.
//! - [`composition`]: composition descriptors (Magpie, XenonPy-style statistics, embeddings).
//! - [`parallel`]: thread-pool control; every batch result is independent of the thread count.
//! - [`voronoi`]: periodic Voronoi tessellation (faces, areas, solid angles, volumes).
//! - [`crystal_nn`]: pymatgen's CrystalNN (coordination-number probabilities and neighbors).
//! - [`order_params`]: local structure order parameters (pymatgen's `LocalStructOrderParams`).
//! - [`bond_valence`]: oxidation states of structures by the bond-valence method (pymatgen's
//!   `BVAnalyzer`).
//! - [`soap`]: SOAP power spectra with the GTO radial basis (dscribe's `SOAP`).

pub mod bond_valence;
mod bond_valence_table;
pub mod composition;
pub mod crystal_nn;
pub mod crystal_nn_fingerprint;
mod crystal_nn_tables;
pub mod elements;
pub mod error;
pub mod ewald;
pub mod formula;
pub mod graph;
pub mod limits;
pub mod molecule_graph;
pub mod neighbors;
pub mod ofm;
pub mod order_params;
pub mod oxidation;
pub mod parallel;
pub mod soap;
pub mod structure;
pub mod structure_descriptors;
pub mod voronoi;
pub mod ward2017;

pub use error::{CoreError, FormulaError, FormulaErrorKind};
pub use formula::{parse_formula, Composition, FormulaParser};
