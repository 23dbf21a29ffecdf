//! Decoding a NATS frame allocates nothing: proven with a counting global allocator
//! (this test binary's own), over many `PUB`, `HPUB`, `MSG` and `HMSG` frames, on both
//! sides' frame decoders, whole in one buffer or arriving in pieces.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use monocoque_proto::nats::{ClientFrame, ClientFrameDecoder, HeaderMap, ServerFrame, ServerFrameDecoder};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call forwards to `System` with the caller's arguments unchanged; the
// bookkeeping touches only a const-initialised thread local, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations this thread made while running `f`.
fn allocations_during<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (out, ALLOCATIONS.with(Cell::get) - before)
}

const FRAMES: usize = 10_000;

fn header_block() -> Vec<u8> {
    let mut map = HeaderMap::new();
    map.insert("Nats-Msg-Id", "abc")
        .unwrap()
        .insert("X-Trace", "1")
        .unwrap();
    map.to_headers().as_bytes().to_vec()
}

/// `FRAMES` frames a client sends: PUB, PUB with reply, HPUB, HPUB with reply, in turn.
fn client_stream() -> Vec<u8> {
    let headers = header_block();
    let mut out = Vec::new();
    for i in 0..FRAMES {
        match i % 4 {
            0 => out.extend_from_slice(b"PUB foo.bar 16\r\n0123456789abcdef\r\n"),
            1 => out.extend_from_slice(b"PUB foo.bar _INBOX.abc.1 16\r\n0123456789abcdef\r\n"),
            2 => {
                out.extend_from_slice(format!("HPUB foo.bar {} {}\r\n", headers.len(), headers.len() + 16).as_bytes());
                out.extend_from_slice(&headers);
                out.extend_from_slice(b"0123456789abcdef\r\n");
            }
            _ => {
                out.extend_from_slice(
                    format!("HPUB foo.bar _INBOX.abc.2 {} {}\r\n", headers.len(), headers.len() + 16).as_bytes(),
                );
                out.extend_from_slice(&headers);
                out.extend_from_slice(b"0123456789abcdef\r\n");
            }
        }
    }
    out
}

