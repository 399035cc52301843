//! CIF 1.1 reader for crystal structures.
//!
//! Handles: several `data_` blocks (one structure each; blocks without atom sites are skipped),
//! `loop_`s, quoted values (also, leniently, a quoted value that runs over several lines) and `;`
//! text fields, `#` comments, CRLF line endings, numbers with standard uncertainties
//! (`1.234(5)`), `?`/`.` values (`.` reads as 0 for a coordinate, as in pymatgen; `?` is an error
//! where a number is required).
//!
//! Symmetry (see `docs/structures.md`): the operation loop (`_symmetry_equiv_pos_as_xyz`,
//! `_space_group_symop_operation_xyz`, or the magnetic operation x centering loops without their
//! time-reversal field); without one, the operations of the Hall symbol, the H-M symbol or the IT
//! number ([`super::symmetry`]); identity when there is none of these. Superspace files are
//! refused. Each atom site is expanded by the operations, wrapped into [0, 1) and merged with
//! sites closer than [`CifOptions::site_tolerance`] (fractional, per axis, periodic). The element
//! comes from `_atom_site_type_symbol`, else from `_atom_site_label`. Like pymatgen, fractional
//! coordinates within a relative 1e-4 of 1/3 or 2/3 are snapped to them before expansion
//! (finite-precision CIFs such as 0.3333).

use std::collections::HashMap;

use super::linalg::{det3, frac_to_cart, lattice_from_parameters, Mat3, Vec3};
use super::symmetry;
use super::{parse_number, species_to_z, Structure};
use crate::error::CoreError;

/// What to do with sites whose occupancy is below 1 or which two species share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OccupancyPolicy {
    /// Refuse the structure with an error naming the file and line (default).
    #[default]
    Error,
    /// Keep, at each position, the species with the largest occupancy (the first listed on
    /// ties) as a fully occupied site. This produces an ordered approximation; use with care.
    Majority,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CifOptions {
    /// Two symmetry images closer than this (fractional units, every axis, modulo 1) are one site.
    pub site_tolerance: f64,
    /// Occupancies within this of 1 count as full.
    pub occupancy_tolerance: f64,
    pub occupancy_policy: OccupancyPolicy,
}

impl Default for CifOptions {
    fn default() -> Self {
        Self { site_tolerance: 1e-4, occupancy_tolerance: 1e-3, occupancy_policy: OccupancyPolicy::Error }
    }
}

#[derive(Debug, Clone)]
struct Token<'a> {
    text: &'a str,
    line: usize,
    quoted: bool,
}

fn perr(file: &str, line: usize, reason: impl Into<String>) -> CoreError {
    CoreError::Parse { file: file.into(), line, reason: reason.into() }
}

fn tokenize<'a>(text: &'a str, file: &str) -> Result<Vec<Token<'a>>, CoreError> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    // Byte offset of each line in `text`, so that a value spanning lines can be sliced from it.
    let mut offsets = Vec::with_capacity(lines.len());
    let mut off = 0;
    for raw in text.split('\n') {
        offsets.push(off);
        off += raw.len() + 1;
    }
    let mut k = 0;
    // Column at which to resume in line `k` (after a quoted value that ended on that line).
    let mut resume = 0;
    while k < lines.len() {
        let line = lines[k];
        if resume == 0 {
            if let Some(first) = line.strip_prefix(';') {
                // Text field: runs to the next line that starts with ';'. Only its first line is
                // kept as the value (enough for the tags read here).
                let start = k;
                k += 1;
                while k < lines.len() && !lines[k].starts_with(';') {
                    k += 1;
                }
                if k == lines.len() {
                    return Err(perr(file, start + 1, "unterminated ';' text field"));
                }
                out.push(Token { text: first.trim(), line: start + 1, quoted: true });
                k += 1;
                continue;
            }
        }
        let b = line.as_bytes();
        let mut p = resume;
        resume = 0;
        let mut next_line = k + 1;
        while p < b.len() {
            let c = b[p];
            if c.is_ascii_whitespace() {
                p += 1;
                continue;
            }
            if c == b'#' {
                break;
            }
            if c == b'\'' || c == b'"' {
                // A quote closes only when followed by whitespace or the end of the line.
                let closes = |bytes: &[u8], e: usize| {
                    bytes[e] == c && (e + 1 == bytes.len() || bytes[e + 1].is_ascii_whitespace())
                };
                let s = p + 1;
                if let Some(e) = (s..b.len()).find(|&e| closes(b, e)) {
                    out.push(Token { text: &line[s..e], line: k + 1, quoted: true });
                    p = e + 1;
                    continue;
                }
                // Not closed on its line: invalid CIF 1.1, but some programs write titles and
                // names this way. Accept it when the closing quote comes before the next line
                // that starts a tag, loop, block or text field, so an apostrophe in a name
                // cannot swallow the data that follows.
                let mut found = None;
                for (k2, l2) in lines.iter().enumerate().skip(k + 1) {
                    let t = l2.trim_start().to_ascii_lowercase();
                    if l2.starts_with(';') || t.starts_with('_') || t.starts_with("loop_") || t.starts_with("data_") {
                        break;
                    }
                    let b2 = l2.as_bytes();
                    if let Some(e) = (0..b2.len()).find(|&e| closes(b2, e)) {
                        found = Some((k2, e));
                        break;
                    }
                }
                let (k2, e) = found.ok_or_else(|| perr(file, k + 1, "unterminated quoted value"))?;
                out.push(Token { text: &text[offsets[k] + s..offsets[k2] + e], line: k + 1, quoted: true });
                next_line = k2;
                resume = e + 1;
                break;
            }
            let s = p;
            while p < b.len() && !b[p].is_ascii_whitespace() {
                p += 1;
            }
            out.push(Token { text: &line[s..p], line: k + 1, quoted: false });
        }
        k = next_line;
    }
    Ok(out)
}

