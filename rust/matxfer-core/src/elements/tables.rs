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
    pub fn new(name: impl Into<String>, columns: Vec<String>, values: Vec<f64>) -> Result<Self, CoreError> {
        let name = name.into();
        if values.len() != N_ELEMENTS * columns.len() {
            return Err(CoreError::InvalidArgument(format!(
                "element table '{name}': expected {} values (118 elements x {} columns), got {}",
                N_ELEMENTS * columns.len(),
                columns.len(),
                values.len()
            )));
        }
        Ok(Self { name, columns, values })
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
                    CoreError::InvalidArgument(format!("element table '{}' has no column '{c}'", self.name))
                })
            })
            .collect::<Result<_, _>>()?;
        let mut values = Vec::with_capacity(N_ELEMENTS * idx.len());
        for z in 1..=N_ELEMENTS as u8 {
            let row = self.row(z);
            values.extend(idx.iter().map(|&i| row[i]));
        }
        Self::new(name, columns.iter().map(|c| c.to_string()).collect(), values)
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
            *mean = if count > 0 { sum / count as f64 } else { f64::NAN };
        }
        let values = self.values.iter().enumerate().map(|(i, &v)| if v.is_nan() { means[i % n] } else { v }).collect();
        Self { name: self.name.clone(), columns: self.columns.clone(), values }
    }
}

/// Parse the embedded CSV format: header `Z,symbol,<columns>`, 118 rows, empty cell = missing.
fn parse_table_csv(name: &str, text: &str) -> Result<ElementTable, CoreError> {
    let bad =
        |line: usize, why: String| CoreError::InvalidArgument(format!("element table '{name}', line {line}: {why}"));
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
        let z: usize = cells.next().and_then(|c| c.parse().ok()).ok_or_else(|| bad(line_no, "bad Z".into()))?;
        if z != n_rows || cells.next() != Some(SYMBOLS[z - 1]) {
            return Err(bad(line_no, format!("rows must be Z = 1..118 in order with symbols; got Z = {z}")));
        }
        let before = values.len();
        for cell in cells {
            let cell = cell.trim();
            values.push(if cell.is_empty() {
                f64::NAN
            } else {
                cell.parse().map_err(|_| bad(line_no, format!("not a number: '{cell}'")))?
            });
        }
        if values.len() - before != columns.len() {
            return Err(bad(line_no, format!("expected {} values", columns.len())));
        }
    }
    if n_rows != N_ELEMENTS {
        return Err(bad(n_rows + 1, format!("expected 118 element rows, found {n_rows}")));
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
    (
        "cgcnn",
        include_str!("../../data/elements/cgcnn.csv"),
        "CGCNN 92-dim one-hot atom features (Xie & Grossman 2018; matminer cgcnn_atom_feature.json), Z <= 100",
    ),
    (
        "megnet16",
        include_str!("../../data/elements/megnet16.csv"),
        "MEGNet 16-dim learned elemental embedding (Chen et al. 2019; matminer copy), Z <= 94",
    ),
    (
        "matscholar",
        include_str!("../../data/elements/matscholar.csv"),
        "Matscholar 200-dim word embedding of elements (Tshitoyan et al. 2019; matminer matscholar_els.json), Z <= 103",
    ),
    (
        "mat2vec",
        include_str!("../../data/elements/mat2vec.csv"),
        "mat2vec 200-dim word embedding of element symbols as shipped by CBFV (Tshitoyan et al. 2019), all 118",
    ),
    (
        "oliynyk",
        include_str!("../../data/elements/oliynyk.csv"),
        "Oliynyk 44 elemental properties as shipped by CBFV (Oliynyk et al. 2016), Z <= 83 plus Th and U",
    ),
    (
        "xenonpy",
        include_str!("../../data/elements/xenonpy.csv"),
        "XenonPy-style 58 elemental properties assembled from mendeleev, pymatgen and matminer (raw, NaN = missing)",
    ),
];