/// `FRAMES` frames a server sends: MSG, MSG with reply, HMSG, HMSG with reply, in turn.
fn server_stream() -> Vec<u8> {
    let headers = header_block();
    let mut out = Vec::new();
    for i in 0..FRAMES {
        match i % 4 {
            0 => out.extend_from_slice(b"MSG foo.bar 1 16\r\n0123456789abcdef\r\n"),
            1 => out.extend_from_slice(b"MSG foo.bar 22 _INBOX.abc.1 16\r\n0123456789abcdef\r\n"),
            2 => {
                out.extend_from_slice(
                    format!("HMSG foo.bar 3 {} {}\r\n", headers.len(), headers.len() + 16).as_bytes(),
                );
                out.extend_from_slice(&headers);
                out.extend_from_slice(b"0123456789abcdef\r\n");
            }
            _ => {
                out.extend_from_slice(
                    format!(
                        "HMSG foo.bar 4 _INBOX.abc.2 {} {}\r\n",
                        headers.len(),
                        headers.len() + 16
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(&headers);
                out.extend_from_slice(b"0123456789abcdef\r\n");
            }
        }
    }
    out
}

/// Decodes every client frame at the front of `buf`, looking at each one (so nothing
/// is optimised away); returns how many were decoded, a checksum of what they hold,
/// and the bytes they took.
fn drain_client_frames(decoder: &mut ServerFrameDecoder, buf: &[u8]) -> (usize, usize, usize) {
    let (mut n, mut sum, mut at) = (0, 0, 0);
    while let Some((frame, len)) = decoder.decode(&buf[at..]).expect("valid stream") {
        let ClientFrame::Publish(p) = frame else {
            panic!("unexpected {frame:?}")
        };
        sum += p.subject.len() + p.payload.len() + p.reply.map_or(0, <[u8]>::len);
        sum += p.headers.map_or(0, <[u8]>::len);
        n += 1;
        at += len;
    }
    (n, sum, at)
}

fn drain_server_frames(decoder: &mut ClientFrameDecoder, buf: &[u8]) -> (usize, usize, usize) {
    let (mut n, mut sum, mut at) = (0, 0, 0);
    while let Some((frame, len)) = decoder.decode(&buf[at..]).expect("valid stream") {
        let ServerFrame::Message(m) = frame else {
            panic!("unexpected {frame:?}")
        };
        sum += m.subject.len() + m.payload.len() + m.reply.map_or(0, <[u8]>::len);
        sum += m.sid.len() + m.headers.map_or(0, <[u8]>::len);
        n += 1;
        at += len;
    }
    (n, sum, at)
}

#[test]
fn decoding_client_frames_allocates_nothing() {
    let stream = client_stream();
    let mut decoder = ServerFrameDecoder::default();
    let ((n, sum, at), allocations) = allocations_during(|| drain_client_frames(&mut decoder, &stream));
    assert_eq!((n, at), (FRAMES, stream.len()));
    assert!(sum > 0);
    assert_eq!(allocations, 0, "{allocations} allocations decoding {n} PUB/HPUB frames");
}

#[test]
fn decoding_server_frames_allocates_nothing() {
    let stream = server_stream();
    let mut decoder = ClientFrameDecoder::default();
    let ((n, sum, at), allocations) = allocations_during(|| drain_server_frames(&mut decoder, &stream));
    assert_eq!((n, at), (FRAMES, stream.len()));
    assert!(sum > 0);
    assert_eq!(allocations, 0, "{allocations} allocations decoding {n} MSG/HMSG frames");
}

/// Hands `stream` over in pieces of `size` bytes (cut anywhere, frames included) to a
/// reader with one buffer: each piece appended, every complete frame decoded from the
/// front, the decoded bytes dropped. Returns the frames decoded and the allocations
/// made after the buffer got its storage.
fn in_pieces(stream: &[u8], size: usize, mut drain: impl FnMut(&[u8]) -> (usize, usize, usize)) -> (usize, u64) {
    // Room for a piece and what is left of a frame cut by the one before (every frame
    // here is under 128 bytes).
    let mut buf = Vec::with_capacity(size + 128);
    allocations_during(|| {
        let mut frames = 0;
        for piece in stream.chunks(size) {
            buf.extend_from_slice(piece);
            let (n, _, at) = drain(&buf);
            frames += n;
            buf.drain(..at);
        }
        assert!(buf.is_empty(), "{} bytes left", buf.len());
        frames
    })
}

#[test]
fn frames_arriving_in_pieces_allocate_nothing() {
    for size in [4096, 1000, 37] {
        let mut decoder = ServerFrameDecoder::default();
        let (n, allocations) = in_pieces(&client_stream(), size, |buf| drain_client_frames(&mut decoder, buf));
        assert_eq!(n, FRAMES);
        assert_eq!(
            allocations, 0,
            "{allocations} allocations for {n} frames in pieces of {size}"
        );
        let mut decoder = ClientFrameDecoder::default();
        let (n, allocations) = in_pieces(&server_stream(), size, |buf| drain_server_frames(&mut decoder, buf));
        assert_eq!(n, FRAMES);
        assert_eq!(
            allocations, 0,
            "{allocations} allocations for {n} frames in pieces of {size}"
        );
    }
}

#[test]
fn a_payload_waiting_for_its_bytes_allocates_nothing_either() {
    // The control line arrives alone and the payload later.
    let mut decoder = ClientFrameDecoder::default();
    let frame = b"MSG foo.bar 1 _INBOX.x 16\r\n0123456789abcdef\r\n";
    let (first, a1) = allocations_during(|| decoder.decode(&frame[..27]).map(|f| f.is_some()));
    assert_eq!(first, Ok(false));
    let (second, a2) = allocations_during(|| decoder.decode(frame));
    let Ok(Some((ServerFrame::Message(m), len))) = second else {
        panic!("{second:?}")
    };
    assert_eq!((m.payload, len), (&b"0123456789abcdef"[..], frame.len()));
    assert_eq!((a1, a2), (0, 0));
}

#[test]
fn the_counter_sees_allocations() {
    // INFO builds owned strings: the counter must see them, or the zeros above prove
    // nothing.
    let mut decoder = ClientFrameDecoder::default();
    let info = b"INFO {\"server_id\":\"abc\",\"connect_urls\":[\"a:1\"]}\r\n";
    let (frame, allocations) = allocations_during(|| decoder.decode(info).map(|f| f.is_some()));
    assert_eq!(frame, Ok(true));
    assert!(allocations >= 3, "{allocations} allocations for an INFO");
}
