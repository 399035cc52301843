//! JSON-lines datasets: one object per line with `lattice` (3x3, angstrom, rows a, b, c),
//! `species` (symbols), `frac_coords` (or `cart_coords`), optional `pbc` (3 bools) and `id`.
//! Blank lines are skipped; other fields are ignored.

use serde_json::Value;

use super::{species_to_z, Structure};
use crate::error::CoreError;

fn perr(file: &str, line: usize, reason: impl Into<String>) -> CoreError {
    CoreError::Parse { file: file.to_string(), line, reason: reason.into() }
}

fn rows3(v: &Value, what: &str) -> Result<Vec<[f64; 3]>, String> {
    let arr = v.as_array().ok_or_else(|| format!("`{what}` is not a list"))?;
    arr.iter()
        .enumerate()
        .map(|(k, row)| {
            let r = row
                .as_array()
                .filter(|r| r.len() == 3)
                .ok_or_else(|| format!("`{what}`[{k}] is not a list of 3 numbers"))?;
            let mut out = [0.0; 3];
            for (o, x) in out.iter_mut().zip(r) {
                // JSON has no NaN; `null` is read as NaN so validation names the site.
                *o = match x {
                    Value::Null => f64::NAN,
                    _ => x.as_f64().ok_or_else(|| format!("`{what}`[{k}] has a non-numeric entry"))?,
                };
            }
            Ok(out)
        })
        .collect()
}

/// Parse one JSON object (already decoded) into a structure.
pub fn structure_from_json(v: &Value) -> Result<Structure, String> {
    let obj = v.as_object().ok_or("line is not a JSON object")?;
    let lattice = rows3(obj.get("lattice").ok_or("missing `lattice`")?, "lattice")?;
    if lattice.len() != 3 {
        return Err("`lattice` must have 3 rows".into());
    }
    let species = obj.get("species").and_then(Value::as_array).ok_or("missing or invalid `species`")?;
    let mut numbers = Vec::with_capacity(species.len());
    for (k, s) in species.iter().enumerate() {
        let z = match s {
            Value::String(t) => species_to_z(t),
            Value::Number(n) => n.as_u64().filter(|&z| (1..=118).contains(&z)).map(|z| z as u8),
            _ => None,
        };
        numbers.push(z.ok_or_else(|| format!("site {k}: unknown species {s}"))?);
    }
    let lat = [lattice[0], lattice[1], lattice[2]];
    let pbc = match obj.get("pbc") {
        None | Some(Value::Null) => [true; 3],
        Some(Value::Bool(b)) => [*b; 3],
        Some(Value::Array(a)) if a.len() == 3 => {
            let mut p = [true; 3];
            for (o, x) in p.iter_mut().zip(a) {
                *o = x.as_bool().ok_or("`pbc` entries must be booleans")?;
            }
            p
        }
        _ => return Err("`pbc` must be a bool or 3 bools".into()),
    };
    let mut s = if let Some(fc) = obj.get("frac_coords") {
        Structure::new(lat, rows3(fc, "frac_coords")?, numbers, pbc)
    } else if let Some(cc) = obj.get("cart_coords") {
        Structure::from_cartesian(lat, &rows3(cc, "cart_coords")?, numbers, pbc).map_err(|e| e.to_string())?
    } else {
        return Err("missing `frac_coords` (or `cart_coords`)".into());
    };
    if s.frac_coords.len() != s.numbers.len() {
        return Err(format!("{} coordinates but {} species", s.frac_coords.len(), s.numbers.len()));
    }
    s.id = obj.get("id").map(|id| match id {
        Value::String(t) => t.clone(),
        other => other.to_string(),
    });
    Ok(s)
}

/// Parse JSON-lines text; `file` names the source in errors (line numbers are 1-based).
pub fn parse_jsonl(text: &str, file: &str) -> Result<Vec<Structure>, CoreError> {
    let mut out = Vec::new();
    for (k, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| perr(file, k + 1, format!("invalid JSON: {e}")))?;
        let mut s = structure_from_json(&v).map_err(|r| perr(file, k + 1, r))?;
        if s.id.is_none() {
            s.id = Some(format!("{file}:{}", k + 1));
        }
        out.push(s);
    }
    Ok(out)
}
