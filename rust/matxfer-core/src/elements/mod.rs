//! Periodic-table data: symbols and embedded per-element property tables.

mod symbols;
mod tables;

pub use symbols::{symbol, z_from_bytes, z_from_symbol, N_ELEMENTS, SYMBOLS};
pub use tables::{available_tables, embedded_table, magpie_oxidation_states, ElementTable};
