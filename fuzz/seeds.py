#!/usr/bin/env python3
"""Writes the seed inputs the committed corpus was grown from.

    python3 fuzz/seeds.py [--plain] OUT_DIR

creates OUT_DIR/<target>/ for every fuzz target. With --plain, each RESP message is
written once, with both header bytes zero (one segment, plain encoder), as
`seed-<sha1>`: the form kept in the committed corpus. The RESP seeds are the RESP3
specification's examples, replies shaped like redis-server's (and the captured ones in
proto/tests/vectors/ when they exist), and hand-written edge cases, each behind the
two header bytes the decode targets read (options, split seed; see
proto/src/fuzzing/resp.rs). The committed corpus is what `cargo fuzz run` grew from
these, minimised with `cargo fuzz cmin`; see fuzz/README.md.
"""

import hashlib
import pathlib
import random
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
VECTORS = ROOT / "proto" / "tests" / "vectors"

# The RESP3 specification's own examples.
SPEC = [
    b"+OK\r\n",
    b"-ERR this is the error description\r\n",
    b":1234\r\n",
    b":-1234\r\n",
    b"$11\r\nhello world\r\n",
    b"$0\r\n\r\n",
    b"*3\r\n:1\r\n:2\r\n:3\r\n",
    b"*2\r\n*3\r\n:1\r\n$5\r\nhello\r\n:2\r\n#f\r\n",
    b"_\r\n",
    b",1.23\r\n",
    b",10\r\n",
    b",inf\r\n",
    b",-inf\r\n",
    b",nan\r\n",
    b",1.23e-5\r\n",
    b"#t\r\n",
    b"#f\r\n",
    b"!21\r\nSYNTAX invalid syntax\r\n",
    b"=15\r\ntxt:Some string\r\n",
    b"(3492890328409238509324850943850943825024385\r\n",
    b"(-3492890328409238509324850943850943825024385\r\n",
    b"%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n",
    b"~5\r\n+orange\r\n+apple\r\n#t\r\n:100\r\n:999\r\n",
    b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n",
    b"*3\r\n:1\r\n:2\r\n|1\r\n+ttl\r\n:3600\r\n:3\r\n",
    b">4\r\n+pubsub\r\n+message\r\n+somechannel\r\n+this is the message\r\n",
    b"$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n",
    b"*?\r\n:1\r\n:2\r\n:3\r\n.\r\n",
    b"~?\r\n+a\r\n+b\r\n.\r\n",
    b"%?\r\n+a\r\n:1\r\n+b\r\n:2\r\n.\r\n",
    # RESP2's nulls and empties.
    b"$-1\r\n",
    b"*-1\r\n",
    b"*0\r\n",
]

# Replies shaped like redis-server's.
REDIS = [
    b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.4\r\n$5\r\nproto\r\n:3\r\n"
    b"$2\r\nid\r\n:3\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
    b"*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.4\r\n$5\r\nproto\r\n:2\r\n"
    b"$2\r\nid\r\n:3\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
    b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    b"-ERR unknown command 'FOO', with args beginning with: \r\n",
    b"+PONG\r\n",
    b"+QUEUED\r\n",
    b"*2\r\n$1\r\n0\r\n*3\r\n$3\r\nfoo\r\n$3\r\nbar\r\n$3\r\nbaz\r\n",
    b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
    b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
    b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n",
    b">4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$5\r\nhello\r\n",
    b">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nfoo\r\n",
    b">2\r\n$10\r\ninvalidate\r\n_\r\n",
    b",3.14\r\n",
    b"$4\r\n3.14\r\n",
    b"*4\r\n$1\r\na\r\n,1\r\n$1\r\nb\r\n,2.5\r\n",
    b"*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n",
    b"=41\r\ntxt:# Server\r\nredis_version:7.2.4\r\nmode:x\r\n",
    b"$31\r\n# Server\r\nredis_version:7.2.4\r\n\r\n",
    b"*1\r\n*2\r\n$6\r\nstream\r\n*1\r\n*2\r\n$15\r\n1700000000000-0\r\n*2\r\n$5\r\nfield\r\n$5\r\nvalue\r\n",
    b"%1\r\n$6\r\nstream\r\n*1\r\n*2\r\n$15\r\n1700000000000-0\r\n*2\r\n$5\r\nfield\r\n$5\r\nvalue\r\n",
    b"~3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
    b"*5\r\n+OK\r\n:1\r\n$-1\r\n*-1\r\n-ERR x\r\n",
    b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n",
    b"#t\r\n",
    b":0\r\n:1\r\n:-1\r\n",
    b"%2\r\n$3\r\nkey\r\n$5\r\nvalue\r\n$3\r\nttl\r\n:-1\r\n",
]

