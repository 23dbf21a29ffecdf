"""paho-mqtt scenarios against a broker, for tests/mqtt_features.rs.

    python3 mqtt_paho.py HOST PORT SCENARIO

Each scenario drives real paho clients (nobody here wrote them) and prints one JSON
object of what it saw; the Rust test asserts on it. Nothing waits on a sleep: every
wait is for an event, bounded by PATIENCE, and "nothing more arrived" is shown by a
marker message that the broker must deliver after the ones before it.
Works with paho-mqtt 1.6 (Debian bookworm) and 2.x (callback API version 1).
"""

import json
import queue
import socket
import sys
import time

import paho.mqtt.client as mqtt
from inbox import Inbox
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

HOST, PORT, SCENARIO = sys.argv[1], int(sys.argv[2]), sys.argv[3]
PATIENCE = 20.0


def code(rc):
    """A reason code as an int (paho gives ReasonCodes objects in 5.0)."""
    return rc if isinstance(rc, int) else rc.value


def props(kind, **values):
    p = Properties(kind)
    for k, v in values.items():
        setattr(p, k, v)
    return p


class Client:
    """A paho client whose callbacks land in one queue per kind of event."""

    def __init__(self, cid, v5=True, clean=True):
        kw = dict(client_id=cid, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        if not v5:
            kw["clean_session"] = clean
        try:
            from paho.mqtt.enums import CallbackAPIVersion

            self.c = mqtt.Client(CallbackAPIVersion.VERSION1, **kw)
        except ImportError:
            self.c = mqtt.Client(**kw)
        self.v5, self.clean = v5, clean
        self.q = Inbox()
        self.c.on_connect = lambda c, u, f, rc, p=None: self.q["connack"].put((code(rc), p))
        self.c.on_message = lambda c, u, m: self.q["msg"].put(m)
        self.c.on_subscribe = lambda c, u, mid, granted, p=None: self.q["suback"].put([code(g) for g in granted])
        self.c.on_disconnect = lambda c, u, rc, p=None: self.q["disconnect"].put(code(rc))
        self.c.on_publish = lambda c, u, mid: self.q["puback"].put(mid)

    def get(self, kind):
        try:
            return self.q[kind].get(timeout=PATIENCE)
        except queue.Empty:
            raise SystemExit(f"{SCENARIO}: no {kind} within {PATIENCE}s")

    def connect(self, properties=None, will=None, expect=0):
        if will:
            self.c.will_set(*will)
        if self.v5:
            self.c.connect(HOST, PORT, keepalive=60, clean_start=self.clean, properties=properties)
        else:
            self.c.connect(HOST, PORT, keepalive=60)
        self.c.loop_start()
        rc, p = self.get("connack")
        if expect is not None and rc != expect:
            raise SystemExit(f"{SCENARIO}: CONNACK {rc}, expected {expect}")
        return rc, p

    def subscribe(self, topic, qos=0, **options):
        if self.v5:
            opts = SubscribeOptions(qos=qos, **options)
            self.c.subscribe(topic, options=opts, properties=self.sub_props)
        else:
            self.c.subscribe(topic, qos)
        return self.get("suback")

    sub_props = None

    def sub_with_id(self, topic, qos, sid, **options):
        self.sub_props = props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=sid)
        try:
            return self.subscribe(topic, qos, **options)
        finally:
            self.sub_props = None

    def until(self, payload):
        """Messages received up to (without) the one whose payload is `payload`."""
        got = []
        while True:
            m = self.get("msg")
            if m.payload == payload.encode():
                return got
            got.append(m)

    def kill(self):
        """Drops the connection without DISCONNECT (as a crash would)."""
        self.c.loop_stop()
        self.c.socket().shutdown(socket.SHUT_RDWR)
        self.c.socket().close()

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


def aliases():
    sub = Client("al-sub")
    sub.connect(props(PacketTypes.CONNECT, TopicAliasMaximum=2))
    sub.subscribe("al/#")
    pub = Client("al-pub")
    _, ack = pub.connect()
    announced = getattr(ack, "TopicAliasMaximum", 0)
    sent = [("al/a", "m1", 1), ("", "m2", 1), ("al/b", "m3", 2), ("", "m4", 2), ("al/c", "m5", None),
            ("al/a", "m6", None), ("al/c", "m7", None), ("al/b", "m8", None), ("al/c", "m9", None)]
    for topic, payload, alias in sent:
        p = props(PacketTypes.PUBLISH, TopicAlias=alias) if alias else None
        pub.c.publish(topic, payload, properties=p)
    pub.c.publish("al/end", "end")
    got = [[m.topic, getattr(m.properties, "TopicAlias", None), m.payload.decode()] for m in sub.until("end")]
    pub.stop()
    sub.stop()
    return {"announced": announced, "received": got}


def subids():
    pub = Client("si-pub")
    pub.connect()
    pub.c.publish("si/r", "kept", qos=1, retain=True)
    pub.get("puback")
    sub = Client("si-sub")
    sub.connect()
    first = sub.sub_with_id("si/+", 0, 1)
    retained = sub.get("msg")
    sub.sub_with_id("si/#", 1, 2, retainHandling=2)
    pub.c.publish("si/x", "x", qos=2)
    pub.c.publish("si/end", "end")
    got = sub.until("end")
    sub.stop()
    pub.stop()
    return {
        "granted": first,
        "retained": [retained.topic, sorted(getattr(retained.properties, "SubscriptionIdentifier", []))],
        "messages": [[m.topic, m.qos, sorted(getattr(m.properties, "SubscriptionIdentifier", []))] for m in got],
    }


