//! Space-group operations from CIF symbols, and checks that a file's operations agree with them.
//!
//! The tables (the 530 Hall settings with their Hermann-Mauguin symbols) and the group
//! identification come from the `moyo` crate. Symbols read from files are only *matched* against
//! moyo's database strings and never handed to moyo's own Hall-symbol parser, which panics on
//! malformed input; the operations are then generated from the database entry.
//!
//! Conventions: an operation maps fractional coordinates `x' = R x + t` (column vectors); the
//! lattice has one vector per row, so the metric is `G = L L^T` and `R` is an isometry when
//! `R^T G R = G`.

use std::sync::OnceLock;

use moyo::base::{Cell, Lattice};
use moyo::data::{hall_symbol_entry, HallSymbol, HallSymbolEntry, Setting};
use moyo::MoyoDataset;
use nalgebra::{Matrix3, Vector3};

use super::cif::SymOp;
use super::linalg::{Mat3, Vec3};

/// Number of Hall settings in the database.
const N_HALL: i32 = 530;

/// Relative misfit `max |R^T G R - G| / max(G_ii)` up to which an operation counts as an isometry
/// of the cell. Refined cells written with symmetry constraints fit to ~1e-6; a wrong setting (b-
/// versus c-unique monoclinic, hexagonal versus rhombohedral axes) misfits by 1e-2 or more.
pub const METRIC_TOLERANCE: f64 = 1e-3;

/// Most distinct operations accepted in one operation list: 192 (Fm-3m) times 8, room for a
/// 2x2x2 supercell of any group. Beyond it a file is refused before the quadratic closure check.
pub const MAX_OPERATIONS: usize = 1536;

/// Tolerance on translations (fractional) when comparing operations, e.g. `x+0.3333` vs `x+1/3`.
const TRANSLATION_TOLERANCE: f64 = 1e-3;

/// One Hall setting: its database entry and its full operation list (centering included,
/// translations in [0, 1)).
#[derive(Debug, Clone)]
pub struct SettingOps {
    pub hall_number: i32,
    /// International Tables number, 1..=230.
    pub number: i32,
    /// Setting code as in the database (`""`, `"b1"`, `"1"`, `"2"`, `"H"`, `"R"`, `"ba-c"`...).
    pub setting: &'static str,
    pub hall_symbol: &'static str,
    pub hm_full: &'static str,
    pub ops: Vec<SymOp>,
}

impl SettingOps {
    /// A short human-readable name, e.g. `I 4_1/a m d :1 (No. 141, Hall 'I 4bw 2bw -1bw')`.
    pub fn describe(&self) -> String {
        let code = if self.setting.is_empty() { String::new() } else { format!(" :{}", self.setting) };
        format!("{}{code} (No. {}, Hall '{}')", self.hm_full, self.number, self.hall_symbol)
    }
}

fn entry(hall_number: i32) -> Option<HallSymbolEntry> {
    hall_symbol_entry(hall_number)
}

fn all_entries() -> impl Iterator<Item = HallSymbolEntry> {
    (1..=N_HALL).filter_map(entry)
}

/// The full operation list of a database setting, optionally moved by an origin shift `v`
/// (fractional): `(R, t) -> (R, t + v - R v)`.
fn setting_ops(hall_number: i32, shift: Option<Vec3>) -> Option<SettingOps> {
    let e = entry(hall_number)?;
    let hall = HallSymbol::from_hall_number(hall_number)?;
    let centerings = hall.centering.lattice_points();
    let mut ops = Vec::new();
    for op in hall.traverse() {
        let mut rotation = [[0.0; 3]; 3];
        for (r, row) in rotation.iter_mut().enumerate() {
            for (c, x) in row.iter_mut().enumerate() {
                *x = op.rotation[(r, c)] as f64;
            }
        }
        for c in &centerings {
            let mut t = [op.translation[0] + c[0], op.translation[1] + c[1], op.translation[2] + c[2]];
            if let Some(v) = shift {
                for (r, tr) in t.iter_mut().enumerate() {
                    *tr += v[r] - (0..3).map(|k| rotation[r][k] * v[k]).sum::<f64>();
                }
            }
            ops.push(SymOp { rotation, translation: t.map(wrap) });
        }
    }
    Some(SettingOps {
        hall_number,
        number: e.number,
        setting: e.setting,
        hall_symbol: e.hall_symbol,
        hm_full: e.hm_full,
        ops,
    })
}