# Edge cases: extremes, limits, malformed input.
EDGES = [
    b":9223372036854775807\r\n",
    b":-9223372036854775808\r\n",
    b":9223372036854775808\r\n",
    b":+5\r\n",
    b":\r\n",
    b":--1\r\n",
    b",1e308\r\n",
    b",1e309\r\n",
    b",-0\r\n",
    b",4.9e-324\r\n",
    b",.5\r\n",
    b",1.2.3\r\n",
    b",infinity\r\n",
    b"(+1\r\n",
    b"(\r\n",
    b"(12x\r\n",
    b"#x\r\n",
    b"_x\r\n",
    b"$5\r\nhe\r\no\r\n",
    b"$3\r\nabcd\r\n",
    b"$-2\r\n",
    b"$\r\n",
    b"$?\r\n;0\r\n",
    b"$?\r\n:1\r\n",
    b"$?\r\n;-1\r\n",
    b"$?\r\n;?\r\n",
    b"!0\r\n\r\n",
    b"=4\r\ntxt:\r\n",
    b"=3\r\ntxt\r\n",
    b"=4\r\ntxtx\r\n",
    b"=9\r\n\r\n\r:hello\r\n",
    b"*?\r\n.\r\n",
    b"%?\r\n+a\r\n.\r\n",
    b"*?\r\n|1\r\n+a\r\n:1\r\n.\r\n",
    b"|0\r\n:1\r\n",
    b"|1\r\n+a\r\n:1\r\n|1\r\n+b\r\n:2\r\n:3\r\n",
    b"%1\r\n|1\r\n+k\r\n+v\r\n+key\r\n|1\r\n+k\r\n+v\r\n+value\r\n",
    b"%0\r\n~0\r\n>0\r\n*0\r\n",
    b"*1\r\n>1\r\n%1\r\n>0\r\n~1\r\n>1\r\n_\r\n",
    b"*2\r\n*?\r\n$?\r\n;1\r\na\r\n;0\r\n.\r\n%?\r\n~?\r\n.\r\n_\r\n.\r\n",
    b".\r\n",
    b";3\r\n",
    b"x\r\n",
    b"+OK\n",
    b"+OK\r",
    b"\r\n",
    b"\n",
    b"+\r\n",
    b"$536870912000\r\n",
    b"$536870912\r\n",
    b"*4294967296\r\n",
    b"%2147483648\r\n",
    b"$99999999999999999999\r\n",
    b"*1\r\n" * 200,
    b"*1\r\n" * 5 + b":1\r\n",
    b"|1\r\n" * 5 + b"+a\r\n:1\r\n" * 5 + b":1\r\n",
    b"+" + b"a" * 80 + b"\r\n",
    b"$100\r\n" + b"x" * 100 + b"\r\n",
    b"*10\r\n" + b":1\r\n" * 10,
]

RESP2_TYPES = b"+-:$*"


def vectors():
    """Captured replies, when the vectors directory exists."""
    found = {"resp2": [], "resp3": []}
    for dialect in ("resp2", "resp3"):
        for path in sorted((VECTORS / "redis-server" / dialect).glob("*.bin")):
            found[dialect].append(path.read_bytes())
    for path in sorted((VECTORS / "spec").glob("*.resp")):
        found["resp3"].append(path.read_bytes())
    return found


# (options, split seed) pairs, cycled over the messages: one piece, one byte per piece,
# and random cuts with every encoder variant and the small limits.
HEADERS = [(0x00, 0x00), (0x00, 0x01), (0x01, 0x1f), (0x02, 0x2a), (0x03 | 0x18, 0x83), (0x04, 0x09), (0x07, 0xf7)]


def resp_seeds(messages, plain=False):
    if plain:
        return [bytes([0, 0]) + msg for msg in messages]
    out = []
    for i, msg in enumerate(messages):
        out.append(bytes([0, 0]) + msg)
        options, seed = HEADERS[2 + i % (len(HEADERS) - 2)]
        out.append(bytes([options, seed]) + msg)
        if i % 3 == 0:
            out.append(bytes([0, 1]) + msg)
    return out


def command(*args):
    """A command as a client sends it: an array of bulk strings."""
    out = b"*%d\r\n" % len(args)
    for arg in args:
        out += b"$%d\r\n%s\r\n" % (len(arg), arg)
    return out


# What clients send a server (see proto/src/resp/request.rs), valid and not.
COMMANDS = [
    command(b"PING"),
    command(b"SET", b"key:1", b"value-1"),
    command(b"GET", b"key:1"),
    command(b"MSET", b"a", b"1", b"b", b"2", b"c", b"3"),
    command(b"SET", b"bin", b"\x00\r\n\xff$*"),
    command(b"ECHO", b""),
    command(b"SET", b"big", b"x" * 300),
    command(b"HELLO", b"3") + command(b"CLIENT", b"SETNAME", b"fuzz") + command(b"PING"),
    b"*0\r\n*-1\r\n*-7\r\n" + command(b"PING"),
    b"PING\r\n",
    b"*1\r\n:1\r\n",
    b"*2\r\n$3\r\nGET\r\n+x\r\n",
    b"*01\r\n$4\r\nPING\r\n",
    b"*1\r\n$-1\r\n",
    b"*1\r\n$00\r\n\r\n",
    b"*-0\r\n",
    b"*1\r\n$4\r\nPINGxx",
    b"*1\r\n$999999999999999999\r\n",
    b"*999999999999999999\r\n",
    b"*6\r\n$1\r\na\r\n",
    b"*1\r\n$17\r\n" + b"y" * 17 + b"\r\n",
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nval",
]


