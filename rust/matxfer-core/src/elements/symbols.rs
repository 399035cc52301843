//! Element symbols for Z = 1..=118 (IUPAC 2016 names for 113, 115, 117, 118).

/// `SYMBOLS[z - 1]` is the symbol of atomic number `z`.
pub const SYMBOLS: [&str; 118] = [
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar", "K", "Ca",
    "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y",
    "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce",
    "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir",
    "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm",
    "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc",
    "Lv", "Ts", "Og",
];

/// Number of elements known to matxfer.
pub const N_ELEMENTS: usize = 118;

/// Symbol of atomic number `z` (1..=118), or `None`.
#[inline]
pub fn symbol(z: u8) -> Option<&'static str> {
    SYMBOLS.get((z as usize).wrapping_sub(1)).copied()
}

/// Lookup table from a one- or two-letter symbol to Z, indexed by
/// `(first uppercase letter - 'A') * 27 + (0 for none, or second lowercase letter - 'a' + 1)`.
const fn build_lookup() -> [u8; 26 * 27] {
    let mut table = [0u8; 26 * 27];
    let mut z = 0;
    while z < SYMBOLS.len() {
        let bytes = SYMBOLS[z].as_bytes();
        let first = (bytes[0] - b'A') as usize;
        let second = if bytes.len() > 1 { (bytes[1] - b'a') as usize + 1 } else { 0 };
        table[first * 27 + second] = (z + 1) as u8;
        z += 1;
    }
    table
}

static LOOKUP: [u8; 26 * 27] = build_lookup();

/// Atomic number of a symbol given as its uppercase first byte and optional lowercase second byte.
/// Returns 0 when there is no such element.
#[inline]
pub fn z_from_bytes(first: u8, second: Option<u8>) -> u8 {
    if !first.is_ascii_uppercase() {
        return 0;
    }
    let second_index = match second {
        None => 0,
        Some(b) if b.is_ascii_lowercase() => (b - b'a') as usize + 1,
        Some(_) => return 0,
    };
    LOOKUP[(first - b'A') as usize * 27 + second_index]
}

/// Atomic number of a symbol such as `"Fe"`; `None` if unknown.
pub fn z_from_symbol(sym: &str) -> Option<u8> {
    let b = sym.as_bytes();
    let z = match b.len() {
        1 => z_from_bytes(b[0], None),
        2 => z_from_bytes(b[0], Some(b[1])),
        _ => 0,
    };
    (z != 0).then_some(z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_all_symbols() {
        for (i, s) in SYMBOLS.iter().enumerate() {
            assert_eq!(z_from_symbol(s), Some(i as u8 + 1), "{s}");
            assert_eq!(symbol(i as u8 + 1), Some(*s));
        }
        assert_eq!(z_from_symbol("Xx"), None);
        assert_eq!(z_from_symbol("fe"), None);
        assert_eq!(z_from_symbol(""), None);
        assert_eq!(symbol(0), None);
        assert_eq!(symbol(119), None);
    }
}
