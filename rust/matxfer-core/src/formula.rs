//! Chemical formula parser.
//!
//! Grammar (whitespace is allowed between tokens):
//!
//! ```text
//! formula  := part (separator part)*
//! part     := [number] item+                  leading number multiplies the whole part
//! item     := element [number] | open item+ close [number]
//! open     := '(' | '[' | '{'                 must be closed by its own partner
//! separator:= '·' (U+00B7) | '•' (U+2022) | '*' | '.' (hydrate rule below)
//! number   := digits ['.' digits] [('e'|'E') ['+'|'-'] digits]   or  '.' digits
//! element  := one of the 118 symbols H .. Og (case-sensitive)
//! ```
//!
//! The `.` rule: a `.` is an adduct separator when it is directly followed by an uppercase letter
//! or an opening bracket (`Fe2O3.H2O`), or when it sits between a non-zero integer and an integer
//! that is directly followed by `H2O` (`CuSO4.5H2O` = CuSO4 + 5 H2O, the usual way hydrates are
//! typed in ASCII). Everywhere else `.` is a decimal point (`Na0.5Bi0.5TiO3`). pymatgen reads
//! `CuSO4.5H2O` as O4.5 + H2O; matxfer does not (see `tests/test_formula.py`).
//!
//! Amounts are read with Rust's correctly rounded `f64` parser, which gives the same value as
//! Python's `float()`, so element amounts agree bitwise with pymatgen where both parse.

use crate::elements::z_from_bytes;
use crate::error::{FormulaError, FormulaErrorKind as K};

/// Deepest bracket nesting accepted.
pub const MAX_DEPTH: usize = 64;

/// Element amounts in order of first appearance, duplicates merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Composition {
    /// `(Z, amount)` pairs; amounts are positive and finite.
    pub elements: Vec<(u8, f64)>,
}

impl Composition {
    /// Sum of all amounts.
    pub fn total(&self) -> f64 {
        self.elements.iter().map(|&(_, a)| a).sum()
    }

    /// `(Z, amount / total)` pairs in the same order.
    pub fn fractions(&self) -> Vec<(u8, f64)> {
        let total = self.total();
        self.elements.iter().map(|&(z, a)| (z, a / total)).collect()
    }

    pub fn len(&self) -> usize {
        self.elements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }
}

/// Reusable parser: keeps its scratch buffers between calls so a batch allocates once per thread.
#[derive(Debug, Default)]
pub struct FormulaParser {
    raw: Vec<(u8, f64)>,
    stack: Vec<(u8, usize, usize)>, // (closing byte, raw start, offset of the opening bracket)
}

/// Parse one formula (convenience wrapper around [`FormulaParser`]).
pub fn parse_formula(input: &str) -> Result<Composition, FormulaError> {
    let mut out = Composition::default();
    FormulaParser::default().parse_into(input, &mut out)?;
    Ok(out)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    #[inline]
    fn peek_at(&self, k: usize) -> Option<u8> {
        self.b.get(self.i + k).copied()
    }
    #[inline]
    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' {
                self.i += 1;
            } else {
                break;
            }
        }
    }
    /// Length in bytes of a separator starting here (0 if none).
    #[inline]
    fn separator_len(&self) -> usize {
        match self.peek() {
            Some(b'*') => 1,
            Some(0xC2) if self.peek_at(1) == Some(0xB7) => 2, // U+00B7 middle dot
            Some(0xE2) if self.peek_at(1) == Some(0x80) && self.peek_at(2) == Some(0xA2) => 3, // U+2022 bullet
            Some(b'.') => match self.peek_at(1) {
                Some(c) if c.is_ascii_uppercase() || c == b'(' || c == b'[' || c == b'{' => 1,
                // Only reached after `read_amount` stopped before a hydrate dot (`CuSO4.5H2O`).
                Some(_) if is_hydrate_tail(self.b, self.i + 1) => 1,
                _ => 0,
            },
            _ => 0,
        }
    }
}

#[inline]
fn closing_for(open: u8) -> Option<u8> {
    match open {
        b'(' => Some(b')'),
        b'[' => Some(b']'),
        b'{' => Some(b'}'),
        _ => None,
    }
}

/// Is `b[i..]` of the form `digits 'H2O'` followed by end, whitespace or a separator?
fn is_hydrate_tail(b: &[u8], mut i: usize) -> bool {
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == start || b[start] == b'0' {
        return false;
    }
    if !b[i..].starts_with(b"H2O") {
        return false;
    }
    let after = i + 3;
    after == b.len() || matches!(b[after], b' ' | b'\t' | b'*' | b'.' | 0xC2 | 0xE2)
}

