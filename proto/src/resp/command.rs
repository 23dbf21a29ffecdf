//! Building commands: arrays of bulk strings, with no allocation per argument.

use bytes::{Bytes, BytesMut};

use super::encode::header;
use crate::chassis::{IoArena, DEFAULT_SHARE_THRESHOLD};

/// A Redis command, encoded as its arguments are added.
///
/// Arguments are written straight into one buffer in their wire form (`$len\r\n...\r\n`),
/// so building a command costs one growing allocation however many arguments it has.
/// A [`Bytes`] argument of at least 4 KiB is kept as a shared segment and reaches the
/// kernel without being copied.
///
/// ```
/// use monocoque_proto::resp::Cmd;
/// let cmd = Cmd::new("SET").arg("key").arg(42).arg("EX").arg(10);
/// assert_eq!(cmd.name(), b"SET");
/// assert_eq!(cmd.arg_count(), 5);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Cmd {
    buf: BytesMut,
    argc: usize,
    /// Large payloads: (offset in `buf` where the payload goes, the payload).
    shared: Vec<(usize, Bytes)>,
    /// Where the first argument's payload lies in `buf`.
    name: (usize, usize),
}

impl Cmd {
    /// A command whose first argument is `name`.
    pub fn new(name: impl ToArg) -> Self {
        let mut cmd = Self {
            buf: BytesMut::with_capacity(64),
            ..Self::default()
        };
        cmd.push(name);
        cmd
    }

    /// Empties the command, keeping its buffer: a [`Cmd`] reused this way (`clear`,
    /// then [`push`](Self::push) the next command's arguments) allocates nothing once
    /// its buffer is large enough.
    ///
    /// ```
    /// use monocoque_proto::resp::Cmd;
    /// let mut cmd = Cmd::new("GET");
    /// cmd.push("a");
    /// cmd.clear();
    /// cmd.push("SET");
    /// cmd.push("b");
    /// cmd.push(1);
    /// assert_eq!((cmd.name(), cmd.arg_count()), (&b"SET"[..], 3));
    /// ```
    pub fn clear(&mut self) {
        self.buf.clear();
        self.argc = 0;
        self.shared.clear();
        self.name = (0, 0);
    }

    /// Appends an argument.
    #[must_use]
    pub fn arg(mut self, arg: impl ToArg) -> Self {
        self.push(arg);
        self
    }

    /// Appends each argument of `args`.
    #[must_use]
    pub fn args<A: ToArg>(mut self, args: impl IntoIterator<Item = A>) -> Self {
        for a in args {
            self.push(a);
        }
        self
    }

    /// Appends an argument in place.
    pub fn push(&mut self, arg: impl ToArg) {
        arg.write_arg(&mut ArgSink(self));
    }

    /// The first argument (the command's name), as given.
    pub fn name(&self) -> &[u8] {
        &self.buf[self.name.0..self.name.1]
    }

    /// Number of arguments, the name included.
    pub fn arg_count(&self) -> usize {
        self.argc
    }

    /// Size on the wire, in bytes.
    pub fn encoded_len(&self) -> usize {
        let mut digits = itoa::Buffer::new();
        3 + digits.format(self.argc).len() + self.buf.len() + self.shared.iter().map(|(_, b)| b.len()).sum::<usize>()
    }

    /// The arguments' bytes, in order (large shared arguments included).
    pub fn arg_bytes(&self) -> Vec<&[u8]> {
        // Walk the wire form: `$len\r\n` + payload + `\r\n`, splicing shared payloads.
        let mut out = Vec::with_capacity(self.argc);
        let mut pos = 0;
        let mut shared = self.shared.iter().peekable();
        while pos < self.buf.len() {
            let nl = pos + self.buf[pos..].iter().position(|&b| b == b'\n').unwrap_or(0);
            let len: usize = std::str::from_utf8(&self.buf[pos + 1..nl - 1])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let start = nl + 1;
            if let Some((_, b)) = shared.next_if(|(off, _)| *off == start) {
                out.push(&b[..]);
                pos = start + 2;
            } else {
                out.push(&self.buf[start..start + len]);
                pos = start + len + 2;
            }
        }
        out
    }

    /// Appends the command's wire form to `dst`.
    pub fn encode(&self, dst: &mut IoArena) {
        header(dst, b'*', self.argc);
        let mut pos = 0;
        for (off, data) in &self.shared {
            dst.put_slice(&self.buf[pos..*off]);
            dst.put_shared(data.clone());
            pos = *off;
        }
        dst.put_slice(&self.buf[pos..]);
    }

