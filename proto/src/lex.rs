//! Decimal numbers as both protocols spell them: the digit loops the RESP and NATS
//! decoders, the NATS subscription ids and the request inboxes share, so that there is
//! one definition of a valid number field. Every function is `#[inline(always)]`: each
//! sits in a decoder's hot loop.

/// The value of 1 to 19 ASCII digits (no sign), `None` for anything else. Nineteen
/// digits always fit in a `u64`, so no step checks for overflow, and the loop has no
/// branch but its own: every byte is looked at.
#[inline(always)]
pub(crate) fn digits(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    let mut all = true;
    for &d in field {
        let v = d.wrapping_sub(b'0');
        all &= v <= 9;
        n = n.wrapping_mul(10).wrapping_add(u64::from(v));
    }
    all.then_some(n)
}

/// The value of 1 to 20 ASCII digits (no sign, leading zeros accepted) when it fits in
/// a `u64`, `None` for anything else.
#[inline(always)]
pub(crate) fn parse_u64(field: &[u8]) -> Option<u64> {
    if field.len() <= 19 {
        return digits(field);
    }
    if field.len() > 20 {
        return None;
    }
    field.iter().try_fold(0u64, |n, &d| {
        let v = d.wrapping_sub(b'0');
        if v > 9 {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_one_to_nineteen_decimal_digits() {
        assert_eq!(digits(b"0"), Some(0));
        assert_eq!(digits(b"007"), Some(7));
        assert_eq!(digits(b"9999999999999999999"), Some(9_999_999_999_999_999_999));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b"1 ",
            b"1e3",
            b"0x1",
            b"12345678901234567890",
            b"\xb1",
        ] {
            assert_eq!(digits(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn u64_fields_are_checked_for_overflow() {
        assert_eq!(parse_u64(b"42"), Some(42));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"00000000000000000001"), Some(1));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"99999999999999999999"), None);
        assert_eq!(parse_u64(b"000000000000000000001"), None);
        assert_eq!(parse_u64(b"1844674407370955161x"), None);
        assert_eq!(parse_u64(b""), None);
    }
}
