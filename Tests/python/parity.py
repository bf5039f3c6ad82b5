"""Helpers for tests that send the same commands to Berth and to redis-server and compare
the replies: a raw connection that keeps error texts and RESP3 types, and the
normalisation of what Redis leaves open (member order, TTL values, random picks)."""
import socket


class Wire:
    """A connection that returns replies as plain values: bytes, int, None, lists, and
    ("error", text) for error replies, so error texts compare exactly. RESP3's types come
    back tagged with their kind (("map", [...]), ("double", b"1.5"), ...), so that a reply
    of the right value but the wrong type is a difference too."""

    def __init__(self, port, protocol=2):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        if protocol == 3:
            hello = self.call("HELLO", 3)
            assert hello[0] == "map", hello

    def call(self, *args):
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        self.sock.sendall(b"".join([b"*%d\r\n" % len(parts)] + [b"$%d\r\n%s\r\n" % (len(p), p) for p in parts]))
        return self.read()

    def read(self):
        line = self.file.readline()
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body
        if kind == b"-":
            return ("error", body.decode())
        if kind == b":":
            return int(body)
        if kind == b"$":
            n = int(body)
            if n < 0:
                return None
            data = self.file.read(n + 2)
            return data[:-2]
        if kind in (b"*", b"~", b">"):
            n = int(body)
            items = None if n < 0 else [self.read() for _ in range(n)]
            return items if kind == b"*" else (RESP3_KINDS[kind], items)
        if kind == b"%":
            return ("map", [self.read() for _ in range(2 * int(body))])
        if kind == b"_":
            return ("null",)
        if kind in (b",", b"#", b"("):
            return (RESP3_KINDS[kind], body)
        if kind in (b"=", b"!"):
            data = self.file.read(int(body) + 2)[:-2]
            return (RESP3_KINDS[kind], data)
        raise AssertionError("unexpected reply line %r" % line)

    def close(self):
        self.file.close()
        self.sock.close()


RESP3_KINDS = {b"~": "set", b">": "push", b",": "double", b"#": "boolean", b"(": "bignumber",
               b"=": "verbatim", b"!": "error"}


# Replies whose order Redis does not define: compared as sorted lists.
UNORDERED = {"SMEMBERS", "SINTER", "SUNION", "SDIFF", "HKEYS", "HVALS", "KEYS"}


def normalise(args, reply):
    name = args[0].upper()
    if name in ("SORT", "SORT_RO") and isinstance(reply, list) and sort_order_is_open(args):
        return ("count", len(reply))
    if name in ("SRANDMEMBER", "HRANDFIELD", "ZRANDMEMBER") and not (isinstance(reply, tuple) and reply[0] == "error"):
        if isinstance(reply, list):
            return ("count", len(reply))
        return ("one", reply is None)
    if isinstance(reply, tuple) and reply[0] in ("set", "map") and reply[1] is not None:
        items = reply[1]
        return (reply[0], sorted(zip(items[0::2], items[1::2])) if reply[0] == "map" else sorted(items))
    if isinstance(reply, list):
        if name in UNORDERED:
            return sorted(reply)
        if name == "HGETALL":
            return sorted(zip(reply[0::2], reply[1::2]))
    if name in ("TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME") and isinstance(reply, int) and reply > 0:
        return "positive"
    return reply


def sort_order_is_open(args):
    """SORT leaves the order open with BY and no `*` (a set's table order), and with ALPHA
    by a pattern (ties between equal or missing weights fall to qsort); with LIMIT, which
    elements are picked too, so only the count is compared."""
    words = [str(a).upper() for a in args]
    patterns = [str(args[i + 1]) for i, w in enumerate(words[:-1]) if w == "BY"]
    return any("*" not in p for p in patterns) or ("ALPHA" in words and bool(patterns))


class Session:
    """A Wire that normalises each reply for the command that produced it, including the
    replies inside EXEC's array, which belong to the commands queued since MULTI."""

    def __init__(self, wire):
        self.wire = wire
        self.queued = None

    def send(self, args):
        reply = self.wire.call(*args)
        name = str(args[0]).upper()
        if name == "MULTI" and self.queued is None:
            self.queued = []
        elif name in ("EXEC", "DISCARD"):
            queued, self.queued = self.queued or [], None
            if name == "EXEC" and isinstance(reply, list):
                return [normalise(q, r) for q, r in zip(queued, reply)]
        elif self.queued is not None and name not in ("WATCH", "MULTI"):
            self.queued.append(args)
        return normalise(args, reply)


def scan_all(wire, command, key, options):
    found, cursor = [], b"0"
    while True:
        reply = wire.call(command, *([key] if key else []), cursor, *options)
        if not isinstance(reply, list):
            return reply  # an error, compared as it is
        cursor, batch = reply
        found += batch
        if cursor == b"0":
            return sorted(found) if command != "HSCAN" else sorted(zip(found[0::2], found[1::2]))