    /// Appends the wire form of the command whose arguments (name first) are `args`
    /// to `dst`, with no intermediate [`Cmd`]: the headers and short arguments are
    /// gathered on the stack and copied into the arena in one piece. Every argument is
    /// copied; use a [`Cmd`] with a [`Bytes`] argument to share a large payload instead.
    ///
    /// ```
    /// use monocoque_proto::chassis::IoArena;
    /// use monocoque_proto::resp::Cmd;
    /// let mut arena = IoArena::new();
    /// Cmd::encode_args(&mut arena, &[b"GET", b"k"]);
    /// assert_eq!(arena.to_vec(), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    /// assert_eq!(Cmd::args_encoded_len(&[b"GET", b"k"]), arena.len());
    /// ```
    pub fn encode_args(dst: &mut IoArena, args: &[&[u8]]) {
        let mut stage = [0u8; STAGE];
        let mut n = write_header(&mut stage, 0, b'*', args.len());
        for arg in args {
            if n + HEADER_MAX + arg.len() + 2 > STAGE {
                dst.put_slice(&stage[..n]);
                n = 0;
                if HEADER_MAX + arg.len() + 2 > STAGE {
                    // A long argument goes from the caller's slice into the arena.
                    let head = write_header(&mut stage, 0, b'$', arg.len());
                    dst.put_slice(&stage[..head]);
                    dst.put_slice(arg);
                    stage[..2].copy_from_slice(b"\r\n");
                    n = 2;
                    continue;
                }
            }
            n = write_header(&mut stage, n, b'$', arg.len());
            stage[n..n + arg.len()].copy_from_slice(arg);
            n += arg.len();
            stage[n] = b'\r';
            stage[n + 1] = b'\n';
            n += 2;
        }
        dst.put_slice(&stage[..n]);
    }

    /// Size on the wire of the command whose arguments are `args`, as
    /// [`encode_args`](Self::encode_args) writes it.
    pub fn args_encoded_len(args: &[&[u8]]) -> usize {
        let mut len = 3 + decimal_len(args.len());
        for arg in args {
            len += 5 + decimal_len(arg.len()) + arg.len();
        }
        len
    }

    fn begin(&mut self, len: usize) {
        let mut head = [0u8; HEADER_MAX];
        let n = write_header(&mut head, 0, b'$', len);
        self.buf.extend_from_slice(&head[..n]);
        if self.argc == 0 {
            self.name = (self.buf.len(), self.buf.len() + len);
        }
        self.argc += 1;
    }
}

/// The longest header: a type byte, 20 digits, CRLF.
const HEADER_MAX: usize = 24;

/// The stack space [`Cmd::encode_args`] gathers a command's small parts in.
const STAGE: usize = 128;

/// Writes `<ty><len>\r\n` into `out` at `at` (which has [`HEADER_MAX`] bytes of room);
/// returns where it ends.
#[inline(always)]
fn write_header<const N: usize>(out: &mut [u8; N], at: usize, ty: u8, len: usize) -> usize {
    out[at] = ty;
    let end = if len < 10 {
        out[at + 1] = b'0' + len as u8;
        at + 2
    } else if len < 100 {
        out[at + 1] = b'0' + (len / 10) as u8;
        out[at + 2] = b'0' + (len % 10) as u8;
        at + 3
    } else {
        let mut digits = itoa::Buffer::new();
        let d = digits.format(len).as_bytes();
        out[at + 1..at + 1 + d.len()].copy_from_slice(d);
        at + 1 + d.len()
    };
    out[end] = b'\r';
    out[end + 1] = b'\n';
    end + 2
}

/// Number of decimal digits of `n`.
fn decimal_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// Where an argument writes itself.
pub struct ArgSink<'a>(&'a mut Cmd);

impl ArgSink<'_> {
    /// Writes one argument by copying `data`.
    pub fn bytes(&mut self, data: &[u8]) {
        self.0.begin(data.len());
        self.0.buf.extend_from_slice(data);
        self.0.buf.extend_from_slice(b"\r\n");
    }

    /// Writes one argument, sharing it instead of copying when it is large.
    pub fn shared(&mut self, data: Bytes) {
        if data.len() < DEFAULT_SHARE_THRESHOLD || self.0.argc == 0 {
            self.bytes(&data);
            return;
        }
        self.0.begin(data.len());
        let at = self.0.buf.len();
        self.0.shared.push((at, data));
        self.0.buf.extend_from_slice(b"\r\n");
    }
}

