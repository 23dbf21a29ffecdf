//! Decoding a NATS frame allocates nothing but the reference counts of its `Bytes`
//! views: proven with a counting global allocator (this test binary's own), over many
//! `PUB`, `HPUB`, `MSG` and `HMSG` frames in both roles.
//!
//! One cost belongs to `bytes`, not to the codec: a `Bytes` made from a `Vec` is
//! "promotable", and the first view taken of it allocates its shared reference count,
//! once per received segment. A warm-up decode pays it before counting starts; segments
//! cut from a `BytesMut` (as drivers' pooled buffers are) are shared from the start.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use monocoque_proto::nats::{ClientCodec, ClientOp, HeaderMap, ServerCodec, ServerOp};
use monocoque_proto::SegmentedBuffer;

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

/// Decodes every client frame, looking at each one (so nothing is optimised away);
/// returns how many were decoded and a checksum of what they hold.
fn drain_client_ops(codec: &mut ServerCodec, src: &mut SegmentedBuffer, limit: usize) -> (usize, usize) {
    let (mut n, mut sum) = (0, 0);
    while n < limit {
        match codec.decode_op(src).expect("valid stream") {
            Some(ClientOp::Publish(p)) => {
                sum += p.subject.len() + p.payload.len() + p.reply.map_or(0, |r| r.len());
                sum += p.headers.map_or(0, |h| h.len());
                n += 1;
            }
            Some(other) => panic!("unexpected {other:?}"),
            None => break,
        }
    }
    (n, sum)
}

fn drain_server_ops(codec: &mut ClientCodec, src: &mut SegmentedBuffer, limit: usize) -> (usize, usize) {
    let (mut n, mut sum) = (0, 0);
    while n < limit {
        match codec.decode_op(src).expect("valid stream") {
            Some(ServerOp::Message(m)) => {
                sum += m.subject.len() + m.payload.len() + m.reply.map_or(0, |r| r.len());
                sum += m.sid.as_bytes().len() + m.headers.map_or(0, |h| h.len());
                n += 1;
            }
            Some(other) => panic!("unexpected {other:?}"),
            None => break,
        }
    }
    (n, sum)
}

#[test]
fn decoding_client_frames_allocates_nothing() {
    let mut codec = ServerCodec::default();
    let mut src = SegmentedBuffer::from(Bytes::from(client_stream()));
    // Warm-up: the first view promotes the segment's reference count.
    assert_eq!(drain_client_ops(&mut codec, &mut src, 8).0, 8);
    let ((n, sum), allocations) = allocations_during(|| drain_client_ops(&mut codec, &mut src, usize::MAX));
    assert_eq!(n, FRAMES - 8);
    assert!(sum > 0);
    assert!(src.is_empty());
    assert_eq!(allocations, 0, "{allocations} allocations decoding {n} PUB/HPUB frames");
}

#[test]
fn decoding_server_frames_allocates_nothing() {
    let mut codec = ClientCodec::default();
    let mut src = SegmentedBuffer::from(Bytes::from(server_stream()));
    assert_eq!(drain_server_ops(&mut codec, &mut src, 8).0, 8);
    let ((n, sum), allocations) = allocations_during(|| drain_server_ops(&mut codec, &mut src, usize::MAX));
    assert_eq!(n, FRAMES - 8);
    assert!(sum > 0);
    assert!(src.is_empty());
    assert_eq!(allocations, 0, "{allocations} allocations decoding {n} MSG/HMSG frames");
}

/// Cuts `stream` into shared segments of about `size` bytes, each ending at a frame
/// boundary (`frame_ends` says where frames end), as a driver's pooled buffers would be.
fn shared_segments(stream: &[u8], frame_ends: &[usize], size: usize) -> Vec<Bytes> {
    let mut all = BytesMut::from(stream);
    let mut segments = Vec::new();
    let mut taken = 0;
    let mut last_end = 0;
    for &end in frame_ends {
        if end - taken >= size {
            segments.push(all.split_to(end - taken).freeze());
            taken = end;
        }
        last_end = end;
    }
    assert_eq!(last_end, stream.len());
    if taken < stream.len() {
        segments.push(all.split().freeze());
    }
    segments
}

