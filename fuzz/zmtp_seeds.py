#!/usr/bin/env python3
"""Writes the seed inputs of the ZMTP fuzz targets (proto/src/fuzzing/zmtp.rs).

    python3 fuzz/zmtp_seeds.py OUT_DIR

creates OUT_DIR/zmtp_greeting/, OUT_DIR/zmtp_frames/ and OUT_DIR/zmtp_commands/ with
one `seed-<sha1>` file per input: greetings as libzmq 4.3 sends them (NULL, PLAIN,
CURVE, 3.0), old and foreign signatures, frame streams with every flag and both size
forms, every command body of RFC 23/24/37 (and libzmq 4.3.4's garbled ERROR), and a
peer's whole side of NULL and PLAIN handshakes.
"""

import hashlib
import pathlib
import struct
import sys

SOCKET_TYPES = ["REQ", "REP", "DEALER", "ROUTER", "PUB", "SUB", "XPUB", "XSUB", "PUSH", "PULL", "PAIR"]


def greeting(mechanism=b"NULL", as_server=0, minor=1, major=3, padding=1):
    return (b"\xff" + struct.pack(">Q", padding) + b"\x7f" + bytes([major, minor])
            + mechanism.ljust(20, b"\0") + bytes([as_server]) + bytes(31))


def frame(body, flags=0, long=False):
    if long or len(body) > 255:
        return bytes([flags | 2]) + struct.pack(">Q", len(body)) + body
    return bytes([flags, len(body)]) + body


def command(name, data=b""):
    return bytes([len(name)]) + name + data


def props(*pairs):
    out = b""
    for name, value in pairs:
        out += bytes([len(name)]) + name + struct.pack(">I", len(value)) + value
    return out


def ready(socket_type, identity=None, name=b"READY"):
    pairs = [(b"Socket-Type", socket_type.encode())]
    if identity is not None:
        pairs.append((b"Identity", identity))
    return command(name, props(*pairs))


def main(out):
    seeds = {"zmtp_greeting": [], "zmtp_frames": [], "zmtp_commands": []}
    g = seeds["zmtp_greeting"]
    for seed in (0, 1, 7, 40):
        g.append(bytes([seed]) + greeting() + frame(ready("ROUTER", b""), 4))
    g += [bytes([0]) + greeting(b"PLAIN", 1), bytes([0]) + greeting(b"CURVE"), bytes([1]) + greeting(minor=0),
          bytes([0]) + greeting(major=1), bytes([0]) + b"\xff" + bytes(8) + b"\x00", bytes([0]) + b"GET / HTTP/1.1\r\n",
          bytes([0]) + greeting(b"null"), bytes([0]) + greeting()[:11]]

    f = seeds["zmtp_frames"]
    stream = (frame(ready("DEALER", b"me"), 4) + frame(b"id", 1) + frame(b"") + frame(b"x" * 300)
              + frame(command(b"PING", b"\x00\x0actx"), 4) + frame(b"abc", 0, long=True))
    for options, seed in ((0, 0), (0, 1), (1, 9), (0, 77)):
        f.append(bytes([options, seed]) + stream)
    f += [b"\x00\x00\x08\x00", b"\x00\x00\x05\x00", b"\x01\x00\x02\x40\x00\x00\x00\x00\x00\x00\x00",
          b"\x00\x01\x02\x00\x00\x00\x00\x00\x00\x00\x03ab"]

    c = seeds["zmtp_commands"]
    bodies = [ready("ROUTER", b""), ready("DEALER", b"worker"), ready("REQ", None, b"INITIATE"),
              command(b"ERROR", b"\x03400"), command(b"SUBSCRIBE", b"news."), command(b"CANCEL"),
              command(b"PING", b"\x00\x64context"), command(b"PONG", b"context"),
              command(b"HELLO", b"\x05admin\x06secret"), command(b"WELCOME"), b"^RROR\x03400",
              command(b"X-NEW", b"data"), command(b"READY", b"\x02a b\x00\x00\x00\x00")]
    c += [b"\x00" + body for body in bodies]
    # Handshake mode 128 + m: mechanism m % 3 (NULL, PLAIN client, PLAIN server), our
    # socket type SOCKET_TYPES[m // 3 % 11], a PLAIN server that allows if m < 64.
    def mode(mechanism, ours, allow=True):
        return 128 + (0 if allow else 66) + 3 * SOCKET_TYPES.index(ours) + mechanism
    partner = {"REQ": "REP", "REP": "REQ", "DEALER": "ROUTER", "ROUTER": "DEALER", "PUB": "SUB", "SUB": "PUB",
               "XPUB": "XSUB", "XSUB": "XPUB", "PUSH": "PULL", "PULL": "PUSH", "PAIR": "PAIR"}
    for peer, ours in partner.items():
        c.append(bytes([mode(0, ours), 5]) + greeting() + frame(ready(peer, b""), 4))
    c.append(bytes([mode(0, "PUSH"), 0]) + greeting() + frame(ready("PUSH"), 4))
    server = greeting(b"PLAIN", 1) + frame(command(b"WELCOME"), 4) + frame(ready("ROUTER", b""), 4)
    client = greeting(b"PLAIN") + frame(command(b"HELLO", b"\x05admin\x06secret"), 4) + frame(ready("DEALER", b"", b"INITIATE"), 4)
    c += [bytes([mode(1, "DEALER"), 3]) + server, bytes([mode(2, "ROUTER"), 1]) + client,
          bytes([mode(2, "ROUTER", allow=False), 0]) + client,
          bytes([mode(1, "DEALER"), 0]) + greeting(b"PLAIN", 1) + frame(b"^RROR\x03400", 4)]

    for target, inputs in seeds.items():
        d = pathlib.Path(out) / target
        d.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            (d / ("seed-" + hashlib.sha1(data).hexdigest())).write_bytes(data)


if __name__ == "__main__":
    main(sys.argv[1])