fn wrap(x: f64) -> f64 {
    // floor by truncation: `f64::floor` is a library call on baseline x86-64, and this runs in the
    // quadratic closure check. Values here are small (|x| < 1e6), far inside the i64 range.
    let t = x as i64 as f64;
    let floor = if t > x { t - 1.0 } else { t };
    let w = x - floor;
    if w >= 1.0 - 1e-12 {
        0.0
    } else {
        w
    }
}

/// Hermann-Mauguin key: no whitespace, no `_`, lowercase (`P 1 2_1/n 1` -> `p121/n1`).
fn hm_key(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace() && *c != '_').collect::<String>().to_ascii_lowercase()
}

/// The keys under which a database entry can be named in a file.
fn entry_keys(e: &HallSymbolEntry) -> Vec<String> {
    let mut keys = vec![hm_key(e.hm_full)];
    if (3..=15).contains(&e.number) {
        // Monoclinic: the database's short symbol is that of the type (the same for all 18
        // settings of C 2/c), so it cannot name a setting. The short form of a setting is its full
        // symbol without the `1` axes (`P 1 2_1/n 1` -> `P 2_1/n`, also `P 1 1 2_1/n`); the cell
        // then decides between unique axes (see `hm_candidates`).
        let reduced: Vec<&str> = e.hm_full.split_whitespace().filter(|t| *t != "1").collect();
        keys.push(hm_key(&reduced.join(" ")));
    } else {
        keys.push(hm_key(e.hm_short));
    }
    if (195..=230).contains(&e.number) {
        // Cubic symbols before ITA 1983 wrote `m3m`, `m3` for `m-3m`, `m-3`.
        let old: Vec<String> = keys.iter().map(|k| k.replace("-3", "3")).collect();
        keys.extend(old);
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Does a file's key match a database key? The `e` (double) glide of ITA 2002 matches the `a`,
/// `b` or `c` written before it (`Cmca` = `Cmce`, `Abma` = `Aema`).
fn key_matches(db: &str, input: &str) -> bool {
    db.len() == input.len()
        && db.bytes().zip(input.bytes()).all(|(d, i)| d == i || (d == b'e' && matches!(i, b'a' | b'b' | b'c')))
}

/// Split `F d -3 m :2` into (`F d -3 m`, Some("2")); also `R -3 m H` (a trailing H/R axes letter
/// without the colon, as some programs write it) and ICSD's `F d -3 m Z` / `S`.
pub fn split_setting_code(symbol: &str) -> (String, Option<String>) {
    if let Some((s, code)) = symbol.split_once(':') {
        let code = code.trim();
        return (s.trim().to_string(), if code.is_empty() { None } else { Some(code.to_string()) });
    }
    let toks: Vec<&str> = symbol.split_whitespace().collect();
    // ICSD writes the origin choice as a trailing `S` (origin choice 1) or `Z` (2, origin at a
    // centre of symmetry). H-M symbols never end in an upper-case letter of their own.
    if toks.len() > 1 && matches!(toks.last(), Some(&"S") | Some(&"Z")) {
        let code = if toks.last() == Some(&"S") { "1" } else { "2" };
        return (toks[..toks.len() - 1].join(" "), Some(code.to_string()));
    }
    if toks.len() > 1 && toks[0].to_ascii_uppercase().starts_with('R') {
        if let Some(last) = toks.last() {
            if last.eq_ignore_ascii_case("h") || last.eq_ignore_ascii_case("r") {
                return (toks[..toks.len() - 1].join(" "), Some(last.to_ascii_uppercase()));
            }
        }
    }
    (symbol.trim().to_string(), None)
}

fn code_matches(setting: &str, code: &str) -> bool {
    let (s, c) = (setting.to_ascii_lowercase(), code.trim().to_ascii_lowercase());
    // `1`/`2` names the origin choice; an orthorhombic setting code may carry the axis
    // permutation after it (`1ba-c`), which the symbol itself already fixes.
    s == c || ((c == "1" || c == "2") && s.starts_with(&c))
}

/// Every database entry with its keys, built once.
fn keyed_entries() -> &'static [(HallSymbolEntry, Vec<String>)] {
    static KEYED: OnceLock<Vec<(HallSymbolEntry, Vec<String>)>> = OnceLock::new();
    KEYED.get_or_init(|| {
        all_entries()
            .map(|e| {
                let k = entry_keys(&e);
                (e, k)
            })
            .collect()
    })
}

/// International Tables number of a Hall setting.
pub fn number_of(hall_number: i32) -> Option<i32> {
    entry(hall_number).map(|e| e.number)
}

/// Hall settings a Hermann-Mauguin symbol can name, in database order, after the setting code
/// (`:1`, `:H`, `_space_group.IT_coordinate_system_code`) is applied. Empty when the symbol is
/// unknown; `Err` when the symbol is known but no setting has the code.
pub fn hm_candidates(symbol: &str, code: Option<&str>) -> Result<Vec<i32>, String> {
    let (sym, own_code) = split_setting_code(symbol);
    let key = hm_key(&sym);
    if key.is_empty() {
        return Ok(Vec::new());
    }
    let matched: Vec<&HallSymbolEntry> =
        keyed_entries().iter().filter(|(_, keys)| keys.iter().any(|k| key_matches(k, &key))).map(|(e, _)| e).collect();
    let code = own_code.as_deref().or(code);
    let Some(code) = code else {
        return Ok(matched.iter().map(|e| e.hall_number).collect());
    };
    let with_code: Vec<i32> = matched.iter().filter(|e| code_matches(e.setting, code)).map(|e| e.hall_number).collect();
    if with_code.is_empty() && !matched.is_empty() {
        // A `:1` on a group with a single origin says nothing; any other code that no setting
        // has is a contradiction.
        let single_origin = matched.iter().all(|e| !e.setting.starts_with(['1', '2']));
        if single_origin && (code == "1") {
            return Ok(matched.iter().map(|e| e.hall_number).collect());
        }
        return Err(format!("space group {symbol:?} has no setting {code:?}"));
    }
    Ok(with_code)
}

/// Hall settings for an International Tables number: the standard setting (unique axis b, cell
/// choice 1, origin choice 2, hexagonal axes), plus origin choice 1 and rhombohedral axes where
/// the group has them (the cell and the atom sites choose among these; see the CIF reader).
pub fn number_candidates(number: i32) -> Vec<i32> {
    if !(1..=230).contains(&number) {
        return Vec::new();
    }
    let Some(standard) = Setting::Standard.hall_number(number) else {
        return Vec::new();
    };
    let Some(std_entry) = entry(standard) else {
        return Vec::new();
    };
    let mut out = vec![standard];
    for e in all_entries().filter(|e| e.number == number && e.hall_number != standard) {
        let other_origin = matches!((std_entry.setting, e.setting), ("2", "1") | ("1", "2"));
        let rhombohedral = std_entry.setting == "H" && e.setting == "R";
        if other_origin || rhombohedral {
            out.push(e.hall_number);
        }
    }
    out
}

/// Hall setting named by a Hall symbol as written in a file, with the origin shift of a trailing
/// `(a b c)` (twelfths). Primes are written `'`/`"` in files and `^`/`=` in the database.
pub fn hall_candidate(symbol: &str) -> Option<(i32, Option<Vec3>)> {
    let mut text = symbol.replace('\'', "^").replace('"', "=");
    let mut shift = None;
    if let Some(p) = text.find('(') {
        let inner = text[p + 1..].trim_end().strip_suffix(')')?;
        let v: Vec<f64> = inner.split_whitespace().map(|t| t.parse::<f64>().ok()).collect::<Option<_>>()?;
        if v.len() != 3 || v.iter().any(|x| !x.is_finite()) {
            return None;
        }
        shift = Some([v[0] / 12.0, v[1] / 12.0, v[2] / 12.0]);
        text.truncate(p);
    }
    let key = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase();
    let k = key(&text);
    if k.is_empty() {
        return None;
    }
    all_entries().find(|e| key(e.hall_symbol) == k).map(|e| (e.hall_number, shift))
}

/// Operations of a Hall setting (with an optional origin shift).
pub fn ops_of(hall_number: i32, shift: Option<Vec3>) -> Option<SettingOps> {
    setting_ops(hall_number, shift)
}

fn metric(lattice: &Mat3) -> [[f64; 3]; 3] {
    let mut g = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            g[i][j] = (0..3).map(|k| lattice[i][k] * lattice[j][k]).sum();
        }
    }
    g
}