/// One data block: tag (lowercase, `.` read as `_`) -> values with their line numbers.
#[derive(Debug, Default)]
struct Block<'a> {
    name: String,
    line: usize,
    items: HashMap<String, Vec<(&'a str, usize)>>,
}

fn is_keyword(t: &Token) -> bool {
    if t.quoted {
        return false;
    }
    let l = t.text.to_ascii_lowercase();
    t.text.starts_with('_')
        || l == "loop_"
        || l.starts_with("data_")
        || l.starts_with("save_")
        || l == "stop_"
        || l == "global_"
}

fn norm_tag(t: &str) -> String {
    t.to_ascii_lowercase().replace('.', "_")
}

fn parse_blocks<'a>(tokens: &[Token<'a>], file: &str) -> Result<Vec<Block<'a>>, CoreError> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut k = 0;
    while k < tokens.len() {
        let t = &tokens[k];
        let lower = t.text.to_ascii_lowercase();
        if !t.quoted && lower.starts_with("data_") {
            blocks.push(Block { name: t.text[5..].to_string(), line: t.line, ..Default::default() });
            k += 1;
            continue;
        }
        let block =
            blocks.last_mut().ok_or_else(|| perr(file, t.line, format!("{:?} before any data_ block", t.text)))?;
        if !t.quoted && lower == "loop_" {
            let mut tags = Vec::new();
            k += 1;
            while k < tokens.len() && !tokens[k].quoted && tokens[k].text.starts_with('_') {
                tags.push(norm_tag(tokens[k].text));
                k += 1;
            }
            if tags.is_empty() {
                return Err(perr(file, t.line, "loop_ without tags"));
            }
            let mut values = Vec::new();
            while k < tokens.len() && !is_keyword(&tokens[k]) {
                values.push(&tokens[k]);
                k += 1;
            }
            if values.len() % tags.len() != 0 {
                let line = values.last().map_or(t.line, |v| v.line);
                return Err(perr(
                    file,
                    line,
                    format!("loop of {} tags has {} values (not a multiple)", tags.len(), values.len()),
                ));
            }
            for (c, tag) in tags.iter().enumerate() {
                let col = values.iter().skip(c).step_by(tags.len()).map(|v| (v.text, v.line)).collect();
                block.items.insert(tag.clone(), col);
            }
            continue;
        }
        if !t.quoted && t.text.starts_with('_') {
            match tokens.get(k + 1) {
                Some(v) if !is_keyword(v) => {
                    block.items.insert(norm_tag(t.text), vec![(v.text, v.line)]);
                    k += 2;
                }
                _ => return Err(perr(file, t.line, format!("tag {} has no value", t.text))),
            }
            continue;
        }
        if !t.quoted && (lower.starts_with("save_") || lower == "global_" || lower == "stop_") {
            k += 1;
            continue;
        }
        return Err(perr(file, t.line, format!("unexpected value {:?} outside a loop", t.text)));
    }
    Ok(blocks)
}

/// A symmetry operation `f' = R f + t` on fractional coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SymOp {
    pub rotation: [[f64; 3]; 3],
    pub translation: Vec3,
}

impl SymOp {
    pub fn apply(&self, f: &Vec3) -> Vec3 {
        let mut out = self.translation;
        for (r, o) in out.iter_mut().enumerate() {
            for (c, x) in f.iter().enumerate() {
                *o += self.rotation[r][c] * x;
            }
        }
        out
    }
}

fn parse_fraction(s: &str) -> Option<f64> {
    match s.split_once('/') {
        Some((a, b)) => {
            let (a, b): (f64, f64) = (a.parse().ok()?, b.parse().ok()?);
            if b == 0.0 {
                None
            } else {
                Some(a / b)
            }
        }
        None => s.parse().ok(),
    }
}

