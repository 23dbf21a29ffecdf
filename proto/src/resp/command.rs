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

    fn begin(&mut self, len: usize) {
        self.buf.extend_from_slice(b"$");
        let mut digits = itoa::Buffer::new();
        self.buf.extend_from_slice(digits.format(len).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
        if self.argc == 0 {
            self.name = (self.buf.len(), self.buf.len() + len);
        }
        self.argc += 1;
    }
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