impl FormulaParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse `input` into `out` (cleared first). On error `out` is left empty.
    pub fn parse_into(&mut self, input: &str, out: &mut Composition) -> Result<(), FormulaError> {
        out.elements.clear();
        self.raw.clear();
        self.stack.clear();
        if let Err(mut e) = self.parse_raw(input) {
            // Report the offset in characters (what Python's str indexing uses), not bytes.
            let byte = e.offset.min(input.len());
            e.offset = input.char_indices().take_while(|&(i, _)| i < byte).count();
            return Err(e);
        }
        // Merge duplicates, keeping first-appearance order; summation is left to right.
        for &(z, a) in &self.raw {
            if let Some(slot) = out.elements.iter_mut().find(|(zz, _)| *zz == z) {
                slot.1 += a;
            } else {
                out.elements.push((z, a));
            }
        }
        for &(_, a) in &out.elements {
            if !a.is_finite() {
                out.elements.clear();
                return Err(FormulaError::new(K::NonFiniteAmount, 0, "total amount of an element is not finite"));
            }
        }
        Ok(())
    }

    fn parse_raw(&mut self, input: &str) -> Result<(), FormulaError> {
        let mut c = Cursor { b: input.as_bytes(), i: 0 };
        c.skip_ws();
        if c.peek().is_none() {
            return Err(FormulaError::new(K::Empty, 0, "empty formula"));
        }
        loop {
            // One part: optional leading multiplier, then items until a separator or the end.
            c.skip_ws();
            let part_offset = c.i;
            let part_start = self.raw.len();
            let multiplier = if matches!(c.peek(), Some(b'0'..=b'9') | Some(b'.')) {
                Some(read_amount(&mut c, false)?)
            } else {
                None
            };
            let mut n_items = 0usize;
            loop {
                c.skip_ws();
                let Some(ch) = c.peek() else { break };
                if self.stack.is_empty() && c.separator_len() > 0 {
                    break;
                }
                match ch {
                    b'A'..=b'Z' => {
                        let at = c.i;
                        let second = c.peek_at(1).filter(|s| s.is_ascii_lowercase());
                        let z = z_from_bytes(ch, second);
                        if z == 0 {
                            // Report the symbol as typed, including a stray lowercase run.
                            let mut end = at + 1;
                            while end < c.b.len() && c.b[end].is_ascii_lowercase() {
                                end += 1;
                            }
                            let sym = String::from_utf8_lossy(&c.b[at..end]);
                            return Err(FormulaError::new(K::UnknownElement, at, format!("unknown element '{sym}'")));
                        }
                        c.i += 1 + second.is_some() as usize;
                        if let Some(next) = c.peek().filter(|b| b.is_ascii_lowercase()) {
                            let sym = String::from_utf8_lossy(&c.b[at..c.i + 1]);
                            let _ = next;
                            return Err(FormulaError::new(K::UnknownElement, at, format!("unknown element '{sym}'")));
                        }
                        let amount = read_optional_amount(&mut c)?;
                        self.raw.push((z, amount));
                        n_items += 1;
                    }
                    b'(' | b'[' | b'{' => {
                        if self.stack.len() >= MAX_DEPTH {
                            return Err(FormulaError::new(
                                K::TooDeep,
                                c.i,
                                format!("brackets nested deeper than {MAX_DEPTH}"),
                            ));
                        }
                        self.stack.push((closing_for(ch).unwrap_or(b')'), self.raw.len(), c.i));
                        c.i += 1;
                    }
                    b')' | b']' | b'}' => {
                        let at = c.i;
                        let Some((expected, start, open_at)) = self.stack.pop() else {
                            return Err(FormulaError::new(
                                K::UnbalancedBracket,
                                at,
                                format!("'{}' without an opening bracket", ch as char),
                            ));
                        };
                        if ch != expected {
                            return Err(FormulaError::new(
                                K::UnbalancedBracket,
                                at,
                                format!(
                                    "'{}' closes the bracket opened at offset {open_at}, which needs '{}'",
                                    ch as char, expected as char
                                ),
                            ));
                        }
                        if start == self.raw.len() {
                            return Err(FormulaError::new(K::UnexpectedCharacter, open_at, "empty bracket group"));
                        }
                        c.i += 1;
                        let factor = read_optional_amount(&mut c)?;
                        if factor != 1.0 {
                            for entry in &mut self.raw[start..] {
                                entry.1 *= factor;
                            }
                        }
                    }
                    b'-' => {
                        return Err(FormulaError::new(K::NonPositiveAmount, c.i, "negative amount"));
                    }
                    b'0'..=b'9' => {
                        return Err(FormulaError::new(
                            K::UnexpectedCharacter,
                            c.i,
                            "a number must follow an element or a closing bracket",
                        ));
                    }
                    _ => {
                        let ch = input[c.i..].chars().next().unwrap_or('?');
                        return Err(FormulaError::new(
                            K::UnexpectedCharacter,
                            c.i,
                            format!("unexpected character {ch:?}"),
                        ));
                    }
                }
            }
            if let Some(&(_, _, open_at)) = self.stack.last() {
                return Err(FormulaError::new(K::UnbalancedBracket, open_at, "bracket is never closed"));
            }
            if n_items == 0 {
                let what = if c.peek().is_some() { "nothing before a separator" } else { "a number without elements" };
                return Err(FormulaError::new(
                    if multiplier.is_some() { K::UnexpectedCharacter } else { K::Empty },
                    part_offset,
                    what,
                ));
            }
            if let Some(m) = multiplier {
                for entry in &mut self.raw[part_start..] {
                    entry.1 *= m;
                }
            }
            let sep = c.separator_len();
            if sep == 0 {
                debug_assert!(c.peek().is_none());
                return Ok(());
            }
            c.i += sep;
            c.skip_ws();
            if c.peek().is_none() {
                return Err(FormulaError::new(K::Empty, c.i, "nothing after the adduct separator"));
            }
        }
    }
}

