//! A WebSocket frame's announced length reserves nothing: proven with a counting global
//! allocator (this test binary's own). A header announcing 2^62 bytes, or just over the
//! limit, is refused (close 1009) with a few KB allocated at most (the close frame, the
//! MQTT connection's end); the decoder alone allocates nothing to refuse it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use bytes::Bytes;
use monocoque_proto::mqtt::broker::{Connection, ConnectionConfig};
use monocoque_proto::ws::{FrameDecoder, FrameError, Role, WsConfig, WsError, WsSession};
use monocoque_proto::{SegmentedBuffer, Session};

struct Counting;

thread_local! {
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn count(size: usize) {
    let _ = BYTES.try_with(|n| n.set(n.get() + size as u64));
}

// SAFETY: every call forwards to `System` with the caller's arguments unchanged; the
// bookkeeping touches only a const-initialised thread local, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes this thread asked the allocator for while running `f`.
fn bytes_during<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = BYTES.with(Cell::get);
    let out = f();
    (out, BYTES.with(Cell::get) - before)
}

const REQUEST: &[u8] = b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Headers announcing 2^62, 2^32 and max + 1 bytes (the 64-bit form, masked).
fn oversized(max: u64) -> Vec<Vec<u8>> {
    [1u64 << 62, 1 << 32, max + 1]
        .into_iter()
        .map(|len| {
            let mut h = vec![0x82, 0xFF];
            h.extend_from_slice(&len.to_be_bytes());
            h.extend_from_slice(&[1, 2, 3, 4]);
            h
        })
        .collect()
}

/// RFC 6455 section 10.4: limits on frame size, enforced before the payload arrives.
#[test]
fn an_oversized_frame_is_refused_without_the_allocation() {
    let max = 1 << 20;
    for header in oversized(max) {
        // The decoder alone: not one byte.
        let mut decoder = FrameDecoder::new(Role::Server, max);
        let mut src = SegmentedBuffer::from(Bytes::from(header.clone()));
        let (result, bytes) = bytes_during(|| decoder.decode(&mut src));
        assert!(matches!(result, Err(FrameError::TooLarge { .. })), "{result:?}");
        assert_eq!(bytes, 0, "{header:?}");

        // The broker's WebSocket session: the close frame and its bookkeeping only.
        let now = Instant::now();
        let mut session = WsSession::new(
            Connection::new(ConnectionConfig::default(), now),
            WsConfig::mqtt(max as u32),
        );
        session.handle_input(Bytes::from_static(REQUEST), now);
        let input = Bytes::from(header.clone());
        let ((), bytes) = bytes_during(|| session.handle_input(input, now));
        assert!(session.is_closed());
        assert!(matches!(
            session.error(),
            Some(WsError::Frame(FrameError::TooLarge { .. }))
        ));
        // The input queue, the close frame, the MQTT connection's Closed event (its
        // queue takes ~1.8 KB): a few KB, against the 1 MiB + 1 the smallest announced.
        assert!(bytes < 4096, "{bytes} bytes allocated to refuse {header:?}");
    }
}