/// `R^T G R`.
fn transform_metric(r: &[[f64; 3]; 3], g: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut out = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            let mut s = 0.0;
            for a in 0..3 {
                for b in 0..3 {
                    s += r[a][i] * g[a][b] * r[b][j];
                }
            }
            out[i][j] = s;
        }
    }
    out
}

/// Largest relative deviation from an isometry of the cell over the operations (0 = exact).
pub fn metric_misfit(ops: &[SymOp], lattice: &Mat3) -> f64 {
    let g = metric(lattice);
    let scale = (0..3).map(|i| g[i][i]).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let mut worst: f64 = 0.0;
    for op in ops {
        let h = transform_metric(&op.rotation, &g);
        for i in 0..3 {
            for j in 0..3 {
                worst = worst.max((h[i][j] - g[i][j]).abs() / scale);
            }
        }
    }
    worst
}

/// Equal modulo 1, for translations already wrapped into [0, 1) (no rounding call: this runs in
/// the quadratic closure check).
fn same_translation(a: &Vec3, b: &Vec3) -> bool {
    (0..3).all(|d| {
        let x = (a[d] - b[d]).abs();
        x <= TRANSLATION_TOLERANCE || x >= 1.0 - TRANSLATION_TOLERANCE
    })
}

fn integer_rotation(op: &SymOp) -> Option<[[i32; 3]; 3]> {
    let mut r = [[0i32; 3]; 3];
    for (row, src) in r.iter_mut().zip(&op.rotation) {
        for (x, &v) in row.iter_mut().zip(src) {
            if (v - v.round()).abs() > 1e-6 || v.abs() > 8.0 {
                return None;
            }
            *x = v.round() as i32;
        }
    }
    Some(r)
}