def shared():
    pub = Client("sh-pub")
    _, ack = pub.connect()
    available = getattr(ack, "SharedSubscriptionAvailable", None)
    pub.c.publish("sh/r", "retained", qos=1, retain=True)
    pub.get("puback")
    workers = []
    for i in range(3):
        w = Client(f"sh-w{i}")
        w.connect()
        granted = w.subscribe("$share/g/sh/#", 1)
        workers.append(w)
    watcher = Client("sh-watch")
    watcher.connect()
    watcher.subscribe("sh/#", 0, retainHandling=2)
    for i in range(9):
        pub.c.publish("sh/job", f"j{i}", qos=1)
    pub.c.publish("sh/end", "end", qos=1)
    seen = watcher.until("end")
    # Every worker's share: 10 messages (9 jobs and the end marker) among 3 members.
    counts = [0, 0, 0]
    retained = 0
    for _ in range(10):
        deadline = time.monotonic() + PATIENCE
        while True:
            hit = False
            for i, w in enumerate(workers):
                try:
                    m = w.q["msg"].get(timeout=0.05)
                except queue.Empty:
                    continue
                counts[i] += 1
                retained += m.retain
                hit = True
                break
            if hit:
                break
            if time.monotonic() > deadline:
                raise SystemExit("shared: a job never reached a worker")
    # No Local on a shared subscription is a Protocol Error: the broker disconnects.
    # (paho 1.6 reads a DISCONNECT's reason code only when properties follow it, so
    # this sees the close; the proto unit test checks the 0x82 on the wire.)
    nl = Client("sh-nl")
    nl.connect()
    nl.c.subscribe("$share/g/sh/#", options=SubscribeOptions(qos=0, noLocal=True))
    refused = nl.get("disconnect")
    nl.c.loop_stop()
    for w in workers:
        w.stop()
    return {"available": available, "granted": granted, "watched": len(seen), "counts": counts,
            "retained": retained, "no_local": refused}


def options():
    me = Client("op-me")
    me.connect()
    me.subscribe("op/nl", 0, noLocal=True)
    other = Client("op-other")
    other.connect()
    # Acknowledged before the others publish, so "mine" is routed before "end".
    me.c.publish("op/nl", "mine", qos=1)
    me.get("puback")
    other.c.publish("op/nl", "theirs")
    other.c.publish("op/nl", "end")
    no_local = [m.payload.decode() for m in me.until("end")]
    # Retain As Published.
    keep = Client("op-rap")
    keep.connect()
    keep.subscribe("op/rap", 0, retainAsPublished=True)
    plain = Client("op-plain")
    plain.connect()
    plain.subscribe("op/rap", 0)
    other.c.publish("op/rap", "r", qos=1, retain=True)
    other.get("puback")
    other.c.publish("op/rap", "end")
    rap = [bool(m.retain) for m in keep.until("end")]
    not_rap = [bool(m.retain) for m in plain.until("end")]
    # Retain Handling 0, 1, 2: each subscribed twice, then a live marker.
    handling = {}
    for rh in (0, 1, 2):
        c = Client(f"op-rh{rh}")
        c.connect()
        c.subscribe("op/rap", 0, retainHandling=rh)
        c.subscribe("op/rap", 0, retainHandling=rh)
        other.c.publish("op/rap", "end")
        handling[rh] = len([m for m in c.until("end") if m.retain])
        c.stop()
    for c in (me, other, keep, plain):
        c.stop()
    return {"no_local": no_local, "rap": rap, "not_rap": not_rap, "retain_handling": handling}


def will_delay():
    watch = Client("wd-watch")
    watch.connect()
    watch.subscribe("wd/#", 0)
    expiry = props(PacketTypes.CONNECT, SessionExpiryInterval=60)
    delayed = props(PacketTypes.WILLMESSAGE, WillDelayInterval=2)
    # One killed and back within the delay: its will is cancelled.
    first = Client("wd-1", clean=False)
    first.connect(expiry, will=("wd/1", "gone1", 0, False, delayed))
    first.kill()
    again = Client("wd-1", clean=False)
    _, ack = again.connect(props(PacketTypes.CONNECT, SessionExpiryInterval=60))
    # One killed for good: its will comes after the delay.
    second = Client("wd-2", clean=False)
    second.connect(expiry, will=("wd/2", "gone2", 0, False, delayed))
    killed = time.monotonic()
    second.kill()
    m = watch.get("msg")
    waited = time.monotonic() - killed
    watch.c.publish("wd/end", "end")
    rest = [x.payload.decode() for x in watch.until("end")]
    again.stop()
    watch.stop()
    return {"first": m.payload.decode(), "waited": waited, "then": rest}


def connack():
    """One CONNECT, with an Authentication Method when AUTH_METHOD is given."""
    c = Client("ca")
    p = props(PacketTypes.CONNECT, AuthenticationMethod=sys.argv[4]) if len(sys.argv) > 4 else None
    rc, ack = c.connect(p, expect=None)
    c.c.loop_stop()
    return {"code": rc, "server_reference": getattr(ack, "ServerReference", None) if ack else None}


print(json.dumps({"aliases": aliases, "subids": subids, "shared": shared, "options": options,
                  "will_delay": will_delay, "connack": connack}[SCENARIO]()))