fn registry() -> &'static HashMap<&'static str, OnceLock<ElementTable>> {
    static REGISTRY: OnceLock<HashMap<&'static str, OnceLock<ElementTable>>> = OnceLock::new();
    REGISTRY.get_or_init(|| EMBEDDED.iter().map(|(name, _, _)| (*name, OnceLock::new())).collect())
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
            ElementTable { name: "onehot".into(), columns, values }
        }));
    }
    let (_, text, _) = EMBEDDED.iter().find(|(n, _, _)| *n == name).ok_or_else(|| {
        let known: Vec<_> = available_tables().iter().map(|(n, _)| *n).collect();
        CoreError::InvalidArgument(format!("unknown element table '{name}'; known: {}", known.join(", ")))
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
                states.split_whitespace().filter_map(|t| t.parse().ok()).collect()
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

    /// Rows of `t` that are entirely NaN.
    fn all_missing(t: &ElementTable) -> Vec<u8> {
        (1..=118u8).filter(|&z| t.row(z).iter().all(|v| v.is_nan())).collect()
    }

    #[test]
    fn cgcnn_known_values() {
        let t = embedded_table("cgcnn").unwrap();
        assert_eq!(t.n_columns(), 92);
        assert_eq!(t.columns()[0], "cgcnn_0");
        assert_eq!(t.columns()[91], "cgcnn_91");
        // Fe: one-hot positions in matminer's cgcnn_atom_feature.json, key "26".
        let ones: Vec<usize> = (0..92).filter(|&i| t.get(26, i) == 1.0).collect();
        assert_eq!(ones, vec![8, 22, 29, 40, 53, 61, 72, 80, 83]);
        assert_eq!(t.row(26).iter().sum::<f64>(), 9.0);
        let ones_o: Vec<usize> = (0..92).filter(|&i| t.get(8, i) == 1.0).collect();
        assert_eq!(ones_o, vec![16, 20, 34, 37, 51, 64, 74, 79, 86]);
        assert_eq!(all_missing(t), (101..=118).collect::<Vec<u8>>());
        assert!(!t.get(100, 0).is_nan()); // Fm is the last element in the source
    }

    #[test]
    fn megnet16_known_values() {
        let t = embedded_table("megnet16").unwrap();
        assert_eq!(t.n_columns(), 16);
        // The source list is indexed by Z (entry 0 is the dummy row).
        assert_eq!(t.get(26, 0), 0.12733300030231476); // Fe
        assert_eq!(t.get(26, 15), -0.3331841230392456);
        assert_eq!(t.get(8, 15), 0.03890151530504227); // O
        assert_eq!(t.get(94, 0), -0.278194397687912); // Pu
        assert_eq!(all_missing(t), (95..=118).collect::<Vec<u8>>());
    }

    #[test]
    fn matscholar_known_values() {
        let t = embedded_table("matscholar").unwrap();
        assert_eq!(t.n_columns(), 200);
        assert_eq!(t.column_index("matscholar_199"), Some(199));
        assert_eq!(t.get(8, 0), -0.0032034001778811216); // O
        assert_eq!(t.get(8, 199), -0.010682101361453533);
        assert_eq!(t.get(103, 0), -0.04664739966392517); // Lr
        assert_eq!(all_missing(t), (104..=118).collect::<Vec<u8>>());
    }

    #[test]
    fn mat2vec_known_values() {
        let t = embedded_table("mat2vec").unwrap();
        assert_eq!(t.n_columns(), 200);
        assert_eq!(t.get(8, 0), -0.010822429321706295); // O
        assert_eq!(t.get(8, 199), -0.03610078617930412);
        assert_eq!(t.get(26, 199), -0.1086554005742073); // Fe
        let complete = (1..=N_ELEMENTS as u8).all(|z| t.row(z).iter().all(|v| !v.is_nan()));
        assert!(complete); // CBFV ships all 118 symbols
    }

    #[test]
    fn oliynyk_known_values() {
        let t = embedded_table("oliynyk").unwrap();
        assert_eq!(t.n_columns(), 44);
        assert!(t.columns().iter().all(|c| !c.contains(' ') && !c.contains(',')));
        let w = t.column_index("Atomic_Weight").unwrap();
        assert_eq!(t.get(26, w), 55.847); // Fe (the source's own atomic weight)
        let en = t.column_index("Pauling_Electronegativity").unwrap();
        assert_eq!(t.get(8, en), 3.44); // O
        let miracle = t.column_index("Miracle_Radius_[pm]").unwrap();
        assert!(t.get(1, miracle).is_nan()); // H has an empty cell in the source
        let n = t.column_index("Atomic_Number").unwrap();
        for z in 1..=83u8 {
            assert_eq!(t.get(z, n), z as f64);
        }
        let missing = all_missing(t);
        assert_eq!(missing.len(), 33);
        assert!(!missing.contains(&90) && !missing.contains(&92)); // Th and U are present
        assert!(missing.contains(&84) && missing.contains(&94)); // Po, Pu
    }

    #[test]
    fn xenonpy_known_values() {
        let t = embedded_table("xenonpy").unwrap();
        assert_eq!(t.n_columns(), 58);
        let col = |c: &str| t.column_index(c).unwrap_or_else(|| panic!("no column {c}"));
        assert_eq!(t.get(26, col("melting_point")), 1811.0); // Fe, pymatgen
        assert_eq!(t.get(26, col("first_ion_en")), 7.9024681); // Fe, mendeleev (eV)
        assert_eq!(t.get(26, col("covalent_radius_pyykko")), 115.99999999999999); // as stored
        assert_eq!(t.get(26, col("gs_mag_moment")), 2.1106628); // Fe, Magpie/OQMD
        assert_eq!(t.get(26, col("num_valance")), 8.0);
        assert_eq!(t.get(26, col("Polarizability")), 8.4); // Fe, Magpie (CRC), 10^-24 cm^3
        assert_eq!(t.get(26, col("dipole_polarizability")), 62.0); // Fe, mendeleev, bohr^3
        assert_eq!(t.get(8, col("en_pauling")), 3.44); // O
        assert_eq!(t.get(8, col("atomic_weight")), 15.999);
        assert!(t.get(8, col("bulk_modulus")).is_nan()); // no value in pymatgen
        for z in 1..=118u8 {
            assert_eq!(t.get(z, col("atomic_number")), z as f64);
        }
        // Well covered up to Pu: these columns have no gap for Z <= 94.
        for c in
            ["atomic_weight", "density", "first_ion_en", "melting_point", "period", "gs_volume_per", "Polarizability"]
        {
            let i = col(c);
            assert!((1..=94u8).all(|z| !t.get(z, i).is_nan()), "{c}");
        }
    }

    #[test]
    fn unknown_table_is_an_error() {
        assert!(embedded_table("nope").is_err());
    }
}
