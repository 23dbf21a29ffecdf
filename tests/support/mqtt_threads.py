"""paho-mqtt scenarios against a broker on several threads, for tests/mqtt_threads.rs.

    python3 mqtt_threads.py HOST PORT SCENARIO ARGS_JSON

Every client binds the local port the test gives it: the test found, by probing, which
of the broker's threads the kernel (SO_REUSEPORT) hands a connection from that port
to, so each client lands on a known thread. Prints one JSON object of what it saw.
Waits are for events, bounded by PATIENCE; "nothing more" is shown by a marker the
broker must deliver after the messages before it (per-publisher order).
Works with paho-mqtt 1.6 (Debian bookworm) and 2.x (callback API version 1).
"""

import collections
import json
import queue
import sys
import time

import paho.mqtt.client as mqtt
from inbox import Inbox
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HOST, PORT, SCENARIO = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ARGS = json.loads(sys.argv[4])
PATIENCE = 30.0


def code(rc):
    return rc if isinstance(rc, int) else rc.value


class Client:
    """A paho 5.0 client bound to a local port; callbacks land in queues."""

    def __init__(self, cid, port, clean=True, expiry=None, will=None):
        kw = dict(client_id=cid, protocol=mqtt.MQTTv5)
        try:
            from paho.mqtt.enums import CallbackAPIVersion

            self.c = mqtt.Client(CallbackAPIVersion.VERSION1, **kw)
        except ImportError:
            self.c = mqtt.Client(**kw)
        self.q = Inbox()
        self.c.on_connect = lambda c, u, f, rc, p=None: self.q["connack"].put((code(rc), f))
        self.c.on_message = lambda c, u, m: self.q["msg"].put((m.topic, m.payload.decode(), m.retain))
        self.c.on_subscribe = lambda c, u, mid, granted, p=None: self.q["suback"].put(mid)
        self.c.on_disconnect = lambda c, u, rc, p=None: self.q["disconnect"].put(code(rc))
        # paho 1.6 reports a server's DISCONNECT as a lost connection: its log names
        # the reason code.
        self.c.on_log = lambda c, u, level, buf: (
            self.q["disconnect_packet"].put(buf) if buf.startswith("Received DISCONNECT") else None)
        if will:
            self.c.will_set(will[0], will[1], qos=1)
        props = None
        if expiry is not None:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = expiry
        self.c.connect(HOST, PORT, keepalive=60, bind_address="127.0.0.1", bind_port=port,
                       clean_start=clean, properties=props)
        self.c.loop_start()
        rc, flags = self.get("connack")
        assert rc == 0, f"{cid}: CONNACK {rc}"
        self.session_present = bool(flags.get("session present"))

    def get(self, kind, timeout=PATIENCE):
        return self.q[kind].get(timeout=timeout)

    def subscribe(self, topic_filter, qos=1):
        self.c.subscribe(topic_filter, qos)
        self.get("suback")

    def publish(self, topic, payload, qos=1, retain=False):
        return self.c.publish(topic, payload, qos=qos, retain=retain)

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


def messages_until(client, done, timeout=PATIENCE):
    """Takes messages until done(seen) or the time is up; returns them."""
    seen = []
    end = time.monotonic() + timeout
    while not done(seen):
        left = end - time.monotonic()
        if left <= 0:
            break
        try:
            seen.append(client.get("msg", timeout=left))
        except queue.Empty:
            break
    return seen


