//! (Extended) XYZ: per frame, an atom count, a comment line, then one line per atom.
//!
//! The comment line may carry `key=value` pairs (values may be double-quoted):
//! `Lattice="ax ay az bx by bz cx cy cz"` (angstrom, rows a, b, c), `pbc="T T F"` (also `[T, T, F]`,
//! `True`/`False`, `1`/`0`, or one flag for all axes) and
//! `Properties=species:S:1:pos:R:3:...`. Without `Lattice` the frame is a non-periodic molecule
//! placed in a box that encloses it (10 angstrom of padding), with pbc all false.

use super::linalg::{Mat3, Vec3};
use super::{parse_number, species_to_z, Structure};
use crate::error::CoreError;

fn perr(file: &str, line: usize, reason: impl Into<String>) -> CoreError {
    CoreError::Parse { file: file.into(), line, reason: reason.into() }
}

/// Split the comment line into key=value pairs (double quotes group words).
fn key_values(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let chars: Vec<char> = line.chars().collect();
    let mut k = 0;
    while k < chars.len() {
        while k < chars.len() && chars[k].is_whitespace() {
            k += 1;
        }
        let start = k;
        while k < chars.len() && chars[k] != '=' && !chars[k].is_whitespace() {
            k += 1;
        }
        let key: String = chars[start..k].iter().collect();
        if k < chars.len() && chars[k] == '=' {
            k += 1;
            // A value is a word, a double-quoted string, or a bracketed list (`[T, T, F]`,
            // `{...}`) as ASE writes arrays.
            let close = match chars.get(k) {
                Some('"') => Some('"'),
                Some('[') => Some(']'),
                Some('{') => Some('}'),
                _ => None,
            };
            let value: String = if let Some(close) = close {
                k += 1;
                let s = k;
                while k < chars.len() && chars[k] != close {
                    k += 1;
                }
                let v = chars[s..k].iter().collect();
                k += 1;
                v
            } else {
                let s = k;
                while k < chars.len() && !chars[k].is_whitespace() {
                    k += 1;
                }
                chars[s..k].iter().collect()
            };
            out.push((key.to_ascii_lowercase(), value));
        } else if !key.is_empty() {
            out.push((key.to_ascii_lowercase(), "T".into()));
        }
    }
    out
}

/// `pbc` flags as written by ASE and others: `T T F`, `[T, T, F]`, `"True True False"`, `1 1 0`,
/// or one flag for all three axes. Anything else is refused rather than read as false.
fn parse_pbc(value: &str) -> Option<[bool; 3]> {
    let flags: Vec<bool> = value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .map(|t| match t.to_ascii_lowercase().as_str() {
            "t" | "true" | "1" => Some(true),
            "f" | "false" | "0" => Some(false),
            _ => None,
        })
        .collect::<Option<_>>()?;
    match flags[..] {
        [p] => Some([p; 3]),
        [a, b, c] => Some([a, b, c]),
        _ => None,
    }
}

