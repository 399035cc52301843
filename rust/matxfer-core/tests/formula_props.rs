//! Property tests of the formula parser.

use matxfer_core::elements::{symbol, SYMBOLS};
use matxfer_core::parse_formula;
use proptest::prelude::*;

fn amount() -> impl Strategy<Value = f64> {
    prop_oneof![(1u32..10_000).prop_map(f64::from), 1e-6f64..1e6]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// A formula written from a random composition parses back to the same amounts, in order.
    #[test]
    fn round_trip(elements in proptest::collection::btree_map(0usize..118, amount(), 1..10), group in 0u8..3) {
        let mut formula: String = elements.iter().map(|(&i, a)| format!("{}{a:?}", SYMBOLS[i])).collect();
        let factor = match group {
            1 => { formula = format!("({formula})3"); 3.0 }
            2 => { formula = format!("[{formula}]·2H2O"); 1.0 }
            _ => 1.0,
        };
        let parsed = parse_formula(&formula).unwrap();
        let mut expected: Vec<(String, f64)> = elements.iter().map(|(&i, &a)| (SYMBOLS[i].to_string(), a * factor)).collect();
        if group == 2 {
            for (el, add) in [("H", 4.0), ("O", 2.0)] {
                match expected.iter_mut().find(|(e, _)| e == el) {
                    Some(slot) => slot.1 += add,
                    None => expected.push((el.to_string(), add)),
                }
            }
        }
        let got: Vec<(String, f64)> = parsed.elements.iter().map(|&(z, a)| (symbol(z).unwrap().to_string(), a)).collect();
        prop_assert_eq!(got, expected);
    }

    /// Arbitrary bytes (as lossy UTF-8) never panic, and errors point inside the input.
    #[test]
    fn random_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let text = String::from_utf8_lossy(&bytes);
        match parse_formula(&text) {
            Ok(c) => prop_assert!(c.elements.iter().all(|&(_, a)| a.is_finite() && a > 0.0)),
            Err(e) => prop_assert!(e.offset <= text.chars().count()),
        }
    }

    /// Formula-like noise (symbols, digits, brackets, separators) never panics either.
    #[test]
    fn formula_alphabet_never_panics(text in "[A-Za-z0-9()\\[\\]{}.·*eE+\\- ]{0,40}") {
        let _ = parse_formula(&text);
    }
}

#[test]
fn deep_nesting_is_bounded() {
    let deep = "(".repeat(10_000) + "H" + &")".repeat(10_000);
    assert!(parse_formula(&deep).is_err());
    let long: String = "H2O".repeat(100_000);
    let c = parse_formula(&long).unwrap();
    assert_eq!(c.elements, vec![(1, 200_000.0), (8, 100_000.0)]);
}