def fanout():
    n = ARGS["n"]
    subs = [Client(f"sub{i}", p) for i, p in enumerate(ARGS["subs"])]
    for s in subs:
        s.subscribe("fan/#")
    members = [Client(f"member{i}", p) for i, p in enumerate(ARGS["shared"])]
    for m in members:
        m.subscribe("$share/g/fan/#")
    pubs = [Client(f"pub{i}", p) for i, p in enumerate(ARGS["pubs"])]
    infos = []
    for seq in range(n):
        for i, p in enumerate(pubs):
            infos.append(p.publish(f"fan/p{i}", str(seq)))
    for i, p in enumerate(pubs):
        infos.append(p.publish(f"fan/p{i}", "end"))
    for info in infos:
        info.wait_for_publish()
    ends = len(pubs)
    out = {"subs": [], "shared": {}, "shared_per_member": []}
    for s in subs:
        seen = messages_until(s, lambda seen: sum(1 for m in seen if m[1] == "end") >= ends)
        by = collections.defaultdict(list)
        for topic, payload, _ in seen:
            by[topic].append(payload)
        out["subs"].append(by)
    # The group's members together saw every message once: wait for every marker.
    shared = collections.defaultdict(list)
    got_ends = 0
    per_member = [0] * len(members)
    end = time.monotonic() + PATIENCE
    while got_ends < ends and time.monotonic() < end:
        for k, m in enumerate(members):
            try:
                topic, payload, _ = m.q["msg"].get(timeout=0.05)
            except queue.Empty:
                continue
            per_member[k] += 1
            shared[topic].append(payload)
            got_ends += payload == "end"
    # Anything a second member got for the same message would have arrived by now on
    # its thread too: each member's queue is read once more.
    for k, m in enumerate(members):
        while True:
            try:
                topic, payload, _ = m.q["msg"].get_nowait()
            except queue.Empty:
                break
            per_member[k] += 1
            shared[topic].append(payload)
    out["shared"] = shared
    out["shared_per_member"] = per_member
    for c in subs + members + pubs:
        c.stop()
    return out


def retained():
    p = Client("retainer", ARGS["pub"])
    p.publish("ret/x", ARGS["payload"], retain=True).wait_for_publish()
    p.stop()
    out = []
    for i, port in enumerate(ARGS["subs"]):
        s = Client(f"late{i}", port)
        s.subscribe("ret/#")
        out.append(messages_until(s, lambda seen: len(seen) >= 1))
        s.stop()
    return {"subs": out}


def takeover():
    observer = Client("observer", ARGS["observer"])
    observer.subscribe("will/#")
    old = Client("dup", ARGS["old"], clean=False, expiry=300, will=("will/dup", "gone"))
    old.subscribe("keep/#")
    new = Client("dup", ARGS["new"], clean=False, expiry=300)
    old_rc = old.get("disconnect_packet")
    will = messages_until(observer, lambda seen: len(seen) >= 1)
    # The old session's subscription moved with it: a publish reaches the new
    # connection without a SUBSCRIBE. Its CONNACK waited until every thread routes
    # the moved subscription there, so the first one published arrives; publish
    # until one does (the test checks which came first).
    pub = Client("pub", ARGS["pub"])
    got = []
    end = time.monotonic() + PATIENCE
    k = 0
    while not got and time.monotonic() < end:
        pub.publish("keep/x", str(k)).wait_for_publish()
        k += 1
        try:
            got.append(new.get("msg", timeout=0.2))
        except queue.Empty:
            pass
    old_got = []
    while True:
        try:
            old_got.append(old.get("msg", timeout=0))
        except queue.Empty:
            break
    for c in (observer, new, pub):
        c.stop()
    old.c.loop_stop()
    return {"old_rc": old_rc, "will": will, "new_got": got, "old_got": old_got,
            "session_present": new.session_present}


def resume():
    """A stored session's client comes back (clean start 0) from a given port: every
    message it gets until `n` came and `quiet` seconds passed without another (a
    duplicate would come in that time)."""
    client = Client(ARGS["id"], ARGS["port"], clean=False, expiry=300)
    got = messages_until(client, lambda seen: len(seen) >= ARGS["n"])
    got += messages_until(client, lambda seen: False, timeout=ARGS["quiet"])
    client.stop()
    return {"session_present": client.session_present, "got": [[t, p] for t, p, _ in got]}


print(json.dumps({"fanout": fanout, "retained": retained, "takeover": takeover,
                  "resume": resume}[SCENARIO]()))