/// An operation with its integer rotation part.
type IntOp = ([[i32; 3]; 3], Vec3);

/// Operations as (integer rotation, translation in [0, 1)), deduplicated.
fn canonical(ops: &[SymOp]) -> Result<Vec<IntOp>, String> {
    // Grouped by rotation while deduplicating, so the cost is linear in the number of operations
    // times the (few) translations that share a rotation.
    let mut groups: Vec<([[i32; 3]; 3], Vec<Vec3>)> = Vec::new();
    for op in ops {
        let r = integer_rotation(op).ok_or("an operation has a non-integer rotation part")?;
        let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
            + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
        if det.abs() != 1 {
            return Err(format!("an operation has a rotation part of determinant {det}, not +-1"));
        }
        let t = op.translation.map(wrap);
        match groups.iter_mut().find(|g| g.0 == r) {
            Some(g) => {
                if !g.1.iter().any(|t2| same_translation(t2, &t)) {
                    g.1.push(t);
                }
            }
            None => groups.push((r, vec![t])),
        }
    }
    Ok(groups.into_iter().flat_map(|(r, ts)| ts.into_iter().map(move |t| (r, t))).collect())
}

/// Check that the operations form a group modulo lattice translations (every product is in the
/// list). A list with a missing or extra operation does not describe a crystal.
pub fn check_closed(ops: &[SymOp]) -> Result<(), String> {
    let ops = canonical(ops)?;
    if ops.len() > MAX_OPERATIONS {
        return Err(format!(
            "{} distinct operations; a space group in any sensible cell has at most {MAX_OPERATIONS}",
            ops.len()
        ));
    }
    if !ops.iter().any(|(r, t)| *r == [[1, 0, 0], [0, 1, 0], [0, 0, 1]] && same_translation(t, &[0.0; 3])) {
        return Err("the operations do not include the identity x,y,z".into());
    }
    // Operations grouped by rotation (at most 48 distinct rotations in a crystallographic group,
    // more only if the list is wrong), with the rotation products tabulated once: the pair loop
    // then costs a 3x3 matrix-vector product and a look-up among a few translations.
    let mut rotations: Vec<[[i32; 3]; 3]> = Vec::new();
    let mut translations: Vec<Vec<Vec3>> = Vec::new();
    let mut index = Vec::with_capacity(ops.len());
    for (r, t) in &ops {
        let k = match rotations.iter().position(|x| x == r) {
            Some(k) => k,
            None => {
                rotations.push(*r);
                translations.push(Vec::new());
                rotations.len() - 1
            }
        };
        translations[k].push(*t);
        index.push(k);
    }
    if rotations.len() > 48 {
        return Err(format!("{} distinct rotation parts; a space group has at most 48", rotations.len()));
    }
    let mut sorted: Vec<([[i32; 3]; 3], usize)> = rotations.iter().copied().zip(0..).collect();
    sorted.sort_unstable();
    let mut product = vec![vec![None; rotations.len()]; rotations.len()];
    for (a, ra) in rotations.iter().enumerate() {
        for (b, rb) in rotations.iter().enumerate() {
            let mut r = [[0i32; 3]; 3];
            for (i, row) in r.iter_mut().enumerate() {
                for (j, x) in row.iter_mut().enumerate() {
                    *x = (0..3).map(|k| ra[i][k] * rb[k][j]).sum();
                }
            }
            product[a][b] = sorted.binary_search_by(|(x, _)| x.cmp(&r)).ok().map(|k| sorted[k].1);
        }
    }
    let not_closed =
        || format!("the {} operations do not form a group (the product of two of them is not listed)", ops.len());
    for ((r1, t1), &a) in ops.iter().zip(&index) {
        for ((_, t2), &b) in ops.iter().zip(&index) {
            let c = product[a][b].ok_or_else(not_closed)?;
            let mut t = *t1;
            for (i, ti) in t.iter_mut().enumerate() {
                *ti = wrap(*ti + (0..3).map(|j| r1[i][j] as f64 * t2[j]).sum::<f64>());
            }
            if !translations[c].iter().any(|t3| same_translation(t3, &t)) {
                return Err(not_closed());
            }
        }
    }
    Ok(())
}

