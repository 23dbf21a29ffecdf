//! The server-side command decoder target: split invariance, zero copy, a differential
//! against the reply decoder and a round trip through the client's encoder.

use bytes::Bytes;

use super::split::pieces;
use crate::chassis::{IoArena, SegmentedBuffer};
use crate::resp::{
    Cmd, Command, CommandDecodeError, CommandDecoder, CommandLimits, Decoder, DecoderConfig, Protocol, Value,
};

/// How decoding a stream ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The decoder asked for more input, with this many bytes left in the buffer and
    /// (or not) a command partly taken.
    NeedMore { left: usize, mid_command: bool },
    /// The decoder rejected the stream.
    Error(CommandDecodeError),
}

/// Decodes `segments`, pushed one at a time, decoding all it can after each, with
/// `decode` or (`lent`) with `decode_with`, its arguments copied out.
fn decode_pieces(limits: CommandLimits, segments: Vec<Bytes>, lent: bool) -> (Vec<Vec<Bytes>>, End) {
    let mut src = SegmentedBuffer::new();
    let mut decoder = CommandDecoder::new(limits);
    let mut commands = Vec::new();
    for segment in segments {
        src.push(segment);
        loop {
            let decoded = if lent {
                decoder.decode_with(&mut src, |cmd| cmd.iter().map(Bytes::copy_from_slice).collect())
            } else {
                decoder.decode(&mut src).map(|c| c.map(Command::into_args))
            };
            match decoded {
                Ok(Some(command)) => commands.push(command),
                Ok(None) => break,
                Err(e) => return (commands, End::Error(e)),
            }
        }
    }
    let end = End::NeedMore {
        left: src.len(),
        mid_command: decoder.is_mid_command(),
    };
    (commands, end)
}

/// Fuzzes [`CommandDecoder`], the server side of RESP.
///
/// Input layout: byte 0 holds options (bit 0: small limits, so every limit error is
/// reachable), byte 1 seeds the segment boundaries, the rest is the stream a client
/// sends.
///
/// Checks, panicking on the first that fails:
/// 1. decoding never panics, and stops at the first `Err`;
/// 2. the stream cut into pieces (by the seed) decodes to exactly what the stream in one
///    piece decodes to: the same commands, then the same error or the same bytes left
///    and partial command; so does `decode_with`, which lends them;
/// 3. from one segment, every argument is a view of it (zero copy), and no command is
///    empty;
/// 4. the reply [`Decoder`] (RESP2) reads the same stream, as far as it accepts it, as
///    the same commands (arrays of bulk strings; the empty arrays skipped);
/// 5. every command, encoded by the client's [`Cmd`], decodes back identical and whole.
pub fn resp_request(data: &[u8]) {
    let options = data.first().copied().unwrap_or(0);
    let seed = data.get(1).copied().unwrap_or(0);
    let body = Bytes::copy_from_slice(data.get(2..).unwrap_or_default());
    let limits = if options & 1 != 0 {
        CommandLimits {
            max_args: 5,
            max_arg_len: 16,
        }
    } else {
        CommandLimits::default()
    };

    let (commands, end) = decode_pieces(limits, vec![body.clone()], false);
    let cut = pieces(&body, seed)
        .into_iter()
        .map(Bytes::copy_from_slice)
        .collect::<Vec<_>>();
    let (cut_commands, cut_end) = decode_pieces(limits, cut.clone(), false);
    assert_eq!(cut_end, end, "segment boundaries changed how decoding ended");
    assert_eq!(cut_commands, commands, "segment boundaries changed the commands");
    let (lent, lent_end) = decode_pieces(limits, cut, true);
    assert_eq!(lent_end, end, "decode_with ended differently");
    assert_eq!(lent, commands, "decode_with decoded differently");

    let inside = body.as_ptr_range();
    for command in &commands {
        assert!(!command.is_empty(), "an empty command was returned");
        assert!(command.len() <= limits.max_args);
        for arg in command {
            assert!(arg.len() <= limits.max_arg_len);
            assert!(
                arg.is_empty() || inside.contains(&arg.as_ptr()),
                "an argument in one segment was copied"
            );
        }
    }

    // The reply decoder reads every command this decoder returns (its limits are larger)
    // and more (other types, nesting); the comparison stops where they part.
    let mut src = SegmentedBuffer::new();
    src.push(body.clone());
    let mut replies = Decoder::new(DecoderConfig::new(Protocol::Resp2));
    let mut expected = commands.iter();
    while let Ok(Some(value)) = replies.decode(&mut src) {
        let items = match value {
            Value::Array(items) if !items.is_empty() => items,
            // `*0` and `*-1`, which the command decoder skips.
            Value::Array(_) | Value::Null => continue,
            _ => break,
        };
        let Some(command) = expected.next() else {
            break;
        };
        let same = items.len() == command.len()
            && items
                .iter()
                .zip(command)
                .all(|(item, arg)| matches!(item, Value::BulkString(b) if b == arg));
        assert!(same, "the reply decoder read {items:?} where this one read {command:?}");
    }

    for command in &commands {
        let mut cmd = Cmd::new(&command[0]);
        for arg in &command[1..] {
            cmd.push(&arg[..]);
        }
        let mut arena = IoArena::new();
        cmd.encode(&mut arena);
        let wire = arena.to_vec();
        assert_eq!(wire.len(), cmd.encoded_len());
        let (again, end) = decode_pieces(limits, vec![Bytes::from(wire)], false);
        assert_eq!(again.as_slice(), std::slice::from_ref(command), "re-encoded command");
        assert_eq!(
            end,
            End::NeedMore {
                left: 0,
                mid_command: false
            }
        );
    }
}