/// Read an amount if one follows (digits or a decimal point followed by a digit); else 1.
#[inline]
fn read_optional_amount(c: &mut Cursor) -> Result<f64, FormulaError> {
    c.skip_ws();
    match c.peek() {
        Some(b'0'..=b'9') => read_amount(c, true),
        Some(b'.') if c.peek_at(1).is_some_and(|d| d.is_ascii_digit()) => read_amount(c, true),
        Some(b'-') => Err(FormulaError::new(K::NonPositiveAmount, c.i, "negative amount")),
        _ => Ok(1.0),
    }
}

/// Read a number at the cursor. `allow_hydrate_dot`: stop before a `.` that starts a hydrate
/// (`CuSO4.5H2O`), leaving the cursor on the `.` separator.
fn read_amount(c: &mut Cursor, allow_hydrate_dot: bool) -> Result<f64, FormulaError> {
    let start = c.i;
    let b = c.b;
    let mut i = c.i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_end = i;
    if i < b.len() && b[i] == b'.' {
        let hydrate = allow_hydrate_dot
            && int_end > start
            && b[start..int_end].iter().any(|&d| d != b'0')
            && is_hydrate_tail(b, i + 1);
        if !hydrate && i + 1 < b.len() && b[i + 1].is_ascii_digit() {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i < b.len() && b[i] == b'.' && i + 1 < b.len() && b[i + 1].is_ascii_digit() {
                return Err(FormulaError::new(K::InvalidNumber, start, "number with two decimal points"));
            }
        } else if !hydrate
            && int_end > start
            && !(i + 1 < b.len() && (b[i + 1].is_ascii_uppercase() || matches!(b[i + 1], b'(' | b'[' | b'{')))
        {
            // "2." at the end or before something that is not a separator: accept like float("2.")
            i += 1;
        }
    }
    if i == start {
        return Err(FormulaError::new(K::InvalidNumber, start, "expected a number"));
    }
    // Exponent: only if followed by digits (so "Fe2Er" keeps Er as an element).
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        } else if b[i] == b'e' {
            return Err(FormulaError::new(K::InvalidNumber, start, "incomplete exponent"));
        }
    }
    // The slice is ASCII digits, '.', 'e', sign: always valid UTF-8.
    let text = std::str::from_utf8(&b[start..i]).unwrap_or("");
    let value: f64 =
        text.parse().map_err(|_| FormulaError::new(K::InvalidNumber, start, format!("cannot read number '{text}'")))?;
    c.i = i;
    if !value.is_finite() {
        return Err(FormulaError::new(K::NonFiniteAmount, start, format!("amount '{text}' is not finite")));
    }
    if value <= 0.0 {
        return Err(FormulaError::new(K::NonPositiveAmount, start, format!("amount '{text}' is not positive")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amounts(s: &str) -> Vec<(&'static str, f64)> {
        parse_formula(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .elements
            .iter()
            .map(|&(z, a)| (crate::elements::symbol(z).unwrap(), a))
            .collect()
    }

    fn kind(s: &str) -> K {
        parse_formula(s).unwrap_err().kind
    }

    #[test]
    fn simple() {
        assert_eq!(amounts("Fe2O3"), vec![("Fe", 2.0), ("O", 3.0)]);
        assert_eq!(amounts("NaCl"), vec![("Na", 1.0), ("Cl", 1.0)]);
        assert_eq!(amounts(" Fe 2 O 3 "), vec![("Fe", 2.0), ("O", 3.0)]);
        assert_eq!(amounts("NaN"), vec![("Na", 1.0), ("N", 1.0)]);
        assert_eq!(amounts("Og"), vec![("Og", 1.0)]);
    }

    #[test]
    fn decimals_and_scientific() {
        assert_eq!(amounts("Na0.5Bi0.5TiO3"), vec![("Na", 0.5), ("Bi", 0.5), ("Ti", 1.0), ("O", 3.0)]);
        assert_eq!(amounts("Fe1e-3O"), vec![("Fe", 1e-3), ("O", 1.0)]);
        assert_eq!(amounts("Fe2.5E2O"), vec![("Fe", 250.0), ("O", 1.0)]);
        assert_eq!(amounts("Fe2Er"), vec![("Fe", 2.0), ("Er", 1.0)]);
        assert_eq!(amounts("Fe.5O"), vec![("Fe", 0.5), ("O", 1.0)]);
    }

    #[test]
    fn brackets_and_duplicates() {
        assert_eq!(amounts("Ca(OH)2"), vec![("Ca", 1.0), ("O", 2.0), ("H", 2.0)]);
        assert_eq!(amounts("Mg3[Fe(CN)6]2"), vec![("Mg", 3.0), ("Fe", 2.0), ("C", 12.0), ("N", 12.0)]);
        assert_eq!(amounts("{[(H)2]3}4"), vec![("H", 24.0)]);
        assert_eq!(amounts("FeOFe"), vec![("Fe", 2.0), ("O", 1.0)]);
    }

    #[test]
    fn hydrates_and_adducts() {
        let cuso4 = vec![("Cu", 1.0), ("S", 1.0), ("O", 9.0), ("H", 10.0)];
        assert_eq!(amounts("CuSO4·5H2O"), cuso4);
        assert_eq!(amounts("CuSO4•5H2O"), cuso4);
        assert_eq!(amounts("CuSO4*5H2O"), cuso4);
        assert_eq!(amounts("CuSO4.5H2O"), cuso4);
        assert_eq!(amounts("CuSO4 · 5 H2O"), cuso4);
        assert_eq!(amounts("Fe2O3.H2O"), vec![("Fe", 2.0), ("O", 4.0), ("H", 2.0)]);
        // Not a hydrate: decimal amounts.
        assert_eq!(amounts("Mg0.5H2O"), vec![("Mg", 0.5), ("H", 2.0), ("O", 1.0)]);
        assert_eq!(amounts("Fe2.5O"), vec![("Fe", 2.5), ("O", 1.0)]);
        assert_eq!(amounts("2H2O"), vec![("H", 4.0), ("O", 2.0)]);
    }

    #[test]
    fn errors() {
        assert_eq!(kind(""), K::Empty);
        assert_eq!(kind("   "), K::Empty);
        assert_eq!(kind("Xx2"), K::UnknownElement);
        assert_eq!(kind("fe2O3"), K::UnexpectedCharacter);
        assert_eq!(kind("Fe2O3)"), K::UnbalancedBracket);
        assert_eq!(kind("(Fe2O3"), K::UnbalancedBracket);
        assert_eq!(kind("(Fe2O3]"), K::UnbalancedBracket);
        assert_eq!(kind("Fe0O"), K::NonPositiveAmount);
        assert_eq!(kind("Fe-1O"), K::NonPositiveAmount);
        assert_eq!(kind("Fe1e999"), K::NonFiniteAmount);
        assert_eq!(kind("Fe2O3#"), K::UnexpectedCharacter);
        assert_eq!(kind("Fe1.2.3"), K::InvalidNumber);
        assert_eq!(kind("()"), K::UnexpectedCharacter);
        assert_eq!(kind("Fe2O3·"), K::Empty);
        assert_eq!(kind("Fe1e"), K::InvalidNumber);
        let deep = "(".repeat(100) + "H" + &")".repeat(100);
        assert_eq!(kind(&deep), K::TooDeep);
        let e = parse_formula("Fe2Xq3").unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(e.message.contains("Xq"), "{}", e.message);
    }
}
