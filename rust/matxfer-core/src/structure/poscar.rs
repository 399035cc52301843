//! VASP 5 POSCAR / CONTCAR: comment, scale, 3 lattice rows, species symbols, counts, optional
//! `Selective dynamics`, `Direct`/`Cartesian`, then one coordinate row per site (extra columns
//! such as selective-dynamics flags or labels are ignored). A negative scale is a target volume.

use super::linalg::{det3, Mat3, Vec3};
use super::{parse_number, species_to_z, Structure};
use crate::error::CoreError;

struct Lines<'a> {
    lines: Vec<&'a str>,
    pos: usize,
    file: &'a str,
}

impl<'a> Lines<'a> {
    fn next(&mut self, what: &str) -> Result<(usize, &'a str), CoreError> {
        let k = self.pos;
        self.pos += 1;
        match self.lines.get(k) {
            Some(l) => Ok((k + 1, l)),
            None => Err(CoreError::Parse {
                file: self.file.into(),
                line: k + 1,
                reason: format!("unexpected end of file, expected {what}"),
            }),
        }
    }
}

fn perr(file: &str, line: usize, reason: impl Into<String>) -> CoreError {
    CoreError::Parse { file: file.into(), line, reason: reason.into() }
}

fn floats(file: &str, line: usize, text: &str, n: usize, what: &str) -> Result<Vec<f64>, CoreError> {
    let toks: Vec<&str> = text.split_whitespace().take(n).collect();
    if toks.len() < n {
        return Err(perr(file, line, format!("expected {n} numbers for {what}, got {:?}", text.trim())));
    }
    toks.iter()
        .map(|t| parse_number(t).ok_or_else(|| perr(file, line, format!("invalid number {t:?} in {what}"))))
        .collect()
}

/// Parse POSCAR text (VASP 5 format with a species line).
pub fn parse_poscar(text: &str, file: &str) -> Result<Structure, CoreError> {
    let mut l = Lines { lines: text.lines().collect(), pos: 0, file };
    let (_, comment) = l.next("comment line")?;
    let (ln, scale_line) = l.next("scale factor")?;
    let scale = floats(file, ln, scale_line, 1, "scale factor")?[0];
    let mut lattice: Mat3 = [[0.0; 3]; 3];
    for row in lattice.iter_mut() {
        let (ln, t) = l.next("lattice vector")?;
        let v = floats(file, ln, t, 3, "lattice vector")?;
        row.copy_from_slice(&v);
    }
    if scale == 0.0 {
        return Err(perr(file, ln, "scale factor is zero"));
    }
    let factor = if scale < 0.0 {
        let v0 = det3(&lattice).abs();
        if v0 == 0.0 {
            return Err(perr(file, ln, "cell volume is zero"));
        }
        (-scale / v0).cbrt()
    } else {
        scale
    };
    for row in lattice.iter_mut() {
        for x in row.iter_mut() {
            *x *= factor;
        }
    }
    let (ln, species_line) = l.next("species line")?;
    let symbols: Vec<&str> = species_line.split_whitespace().collect();
    if symbols.is_empty() || symbols[0].parse::<f64>().is_ok() {
        return Err(perr(
            file,
            ln,
            "expected element symbols (VASP 5 format); VASP 4 files without them are not supported",
        ));
    }
    let mut zs = Vec::new();
    for s in &symbols {
        // POTCAR-style names such as `Fe_pv` or `Mg/abc` keep the element before `_` or `/`.
        let base = s.split(['_', '/']).next().unwrap_or(s);
        zs.push(
            species_to_z(base)
                .filter(|_| base.chars().all(|c| c.is_ascii_alphabetic()))
                .ok_or_else(|| perr(file, ln, format!("unknown species {s:?}")))?,
        );
    }
    let (ln, count_line) = l.next("species counts")?;
    let counts: Vec<usize> = count_line
        .split_whitespace()
        .map(|t| t.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| perr(file, ln, format!("invalid species counts {:?}", count_line.trim())))?;
    if counts.len() != zs.len() {
        return Err(perr(file, ln, format!("{} species but {} counts", zs.len(), counts.len())));
    }
    // Checked before anything is allocated from the counts: a sum that overflows, or more sites
    // than the file has lines left, is a malformed file.
    let remaining = l.lines.len().saturating_sub(l.pos);
    let n =
        counts.iter().try_fold(0usize, |acc, c| acc.checked_add(*c)).filter(|n| *n <= remaining).ok_or_else(|| {
            perr(
                file,
                ln,
                format!("species counts {:?} exceed the {remaining} lines left in the file", count_line.trim()),
            )
        })?;
    let (mut ln, mut mode) = l.next("coordinate mode")?;
    if mode.trim_start().starts_with(['S', 's']) {
        (ln, mode) = l.next("coordinate mode")?;
    }
    let cartesian = match mode.trim_start().chars().next() {
        Some('C' | 'c' | 'K' | 'k') => true,
        Some('D' | 'd') => false,
        _ => return Err(perr(file, ln, format!("expected Direct or Cartesian, got {:?}", mode.trim()))),
    };
    let mut coords: Vec<Vec3> = Vec::with_capacity(n);
    for _ in 0..n {
        let (ln, t) = l.next("coordinates")?;
        let v = floats(file, ln, t, 3, "coordinates")?;
        let mut c = [v[0], v[1], v[2]];
        if cartesian {
            for x in c.iter_mut() {
                *x *= factor;
            }
        }
        coords.push(c);
    }
    let mut numbers = Vec::with_capacity(n);
    for (z, c) in zs.iter().zip(&counts) {
        numbers.extend(std::iter::repeat_n(*z, *c));
    }
    let mut s = if cartesian {
        Structure::from_cartesian(lattice, &coords, numbers, [true; 3]).map_err(|e| perr(file, 3, e.to_string()))?
    } else {
        Structure::new(lattice, coords, numbers, [true; 3])
    };
    let c = comment.trim();
    s.id = Some(if c.is_empty() { file.to_string() } else { format!("{file} ({c})") });
    Ok(s)
}