def request_seeds(plain=False):
    """Commands behind the target's two header bytes (options, split seed)."""
    if plain:
        return [bytes([0, 0]) + c for c in COMMANDS]
    out = []
    for i, c in enumerate(COMMANDS):
        out.append(bytes([0, 0]) + c)
        out.append(bytes([1, 1]) + c)
        out.append(bytes([i % 2, 0x20 + 7 * i]) + c)
    return out


def segmented_seeds():
    """Operation sequences (see proto/src/fuzzing/segmented.rs) over CR/LF-rich data."""
    rng = random.Random(7)
    alphabet = b"\r\n\r\nab+:$*0123"
    seeds = []
    # Pushes split a CRLF across segments, then every query op.
    seeds.append(bytes([0, 3]) + b"a\r\n" + bytes([1, 1]) + b"\r" + bytes([0, 2]) + b"\nb" + bytes([5, 0, 5, 2, 6, 0, 10]))
    seeds.append(bytes([0, 4]) + b"+OK\r" + bytes([0, 3]) + b"\n:1" + bytes([3, 5, 4, 9, 8, 1, 9, 7, 2, 9, 1]))
    for _ in range(40):
        ops = bytearray()
        for _ in range(rng.randrange(4, 40)):
            op = rng.randrange(12)
            ops.append(op)
            if op in (0, 1):
                n = rng.randrange(0, 12)
                ops.append(n)
                ops.extend(rng.choice(alphabet) for _ in range(n))
            elif op in (6, 8):
                ops.extend((rng.randrange(256), rng.choice(alphabet)))
            elif op in (2, 3, 4, 5, 7, 9, 10):
                ops.append(rng.choice([0, 1, 2, 3, 5, 8, 13, 200]))
        seeds.append(bytes(ops))
    return seeds


def body_seeds(ops, rng_seed):
    """Inputs for the body targets (see src/fuzzing/): two header bytes, then calls and
    the server's faults from one stream of bytes. Every call with a well-behaved server
    (fault bytes 0), each header bit alone, then random mixes."""
    rng = random.Random(rng_seed)
    seeds = []
    # The handshake's own bytes (connection refused or not, the first frames' faults),
    # then each call alone, on a server that behaves.
    for op in range(ops):
        seeds.append(bytes([0x24, 0x40, 0, 0, 0, 0, 0]) + bytes([op, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0]) * 3)
    for bit in range(8):
        seeds.append(bytes([0x24, 1 << bit, 0, 0, 0]) + bytes(range(ops)) + bytes(16))
    # Each fault (low nibble of a frame's first byte) on the first calls.
    for fault in range(10, 16):
        seeds.append(bytes([0x33, 0x40, 0, 0, 0, 0, fault, 7, 1, fault | 0x20, 0x85, 2, 0, 0, 0, 0, 4]))
    for _ in range(24):
        seeds.append(bytes(rng.randrange(256) for _ in range(rng.randrange(8, 64))))
    return seeds


def write(directory, seeds, prefix):
    directory.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (directory / (prefix + hashlib.sha1(seed).hexdigest())).write_bytes(seed)


def main():
    args = sys.argv[1:]
    plain = "--plain" in args
    args = [a for a in args if a != "--plain"]
    if len(args) != 1:
        sys.exit(__doc__)
    out = pathlib.Path(args[0])
    prefix = "seed-" if plain else ""
    captured = vectors()
    resp3 = SPEC + REDIS + EDGES + captured["resp3"] + captured["resp2"]
    resp2 = [m for m in SPEC + REDIS + EDGES if m[:1] in (b"", *[bytes([t]) for t in RESP2_TYPES])]
    resp2 += captured["resp2"] + SPEC[:8]
    write(out / "resp_decode_resp3", resp_seeds(resp3, plain), prefix)
    write(out / "resp_decode_resp2", resp_seeds(resp2, plain), prefix)
    write(out / "segmented_buffer", segmented_seeds(), prefix)
    write(out / "resp_request", request_seeds(plain), prefix)
    write(out / "redis_body", body_seeds(8, 11), prefix)
    write(out / "nats_body", body_seeds(8, 12), prefix)
    for target in sorted(p.name for p in out.iterdir()):
        print(target, len(list((out / target).iterdir())))


if __name__ == "__main__":
    main()