/// A value usable as one command argument.
pub trait ToArg {
    /// Writes this value as exactly one argument.
    fn write_arg(&self, out: &mut ArgSink<'_>);
}

impl<T: ToArg + ?Sized> ToArg for &T {
    fn write_arg(&self, out: &mut ArgSink<'_>) {
        (**self).write_arg(out);
    }
}

impl ToArg for str {
    fn write_arg(&self, out: &mut ArgSink<'_>) {
        out.bytes(self.as_bytes());
    }
}

impl ToArg for String {
    fn write_arg(&self, out: &mut ArgSink<'_>) {
        out.bytes(self.as_bytes());
    }
}

impl ToArg for [u8] {
    fn write_arg(&self, out: &mut ArgSink<'_>) {
        out.bytes(self);
    }
}

impl<const N: usize> ToArg for [u8; N] {
    fn write_arg(&self, out: &mut ArgSink<'_>) {
        out.bytes(self);
    }
}

impl ToArg for Vec<u8> {
    fn write_arg(&self, out: &mut ArgSink<'_>) {
        out.bytes(self);
    }
}

impl ToArg for Bytes {
    fn write_arg(&self, out: &mut ArgSink<'_>) {
        out.shared(self.clone());
    }
}

macro_rules! int_arg {
    ($($t:ty),*) => {$(
        impl ToArg for $t {
            fn write_arg(&self, out: &mut ArgSink<'_>) {
                let mut digits = itoa::Buffer::new();
                out.bytes(digits.format(*self).as_bytes());
            }
        }
    )*};
}
int_arg!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

impl ToArg for f64 {
    /// Redis reads `inf`/`-inf` and plain decimals; NaN is not a valid score.
    fn write_arg(&self, out: &mut ArgSink<'_>) {
        if self.is_infinite() {
            out.bytes(if *self > 0.0 { b"inf" } else { b"-inf" });
        } else if self.is_nan() {
            out.bytes(b"nan");
        } else {
            let mut buf = ryu::Buffer::new();
            out.bytes(buf.format_finite(*self).as_bytes());
        }
    }
}

impl ToArg for f32 {
    fn write_arg(&self, out: &mut ArgSink<'_>) {
        f64::from(*self).write_arg(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form() {
        let cmd = Cmd::new("SET").arg("k").arg(-5i64).arg(1.5f64);
        let mut a = IoArena::new();
        cmd.encode(&mut a);
        assert_eq!(a.to_vec(), b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n-5\r\n$3\r\n1.5\r\n");
        assert_eq!(cmd.encoded_len(), a.len());
        assert_eq!(cmd.arg_bytes(), vec![&b"SET"[..], b"k", b"-5", b"1.5"]);
    }

    #[test]
    fn args_encode_as_a_cmd_does() {
        let long = vec![b'v'; 300];
        let huge = vec![b'w'; 5000];
        let cases: Vec<Vec<&[u8]>> = vec![
            vec![b"PING"],
            vec![b"SET", b"key:00001", b"monocoque-16byte"],
            vec![b"SET", b"", &long[..99], &long[..100]],
            vec![b"SET", &long, &huge, b"EX", b"10"],
        ];
        for args in cases {
            let mut cmd = Cmd::new(args[0]);
            for a in &args[1..] {
                cmd.push(*a);
            }
            let (mut a, mut b) = (IoArena::new(), IoArena::new());
            cmd.encode(&mut a);
            Cmd::encode_args(&mut b, &args);
            assert_eq!(a.to_vec(), b.to_vec());
            assert_eq!(Cmd::args_encoded_len(&args), b.len());
            assert_eq!(cmd.encoded_len(), b.len());
        }
    }

    #[test]
    fn a_cleared_cmd_is_a_new_one() {
        let mut cmd = Cmd::new("SET").arg("k").arg(Bytes::from(vec![b'x'; 5000]));
        cmd.clear();
        assert_eq!((cmd.name(), cmd.arg_count(), cmd.encoded_len()), (&b""[..], 0, 4));
        cmd.push("GET");
        cmd.push("k");
        let mut a = IoArena::new();
        cmd.encode(&mut a);
        assert_eq!(a.to_vec(), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        assert_eq!(cmd.name(), b"GET");
    }

    #[test]
    fn large_args_are_not_copied() {
        let big = Bytes::from(vec![b'x'; 10_000]);
        let cmd = Cmd::new("SET").arg("k").arg(big.clone()).arg("NX");
        let mut a = IoArena::new();
        cmd.encode(&mut a);
        assert!(a.chunks().any(|c| c.as_ptr() == big.as_ptr()), "payload shared");
        let flat = a.to_vec();
        assert!(flat.starts_with(b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$10000\r\nxxx"));
        assert!(flat.ends_with(b"xxx\r\n$2\r\nNX\r\n"));
        assert_eq!(cmd.encoded_len(), flat.len());
        assert_eq!(cmd.arg_bytes()[2].len(), 10_000);
        assert_eq!(cmd.arg_bytes()[3], b"NX");
    }
}
