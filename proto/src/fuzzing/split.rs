//! Turning a seed byte into segment boundaries, so the fuzzer explores where the driver
//! cut the stream as well as what the stream says.

/// Cuts `body` into the pieces a driver might have received it in.
///
/// - seed `0`: one piece;
/// - seed `1`: one byte per piece;
/// - any other seed: pseudo-random lengths in `1..=seed / 4 + 1`, from a generator seeded
///   by the same byte, so one input always produces the same cuts.
pub(crate) fn pieces(body: &[u8], seed: u8) -> Vec<&[u8]> {
    match seed {
        0 => vec![body],
        1 => body.chunks(1).collect(),
        _ => {
            let max = u32::from(seed) / 4 + 1;
            let mut rng = XorShift(u32::from(seed).wrapping_mul(0x9e37_79b9) | 1);
            let mut out = Vec::new();
            let mut rest = body;
            while !rest.is_empty() {
                let len = ((1 + rng.next() % max) as usize).min(rest.len());
                let (piece, tail) = rest.split_at(len);
                out.push(piece);
                rest = tail;
            }
            out
        }
    }
}

/// Marsaglia's xorshift32: enough randomness to scatter cuts, and reproducible.
struct XorShift(u32);

impl XorShift {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_body_in_order() {
        let body: Vec<u8> = (0..=255).collect();
        for seed in 0..=255u8 {
            let parts = pieces(&body, seed);
            assert_eq!(parts.concat(), body, "seed {seed}");
            assert!(parts.iter().all(|p| !p.is_empty()), "seed {seed}");
            assert!(parts.iter().all(|p| p.len() <= usize::from(seed) / 4 + 1) || seed == 0);
        }
        assert_eq!(pieces(b"", 7), Vec::<&[u8]>::new());
    }
}