/// Are `ops` exactly (as a set, translations modulo 1) the operations of one of the database
/// settings of space group `number`? The cheap test that settles files written in a tabulated
/// setting without calling [`identify_number`].
pub fn is_tabulated_setting_of(ops: &[SymOp], number: i32) -> bool {
    let Ok(mine) = canonical(ops) else {
        return false;
    };
    let mut rotations: Vec<[[i32; 3]; 3]> = mine.iter().map(|(r, _)| *r).collect();
    rotations.dedup();
    all_entries().filter(|e| e.number == number).any(|e| {
        let Some(theirs) = setting_ops(e.hall_number, None).and_then(|s| canonical(&s.ops).ok()) else {
            return false;
        };
        // Both lists are grouped by rotation (see `canonical`), so a rotation is found by a short
        // scan and then its few translations compared.
        theirs.len() == mine.len()
            && theirs
                .iter()
                .all(|(r, t)| rotations.contains(r) && mine.iter().any(|(r2, t2)| r2 == r && same_translation(t, t2)))
    })
}

/// International Tables number of the group generated by `ops` in the given cell, identified by
/// moyo. The group must be closed (see [`check_closed`]). The identification does not depend on
/// the setting, the origin or the choice of cell (a primitive cell of an F-centred group is
/// fine): moyo finds the symmetry of a pattern of two generic points, each repeated by the
/// operations, in the cell with its metric averaged over the operations (so that slightly
/// inconsistent cell parameters do not hide an operation).
pub fn identify_number(ops: &[SymOp], lattice: &Mat3) -> Result<i32, String> {
    let ops = canonical(ops)?;
    let mut rotations: Vec<[[i32; 3]; 3]> = ops.iter().map(|(r, _)| *r).collect();
    rotations.sort();
    rotations.dedup();
    let g = metric(lattice);
    let mut avg = [[0.0; 3]; 3];
    for r in &rotations {
        let rf = r.map(|row| row.map(|x| x as f64));
        let h = transform_metric(&rf, &g);
        for i in 0..3 {
            for j in 0..3 {
                avg[i][j] += h[i][j] / rotations.len() as f64;
            }
        }
    }
    let l = cholesky(&avg).ok_or("the cell metric is not positive definite")?;
    // Two orbits of different species: one orbit alone can have more symmetry than the group
    // (the orbit of a point under P1 is centrosymmetric), two generic ones cannot.
    let generic: [Vec3; 2] = [[0.1217, 0.2683, 0.3911], [0.4373, 0.0739, 0.1597]];
    let mut positions: Vec<Vector3<f64>> = Vec::new();
    let mut numbers: Vec<i32> = Vec::new();
    for (k, p) in generic.iter().enumerate() {
        let mut orbit: Vec<Vec3> = Vec::new();
        for (r, t) in &ops {
            let mut q = *t;
            for i in 0..3 {
                for j in 0..3 {
                    q[i] += r[i][j] as f64 * p[j];
                }
            }
            let q = q.map(wrap);
            if !orbit.iter().any(|o| same_translation(o, &q)) {
                orbit.push(q);
            }
        }
        for q in orbit {
            positions.push(Vector3::new(q[0], q[1], q[2]));
            numbers.push(k as i32 + 1);
        }
    }
    let basis = Matrix3::new(l[0][0], l[0][1], l[0][2], l[1][0], l[1][1], l[1][2], l[2][0], l[2][1], l[2][2]);
    let cell = Cell::new(Lattice::new(basis), positions, numbers);
    let dataset = MoyoDataset::with_default(&cell, 1e-3)
        .map_err(|e| format!("cannot identify the space group of the operations ({e})"))?;
    Ok(dataset.number)
}

