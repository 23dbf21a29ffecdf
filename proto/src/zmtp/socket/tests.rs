use bytes::Bytes;

use super::*;
use crate::zmtp::{Metadata, Version};

fn est(peer: SocketType, identity: &'static str) -> Established {
    Established {
        version: Version::V3_1,
        peer_socket_type: peer,
        peer_identity: Bytes::from_static(identity.as_bytes()),
        peer_metadata: Metadata::default(),
        user_id: None,
    }
}

fn m(frames: &[&'static str]) -> Message {
    frames.iter().map(|f| Bytes::from_static(f.as_bytes())).collect()
}

fn logic(t: SocketType, hwm: usize) -> SocketLogic<u32> {
    SocketLogic::new(
        t,
        SocketOptions {
            send_hwm: hwm,
            ..SocketOptions::default()
        },
    )
}

#[test]
fn receivers_cannot_send_and_messages_have_frames() {
    assert_eq!(
        logic(SocketType::Pull, 1).send(m(&["x"])),
        Err(SocketError::CannotSend(SocketType::Pull))
    );
    assert_eq!(
        logic(SocketType::Push, 1).send(Message::new()),
        Err(SocketError::EmptyMessage)
    );
}

#[test]
fn dealer_round_robins_and_blocks_at_the_hwm() {
    let mut s = logic(SocketType::Dealer, 2);
    // No peer: a DEALER blocks.
    assert_eq!(s.send(m(&["0"])), Err(SocketError::WouldBlock(m(&["0"]))));
    assert!(s.add_peer(1));
    assert!(s.add_peer(2));
    for i in ["a", "b", "c", "d"] {
        s.send(m(&[i])).unwrap();
    }
    // Both queues at 2: the fifth blocks and comes back whole.
    assert_eq!(s.send(m(&["e"])), Err(SocketError::WouldBlock(m(&["e"]))));
    // Not established yet: nothing leaves.
    assert!(!s.has_outgoing(1));
    assert_eq!(s.poll_outgoing(1), None);
    s.established(1, &est(SocketType::Router, ""));
    s.established(2, &est(SocketType::Router, ""));
    assert!(s.has_outgoing(1));
    assert_eq!(s.poll_outgoing(1), Some(m(&["a"])));
    assert_eq!(s.poll_outgoing(1), Some(m(&["c"])));
    assert_eq!(s.poll_outgoing(1), None);
    assert!(!s.has_outgoing(1));
    // Only peer 1 has room now: both go there, though it is peer 2's turn.
    s.send(m(&["e"])).unwrap();
    s.send(m(&["f"])).unwrap();
    assert_eq!(s.queued_for(1), 2);
    assert_eq!(s.queued_for(2), 2);
    assert!(matches!(s.send(m(&["g"])), Err(SocketError::WouldBlock(_))));
}

#[test]
fn dealer_and_pull_fair_queue_what_they_receive() {
    for t in [SocketType::Dealer, SocketType::Pull] {
        let mut s = logic(t, 10);
        assert!(s.add_peer(1));
        assert!(s.add_peer(2));
        s.handle_message(1, m(&["1a"]));
        s.handle_message(1, m(&["1b"]));
        s.handle_message(2, m(&["2a"]));
        let got: Vec<_> = std::iter::from_fn(|| s.recv()).collect();
        assert_eq!(got, vec![m(&["1a"]), m(&["2a"]), m(&["1b"])]);
    }
}

#[test]
fn router_prefixes_identities_and_routes_by_them() {
    let mut s = logic(SocketType::Router, 1);
    assert!(s.add_peer(1));
    assert!(s.add_peer(2));
    assert!(s.add_peer(3));
    s.established(1, &est(SocketType::Dealer, "alice"));
    s.established(2, &est(SocketType::Dealer, ""));
    // A taken identity is not handed over: peer 3 gets a generated one.
    s.established(3, &est(SocketType::Dealer, "alice"));
    let generated = s.identity_of(2).unwrap().clone();
    assert_eq!(generated.len(), 5);
    assert_eq!(generated[0], 0);
    assert_eq!(s.identity_of(1).unwrap(), "alice");
    assert_ne!(s.identity_of(3).unwrap(), "alice");
    assert_ne!(s.identity_of(3).unwrap(), &generated);

    s.handle_message(2, m(&["hi"]));
    assert_eq!(
        s.recv().map(Vec::from),
        Some(vec![generated.clone(), Bytes::from_static(b"hi")])
    );

    s.send(m(&["alice", "", "to alice"])).unwrap();
    s.send(Message::from(vec![generated.clone(), Bytes::from_static(b"to 2")]))
        .unwrap();
    assert_eq!(s.poll_outgoing(1), Some(m(&["", "to alice"])));
    assert_eq!(s.poll_outgoing(2), Some(m(&["to 2"])));
    // Unroutable, and beyond the HWM of 1: dropped, counted, never blocking.
    s.send(m(&["nobody", "x"])).unwrap();
    s.send(m(&["alice", "1"])).unwrap();
    s.send(m(&["alice", "2"])).unwrap();
    assert_eq!(s.dropped(), 2);
    assert_eq!(s.poll_outgoing(1), Some(m(&["1"])));
    assert_eq!(s.poll_outgoing(1), None);
    // A disconnected peer's identity routes nowhere, and is free for a newcomer.
    s.remove_peer(1);
    s.send(m(&["alice", "gone"])).unwrap();
    assert_eq!(s.dropped(), 3);
    s.established(4, &est(SocketType::Dealer, "alice"));
    s.send(m(&["alice", "back"])).unwrap();
    assert_eq!(s.poll_outgoing(4), Some(m(&["back"])));
}

#[test]
fn pub_sends_by_prefix_to_subscribers_and_drops_at_the_hwm() {
    let mut s = logic(SocketType::Pub, 2);
    s.established(1, &est(SocketType::Sub, ""));
    s.established(2, &est(SocketType::Sub, ""));
    s.handle_subscription(1, Subscription::Subscribe(Bytes::from_static(b"news")));
    s.handle_subscription(2, Subscription::Subscribe(Bytes::new()));
    s.send(m(&["news/a", "x"])).unwrap();
    s.send(m(&["weather", "y"])).unwrap();
    assert_eq!(s.poll_outgoing(1), Some(m(&["news/a", "x"])));
    assert_eq!(s.poll_outgoing(1), None);
    assert_eq!(s.poll_outgoing(2), Some(m(&["news/a", "x"])));
    assert_eq!(s.poll_outgoing(2), Some(m(&["weather", "y"])));
    // HWM 2: the third for peer 1 is dropped, peer 2 unaffected by peer 1.
    for _ in 0..3 {
        s.send(m(&["news"])).unwrap();
    }
    assert_eq!(s.queued_for(1), 2);
    assert_eq!(s.queued_for(2), 2);
    assert_eq!(s.dropped(), 2);
    s.handle_subscription(1, Subscription::Cancel(Bytes::from_static(b"news")));
    s.send(m(&["news"])).unwrap();
    assert_eq!(s.queued_for(1), 2);
    // A PUB receives nothing.
    s.handle_message(1, m(&["up"]));
    assert_eq!(s.recv(), None);
}

#[test]
fn sub_sends_subscriptions_on_every_connection_and_filters() {
    let mut s = logic(SocketType::Sub, 1);
    s.subscribe(Bytes::from_static(b"news"));
    assert!(s.add_peer(1));
    assert_eq!(s.poll_outgoing(1), None);
    s.established(1, &est(SocketType::Pub, ""));
    assert_eq!(
        s.poll_outgoing(1).map(Vec::from),
        Some(vec![Bytes::from_static(b"\x01news")])
    );
    s.subscribe(Bytes::from_static(b"alerts"));
    s.subscribe(Bytes::from_static(b"alerts"));
    assert_eq!(
        s.poll_outgoing(1).map(Vec::from),
        Some(vec![Bytes::from_static(b"\x01alerts")])
    );
    assert_eq!(s.poll_outgoing(1), None);
    // Reconnected: both again, the HWM does not apply to them.
    s.disconnected(1);
    s.established(1, &est(SocketType::Pub, ""));
    assert_eq!(s.queued_for(1), 2);
    s.unsubscribe(Bytes::from_static(b"alerts"));
    assert_eq!(s.queued_for(1), 2);
    s.unsubscribe(Bytes::from_static(b"alerts"));
    assert_eq!(s.queued_for(1), 3);
    s.handle_message(1, m(&["news/x", "1"]));
    s.handle_message(1, m(&["alerts", "2"]));
    s.handle_message(1, m(&["sports", "3"]));
    assert_eq!(s.recv(), Some(m(&["news/x", "1"])));
    assert_eq!(s.recv(), None);
}

#[test]
fn push_round_robins_and_queues_across_reconnects() {
    let mut s = logic(SocketType::Push, 0);
    assert!(s.add_peer(1));
    assert!(s.add_peer(2));
    for i in ["a", "b", "c"] {
        s.send(m(&[i])).unwrap();
    }
    s.established(1, &est(SocketType::Pull, ""));
    s.disconnected(2);
    s.established(2, &est(SocketType::Pull, ""));
    assert_eq!(s.poll_outgoing(1), Some(m(&["a"])));
    assert_eq!(s.poll_outgoing(1), Some(m(&["c"])));
    assert_eq!(s.poll_outgoing(2), Some(m(&["b"])));
    s.remove_peer(1);
    s.send(m(&["d"])).unwrap();
    assert_eq!(s.poll_outgoing(2), Some(m(&["d"])));
}

#[test]
fn req_alternates_and_takes_only_its_reply() {
    let mut s = logic(SocketType::Req, 10);
    s.established(1, &est(SocketType::Rep, ""));
    s.established(2, &est(SocketType::Rep, ""));
    s.send(m(&["q1"])).unwrap();
    assert_eq!(s.send(m(&["q2"])), Err(SocketError::WrongState(SocketType::Req)));
    assert_eq!(s.poll_outgoing(1), Some(m(&["", "q1"])));
    // Another peer's message, and one without the delimiter: not the reply.
    s.handle_message(2, m(&["", "stray"]));
    s.handle_message(1, m(&["no delimiter"]));
    assert_eq!(s.recv(), None);
    s.handle_message(1, m(&["", "a1"]));
    assert_eq!(s.recv(), Some(m(&["a1"])));
    // The next request goes to the next peer.
    s.send(m(&["q2"])).unwrap();
    assert_eq!(s.poll_outgoing(2), Some(m(&["", "q2"])));
}

fn req(relaxed: bool, correlate: bool) -> SocketLogic<u32> {
    SocketLogic::new(
        SocketType::Req,
        SocketOptions {
            req_relaxed: relaxed,
            req_correlate: correlate,
            first_request_id: 41,
            ..SocketOptions::default()
        },
    )
}

fn id(n: u32) -> Bytes {
    Bytes::copy_from_slice(&n.to_ne_bytes())
}

#[test]
fn a_relaxed_req_sends_again_and_drops_the_old_reply() {
    // ZMQ_REQ_RELAXED: the way out of a request whose peer is gone for good.
    let mut s = req(true, false);
    s.established(1, &est(SocketType::Rep, ""));
    s.established(2, &est(SocketType::Rep, ""));
    s.send(m(&["q1"])).unwrap();
    s.remove_peer(1);
    s.send(m(&["q2"])).unwrap();
    assert_eq!(s.poll_outgoing(2), Some(m(&["", "q2"])));
    s.handle_message(2, m(&["", "a2"]));
    // A reply received and not taken is dropped by the next request.
    s.send(m(&["q3"])).unwrap();
    assert_eq!(s.recv(), None);
    assert_eq!(s.poll_outgoing(2), Some(m(&["", "q3"])));
    s.handle_message(2, m(&["", "a3"]));
    assert_eq!(s.recv(), Some(m(&["a3"])));
    // Strict, the same second request is refused.
    let mut strict = req(false, false);
    strict.established(1, &est(SocketType::Rep, ""));
    strict.send(m(&["q1"])).unwrap();
    strict.remove_peer(1);
    assert_eq!(strict.send(m(&["q2"])), Err(SocketError::WrongState(SocketType::Req)));
}

#[test]
fn a_correlated_req_takes_only_the_reply_to_its_last_request() {
    // ZMQ_REQ_CORRELATE: without it, a late reply to an abandoned request on the same
    // peer would be taken for the new one's.
    let mut s = req(true, true);
    s.established(1, &est(SocketType::Rep, ""));
    s.send(m(&["q1"])).unwrap();
    let first = s.poll_outgoing(1).unwrap();
    assert_eq!(
        first,
        [id(42), Bytes::new(), Bytes::from_static(b"q1")]
            .into_iter()
            .collect::<Message>()
    );
    s.send(m(&["q2"])).unwrap();
    assert_eq!(
        s.poll_outgoing(1),
        Some([id(43), Bytes::new(), Bytes::from_static(b"q2")].into_iter().collect())
    );
    // The REP answers the first late, then the second (it echoes the envelope).
    s.handle_message(
        1,
        [id(42), Bytes::new(), Bytes::from_static(b"a1")].into_iter().collect(),
    );
    s.handle_message(1, m(&["", "no id"]));
    assert_eq!(s.recv(), None);
    s.handle_message(
        1,
        [id(43), Bytes::new(), Bytes::from_static(b"a2")].into_iter().collect(),
    );
    assert_eq!(s.recv(), Some(m(&["a2"])));
    // Without room, the request is handed back as it was given.
    let mut full: SocketLogic<u32> = SocketLogic::new(
        SocketType::Req,
        SocketOptions {
            send_hwm: 1,
            req_correlate: true,
            ..SocketOptions::default()
        },
    );
    assert_eq!(full.send(m(&["q"])), Err(SocketError::WouldBlock(m(&["q"]))));
}

#[test]
fn rep_answers_the_peer_that_asked_with_its_envelope() {
    let mut s = logic(SocketType::Rep, 10);
    s.established(1, &est(SocketType::Req, ""));
    s.established(2, &est(SocketType::Dealer, ""));
    assert_eq!(s.send(m(&["x"])), Err(SocketError::WrongState(SocketType::Rep)));
    s.handle_message(1, m(&["", "q1"]));
    s.handle_message(2, m(&["hop", "", "q2"]));
    s.handle_message(2, m(&["no envelope"]));
    assert_eq!(s.recv(), Some(m(&["q1"])));
    // A reply is owed: nothing more until it is sent.
    assert_eq!(s.recv(), None);
    s.send(m(&["a1"])).unwrap();
    assert_eq!(s.poll_outgoing(1), Some(m(&["", "a1"])));
    assert_eq!(s.recv(), Some(m(&["q2"])));
    s.send(m(&["a2"])).unwrap();
    assert_eq!(s.poll_outgoing(2), Some(m(&["hop", "", "a2"])));
    // The envelope-less request was dropped.
    assert_eq!(s.recv(), None);
}

#[test]
fn pair_has_one_peer() {
    let mut s = logic(SocketType::Pair, 1);
    assert!(s.add_peer(1));
    assert!(s.add_peer(1));
    assert!(!s.add_peer(2));
    s.established(2, &est(SocketType::Pair, ""));
    assert!(!s.has_outgoing(2));
    s.established(1, &est(SocketType::Pair, ""));
    s.send(m(&["a"])).unwrap();
    assert_eq!(s.send(m(&["b"])), Err(SocketError::WouldBlock(m(&["b"]))));
    assert_eq!(s.poll_outgoing(1), Some(m(&["a"])));
    s.handle_message(1, m(&["in"]));
    assert_eq!(s.recv(), Some(m(&["in"])));
    // Gone: a new peer may come.
    s.remove_peer(1);
    assert!(s.add_peer(2));
}

#[test]
fn xpub_reports_first_subscribes_and_last_cancels() {
    let mut s = logic(SocketType::Xpub, 10);
    s.established(1, &est(SocketType::Sub, ""));
    s.established(2, &est(SocketType::Xsub, ""));
    let news = || Bytes::from_static(b"news");
    s.handle_subscription(1, Subscription::Subscribe(news()));
    s.handle_subscription(2, Subscription::Subscribe(news()));
    s.handle_subscription(2, Subscription::Cancel(Bytes::from_static(b"never")));
    assert_eq!(s.recv().map(Vec::from), Some(vec![Bytes::from_static(b"\x01news")]));
    assert_eq!(s.recv(), None);
    s.send(m(&["news/1"])).unwrap();
    assert_eq!(s.queued_for(1) + s.queued_for(2), 2);
    s.handle_subscription(1, Subscription::Cancel(news()));
    assert_eq!(s.recv(), None);
    // The last subscriber leaving takes its subscription with it, unreported...
    s.disconnected(2);
    assert_eq!(s.recv(), None);
    // ...so a new one is the first again.
    s.established(3, &est(SocketType::Sub, ""));
    s.handle_subscription(3, Subscription::Subscribe(news()));
    assert_eq!(s.recv().map(Vec::from), Some(vec![Bytes::from_static(b"\x01news")]));
}

#[test]
fn xsub_forwards_subscriptions_and_messages_and_does_not_filter() {
    let mut s = logic(SocketType::Xsub, 10);
    s.established(1, &est(SocketType::Pub, ""));
    s.send(Message::from(vec![Bytes::from_static(b"\x01news")])).unwrap();
    s.send(Message::from(vec![Bytes::from_static(b"\x01news")])).unwrap();
    s.send(m(&["upstream"])).unwrap();
    s.send(Message::from(vec![Bytes::from_static(b"\x00news")])).unwrap();
    assert_eq!(
        s.poll_outgoing(1).map(Vec::from),
        Some(vec![Bytes::from_static(b"\x01news")])
    );
    assert_eq!(
        s.poll_outgoing(1).map(Vec::from),
        Some(vec![Bytes::from_static(b"\x01news")])
    );
    assert_eq!(s.poll_outgoing(1), Some(m(&["upstream"])));
    // One of two subscriptions cancelled: nothing sent yet.
    assert_eq!(s.poll_outgoing(1), None);
    s.handle_message(1, m(&["other"]));
    assert_eq!(s.recv(), Some(m(&["other"])));
    // A new connection gets the remaining subscription.
    s.established(2, &est(SocketType::Pub, ""));
    assert_eq!(
        s.poll_outgoing(2).map(Vec::from),
        Some(vec![Bytes::from_static(b"\x01news")])
    );
}

fn bytes_logic(t: SocketType, send_hwm_bytes: usize) -> SocketLogic<u32> {
    SocketLogic::new(
        t,
        SocketOptions {
            send_hwm: 1000,
            send_hwm_bytes,
            ..SocketOptions::default()
        },
    )
}

fn sized(n: usize) -> Message {
    Message::from(Bytes::from(vec![b'x'; n]))
}

#[test]
fn push_blocks_at_the_byte_hwm_and_an_empty_queue_takes_any_message() {
    let mut s = bytes_logic(SocketType::Push, 100);
    assert!(s.add_peer(1));
    s.established(1, &est(SocketType::Pull, ""));
    s.send(sized(60)).unwrap();
    s.send(sized(40)).unwrap();
    assert_eq!(s.queued_bytes_for(1), 100);
    // 100 of 100 bytes queued: one more byte blocks, whole message handed back.
    assert_eq!(s.send(sized(1)), Err(SocketError::WouldBlock(sized(1))));
    assert_eq!(s.poll_outgoing(1), Some(sized(60)));
    assert_eq!(s.queued_bytes_for(1), 40);
    s.send(sized(60)).unwrap();
    assert_eq!(s.send(sized(1)), Err(SocketError::WouldBlock(sized(1))));
    while s.poll_outgoing(1).is_some() {}
    assert_eq!(s.queued_bytes_for(1), 0);
    // Larger than the whole budget: an empty queue still takes it, then blocks.
    s.send(sized(1000)).unwrap();
    assert_eq!(s.send(sized(1)), Err(SocketError::WouldBlock(sized(1))));
}

#[test]
fn dealer_round_robins_past_a_peer_at_its_byte_hwm() {
    let mut s = bytes_logic(SocketType::Dealer, 10);
    assert!(s.add_peer(1));
    assert!(s.add_peer(2));
    s.send(sized(10)).unwrap(); // peer 1 full
    s.send(sized(4)).unwrap(); // peer 2
    s.send(sized(4)).unwrap(); // peer 1 full: peer 2 again
    assert_eq!(s.queued_bytes_for(1), 10);
    assert_eq!(s.queued_bytes_for(2), 8);
    assert_eq!(s.send(sized(4)), Err(SocketError::WouldBlock(sized(4))));
}

#[test]
fn pub_and_router_drop_at_the_byte_hwm() {
    let mut p = bytes_logic(SocketType::Pub, 10);
    p.established(1, &est(SocketType::Sub, ""));
    p.handle_subscription(1, Subscription::Subscribe(Bytes::new()));
    p.send(sized(8)).unwrap();
    p.send(sized(8)).unwrap();
    assert_eq!(p.dropped(), 1, "the second 8 bytes do not fit in 10");
    assert_eq!(p.queued_for(1), 1);

    let mut r = bytes_logic(SocketType::Router, 10);
    r.established(1, &est(SocketType::Dealer, "d"));
    let to_d = |n| Message::from(vec![Bytes::from_static(b"d"), Bytes::from(vec![b'y'; n])]);
    r.send(to_d(6)).unwrap();
    r.send(to_d(6)).unwrap();
    assert_eq!(r.dropped(), 1);
    assert_eq!(r.queued_bytes_for(1), 6, "the identity frame is not queued");
}

#[test]
fn the_receive_hwm_in_messages_and_bytes_says_when_to_stop_taking() {
    let mut s = SocketLogic::new(
        SocketType::Pull,
        SocketOptions {
            recv_hwm: 3,
            recv_hwm_bytes: 10,
            ..SocketOptions::default()
        },
    );
    assert!(s.add_peer(1));
    assert!(s.add_peer(2));
    s.established(1, &est(SocketType::Push, ""));
    s.established(2, &est(SocketType::Push, ""));
    for _ in 0..3 {
        assert!(s.accepts_from(1));
        s.handle_message(1, sized(1));
    }
    assert!(!s.accepts_from(1), "three messages: at the message HWM");
    assert!(s.accepts_from(2), "per peer: the other one is not held");
    s.handle_message(2, sized(10));
    assert!(!s.accepts_from(2), "ten bytes: at the byte HWM");
    assert_eq!(s.recv(), Some(sized(1)));
    assert_eq!(s.recv(), Some(sized(10)));
    assert!(s.accepts_from(1) && s.accepts_from(2));
    assert!(!s.resumes_from(1), "two of three: above the low-water mark");
    assert!(s.resumes_from(2), "empty");
    assert_eq!(s.recv(), Some(sized(1)));
    assert!(s.resumes_from(1), "one of three: down to half");
}
