"""Boundary-value sweep: every command the server lists in COMMAND (and every subcommand of
a container command) is sent argument lists built from extreme values (LLONG_MIN/MAX, 2^63,
2^64, -1, 0, inf, nan, huge and empty strings, option words, stream IDs, range markers)
over several connections at once, with keys of every type in the argument positions.

Whatever a command answers, the server must stay alive, keep answering every client, and
keep the data that the sweep never names. The suite runs this on the debug build (where a
Swift arithmetic overflow traps) and again on the release build.

Commands that end or stop the server or its clients on purpose (SHUTDOWN, DEBUG, CLIENT
KILL/PAUSE, MONITOR, FLUSHALL, ...) are left out: they do what they are told, and the
other tests cover them."""
import random
import threading
import time

import pytest
import redis

LLONG_MIN = "-9223372036854775808"
LLONG_MAX = "9223372036854775807"
EXTREMES = [
    LLONG_MIN, LLONG_MAX, "9223372036854775808", "-9223372036854775809", "18446744073709551615",
    "18446744073709551616", "-1", "0", "1", "2", "-2", "4294967296", "-2147483648", "2147483647",
    "", "inf", "-inf", "+inf", "nan", "1e308", "-1e308", "1.7976931348623157e308", "1e-320",
    "0x10", " 1", "1 ", "3.5", "-0", "(1", "[a", "(", "[", "-", "+", "*", "$", ">", "~", "=",
    "0-0", "0-1", "18446744073709551615-18446744073709551615", "9223372036854775807-1",
    "1-18446744073709551615", "a*b?[c-", "[^a]*", "\\", "\x00", "x" * 70000,
]
WORDS = [
    "count", "withscores", "withvalues", "limit", "match", "type", "store", "get", "by", "block",
    "streams", "group", "rev", "byscore", "bylex", "nx", "xx", "gt", "lt", "ch", "incr", "ex",
    "px", "exat", "pxat", "keepttl", "persist", "left", "right", "before", "after", "min",
    "max", "sum", "weights", "aggregate", "maxlen", "minid", "nomkstream", "justid", "idle",
    "time", "retrycount", "force", "lastid", "entriesread", "mkstream", "full", "alpha", "asc",
    "desc", "overflow", "wrap", "sat", "fail", "u8", "i64", "u63", "#1", "idx", "len",
    "minmatchlen", "withmatchlen", "rank", "maxlen", "bit", "byte", "and", "or", "xor", "not",
    "replace", "copy", "db", "keys", "auth", "setname", "sync", "async", "schedule", "noack",
    "withcount", "library", "withcode", "flush", "dump", "restore", "restart", "on", "off",
    "skip", "yes", "no",
]
# Each worker has keys of its own (prefix sw0:, sw1:, ...) of every type, made anew before
# each command, plus a missing key and keys whose hash tags put them on other shards.
TYPES = {
    "str": lambda c, k: c.set(k, "hello"),
    "int": lambda c, k: c.set(k, "12"),
    "list": lambda c, k: c.rpush(k, "a", "b", "c", "1"),
    "hash": lambda c, k: c.hset(k, mapping={"f": "v", "n": "5"}),
    "set": lambda c, k: c.sadd(k, "a", "b", "1"),
    "zset": lambda c, k: c.zadd(k, {"a": 1, "b": 2.5, "c": -3}),
    "stream": lambda c, k: c.xadd(k, {"f": "v"}, id="5-5"),
}


def worker_keys(prefix):
    return [prefix + t for t in TYPES] + [prefix + "missing", "{%sstr}x" % prefix, "%s{list}" % prefix]
# Commands whose purpose is to stop, pause, disconnect or wipe, or whose reply never ends.
EXCLUDED = {
    "shutdown", "debug", "monitor", "flushall", "flushdb", "swapdb", "quit", "reset",
    "client|kill", "client|pause", "client|reply", "client|no-evict", "select", "move",
    "config|set", "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe",
    "sunsubscribe", "hello", "auth", "wait", "waitaof", "sync", "psync", "replicaof", "slaveof",
    "failover", "module|load", "module|loadex", "module|unload", "function|restore",
    "function|flush", "script|flush", "save", "bgsave", "bgrewriteaof", "cluster",
    "acl|setuser", "acl|deluser", "acl|load",
}
PROTECTED = {f"guard:{i}": f"value-{i}" for i in range(50)}


def plain_client(port, protocol=2):
    """A client that hands replies back as they came: redis-py's per-command reply parsers
    would trip over the odd replies odd arguments get."""
    c = redis.Redis(port=port, socket_timeout=0.5, protocol=protocol)
    c.response_callbacks.clear()
    return c


def command_table(c):
    """(name, arity, flags) of every command and subcommand the server lists."""
    out = []
    for entry in c.execute_command("COMMAND"):
        name, arity, flags = entry[0].decode(), entry[1], [f.decode() for f in entry[2]]
        subs = entry[9] if len(entry) > 9 else []
        if subs:
            for sub in subs:
                out.append((sub[0].decode(), sub[1], [f.decode() for f in sub[2]]))
        else:
            out.append((name, arity, flags))
    return out