/// Lower-triangular `L` with `L L^T = g` (rows are lattice vectors with metric `g`).
fn cholesky(g: &[[f64; 3]; 3]) -> Option<Mat3> {
    let mut l = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = g[i][i] - s;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i][j] = d.sqrt();
            } else {
                l[i][j] = (g[i][j] - s) / l[j][j];
            }
        }
    }
    Some(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structure::cif::parse_symop;
    use crate::structure::linalg::lattice_from_parameters;

    #[test]
    fn hm_symbols_name_the_expected_settings() {
        let number_of = |s: &str| -> Vec<i32> {
            hm_candidates(s, None).unwrap().iter().map(|h| entry(*h).unwrap().number).collect()
        };
        assert!(number_of("P 21/n").iter().all(|n| *n == 14) && !number_of("P 21/n").is_empty());
        assert_eq!(hm_candidates("P 1 21/n 1", None).unwrap(), vec![82]);
        assert_eq!(hm_candidates("P21/c", None).unwrap(), vec![81, 89]);
        assert_eq!(hm_candidates("Pnma", None).unwrap(), vec![292]);
        assert_eq!(hm_candidates("P n m a", None).unwrap(), vec![292]);
        assert_eq!(hm_candidates("F d -3 m :2", None).unwrap(), vec![526]);
        assert_eq!(hm_candidates("F d -3 m", Some("1")).unwrap(), vec![525]);
        assert_eq!(hm_candidates("Fd-3m", None).unwrap(), vec![525, 526]);
        assert_eq!(hm_candidates("R -3 m :H", None).unwrap(), vec![458]);
        assert_eq!(hm_candidates("R -3 m R", None).unwrap(), vec![459]);
        assert_eq!(hm_candidates("I 41/a m d :1", None).unwrap(), vec![426]);
        assert_eq!(hm_candidates("I 41/a m d S", None).unwrap(), vec![426]);
        assert_eq!(hm_candidates("F d -3 m Z", None).unwrap(), vec![526]);
        assert_eq!(hm_candidates("Cmca", None).unwrap(), vec![304]);
        assert_eq!(hm_candidates("Fm3m", None).unwrap(), vec![523]);
        assert_eq!(hm_candidates("P 63 m c", None).unwrap().len(), 1);
        assert!(hm_candidates("Q 9", None).unwrap().is_empty());
        assert!(hm_candidates("P n m a :H", None).is_err());
    }

    #[test]
    fn every_symbol_key_names_one_group_type() {
        // The lenient matching (e glide, old cubic symbols, short monoclinic forms) must never let
        // a symbol name two different space-group types.
        let entries: Vec<HallSymbolEntry> = all_entries().collect();
        assert_eq!(entries.len(), 530);
        for e in &entries {
            for k in entry_keys(e) {
                for other in &entries {
                    if entry_keys(other).iter().any(|k2| key_matches(k2, &k)) {
                        assert_eq!(other.number, e.number, "{k} names {} and {}", e.hm_full, other.hm_full);
                    }
                }
            }
        }
    }

    #[test]
    fn hall_symbols_and_numbers() {
        assert_eq!(hall_candidate("-P 2ybc"), Some((81, None)));
        assert_eq!(hall_candidate("I 4bw 2bw -1bw"), Some((426, None)));
        assert_eq!(hall_candidate("-R 3 2\""), Some((458, None)));
        assert_eq!(hall_candidate("P 1 (0 0 6)").map(|h| h.0), Some(1));
        assert_eq!(hall_candidate("-P 2ybc (0 0"), None);
        assert_eq!(hall_candidate(""), None);
        assert_eq!(hall_candidate("X 9 q"), None);
        assert_eq!(number_candidates(227), vec![526, 525]);
        assert_eq!(number_candidates(166), vec![458, 459]);
        assert_eq!(number_candidates(14), vec![81]);
        assert!(number_candidates(0).is_empty() && number_candidates(231).is_empty());
    }

    #[test]
    fn setting_ops_include_centering_and_form_groups() {
        for h in [1, 81, 82, 292, 426, 458, 459, 523, 525, 526] {
            let s = ops_of(h, None).unwrap();
            check_closed(&s.ops).unwrap();
        }
        assert_eq!(ops_of(523, None).unwrap().ops.len(), 192);
        assert_eq!(ops_of(458, None).unwrap().ops.len(), 36);
        assert_eq!(ops_of(459, None).unwrap().ops.len(), 12);
    }

    #[test]
    fn identification_ignores_setting_origin_and_cell_choice() {
        let mono = lattice_from_parameters(5.0, 6.0, 7.0, 90.0, 103.0, 90.0);
        for h in [81, 82, 83] {
            assert_eq!(identify_number(&ops_of(h, None).unwrap().ops, &mono).unwrap(), 14);
        }
        let shifted = ops_of(81, Some([0.25, 0.0, 0.25])).unwrap();
        assert_eq!(identify_number(&shifted.ops, &mono).unwrap(), 14);
        assert!(is_tabulated_setting_of(&ops_of(82, None).unwrap().ops, 14));
        assert!(!is_tabulated_setting_of(&shifted.ops, 14));
        assert!(!is_tabulated_setting_of(&ops_of(82, None).unwrap().ops, 13));
        // P 2/m has the same rotations as P 2_1/c but no screw or glide.
        let p2m: Vec<SymOp> =
            ["x,y,z", "-x,y,-z", "-x,-y,-z", "x,-y,z"].iter().map(|s| parse_symop(s).unwrap()).collect();
        assert_eq!(identify_number(&p2m, &mono).unwrap(), 10);
        // Fm-3m in its primitive rhombohedral cell (48 operations, no centering translations).
        let cubic = lattice_from_parameters(5.0, 5.0, 5.0, 90.0, 90.0, 90.0);
        assert_eq!(identify_number(&ops_of(523, None).unwrap().ops, &cubic).unwrap(), 225);
        let hex = lattice_from_parameters(4.0, 4.0, 9.0, 90.0, 90.0, 120.0);
        assert_eq!(identify_number(&ops_of(458, None).unwrap().ops, &hex).unwrap(), 166);
        let rho = lattice_from_parameters(5.0, 5.0, 5.0, 70.0, 70.0, 70.0);
        assert_eq!(identify_number(&ops_of(459, None).unwrap().ops, &rho).unwrap(), 166);
    }

    #[test]
    fn metric_misfit_separates_settings() {
        let hex = lattice_from_parameters(4.0, 4.0, 9.0, 90.0, 90.0, 120.0);
        let rho = lattice_from_parameters(5.0, 5.0, 5.0, 70.0, 70.0, 70.0);
        assert!(metric_misfit(&ops_of(458, None).unwrap().ops, &hex) < 1e-9);
        assert!(metric_misfit(&ops_of(459, None).unwrap().ops, &hex) > 1e-2);
        assert!(metric_misfit(&ops_of(459, None).unwrap().ops, &rho) < 1e-9);
        let mono_b = lattice_from_parameters(5.0, 6.0, 7.0, 90.0, 103.0, 90.0);
        assert!(metric_misfit(&ops_of(81, None).unwrap().ops, &mono_b) < 1e-9);
        assert!(metric_misfit(&ops_of(84, None).unwrap().ops, &mono_b) > 1e-2);
    }

    #[test]
    fn open_operation_lists_are_refused() {
        let ops: Vec<SymOp> = ["x,y,z", "-x,y+1/2,-z"].iter().map(|s| parse_symop(s).unwrap()).collect();
        check_closed(&ops).unwrap();
        let open: Vec<SymOp> = ["x,y,z", "-x,y+1/2,-z", "-x,-y,-z"].iter().map(|s| parse_symop(s).unwrap()).collect();
        assert!(check_closed(&open).unwrap_err().contains("do not form a group"));
        let no_identity: Vec<SymOp> = ["-x,-y,-z"].iter().map(|s| parse_symop(s).unwrap()).collect();
        assert!(check_closed(&no_identity).is_err());
    }
}
