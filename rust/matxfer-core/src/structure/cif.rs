//! CIF 1.1 reader for crystal structures.
//!
//! Handles: several `data_` blocks (one structure each; blocks without atom sites are skipped),
//! `loop_`s, quoted values and `;` text fields, `#` comments, CRLF line endings, numbers with
//! standard uncertainties (`1.234(5)`), `?`/`.` values (an error where a number is required).
//! Symmetry operations come from `_symmetry_equiv_pos_as_xyz` or
//! `_space_group_symop_operation_xyz` (identity when absent); each atom site is expanded by them,
//! wrapped into [0, 1) and merged with sites closer than [`CifOptions::site_tolerance`]
//! (fractional, per axis, periodic). The element comes from `_atom_site_type_symbol`, else from
//! `_atom_site_label`. Like pymatgen, fractional coordinates within a relative 1e-4 of 1/3 or 2/3
//! are snapped to them before expansion (finite-precision CIFs such as 0.3333).

use std::collections::HashMap;

use super::linalg::{lattice_from_parameters, Vec3};
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
    let mut k = 0;
    while k < lines.len() {
        let line = lines[k];
        if let Some(first) = line.strip_prefix(';') {
            // Text field: runs to the next line that starts with ';'. Only its first line is kept
            // as the value (enough for the tags read here).
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
        let b = line.as_bytes();
        let mut p = 0;
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
                let s = p + 1;
                let mut e = s;
                loop {
                    if e >= b.len() {
                        return Err(perr(file, k + 1, "unterminated quoted value"));
                    }
                    if b[e] == c && (e + 1 == b.len() || b[e + 1].is_ascii_whitespace()) {
                        break;
                    }
                    e += 1;
                }
                out.push(Token { text: &line[s..e], line: k + 1, quoted: true });
                p = e + 1;
                continue;
            }
            let s = p;
            while p < b.len() && !b[p].is_ascii_whitespace() {
                p += 1;
            }
            out.push(Token { text: &line[s..p], line: k + 1, quoted: false });
        }
        k += 1;
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
    let ops_src =
        block.items.get("_symmetry_equiv_pos_as_xyz").or_else(|| block.items.get("_space_group_symop_operation_xyz"));
    let ops: Vec<SymOp> = match ops_src {
        Some(v) => v
            .iter()
            .map(|(t, line)| {
                parse_symop(t).ok_or_else(|| perr(file, *line, format!("cannot read symmetry operation {t:?}")))
            })
            .collect::<Result<_, _>>()?,
        None => vec![parse_symop("x,y,z").expect("identity parses")],
    };
    let symbols = block
        .items
        .get("_atom_site_type_symbol")
        .or_else(|| block.items.get("_atom_site_label"))
        .ok_or_else(|| perr(file, block.line, "no _atom_site_type_symbol or _atom_site_label"))?;
    let occupancy = block.items.get("_atom_site_occupancy");
    let n = fx.len();
    if fy.len() != n || fz.len() != n || symbols.len() != n {
        return Err(perr(file, fx[0].1, "atom-site columns have different lengths"));
    }
    // (position, Z, occupancy, line) of every unique site.
    let mut sites: Vec<(Vec3, u8, f64, usize)> = Vec::new();
    for a in 0..n {
        let line = fx[a].1;
        let mut f = [0.0; 3];
        for (d, colv) in [fx, fy, fz].iter().enumerate() {
            let (t, l) = colv[a];
            f[d] = snap_third(
                parse_number(t).ok_or_else(|| perr(file, l, format!("fractional coordinate {t:?} is not a number")))?,
            );
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
        let mut own: Vec<Vec3> = Vec::new();
        for op in &ops {
            let g = op.apply(&f);
            let g = [wrap01(g[0]), wrap01(g[1]), wrap01(g[2])];
            if !own.iter().any(|o| close_pbc(o, &g, opts.site_tolerance)) {
                own.push(g);
            }
        }
        for g in own {
            match sites.iter_mut().find(|s| close_pbc(&s.0, &g, opts.site_tolerance)) {
                Some(existing) if existing.1 == z => {
                    existing.2 = existing.2.max(occ);
                }
                Some(existing) => match opts.occupancy_policy {
                    OccupancyPolicy::Error => {
                        return Err(perr(
                            file,
                            line,
                            format!(
                                "site shares its position with another species (line {}): disordered structure; \
                                 pass occupancy_policy=\"majority\" to keep the majority species",
                                existing.3
                            ),
                        ))
                    }
                    OccupancyPolicy::Majority => {
                        if occ > existing.2 {
                            *existing = (g, z, occ, line);
                        }
                    }
                },
                None => sites.push((g, z, occ, line)),
            }
        }
    }
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
    if s.volume() < super::MIN_VOLUME {
        return Err(perr(file, block.line, "cell volume is zero"));
    }
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