def argument_lists(rng, name, arity, flags, rounds, keys):
    """Two phases: each extreme value in each position, with small plain values (a key, 1, 2)
    around it; then random mixtures of keys, extremes and option words."""
    words = name.split("|")
    need = max(abs(arity) - len(words), 0)
    longest = need if arity > 0 else need + 3
    plain = keys + ["1", "2", "0", "a"]
    for position in range(longest):
        for value in EXTREMES if "blocking" in flags else EXTREMES + WORDS:
            args = [rng.choice(keys)] + [rng.choice(plain) for _ in range(longest - 1)]
            args[position] = value
            yield words + args
    for _ in range(rounds):
        n = need if arity > 0 else need + rng.choice([0, 0, 1, 2, 3, 5, 8])
        args = []
        for i in range(n):
            pick = rng.random()
            if i == 0 or pick < 0.25:
                args.append(rng.choice(keys))
            elif pick < 0.75:
                args.append(rng.choice(EXTREMES))
            else:
                args.append(rng.choice(WORDS))
        yield words + args


def seed(c, prefix):
    c.execute_command("SELECT", "0")
    for t, make in TYPES.items():
        c.delete(prefix + t)
        make(c, prefix + t)


def sweep(port, commands, seed_value, errors, server_died):
    rng = random.Random(seed_value)
    prefix = f"sw{seed_value}:"
    keys = worker_keys(prefix)
    protocol = 3 if seed_value % 2 else 2  # half the workers speak RESP3
    c = plain_client(port, protocol)
    last = None
    try:
        for name, arity, flags in commands:
            last = ("seed", name)
            seed(c, prefix)
            rounds = 12 if "blocking" in flags else 40
            for args in argument_lists(rng, name, arity, flags, rounds, keys):
                last = [a[:40] for a in args]
                try:
                    c.execute_command(*args)
                except redis.ResponseError:
                    pass
                except (redis.TimeoutError, redis.ConnectionError):
                    if server_died():
                        raise
                    # A blocking command with a long timeout: drop the link (the server must
                    # clean up a client vanishing while blocked) and go on with a new one.
                    c.close()
                    c = plain_client(port, protocol)
    except Exception as e:  # noqa: BLE001 - whatever ended the worker is the finding
        errors.append(f"after {last!r}: {e!r}")
    finally:
        c.close()


def test_every_command_survives_extreme_arguments(make_server):
    server = make_server("--shards", "4")
    guard = server.client(decode_responses=True)
    guard.mset(PROTECTED)
    commands = [cmd for cmd in command_table(plain_client(server.port)) if cmd[0] not in EXCLUDED
                and cmd[0].split("|")[0] not in EXCLUDED]
    assert len(commands) > 200
    rng = random.Random(25)
    rng.shuffle(commands)
    errors = []
    workers = 4
    threads = [threading.Thread(target=sweep, args=(server.port, commands[i::workers], 1000 + i, errors,
                                                  lambda: server.proc.poll() is not None))
               for i in range(workers)]
    started = time.time()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads) and server.proc.poll() is None:
        # Everyone else is served throughout: a command that spins holds this up.
        assert guard.get("guard:0") == "value-0"
        time.sleep(0.2)
    for t in threads:
        t.join()
    assert errors == [] and server.proc.poll() is None, (errors, server.output()[-3000:])
    assert guard.mget(list(PROTECTED)) == list(PROTECTED.values())
    assert guard.ping()
    print(f"swept {len(commands)} commands in {time.time() - started:.1f}s")


# Settings that would lock the sweep out of its own server (or move it) if set to an extreme.
CONFIG_LEFT_ALONE = {"port", "bind", "requirepass", "maxclients", "timeout", "client-query-buffer-limit",
                     "proto-max-bulk-len", "logfile", "dir"}


def test_config_set_survives_extreme_values(make_server):
    server = make_server("--shards", "2")
    c = plain_client(server.port)
    c.execute_command("SET", "guard", "kept")
    reply = c.execute_command("CONFIG", "GET", "*")
    settings = dict(zip([n.decode() for n in reply[::2]], reply[1::2]))
    assert len(settings) > 50
    refused = 0
    for name, original in settings.items():
        if name in CONFIG_LEFT_ALONE:
            continue
        for value in EXTREMES + ["yes", "no", "1gb", "-1gb", "100000000000000000000gb", "5 5 5",
                                 "normal 0 0 0", "pubsub 1 1 1 replica x y z"]:
            try:
                c.execute_command("CONFIG", "SET", name, value)
            except redis.ResponseError:
                refused += 1
        try:
            c.execute_command("CONFIG", "SET", name, original)
        except redis.ResponseError as e:
            assert "immutable" in str(e), (name, e)
    assert refused > 1000
    assert c.execute_command("GET", "guard") == b"kept"
    assert server.proc.poll() is None
