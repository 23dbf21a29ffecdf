//! Splitting `--pipe` input into commands: RESP arrays of bulk strings, the form
//! `redis-cli --pipe` reads and a Redis server accepts.
//!
//! This is the request side of RESP, which the reply decoder in `monocoque_proto` does
//! not specialise for: decoding a command as a general [`Value`](monocoque_proto::resp::Value)
//! builds a `Vec` of `Bytes` views only to copy them again into a [`Cmd`]. Here each
//! command is checked and copied once, straight from the input buffer into its `Cmd`.
//! The rules are the server's (`processMultibulkBuffer`): `*<n>\r\n` then `n` times
//! `$<len>\r\n<len bytes>\r\n`; `n <= 0` is an empty command, skipped.

use monocoque_proto::resp::Cmd;

/// What the front of the input holds.
#[derive(Debug)]
pub(super) enum Scan {
    /// A whole command, and how many input bytes it took.
    Command(Cmd, usize),
    /// An empty array (`*0`, `*-1`), which Redis ignores, and its length in bytes.
    Empty(usize),
    /// The command is not complete yet: read more input and scan again from the same
    /// place.
    NeedMore,
}

/// Why the input is not a stream of commands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// A command must start with `*` (inline commands are not accepted).
    #[error("expected '*' (an array of bulk strings), found {}", show(*found))]
    NotAnArray {
        /// The byte found instead.
        found: u8,
    },
    /// Every argument must be a bulk string.
    #[error("expected '$' (a bulk string) for argument {arg}, found {}", show(*found))]
    NotABulkString {
        /// 1-based position of the argument.
        arg: usize,
        /// The byte found instead.
        found: u8,
    },
    /// A `*` or `$` line that is not a decimal number followed by CRLF.
    #[error("invalid length line")]
    BadLength,
    /// An argument longer than the limit (Redis' `proto-max-bulk-len`, 512 MiB).
    #[error("argument of {len} bytes is over the {max}-byte limit")]
    TooLong {
        /// The announced length.
        len: i64,
        /// The limit.
        max: usize,
    },
    /// An argument's bytes are not followed by CRLF.
    #[error("argument {arg} is not followed by CRLF")]
    MissingCrlf {
        /// 1-based position of the argument.
        arg: usize,
    },
}

fn show(byte: u8) -> String {
    if byte.is_ascii_graphic() {
        format!("'{}'", char::from(byte))
    } else {
        format!("byte 0x{byte:02x}")
    }
}

/// Parses `<number>\r\n` at `pos`: the number and the position after the CRLF, or
/// `None` when the line is not complete yet. At most 18 digits, so a line of garbage is
/// rejected after a few bytes, never buffered.
#[inline]
fn number_line(input: &[u8], pos: usize) -> Result<Option<(i64, usize)>, ScanError> {
    let negative = input.get(pos) == Some(&b'-');
    let digits = pos + usize::from(negative);
    let mut i = digits;
    let mut n: i64 = 0;
    loop {
        match input.get(i) {
            Some(&d @ b'0'..=b'9') => {
                // 18 digits always fit in an i64.
                if i - digits == 18 {
                    return Err(ScanError::BadLength);
                }
                n = n * 10 + i64::from(d - b'0');
                i += 1;
            }
            Some(b'\r') => break,
            Some(_) => return Err(ScanError::BadLength),
            None => return Ok(None),
        }
    }
    if i == digits {
        return Err(ScanError::BadLength);
    }
    match input.get(i + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((if negative { -n } else { n }, i + 2))),
        Some(_) => Err(ScanError::BadLength),
    }
}