/// Parse every frame of an (extended) XYZ file.
pub fn parse_xyz(text: &str, file: &str) -> Result<Vec<Structure>, CoreError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut pos = 0;
    let mut frames = Vec::new();
    while pos < lines.len() {
        if lines[pos].trim().is_empty() {
            pos += 1;
            continue;
        }
        let header = pos + 1;
        let n: usize = lines[pos]
            .trim()
            .parse()
            .map_err(|_| perr(file, header, format!("expected an atom count, got {:?}", lines[pos].trim())))?;
        // Compared without forming `pos + 2 + n` (which overflows for counts near 2^64), and
        // before anything is allocated from the count.
        let left = lines.len() - pos - 1;
        if left == 0 || n > left - 1 {
            return Err(perr(
                file,
                header,
                format!(
                    "frame declares {n} atoms but the file has {} lines after its comment line",
                    left.saturating_sub(1)
                ),
            ));
        }
        let kv = key_values(lines[pos + 1]);
        let get = |key: &str| kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let lattice: Option<Mat3> = match get("lattice") {
            Some(v) => {
                let x: Vec<f64> = v.split_whitespace().filter_map(parse_number).collect();
                if x.len() != 9 {
                    return Err(perr(file, header + 1, "Lattice must hold 9 numbers"));
                }
                Some([[x[0], x[1], x[2]], [x[3], x[4], x[5]], [x[6], x[7], x[8]]])
            }
            None => None,
        };
        let pbc = match get("pbc") {
            Some(v) => parse_pbc(v).ok_or_else(|| {
                perr(file, header + 1, format!("pbc {v:?} must be one or three of T/F, True/False, 1/0"))
            })?,
            None => [lattice.is_some(); 3],
        };
        // Columns of species and positions from Properties (default species:S:1:pos:R:3).
        let (mut species_col, mut pos_col) = (0usize, 1usize);
        if let Some(props) = get("properties") {
            let f: Vec<&str> = props.split(':').collect();
            let mut col = 0;
            let (mut found_s, mut found_p) = (false, false);
            for chunk in f.chunks(3) {
                if chunk.len() != 3 {
                    return Err(perr(file, header + 1, "malformed Properties"));
                }
                let width: usize =
                    chunk[2].parse().map_err(|_| perr(file, header + 1, "malformed Properties width"))?;
                match chunk[0] {
                    "species" => (species_col, found_s) = (col, true),
                    "pos" => (pos_col, found_p) = (col, true),
                    _ => {}
                }
                col += width;
            }
            if !found_s || !found_p {
                return Err(perr(file, header + 1, "Properties lacks species or pos"));
            }
        }
        let mut numbers = Vec::with_capacity(n);
        let mut cart: Vec<Vec3> = Vec::with_capacity(n);
        for a in 0..n {
            let ln = pos + 2 + a;
            let toks: Vec<&str> = lines[ln].split_whitespace().collect();
            let sym = toks.get(species_col).ok_or_else(|| perr(file, ln + 1, "missing species column"))?;
            let z = species_to_z(sym)
                .filter(|_| sym.chars().all(|c| c.is_ascii_alphabetic()))
                .or_else(|| sym.parse::<u8>().ok().filter(|z| (1..=118).contains(z)))
                .ok_or_else(|| perr(file, ln + 1, format!("unknown species {sym:?}")))?;
            let mut r = [0.0; 3];
            for (d, x) in r.iter_mut().enumerate() {
                let t = toks.get(pos_col + d).ok_or_else(|| perr(file, ln + 1, "missing coordinate column"))?;
                *x = parse_number(t).ok_or_else(|| perr(file, ln + 1, format!("invalid number {t:?}")))?;
            }
            numbers.push(z);
            cart.push(r);
        }
        let lattice = match lattice {
            Some(l) => l,
            None => {
                let mut lo = [f64::INFINITY; 3];
                let mut hi = [f64::NEG_INFINITY; 3];
                for r in &cart {
                    for d in 0..3 {
                        lo[d] = lo[d].min(r[d]);
                        hi[d] = hi[d].max(r[d]);
                    }
                }
                let mut l = [[0.0; 3]; 3];
                for d in 0..3 {
                    let w = if n == 0 { 0.0 } else { hi[d] - lo[d] };
                    l[d][d] = w + 10.0;
                }
                l
            }
        };
        let mut s = Structure::from_cartesian(lattice, &cart, numbers, pbc)
            .map_err(|e| perr(file, header + 1, e.to_string()))?;
        s.id = Some(format!("{file}:{header}"));
        frames.push(s);
        pos += 2 + n;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbc_spellings() {
        assert_eq!(parse_pbc("T T F"), Some([true, true, false]));
        assert_eq!(parse_pbc("T, T, F"), Some([true, true, false]));
        assert_eq!(parse_pbc("True False true"), Some([true, false, true]));
        assert_eq!(parse_pbc("1 0 0"), Some([true, false, false]));
        assert_eq!(parse_pbc("F"), Some([false; 3]));
        assert_eq!(parse_pbc("T T"), None);
        assert_eq!(parse_pbc("T T X"), None);
        assert_eq!(parse_pbc(""), None);
    }

    #[test]
    fn bracketed_pbc_and_huge_counts() {
        let frame = "2\nLattice=\"4 0 0 0 4 0 0 0 9\" pbc=[T, T, F] Properties=species:S:1:pos:R:3\nH 0 0 0\nH 0 0 1\n";
        let s = parse_xyz(frame, "f.xyz").unwrap();
        assert_eq!(s[0].pbc, [true, true, false]);
        for count in ["18446744073709551615", "18446744073709551614", "3"] {
            let text = format!("{count}\ncomment\nH 0 0 0\nH 0 0 1\n");
            match parse_xyz(&text, "f.xyz") {
                Err(CoreError::Parse { file, line, reason }) => {
                    assert_eq!((file.as_str(), line), ("f.xyz", 1));
                    assert!(reason.contains("atoms"), "{reason}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(parse_xyz("1\n", "f.xyz"), Err(CoreError::Parse { line: 1, .. })));
    }
}