/// Parse an operation such as `-x+1/2, y, 1/2+z` or `x-y,x,z+1/3`.
pub fn parse_symop(text: &str) -> Option<SymOp> {
    let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    let parts: Vec<&str> = cleaned.split(',').collect();
    if parts.len() != 3 {
        return None;
    }
    let mut op = SymOp { rotation: [[0.0; 3]; 3], translation: [0.0; 3] };
    for (r, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return None;
        }
        let b = part.as_bytes();
        let mut p = 0;
        while p < b.len() {
            let mut sign = 1.0;
            if b[p] == b'+' || b[p] == b'-' {
                if b[p] == b'-' {
                    sign = -1.0;
                }
                p += 1;
            }
            let s = p;
            while p < b.len() && (b[p].is_ascii_digit() || b[p] == b'.' || b[p] == b'/') {
                p += 1;
            }
            let number = if p > s { Some(parse_fraction(&part[s..p])?) } else { None };
            if p < b.len() && b[p] == b'*' {
                p += 1;
            }
            if p < b.len() && matches!(b[p], b'x' | b'y' | b'z') {
                let c = (b[p] - b'x') as usize;
                op.rotation[r][c] += sign * number.unwrap_or(1.0);
                p += 1;
            } else {
                op.translation[r] += sign * number?;
            }
        }
    }
    Some(op)
}

fn wrap01(x: f64) -> f64 {
    let w = x - x.floor();
    // x - floor(x) can round to exactly 1.0 for tiny negative x.
    if w >= 1.0 {
        0.0
    } else {
        w
    }
}

fn close_pbc(a: &Vec3, b: &Vec3, tol: f64) -> bool {
    (0..3).all(|d| {
        let x = a[d] - b[d];
        (x - x.round()).abs() <= tol
    })
}

fn snap_third(x: f64) -> f64 {
    for c in [1.0 / 3.0, 2.0 / 3.0] {
        if (x / c - 1.0).abs() <= 1e-4 {
            return c;
        }
    }
    x
}

fn required_number(block: &Block, tag: &str, file: &str) -> Result<f64, CoreError> {
    let (v, line) = block
        .items
        .get(tag)
        .and_then(|v| v.first())
        .copied()
        .ok_or_else(|| perr(file, block.line, format!("data_{}: missing {tag}", block.name)))?;
    parse_number(v).ok_or_else(|| perr(file, line, format!("{tag}: expected a number, got {v:?}")))
}

/// The first of `tags` present with a value other than `?`/`.`: (value, line, tag).
fn single<'a>(block: &Block<'a>, tags: &[&'static str]) -> Option<(&'a str, usize, &'static str)> {
    tags.iter().find_map(|tag| {
        let (v, line) = *block.items.get(*tag)?.first()?;
        let v = v.trim();
        if v.is_empty() || v == "?" || v == "." {
            None
        } else {
            Some((v, line, *tag))
        }
    })
}

const OPS_TAGS: [&str; 2] = ["_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz"];
/// `_space_group_symop_magn_operation.xyz` and `_space_group_symop.magn_operation_xyz` (`.` read as `_`).
const MAGN_OPS_TAG: &str = "_space_group_symop_magn_operation_xyz";
const MAGN_CENTERING_TAG: &str = "_space_group_symop_magn_centering_xyz";
const HALL_TAGS: [&str; 2] = ["_space_group_name_hall", "_symmetry_space_group_name_hall"];
const HM_TAGS: [&str; 2] = ["_space_group_name_h-m_alt", "_symmetry_space_group_name_h-m"];
const NUMBER_TAGS: [&str; 2] = ["_space_group_it_number", "_symmetry_int_tables_number"];
const CODE_TAG: &str = "_space_group_it_coordinate_system_code";

/// Refuse superspace (incommensurately modulated) descriptions: their atoms are not at the
/// positions of a 3D space group, so expanding the basic sites would be silently wrong.
fn refuse_superspace(block: &Block, file: &str) -> Result<(), CoreError> {
    let mut found: Option<(usize, &str)> = None;
    for (tag, values) in &block.items {
        let superspace = tag.contains("_ssg_")
            || tag.starts_with("_space_group_ssg")
            || tag.starts_with("_cell_wave_vector")
            || tag.starts_with("_cell_subsystem")
            || tag.starts_with("_atom_site_fourier")
            || tag.starts_with("_atom_site_displace_fourier")
            || tag.starts_with("_atom_site_occ_fourier")
            || tag.starts_with("_atom_site_moment_fourier")
            || tag.starts_with("_atom_site_u_fourier")
            || tag.starts_with("_atom_site_modulation")
            || (tag == "_cell_modulation_dimension"
                && values.first().is_some_and(|(v, _)| !matches!(v.trim(), "0" | "?" | ".")));
        let line = values.first().map_or(block.line, |v| v.1);
        if superspace && found.is_none_or(|(l, _)| line < l) {
            found = Some((line, tag));
        }
    }
    match found {
        Some((line, tag)) => Err(perr(
            file,
            line,
            format!(
                "data_{}: {tag} describes a superspace (incommensurately modulated) structure; only commensurate \
                 3D structures can be read",
                block.name
            ),
        )),
        None => Ok(()),
    }
}

