//! Element property tables embedded in the binary (`data/elements/*.csv`).
//!
//! Every table has one row per element Z = 1..=118 and named columns; a missing value is NaN.
//! Provenance of each table and column: `data/elements/PROVENANCE.md`.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::symbols::{N_ELEMENTS, SYMBOLS};
use crate::error::CoreError;

/// A dense `118 x n_columns` table of per-element values (row `z - 1` holds element `z`).
#[derive(Debug, Clone)]
pub struct ElementTable {
    name: String,
    columns: Vec<String>,
    values: Vec<f64>,
}

impl ElementTable {
    /// Build a table from row-major values (`118 * columns.len()` of them).
    pub fn new(
        name: impl Into<String>,
        columns: Vec<String>,
        values: Vec<f64>,
    ) -> Result<Self, CoreError> {
        let name = name.into();
        if values.len() != N_ELEMENTS * columns.len() {
            return Err(CoreError::InvalidArgument(format!(
                "element table '{name}': expected {} values (118 elements x {} columns), got {}",
                N_ELEMENTS * columns.len(),
                columns.len(),
                values.len()
            )));
        }
        Ok(Self {
            name,
            columns,
            values,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn n_columns(&self) -> usize {
        self.columns.len()
    }

    /// All values, row-major, `118 x n_columns`.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Values of element `z` (1..=118).
    #[inline]
    pub fn row(&self, z: u8) -> &[f64] {
        let n = self.columns.len();
        let start = (z as usize - 1) * n;
        &self.values[start..start + n]
    }

    /// Index of a column by name.
    pub fn column_index(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == column)
    }

    /// Value of `column` for element `z`.
    #[inline]
    pub fn get(&self, z: u8, column: usize) -> f64 {
        self.values[(z as usize - 1) * self.columns.len() + column]
    }

    /// A new table with only the named columns, in the given order.
    pub fn select(&self, name: &str, columns: &[&str]) -> Result<Self, CoreError> {
        let idx: Vec<usize> = columns
            .iter()
            .map(|c| {
                self.column_index(c).ok_or_else(|| {
                    CoreError::InvalidArgument(format!(
                        "element table '{}' has no column '{c}'",
                        self.name
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let mut values = Vec::with_capacity(N_ELEMENTS * idx.len());
        for z in 1..=N_ELEMENTS as u8 {
            let row = self.row(z);
            values.extend(idx.iter().map(|&i| row[i]));
        }
        Self::new(
            name,
            columns.iter().map(|c| c.to_string()).collect(),
            values,
        )
    }

    /// Replace every NaN in a column by the mean of that column over all
    /// 118 elements (NaN ignored), as matminer's `MagpieData(impute_nan=True)` does.
    pub fn impute_column_means(&self) -> Self {
        let n = self.columns.len();
        let mut means = vec![0.0; n];
        for (c, mean) in means.iter_mut().enumerate() {
            let (mut sum, mut count) = (0.0, 0usize);
            for z in 0..N_ELEMENTS {
                let v = self.values[z * n + c];
                if !v.is_nan() {
                    sum += v;
                    count += 1;
                }
            }
            *mean = if count > 0 {
                sum / count as f64
            } else {
                f64::NAN
            };
        }
        let values = self
            .values
            .iter()
            .enumerate()
            .map(|(i, &v)| if v.is_nan() { means[i % n] } else { v })
            .collect();
        Self {
            name: self.name.clone(),
            columns: self.columns.clone(),
            values,
        }
    }

    /// Elements (Z) whose row holds a NaN.
    pub fn elements_with_missing(&self) -> Vec<u8> {
        (1..=N_ELEMENTS as u8)
            .filter(|&z| self.row(z).iter().any(|v| v.is_nan()))
            .collect()
    }
}

/// Parse the embedded CSV format: header `Z,symbol,<columns>`, 118 rows, empty cell = missing.
fn parse_table_csv(name: &str, text: &str) -> Result<ElementTable, CoreError> {
    let bad = |line: usize, why: String| {
        CoreError::InvalidArgument(format!("element table '{name}', line {line}: {why}"))
    };
    let mut lines = text.lines();
    let header = lines.next().ok_or_else(|| bad(1, "empty file".into()))?;
    let mut head = header.split(',');
    if head.next() != Some("Z") || head.next() != Some("symbol") {
        return Err(bad(1, "header must start with 'Z,symbol'".into()));
    }
    let columns: Vec<String> = head.map(str::to_string).collect();
    let mut values = Vec::with_capacity(N_ELEMENTS * columns.len());
    let mut n_rows = 0;
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        if line.is_empty() {
            continue;
        }
        n_rows += 1;
        let mut cells = line.split(',');
        let z: usize = cells
            .next()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad(line_no, "bad Z".into()))?;
        if z != n_rows || cells.next() != Some(SYMBOLS[z - 1]) {
            return Err(bad(
                line_no,
                format!("rows must be Z = 1..118 in order with symbols; got Z = {z}"),
            ));
        }
        let before = values.len();
        for cell in cells {
            let cell = cell.trim();
            values.push(if cell.is_empty() {
                f64::NAN
            } else {
                cell.parse()
                    .map_err(|_| bad(line_no, format!("not a number: '{cell}'")))?
            });
        }
        if values.len() - before != columns.len() {
            return Err(bad(line_no, format!("expected {} values", columns.len())));
        }
    }
    if n_rows != N_ELEMENTS {
        return Err(bad(
            n_rows + 1,
            format!("expected 118 element rows, found {n_rows}"),
        ));
    }
    ElementTable::new(name, columns, values)
}

/// Embedded tables: (name, CSV text, one-line description).
const EMBEDDED: &[(&str, &str, &str)] = &[
    (
        "magpie",
        include_str!("../../data/elements/magpie.csv"),
        "Magpie elemental properties exactly as matminer's magpie_elementdata tables (Ward et al. 2016)",
    ),
];

fn registry() -> &'static HashMap<&'static str, OnceLock<ElementTable>> {
    static REGISTRY: OnceLock<HashMap<&'static str, OnceLock<ElementTable>>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        EMBEDDED
            .iter()
            .map(|(name, _, _)| (*name, OnceLock::new()))
            .collect()
    })
}

/// Names and descriptions of the embedded tables (plus the generated `onehot`).
pub fn available_tables() -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<_> = EMBEDDED.iter().map(|(n, _, d)| (*n, *d)).collect();
    v.push(("onehot", "one-hot encoding of Z = 1..118 (118 columns)"));
    v
}

/// An embedded element table by name (parsed once, then shared).
pub fn embedded_table(name: &str) -> Result<&'static ElementTable, CoreError> {
    if name == "onehot" {
        static ONEHOT: OnceLock<ElementTable> = OnceLock::new();
        return Ok(ONEHOT.get_or_init(|| {
            let mut values = vec![0.0; N_ELEMENTS * N_ELEMENTS];
            for z in 0..N_ELEMENTS {
                values[z * N_ELEMENTS + z] = 1.0;
            }
            let columns = SYMBOLS.iter().map(|s| s.to_string()).collect();
            ElementTable {
                name: "onehot".into(),
                columns,
                values,
            }
        }));
    }
    let (_, text, _) = EMBEDDED
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| {
            let known: Vec<_> = available_tables().iter().map(|(n, _)| *n).collect();
            CoreError::InvalidArgument(format!(
                "unknown element table '{name}'; known: {}",
                known.join(", ")
            ))
        })?;
    let cell = &registry()[name];
    if let Some(t) = cell.get() {
        return Ok(t);
    }
    // The embedded files are checked by the unit tests, so a parse failure here is a build defect;
    // it is still reported as an error rather than a panic.
    let parsed = parse_table_csv(name, text)?;
    Ok(cell.get_or_init(|| parsed))
}

/// Magpie's list of common oxidation states per element (matminer `OxidationStates.table`).
pub fn magpie_oxidation_states() -> &'static [Vec<i8>] {
    static STATES: OnceLock<Vec<Vec<i8>>> = OnceLock::new();
    STATES.get_or_init(|| {
        let text = include_str!("../../data/elements/magpie_oxidation_states.csv");
        text.lines()
            .skip(1)
            .filter(|l| !l.is_empty())
            .map(|line| {
                let states = line.splitn(3, ',').nth(2).unwrap_or("");
                states
                    .split_whitespace()
                    .filter_map(|t| t.parse().ok())
                    .collect()
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_table_parses() {
        for (name, _) in available_tables() {
            let t = embedded_table(name).unwrap();
            assert_eq!(t.values().len(), 118 * t.n_columns(), "{name}");
            assert!(t.n_columns() > 0);
        }
    }

    #[test]
    fn magpie_known_values() {
        let t = embedded_table("magpie").unwrap();
        let melt = t.column_index("MeltingT").unwrap();
        assert_eq!(t.get(26, melt), 1811.0); // Fe
        assert!(t.get(2, melt).is_nan()); // He is "Missing" in the source
        let number = t.column_index("Number").unwrap();
        for z in 1..=118u8 {
            let v = t.get(z, number);
            assert!(v == z as f64 || (z > 100 && v.is_nan()), "Z={z}: {v}");
        }
        assert_eq!(magpie_oxidation_states().len(), 118);
        assert_eq!(magpie_oxidation_states()[7], vec![-2]); // O
    }

    #[test]
    fn unknown_table_is_an_error() {
        assert!(embedded_table("nope").is_err());
    }
}
