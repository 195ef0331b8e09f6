//! Just enough of `resource.Quantity` to check and compare resource amounts.

/// Go's parse error for a malformed quantity.
pub(crate) const QUANTITY_FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A quantity in billionths (nano-units), saturating at the i128 range; enough to order
/// any two quantities the API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Quantity(i128);

impl Quantity {
    /// The amount in billionths of a unit.
    pub(crate) fn nanos(self) -> i128 {
        self.0
    }

    /// True for quantities below zero.
    pub(crate) fn is_negative(self) -> bool {
        self.0 < 0
    }
}

const NANOS: i128 = 1_000_000_000;

/// Parses `"500m"`, `"1.5Gi"`, `"1e3"`, ...; `None` when the text is not a quantity.
pub(crate) fn parse_quantity(text: &str) -> Option<Quantity> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let number_len = rest
        .bytes()
        .position(|c| !(c.is_ascii_digit() || c == b'.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    let mut nanos: i128 = 0;
    for digit in whole.bytes() {
        nanos = nanos
            .saturating_mul(10)
            .saturating_add(i128::from(digit - b'0'));
    }
    nanos = nanos.saturating_mul(NANOS);
    let mut scale = NANOS;
    for digit in fraction.bytes() {
        scale /= 10;
        // Digits past nano precision round up so that tiny amounts stay non-zero.
        if scale == 0 {
            if digit != b'0' {
                nanos = nanos.saturating_add(1);
                break;
            }
            continue;
        }
        nanos = nanos.saturating_add(i128::from(digit - b'0') * scale);
    }
    let nanos = apply_suffix(nanos, suffix)?;
    Some(Quantity(if negative { -nanos } else { nanos }))
}

fn apply_suffix(nanos: i128, suffix: &str) -> Option<i128> {
    let binary = |power: u32| Some(nanos.saturating_mul(1i128 << (10 * power)));
    let decimal = |exponent: i32| Some(scale_by_ten(nanos, exponent));
    match suffix {
        "" => Some(nanos),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let exponent: i32 = exponent.parse().unwrap_or(if exponent.starts_with('-') {
                -1000
            } else {
                1000
            });
            decimal(exponent)
        }
    }
}

fn scale_by_ten(nanos: i128, exponent: i32) -> i128 {
    if exponent >= 0 {
        (0..exponent.min(60)).fold(nanos, |acc, _| acc.saturating_mul(10))
    } else {
        let divisor_steps = exponent.unsigned_abs().min(60);
        let mut value = nanos;
        let mut remainder = false;
        for _ in 0..divisor_steps {
            remainder |= value % 10 != 0;
            value /= 10;
        }
        // Round away from zero like Quantity's RoundUp, so a positive amount never becomes 0.
        if remainder {
            value + nanos.signum()
        } else {
            value
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_quantities() {
        let q = |s| parse_quantity(s).unwrap();
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("0.5"), q("500m"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1k"), q("1e3"));
        assert_eq!(q("2Gi"), q("2048Mi"));
        assert!(q("1.5") > q("1"));
        assert!(q("100Mi") < q("1Gi"));
        assert!(q("-1").is_negative());
        assert!(q("1n") > q("0"));
        for bad in ["", "abc", "1.2.3", "1x", "Gi", "1e", "--1"] {
            assert!(parse_quantity(bad).is_none(), "{bad}");
        }
    }
}