/// An operation from an operation loop; magnetic loops carry a fourth, time-reversal field
/// (`x,y,-z,-1`) that does not move atoms and is dropped.
fn read_op(text: &str, line: usize, file: &str, magnetic: bool) -> Result<SymOp, CoreError> {
    let lower = text.to_ascii_lowercase();
    if lower.contains("x4") {
        return Err(perr(
            file,
            line,
            format!("superspace operation {text:?}: only commensurate 3D structures can be read"),
        ));
    }
    let spatial = if magnetic {
        match text.rsplit_once(',') {
            Some((xyz, tr)) if matches!(tr.trim(), "+1" | "-1" | "1") => xyz,
            _ => {
                return Err(perr(
                    file,
                    line,
                    format!("magnetic operation {text:?} lacks its time-reversal field (+1 or -1)"),
                ))
            }
        }
    } else {
        text
    };
    parse_symop(spatial).ok_or_else(|| perr(file, line, format!("cannot read symmetry operation {text:?}")))
}

fn compose(a: &SymOp, b: &SymOp) -> SymOp {
    // (Ra, ta)(Rb, tb) = (Ra Rb, Ra tb + ta)
    let mut out = SymOp { rotation: [[0.0; 3]; 3], translation: a.apply(&b.translation) };
    for i in 0..3 {
        for j in 0..3 {
            out.rotation[i][j] = (0..3).map(|k| a.rotation[i][k] * b.rotation[k][j]).sum();
        }
    }
    out
}

/// The file's own operations (line of the loop, description), if it lists any.
fn file_ops(block: &Block, file: &str) -> Result<Option<(Vec<SymOp>, usize, String)>, CoreError> {
    for tag in OPS_TAGS {
        if let Some(v) = block.items.get(tag) {
            let ops = v.iter().map(|(t, l)| read_op(t, *l, file, false)).collect::<Result<Vec<_>, _>>()?;
            return Ok(Some((ops, v.first().map_or(block.line, |x| x.1), tag.to_string())));
        }
    }
    if let Some(v) = block.items.get(MAGN_OPS_TAG) {
        let ops = v.iter().map(|(t, l)| read_op(t, *l, file, true)).collect::<Result<Vec<_>, _>>()?;
        let centerings = match block.items.get(MAGN_CENTERING_TAG) {
            Some(c) => c.iter().map(|(t, l)| read_op(t, *l, file, true)).collect::<Result<Vec<_>, _>>()?,
            None => {
                vec![SymOp { rotation: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], translation: [0.0; 3] }]
            }
        };
        let all = ops.iter().flat_map(|g| centerings.iter().map(move |c| compose(g, c))).collect();
        return Ok(Some((
            all,
            v.first().map_or(block.line, |x| x.1),
            format!("{MAGN_OPS_TAG} x {MAGN_CENTERING_TAG}"),
        )));
    }
    Ok(None)
}

/// What the file says about its space group besides the operations.
struct Symbols<'a> {
    hall: Option<(&'a str, usize, &'static str)>,
    hm: Option<(&'a str, usize, &'static str)>,
    number: Option<(&'a str, usize, &'static str)>,
    code: Option<&'a str>,
}

impl<'a> Symbols<'a> {
    fn read(block: &Block<'a>) -> Self {
        Self {
            hall: single(block, &HALL_TAGS),
            hm: single(block, &HM_TAGS),
            number: single(block, &NUMBER_TAGS),
            code: single(block, &[CODE_TAG]).map(|v| v.0),
        }
    }

    /// (tag, value, line, IT number) of each symbol present: `Err` for one that cannot be read.
    fn each_claim(&self, file: &str) -> Vec<Result<Claim<'a>, CoreError>> {
        let mut out = Vec::new();
        if let Some((v, line, tag)) = self.hall {
            out.push(
                symmetry::hall_candidate(v)
                    .and_then(|(h, _)| symmetry::number_of(h))
                    .map(|n| (tag, v, line, n))
                    .ok_or_else(|| perr(file, line, format!("{tag}: unknown Hall symbol {v:?}"))),
            );
        }
        if let Some((v, line, tag)) = self.hm {
            out.push(match symmetry::hm_candidates(v, self.code) {
                Err(e) => Err(perr(file, line, format!("{tag}: {e}"))),
                Ok(c) => c
                    .first()
                    .and_then(|h| symmetry::number_of(*h))
                    .map(|n| (tag, v, line, n))
                    .ok_or_else(|| perr(file, line, format!("{tag}: unknown space-group symbol {v:?}"))),
            });
        }
        if let Some((v, line, tag)) = self.number {
            out.push(
                parse_number(v)
                    .filter(|n| n.fract() == 0.0 && (1.0..=230.0).contains(n))
                    .map(|n| (tag, v, line, n as i32))
                    .ok_or_else(|| perr(file, line, format!("{tag}: {v:?} is not a space-group number (1-230)"))),
            );
        }
        out
    }
}

/// (tag, value, line, International Tables number) of a space-group symbol in a file.
type Claim<'a> = (&'static str, &'a str, usize, i32);