/// Where each frame of a stream ends, found by decoding it once.
fn frame_ends(stream: &[u8], client: bool) -> Vec<usize> {
    let mut src = SegmentedBuffer::from(Bytes::copy_from_slice(stream));
    let mut ends = Vec::new();
    let (mut server, mut client_codec) = (ServerCodec::default(), ClientCodec::default());
    loop {
        let got = if client {
            server.decode_op(&mut src).expect("valid").is_some()
        } else {
            client_codec.decode_op(&mut src).expect("valid").is_some()
        };
        if !got {
            break;
        }
        ends.push(stream.len() - src.len());
    }
    ends
}

#[test]
fn frames_in_many_shared_segments_allocate_nothing() {
    let client = client_stream();
    let segments = shared_segments(&client, &frame_ends(&client, true), 4096);
    assert!(segments.len() > 50, "{} segments", segments.len());
    let mut codec = ServerCodec::default();
    let mut src = SegmentedBuffer::new();
    let mut segments = segments.into_iter();
    // The first segment gives the segment queue (a VecDeque) its storage.
    src.push(segments.next().expect("segments"));
    let first = drain_client_ops(&mut codec, &mut src, usize::MAX).0;
    let ((n, _), allocations) = allocations_during(|| {
        let mut total = (0, 0);
        for seg in segments {
            src.push(seg);
            let (n, sum) = drain_client_ops(&mut codec, &mut src, usize::MAX);
            total = (total.0 + n, total.1 + sum);
        }
        total
    });
    assert_eq!(first + n, FRAMES);
    assert_eq!(allocations, 0, "{allocations} allocations for {n} frames");

    let server = server_stream();
    let segments = shared_segments(&server, &frame_ends(&server, false), 4096);
    let mut codec = ClientCodec::default();
    let mut src = SegmentedBuffer::new();
    let mut segments = segments.into_iter();
    src.push(segments.next().expect("segments"));
    let first = drain_server_ops(&mut codec, &mut src, usize::MAX).0;
    let ((n, _), allocations) = allocations_during(|| {
        let mut total = (0, 0);
        for seg in segments {
            src.push(seg);
            let (n, sum) = drain_server_ops(&mut codec, &mut src, usize::MAX);
            total = (total.0 + n, total.1 + sum);
        }
        total
    });
    assert_eq!(first + n, FRAMES);
    assert_eq!(allocations, 0, "{allocations} allocations for {n} frames");
}

#[test]
fn a_payload_waiting_for_its_segment_allocates_nothing_either() {
    // The control line arrives alone and the payload later, in its own segment: the
    // parsed line is kept in the codec (no box), the payload is a view of its segment.
    let mut codec = ClientCodec::default();
    let mut src = SegmentedBuffer::new();
    let line = BytesMut::from(&b"MSG foo.bar 1 _INBOX.x 16\r\n"[..]).split().freeze();
    let body = BytesMut::from(&b"0123456789abcdef\r\n"[..]).split().freeze();
    src.push(line);
    let (first, a1) = allocations_during(|| codec.decode_op(&mut src));
    assert_eq!(first, Ok(None));
    src.push(body);
    let (second, a2) = allocations_during(|| codec.decode_op(&mut src));
    let Ok(Some(ServerOp::Message(m))) = second else {
        panic!("{second:?}")
    };
    assert_eq!(m.payload, "0123456789abcdef");
    assert_eq!((a1, a2), (0, 0));
}

#[test]
fn the_counter_sees_allocations() {
    // INFO builds owned strings: the counter must see them, or the zeros above prove
    // nothing.
    let mut codec = ClientCodec::default();
    let mut src = SegmentedBuffer::from(Bytes::from_static(
        b"INFO {\"server_id\":\"abc\",\"connect_urls\":[\"a:1\"]}\r\n",
    ));
    let (op, allocations) = allocations_during(|| codec.decode_op(&mut src));
    assert!(matches!(op, Ok(Some(ServerOp::Info(_)))));
    assert!(allocations >= 3, "{allocations} allocations for an INFO");
}