/// Scans one command at the front of `input`; arguments over `max_bulk` bytes are an
/// error. An announced length reserves nothing: only bytes actually present are copied
/// (a command cut short by the end of `input` is dropped and scanned again later).
pub(super) fn scan_command(input: &[u8], max_bulk: usize) -> Result<Scan, ScanError> {
    let Some(&first) = input.first() else {
        return Ok(Scan::NeedMore);
    };
    if first != b'*' {
        return Err(ScanError::NotAnArray { found: first });
    }
    let Some((argc, mut pos)) = number_line(input, 1)? else {
        return Ok(Scan::NeedMore);
    };
    if argc <= 0 {
        return Ok(Scan::Empty(pos));
    }
    let argc = usize::try_from(argc).map_err(|_| ScanError::BadLength)?;
    let mut cmd = None::<Cmd>;
    for arg in 1..=argc {
        let Some(&marker) = input.get(pos) else {
            return Ok(Scan::NeedMore);
        };
        if marker != b'$' {
            return Err(ScanError::NotABulkString { arg, found: marker });
        }
        let Some((len, after)) = number_line(input, pos + 1)? else {
            return Ok(Scan::NeedMore);
        };
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= max_bulk)
            .ok_or(ScanError::TooLong { len, max: max_bulk })?;
        let end = after + len;
        match input.get(end..end + 2) {
            None => return Ok(Scan::NeedMore),
            Some(b"\r\n") => {}
            Some(_) => return Err(ScanError::MissingCrlf { arg }),
        }
        let bytes = &input[after..end];
        match cmd.as_mut() {
            None => cmd = Some(Cmd::new(bytes)),
            Some(c) => c.push(bytes),
        }
        pos = end + 2;
    }
    Ok(match cmd {
        Some(cmd) => Scan::Command(cmd, pos),
        None => Scan::Empty(pos),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 512 * 1024 * 1024;

    fn args(scan: &Scan) -> Vec<Vec<u8>> {
        match scan {
            Scan::Command(cmd, _) => cmd.arg_bytes().into_iter().map(<[u8]>::to_vec).collect(),
            other => panic!("not a command: {other:?}"),
        }
    }

    #[test]
    fn one_command_and_its_length() {
        let input = b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$0\r\n\r\n*1\r\n";
        let scan = scan_command(input, MAX).expect("valid");
        assert_eq!(args(&scan), [b"SET".to_vec(), b"k\r\n".to_vec(), Vec::new()]);
        let Scan::Command(cmd, used) = scan else { unreachable!() };
        assert_eq!(used, input.len() - 4);
        assert_eq!(cmd.encoded_len(), used, "re-encoding gives the same bytes");
    }

    #[test]
    fn every_prefix_needs_more_and_the_whole_parses() {
        let input = b"*2\r\n$4\r\nECHO\r\n$11\r\nhello\0world\r\n";
        for cut in 0..input.len() {
            assert!(
                matches!(scan_command(&input[..cut], MAX), Ok(Scan::NeedMore)),
                "prefix of {cut} bytes"
            );
        }
        let scan = scan_command(input, MAX).expect("valid");
        assert_eq!(args(&scan), [b"ECHO".to_vec(), b"hello\0world".to_vec()]);
    }

    #[test]
    fn empty_arrays_are_skipped() {
        assert!(matches!(scan_command(b"*0\r\n*1", MAX), Ok(Scan::Empty(4))));
        assert!(matches!(scan_command(b"*-1\r\n", MAX), Ok(Scan::Empty(5))));
    }

    #[test]
    fn malformed_input_is_an_error() {
        let err = |input: &[u8]| scan_command(input, MAX).expect_err("malformed");
        assert_eq!(err(b"SET k v\r\n"), ScanError::NotAnArray { found: b'S' });
        assert_eq!(err(b"*1\r\n:1\r\n"), ScanError::NotABulkString { arg: 1, found: b':' });
        assert_eq!(err(b"*1x\r\n"), ScanError::BadLength);
        assert_eq!(err(b"*\r\n"), ScanError::BadLength);
        assert_eq!(err(b"*1\rX"), ScanError::BadLength);
        assert_eq!(err(b"*1\r\n$-1\r\n"), ScanError::TooLong { len: -1, max: MAX });
        assert_eq!(err(b"*1\r\n$3\r\nabcd\r\n"), ScanError::MissingCrlf { arg: 1 });
        assert_eq!(err(b"*1\r\n$99999999999999999999\r\n"), ScanError::BadLength);
        assert_eq!(
            err(&[b'*'; 40]),
            ScanError::BadLength,
            "no CRLF within the header limit"
        );
        assert_eq!(
            scan_command(b"*1\r\n$10\r\n", 9).expect_err("over the limit"),
            ScanError::TooLong { len: 10, max: 9 }
        );
    }

    #[test]
    fn an_announced_length_allocates_nothing_before_the_bytes_arrive() {
        // A command claiming a 500 MB argument is only "need more" until it arrives.
        assert!(matches!(
            scan_command(b"*2\r\n$3\r\nSET\r\n$500000000\r\nab", MAX),
            Ok(Scan::NeedMore)
        ));
    }
}