/// The candidate operation sets for a block, best first. More than one only when the symbol
/// leaves the origin choice open; the atom sites then decide (see [`choose_origin`]).
fn block_symmetry(block: &Block, file: &str, lattice: &Mat3) -> Result<Vec<(String, Vec<SymOp>)>, CoreError> {
    refuse_superspace(block, file)?;
    let symbols = Symbols::read(block);
    if let Some((ops, line, tag)) = file_ops(block, file)? {
        symmetry::check_closed(&ops).map_err(|e| perr(file, line, format!("{tag}: {e}")))?;
        // The operations are what the atoms were written against (pymatgen trusts them too), so
        // a symbol naming another setting or origin of the same group is fine; a symbol naming
        // another group is a contradiction. A symbol that cannot be read is ignored here: the
        // operations alone define the structure.
        let claims: Vec<Claim> = symbols.each_claim(file).into_iter().filter_map(Result::ok).collect();
        // Most files list a tabulated setting of the group they name; only the others need
        // moyo's identification (1-100 ms).
        let mut numbers: Vec<i32> = claims.iter().map(|c| c.3).collect();
        numbers.sort_unstable();
        numbers.dedup();
        let tabulated: Vec<i32> = numbers.into_iter().filter(|n| symmetry::is_tabulated_setting_of(&ops, *n)).collect();
        let untabulated: Vec<&Claim> = claims.iter().filter(|c| !tabulated.contains(&c.3)).collect();
        if !untabulated.is_empty() {
            let found =
                symmetry::identify_number(&ops, lattice).map_err(|e| perr(file, line, format!("{tag}: {e}")))?;
            if let Some((ctag, v, cline, n)) = untabulated.into_iter().find(|c| c.3 != found) {
                return Err(perr(
                    file,
                    *cline,
                    format!(
                        "data_{}: {ctag} {v:?} names space group {n}, but the {} symmetry operations at line {line} \
                         form space group {found}; the file contradicts itself",
                        block.name,
                        ops.len()
                    ),
                ));
            }
        }
        return Ok(vec![(tag, ops)]);
    }
    if let Some((v, line, tag)) = single(
        block,
        &[
            "_space_group_magn_name_bns",
            "_space_group_magn_number_bns",
            "_space_group_magn_name_og",
            "_space_group_magn_number_og",
            "_space_group_magn_uni_name",
            "_space_group_magn_name_uni",
        ],
    ) {
        return Err(perr(
            file,
            line,
            format!("{tag} {v:?} without a magnetic operation loop ({MAGN_OPS_TAG}): magnetic groups are read from their operations only"),
        ));
    }
    let claims: Vec<Claim> = symbols.each_claim(file).into_iter().collect::<Result<_, _>>()?;
    if let Some(w) = claims.windows(2).find(|w| w[0].3 != w[1].3) {
        return Err(perr(
            file,
            w[1].2,
            format!(
                "data_{}: {} {:?} (space group {}) and {} {:?} (space group {}) disagree, and there is no operation loop",
                block.name, w[0].0, w[0].1, w[0].3, w[1].0, w[1].1, w[1].3
            ),
        ));
    }
    let (hall_numbers, shift, what, line) = if let Some((v, line, tag)) = symbols.hall {
        let (h, shift) =
            symmetry::hall_candidate(v).ok_or_else(|| perr(file, line, format!("{tag}: unknown Hall symbol {v:?}")))?;
        (vec![h], shift, format!("{tag} {v:?}"), line)
    } else if let Some((v, line, tag)) = symbols.hm {
        let c = symmetry::hm_candidates(v, symbols.code).map_err(|e| perr(file, line, format!("{tag}: {e}")))?;
        (c, None, format!("{tag} {v:?}"), line)
    } else if let Some((v, line, tag)) = symbols.number {
        (symmetry::number_candidates(claims.last().map_or(0, |c| c.3)), None, format!("{tag} {v:?}"), line)
    } else {
        if let Some((tag, values)) = block
            .items
            .iter()
            .filter(|(t, _)| t.starts_with("_parent_space_group"))
            .min_by_key(|(_, v)| v.first().map_or(0, |x| x.1))
        {
            return Err(perr(
                file,
                values.first().map_or(block.line, |x| x.1),
                format!(
                    "data_{}: only a parent space group ({tag}) is given, not the structure's own operations or symbol",
                    block.name
                ),
            ));
        }
        return Ok(vec![("identity (no symmetry given)".into(), vec![identity()])]);
    };
    let settings: Vec<symmetry::SettingOps> = hall_numbers.iter().filter_map(|h| symmetry::ops_of(*h, shift)).collect();
    let fitting: Vec<&symmetry::SettingOps> =
        settings.iter().filter(|s| symmetry::metric_misfit(&s.ops, lattice) <= symmetry::METRIC_TOLERANCE).collect();
    let Some(first) = fitting.first() else {
        let names: Vec<String> = settings.iter().map(|s| s.describe()).collect();
        return Err(perr(
            file,
            line,
            format!(
                "data_{}: {what}: the operations of {} do not fit the cell parameters (wrong setting or axes?)",
                block.name,
                names.join(" / ")
            ),
        ));
    };
    // Settings that fit the cell equally well and differ only in the origin choice (`1` / `2`).
    let origin_swapped = |a: &str, b: &str| {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        !a.is_empty()
            && !b.is_empty()
            && a[0] != b[0]
            && matches!(a[0], b'1' | b'2')
            && matches!(b[0], b'1' | b'2')
            && a[1..] == b[1..]
    };
    let mut out = vec![(format!("{what}: {}", first.describe()), first.ops.clone())];
    for s in fitting.iter().skip(1) {
        if s.number == first.number && origin_swapped(first.setting, s.setting) {
            out.push((format!("{what}: {}", s.describe()), s.ops.clone()));
        }
    }
    Ok(out)
}

fn identity() -> SymOp {
    SymOp { rotation: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], translation: [0.0; 3] }
}

/// One `_atom_site` row.
struct AtomSite {
    frac: Vec3,
    z: u8,
    occupancy: f64,
    line: usize,
    /// `_atom_site_symmetry_multiplicity`, when given.
    multiplicity: Option<usize>,
}

/// Unique sites (position, Z, occupancy, line) after expansion, and the orbit size of each row.
type Expanded = (Vec<(Vec3, u8, f64, usize)>, Vec<usize>);

fn expand(atoms: &[AtomSite], ops: &[SymOp], file: &str, opts: &CifOptions) -> Result<Expanded, CoreError> {
    let mut sites: Vec<(Vec3, u8, f64, usize)> = Vec::new();
    let mut orbit_sizes = Vec::with_capacity(atoms.len());
    for atom in atoms {
        let mut own: Vec<Vec3> = Vec::new();
        for op in ops {
            let g = op.apply(&atom.frac);
            let g = [wrap01(g[0]), wrap01(g[1]), wrap01(g[2])];
            if !own.iter().any(|o| close_pbc(o, &g, opts.site_tolerance)) {
                own.push(g);
            }
        }
        orbit_sizes.push(own.len());
        for g in own {
            match sites.iter_mut().find(|s| close_pbc(&s.0, &g, opts.site_tolerance)) {
                Some(existing) if existing.1 == atom.z => {
                    existing.2 = existing.2.max(atom.occupancy);
                }
                Some(existing) => match opts.occupancy_policy {
                    OccupancyPolicy::Error => {
                        return Err(perr(
                            file,
                            atom.line,
                            format!(
                                "site shares its position with another species (line {}): disordered structure; \
                                 pass occupancy_policy=\"majority\" to keep the majority species",
                                existing.3
                            ),
                        ))
                    }
                    OccupancyPolicy::Majority => {
                        if atom.occupancy > existing.2 {
                            *existing = (g, atom.z, atom.occupancy, atom.line);
                        }
                    }
                },
                None => sites.push((g, atom.z, atom.occupancy, atom.line)),
            }
        }
    }
    Ok((sites, orbit_sizes))
}

/// Shortest distance (angstrom) between two of the sites, over neighbouring cells.
fn min_distance(sites: &[(Vec3, u8, f64, usize)], lattice: &Mat3) -> f64 {
    let mut best = f64::INFINITY;
    for (a, sa) in sites.iter().enumerate() {
        for sb in &sites[a + 1..] {
            let d: Vec3 = [0, 1, 2].map(|k| {
                let x = sb.0[k] - sa.0[k];
                x - x.round()
            });
            for i in -1..=1 {
                for j in -1..=1 {
                    for k in -1..=1 {
                        let f = [d[0] + i as f64, d[1] + j as f64, d[2] + k as f64];
                        let r = frac_to_cart(&f, lattice);
                        best = best.min((r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt());
                    }
                }
            }
        }
    }
    best
}

/// Atoms closer than this (angstrom) after expansion mean the operations put sites on top of
/// each other: the wrong origin choice.
const IMPLAUSIBLE_DISTANCE: f64 = 0.5;

/// Expand with the one candidate, or, when the symbol leaves the origin choice open, with the
/// one candidate that the atom sites agree with: it must reproduce every
/// `_atom_site_symmetry_multiplicity` given and put no two atoms closer than 0.5 angstrom.
fn choose_origin(
    candidates: &[(String, Vec<SymOp>)],
    atoms: &[AtomSite],
    lattice: &Mat3,
    block: &Block,
    file: &str,
    opts: &CifOptions,
) -> Result<Expanded, CoreError> {
    if let [(_, ops)] = candidates {
        return expand(atoms, ops, file, opts);
    }
    let mut plausible = Vec::new();
    for (name, ops) in candidates {
        let Ok((sites, orbits)) = expand(atoms, ops, file, opts) else { continue };
        let multiplicities_ok = atoms.iter().zip(&orbits).all(|(a, n)| a.multiplicity.is_none_or(|m| m == *n));
        if multiplicities_ok && min_distance(&sites, lattice) >= IMPLAUSIBLE_DISTANCE {
            plausible.push((name, (sites, orbits)));
        }
    }
    let names: Vec<&str> = candidates.iter().map(|c| c.0.as_str()).collect();
    match plausible.len() {
        1 => Ok(plausible.remove(0).1),
        0 => Err(perr(
            file,
            block.line,
            format!(
                "data_{}: no origin choice of the space group gives a plausible structure (atom-site multiplicities \
                 differ or atoms closer than {IMPLAUSIBLE_DISTANCE} A): tried {}",
                block.name,
                names.join("; ")
            ),
        )),
        _ => Err(perr(
            file,
            block.line,
            format!(
                "data_{}: the space group has two origin choices and the file does not say which ({}); add ':1' or \
                 ':2' to the symbol, {CODE_TAG}, a Hall symbol, the operation loop or _atom_site_symmetry_multiplicity",
                block.name,
                names.join("; ")
            ),
        )),
    }
}

fn structure_from_block(block: &Block, file: &str, opts: &CifOptions) -> Result<Option<Structure>, CoreError> {
    let fx = match block.items.get("_atom_site_fract_x") {
        Some(v) => v,
        None => return Ok(None),
    };
    let col = |tag: &str| -> Result<&Vec<(&str, usize)>, CoreError> {
        block.items.get(tag).ok_or_else(|| perr(file, block.line, format!("data_{}: missing {tag}", block.name)))
    };
    let (fy, fz) = (col("_atom_site_fract_y")?, col("_atom_site_fract_z")?);
    let lattice = lattice_from_parameters(
        required_number(block, "_cell_length_a", file)?,
        required_number(block, "_cell_length_b", file)?,
        required_number(block, "_cell_length_c", file)?,
        required_number(block, "_cell_angle_alpha", file)?,
        required_number(block, "_cell_angle_beta", file)?,
        required_number(block, "_cell_angle_gamma", file)?,
    );
    if det3(&lattice).abs() < super::MIN_VOLUME || lattice.iter().flatten().any(|x| !x.is_finite()) {
        return Err(perr(file, block.line, "cell volume is zero"));
    }
    let candidates = block_symmetry(block, file, &lattice)?;
    let symbols = block
        .items
        .get("_atom_site_type_symbol")
        .or_else(|| block.items.get("_atom_site_label"))
        .ok_or_else(|| perr(file, block.line, "no _atom_site_type_symbol or _atom_site_label"))?;
    let occupancy = block.items.get("_atom_site_occupancy");
    let multiplicity = block.items.get("_atom_site_symmetry_multiplicity");
    let n = fx.len();
    if fy.len() != n
        || fz.len() != n
        || symbols.len() != n
        || occupancy.is_some_and(|o| o.len() != n)
        || multiplicity.is_some_and(|m| m.len() != n)
    {
        return Err(perr(file, fx.first().map_or(block.line, |v| v.1), "atom-site columns have different lengths"));
    }
    let mut atoms = Vec::with_capacity(n);
    for a in 0..n {
        let line = fx[a].1;
        let mut f = [0.0; 3];
        for (d, colv) in [fx, fy, fz].iter().enumerate() {
            let (t, l) = colv[a];
            // `.` (inapplicable) reads as 0, as pymatgen reads it; `?` (unknown) is an error.
            let x = if t == "." { Some(0.0) } else { parse_number(t) };
            f[d] = snap_third(x.ok_or_else(|| perr(file, l, format!("fractional coordinate {t:?} is not a number")))?);
        }
        let (sym, sl) = symbols[a];
        let z = species_to_z(sym).ok_or_else(|| perr(file, sl, format!("unknown species {sym:?}")))?;
        let occ = match occupancy {
            Some(o) => {
                let (t, l) = o[a];
                if t == "?" || t == "." {
                    1.0
                } else {
                    parse_number(t).ok_or_else(|| perr(file, l, format!("occupancy {t:?} is not a number")))?
                }
            }
            None => 1.0,
        };
        let mult = multiplicity.and_then(|m| {
            let x = parse_number(m[a].0)?;
            (x >= 1.0 && x.fract() == 0.0 && x <= 1e6).then_some(x as usize)
        });
        atoms.push(AtomSite { frac: f, z, occupancy: occ, line, multiplicity: mult });
    }
    let (sites, _) = choose_origin(&candidates, &atoms, &lattice, block, file, opts)?;
    if opts.occupancy_policy == OccupancyPolicy::Error {
        if let Some(s) = sites.iter().find(|s| (s.2 - 1.0).abs() > opts.occupancy_tolerance) {
            return Err(perr(
                file,
                s.3,
                format!(
                    "partial occupancy {} is not supported; pass occupancy_policy=\"majority\" to treat sites as fully occupied",
                    s.2
                ),
            ));
        }
    }
    let mut s =
        Structure::new(lattice, sites.iter().map(|s| s.0).collect(), sites.iter().map(|s| s.1).collect(), [true; 3]);
    s.id = Some(format!("{file}:data_{}", block.name));
    Ok(Some(s))
}

/// Parse every structure in a CIF file (one per data block with atom sites).
pub fn parse_cif(text: &str, file: &str, opts: &CifOptions) -> Result<Vec<Structure>, CoreError> {
    let tokens = tokenize(text, file)?;
    let blocks = parse_blocks(&tokens, file)?;
    let mut out = Vec::new();
    for b in &blocks {
        if let Some(s) = structure_from_block(b, file, opts)? {
            out.push(s);
        }
    }
    if out.is_empty() {
        return Err(perr(file, 0, "no data block with atom sites (_atom_site_fract_x)"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CELL: &str = "data_t\n_cell_length_a 4.2\n_cell_length_b 4.2\n_cell_length_c 4.2\n_cell_angle_alpha 90\n\
                        _cell_angle_beta 90\n_cell_angle_gamma 90\n";
    const NACL: &str = "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n\
                        _atom_site_fract_z\nNa1 Na 0 0 0\nCl1 Cl 0.5 0.5 0.5\n";

    fn parse(text: &str) -> Result<Vec<Structure>, CoreError> {
        parse_cif(text, "t.cif", &CifOptions::default())
    }

    fn reason(r: Result<Vec<Structure>, CoreError>) -> (usize, String) {
        match r {
            Err(CoreError::Parse { file, line, reason }) => {
                assert_eq!(file, "t.cif");
                (line, reason)
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn rock_salt_from_each_kind_of_symbol() {
        for header in [
            "_symmetry_space_group_name_H-M 'F m -3 m'\n",
            "_space_group.name_H-M_alt 'Fm-3m'\n",
            "_space_group_name_Hall '-F 4 2 3'\n",
            "_symmetry_Int_Tables_number 225\n",
            "_space_group_IT_number 225\n_symmetry_space_group_name_H-M 'F m 3 m'\n",
        ] {
            let s = parse(&format!("{CELL}{header}{NACL}")).unwrap();
            assert_eq!(s[0].n_sites(), 8, "{header}");
        }
        assert_eq!(parse(&format!("{CELL}{NACL}")).unwrap()[0].n_sites(), 2);
    }

    #[test]
    fn magnetic_operations_times_centerings() {
        let ops = "loop_\n_space_group_symop_magn_operation.id\n_space_group_symop_magn_operation.xyz\n1 x,y,z,+1\n\
                   loop_\n_space_group_symop_magn_centering.id\n_space_group_symop_magn_centering.xyz\n\
                   1 x,y,z,+1\n2 x+1/2,y+1/2,z,-1\n3 x+1/2,y,z+1/2,-1\n4 x,y+1/2,z+1/2,+1\n";
        assert_eq!(parse(&format!("{CELL}{ops}{NACL}")).unwrap()[0].n_sites(), 8);
    }

    #[test]
    fn refusals_name_the_line_and_reason() {
        let (line, r) = reason(parse(&format!("{CELL}_cell_modulation_dimension 1\n{NACL}")));
        assert!(line == 8 && r.contains("superspace"), "{line} {r}");
        let (_, r) = reason(parse(&format!(
            "{CELL}loop_\n_symmetry_equiv_pos_as_xyz\nx,y,z\n-x,-y,-z\n\
                                           _symmetry_space_group_name_H-M 'P 1'\n{NACL}"
        )));
        assert!(r.contains("names space group 1") && r.contains("form space group 2"), "{r}");
        let (_, r) = reason(parse(&format!("{CELL}_symmetry_space_group_name_H-M 'P 6/m m m'\n{NACL}")));
        assert!(r.contains("do not fit the cell"), "{r}");
        let (_, r) = reason(parse(&format!("{CELL}_symmetry_space_group_name_H-M 'Q 42'\n{NACL}")));
        assert!(r.contains("unknown space-group symbol"), "{r}");
        let (_, r) = reason(parse(&format!("{CELL}_parent_space_group.name_H-M_alt 'P m -3 m'\n{NACL}")));
        assert!(r.contains("parent space group"), "{r}");
        let (_, r) = reason(parse(&format!("{CELL}loop_\n_symmetry_equiv_pos_as_xyz\nx1,x2,x3,x4\n{NACL}")));
        assert!(r.contains("superspace"), "{r}");
    }

    #[test]
    fn dot_coordinates_and_multiline_quotes() {
        let text = format!(
            "{CELL}_chemical_name_common 'sodium\n chloride'\n_space_group_IT_number 225\n\
             loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nNa1 . . .\nCl1 0.5 0.5 0.5\n"
        );
        assert_eq!(parse(&text).unwrap()[0].n_sites(), 8);
        let unclosed = format!("{CELL}_chemical_name_common 'sodium\n_space_group_IT_number 225\n{NACL}");
        let (line, r) = reason(parse(&unclosed));
        assert_eq!((line, r.as_str()), (8, "unterminated quoted value"));
        let unknown = format!(
            "{CELL}loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nNa1 ? 0 0\n"
        );
        assert!(reason(parse(&unknown)).1.contains("not a number"));
    }
}
