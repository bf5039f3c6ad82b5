"""The effect stream, checked by replaying it: Berth on four shards writes every effect to
a file (`effect-log`, RESP commands as in Redis's AOF) while several clients at once run
a random workload (pipelines, MULTI/EXEC across shards, EVAL and FCALL with random
writes, a JavaScript function, a module's Call, blocked clients served by pushes, keys
expiring, SPOP, INCRBYFLOAT, relative expiries, XADD *, consumer groups read, claimed and
acknowledged, FLUSHDB, SWAPDB). The
file is then loaded by redis-server 7.0 as its append-only file (an independent replay,
with expiry suspended while it loads, as for any AOF), and both keyspaces must be
identical: every key, type, value and absolute expiry in every database."""
import os
import random
import subprocess
import threading
import time

import pytest
import redis

from conftest import ROOT, Server, free_port, wait_for
from dataset import dump

MODULE = os.path.join(ROOT, "modules", "build", "blockdemo.so")
DATABASES = 4
JS_LIBRARY = """#!js api_version=1.0 name=effects
redis.registerFunction('jsbump', function(client, key, field) {
    client.call('hincrby', key, field, '1');
    client.call('rpush', key + ':log', field);
    return 1;
});
"""
LUA_LIBRARY = """#!lua name=effects
redis.register_function('luamix', function(keys, args)
    redis.call('sadd', keys[1], args[1])
    redis.call('zincrby', keys[2], 1.5, args[1])
    return redis.call('scard', keys[1])
end)
"""
# Writes a random number of random elements: its effects are its writes, not its code.
RANDOM_SCRIPT = """
local n = math.random(1, 4)
for i = 1, n do
    redis.call('rpush', KEYS[1], tostring(math.random(1000)))
end
if math.random() < 0.5 then redis.call('spop', KEYS[2]) end
redis.call('expire', KEYS[1], 300)
return n
"""


def key(rnd, family):
    return "%s%d{%d}" % (family, rnd.randrange(6), rnd.randrange(3))


def random_command(rnd):
    """One write or read over strings (s), lists (l), hashes (h), sets (t), sorted sets
    (z) and streams (x); keys carry one of three hash tags so transactions and scripts
    can span shards or not."""
    k = lambda f: key(rnd, f)
    x = lambda _: "x%d{%d}" % (rnd.randrange(2), rnd.randrange(3))  # few streams: groups meet entries
    v = str(rnd.randrange(100))
    return rnd.choice([
        ["SET", k("s"), v], ["SET", k("s"), v, "EX", "500"], ["SET", k("s"), v, "PX", str(rnd.randrange(1, 30))],
        ["SETEX", k("s"), "400", v], ["PSETEX", k("s"), "5", v], ["GETEX", k("s"), "EX", "600"], ["GETEX", k("s"), "PERSIST"],
        ["GETDEL", k("s")], ["INCR", k("n")], ["INCRBYFLOAT", k("f"), "0.1"], ["APPEND", k("s"), v],
        ["EXPIRE", k("s"), "900"], ["PEXPIRE", k("l"), "3"], ["EXPIREAT", k("h"), str(int(time.time()) + 1000)],
        ["PERSIST", k("s")], ["DEL", k("s")], ["UNLINK", k("l")], ["COPY", k("s"), k("s"), "REPLACE"],
        ["RENAME", k("t"), k("t")], ["LPUSH", k("l"), v, v], ["RPUSH", k("l"), v], ["LPOP", k("l")], ["RPOP", k("l"), "2"],
        ["LMOVE", k("l"), k("l"), "LEFT", "RIGHT"], ["LTRIM", k("l"), "0", "5"], ["LSET", k("l"), "0", v],
        ["HSET", k("h"), "f" + v, v], ["HINCRBY", k("h"), "n", "3"], ["HINCRBYFLOAT", k("h"), "x", "0.25"], ["HDEL", k("h"), "f1"],
        ["SADD", k("t"), v, str(rnd.randrange(100))], ["SPOP", k("t")], ["SPOP", k("t"), "2"], ["SREM", k("t"), v],
        ["SRANDMEMBER", k("t"), "3"], ["SMOVE", k("t"), k("t"), v], ["SINTERSTORE", k("t"), k("t"), k("t")],
        ["ZADD", k("z"), str(rnd.randrange(50)), "m" + v], ["ZINCRBY", k("z"), "0.5", "m" + v], ["ZPOPMIN", k("z")],
        ["ZREM", k("z"), "m" + v], ["ZUNIONSTORE", k("z"), "2", k("z"), k("z")], ["ZRANDMEMBER", k("z")],
        ["XADD", x("x"), "*", "f", v], ["XADD", x("x"), "MAXLEN", "20", "*", "f", v], ["XDEL", x("x"), "0-1"],
        ["XGROUP", "CREATE", x("x"), "g", "0", "MKSTREAM"], ["XREADGROUP", "GROUP", "g", "c" + v[-1], "COUNT", "2", "STREAMS", x("x"), ">"],
        ["XREADGROUP", "GROUP", "g", "n", "NOACK", "STREAMS", x("x"), ">"], ["XAUTOCLAIM", x("x"), "g", "c9", "0", "0", "COUNT", "1"],
        ["XCLAIM", x("x"), "g", "c8", "1", "0-1"], ["XACK", x("x"), "g", "0-1"],
        ["MOVE", k("s"), str(rnd.randrange(DATABASES))], ["SORT", k("t"), "BY", "nosort", "STORE", k("l")],
        ["GET", k("s")], ["LRANGE", k("l"), "0", "-1"], ["EXISTS", k("s"), k("h")],
    ])


def run_client(port, seed, rounds, stop_at):
    rnd = random.Random(seed)
    r = redis.Redis(port=port, socket_timeout=10)
    for _ in range(rounds):
        if time.time() > stop_at:
            return
        pick = rnd.random()
        try:
            if pick < 0.45:
                p = r.pipeline(transaction=False)
                for _ in range(rnd.randrange(1, 8)):
                    p.execute_command(*random_command(rnd))
                p.execute(raise_on_error=False)
            elif pick < 0.6:
                p = r.pipeline(transaction=True)
                for _ in range(rnd.randrange(1, 6)):
                    p.execute_command(*random_command(rnd))
                p.execute(raise_on_error=False)
            elif pick < 0.7:
                r.eval(RANDOM_SCRIPT, 2, key(rnd, "l"), key(rnd, "t"))
            elif pick < 0.75:
                r.fcall("luamix", 2, key(rnd, "t"), key(rnd, "z"), str(rnd.randrange(20)))
            elif pick < 0.8:
                r.execute_command("TFCALL", "effects.jsbump", 1, key(rnd, "h"), "f%d" % rnd.randrange(4))
            elif pick < 0.85:
                r.execute_command("blockdemo.call", "HSET", key(rnd, "h"), "mod", str(rnd.randrange(9)))
            elif pick < 0.93:
                # A blocked client, and a push (from this client) that serves it or not.
                target = key(rnd, "l")
                kind = rnd.choice(["BLPOP", "BLMOVE", "BZPOPMIN", "XREADGROUP"])
                waiter = redis.Redis(port=port, socket_timeout=10)
                if kind == "XREADGROUP":
                    target = key(rnd, "x")
                    try:
                        r.xgroup_create(target, "g", id="$", mkstream=True)
                    except redis.ResponseError:
                        pass
                args = {"BLPOP": ["BLPOP", target, "0.2"],
                        "BLMOVE": ["BLMOVE", target, key(rnd, "l"), "LEFT", "LEFT", "0.2"],
                        "BZPOPMIN": ["BZPOPMIN", key(rnd, "z"), "0.2"],
                        "XREADGROUP": ["XREADGROUP", "GROUP", "g", "c%d" % rnd.randrange(2), "COUNT", "2",
                                       "BLOCK", "200", "STREAMS", target, ">"]}[kind]
                def wait():
                    try:
                        waiter.execute_command(*args)
                    except redis.ResponseError:
                        pass  # the group went away with a FLUSHDB, a wrong type, ...
                t = threading.Thread(target=wait)
                t.start()
                time.sleep(rnd.choice([0, 0.01, 0.02]))
                if kind == "BZPOPMIN":
                    r.zadd(args[1], {"w%d" % rnd.randrange(5): rnd.randrange(9)})
                elif kind == "XREADGROUP":
                    r.xadd(target, {"w": "1"})
                else:
                    r.rpush(target, "pushed")
                t.join()
                waiter.close()
            elif pick < 0.96:
                r.execute_command("SELECT", rnd.randrange(DATABASES))
            elif pick < 0.98:
                r.execute_command("SWAPDB", rnd.randrange(DATABASES), rnd.randrange(DATABASES))
            else:
                r.execute_command("FLUSHDB")
        except redis.ResponseError:
            pass  # wrong types and the like are part of the workload
    r.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_replaying_the_effect_stream_rebuilds_the_keyspace(tmp_path, make_server, seed):
    subprocess.run(["make", "-C", os.path.join(ROOT, "modules"), "-s"], check=True)
    log = tmp_path / "effects.aof"
    srv = make_server("--shards", 4, "--effect-log", str(log), "--loadmodule", MODULE)
    r = srv.client()
    r.execute_command("TFUNCTION", "LOAD", JS_LIBRARY)
    r.function_load(LUA_LIBRARY)
    stop_at = time.time() + 20
    clients = [threading.Thread(target=run_client, args=(srv.port, seed * 100 + i, 300, stop_at)) for i in range(8)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    time.sleep(0.1)  # let the housekeeping loop drain
    original = dump(srv.port)
    assert wait_for(lambda: log.stat().st_size > 0)
    srv.stop()
    data = log.read_bytes()
    assert data.count(b"MULTI") > 10 and b"SREM" in data and b"PXAT" in data and b"PEXPIREAT" in data
    assert b"LPOP" in data and b"DEL" in data and b"SWAPDB" in data
    assert len(original) > 20
    # Consumer groups delivered, claimed and moved (their final state may be gone again).
    assert b"FORCE" in data and b"CREATECONSUMER" in data and b"SETID" in data

    # redis-server 7.0 loads the file as its append-only file: an independent replay, with
    # expiry suspended while it loads, as for any AOF. Its keyspace must be Berth's.
    # Libraries are part of the data set: their loads are effects too. redis-server has no
    # JavaScript engine, so it gets the file without TFUNCTION.
    commands = effect_commands(data)
    loads = {c[0].upper() for c in commands if len(c) > 1 and c[1].upper() == "LOAD"}
    assert loads == {"FUNCTION", "TFUNCTION"}
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    (redis_dir / "effects.aof").write_bytes(encode([c for c in commands if c[0].upper() != "TFUNCTION"]))
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--dir", str(redis_dir),
                             "--appendonly", "yes", "--appendfilename", "effects.aof"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: _loaded(port), timeout=30)
        replayed = dump(port)
        effects = data.count(b"\r\n*") + 1
        print(f"seed {seed}: {effects} effects, {len(original)} keys")
        assert replayed == original
    finally:
        proc.terminate()
        proc.wait(10)


def _loaded(port):
    try:
        return redis.Redis(port=port).info("persistence")["loading"] == 0
    except (redis.ConnectionError, redis.BusyLoadingError):
        return False


def encode(commands):
    """Commands back into RESP, as an append-only file holds them."""
    out = bytearray()
    for args in commands:
        out += b"*%d\r\n" % len(args)
        for a in args:
            b = a.encode()
            out += b"$%d\r\n%s\r\n" % (len(b), b)
    return bytes(out)


def effect_commands(data):
    """The commands of an effect file, as lists of strings."""
    out, i = [], 0
    while i < len(data):
        end = data.index(b"\r\n", i)
        n, i = int(data[i + 1:end]), end + 2
        args = []
        for _ in range(n):
            end = data.index(b"\r\n", i)
            length, i = int(data[i + 1:end]), end + 2
            args.append(data[i:i + length].decode())
            i += length + 2
        out.append(args)
    return out


def test_scripts_and_modules_choose_what_is_replicated(tmp_path, make_server):
    """redis.set_repl(REPL_NONE) keeps a script's next writes out of the stream, as in
    Redis; a module's Replicate puts exactly the command it names there, and its
    ReplicateVerbatim the module command itself, in the command's MULTI/EXEC block."""
    subprocess.run(["make", "-C", os.path.join(ROOT, "modules"), "-s"], check=True)
    log = tmp_path / "effects.aof"
    srv = make_server("--effect-log", str(log), "--loadmodule", os.path.join(ROOT, "modules", "build", "yieldtimer.so"))
    r = srv.client(decode_responses=True)
    r.eval("redis.call('set', 'a', '1') redis.set_repl(redis.REPL_NONE) redis.call('set', 'b', '2') "
           "redis.set_repl(redis.REPL_ALL) redis.call('set', 'c', '3')", 0)
    with pytest.raises(redis.ResponseError, match="Invalid replication flags"):
        r.eval("redis.set_repl(5)", 0)
    with pytest.raises(redis.ResponseError, match="requires two arguments"):
        r.eval("redis.set_repl()", 0)
    assert r.execute_command("yt.replicate") == [0, 1, 0]
    assert wait_for(lambda: len(effect_commands(log.read_bytes())) >= 8)
    assert effect_commands(log.read_bytes()) == [
        ["MULTI"], ["set", "a", "1"], ["set", "c", "3"], ["EXEC"],
        ["MULTI"], ["SET", "k", "v"], ["yt.replicate"], ["EXEC"]]
    assert r.get("b") == "2"  # written, only not replicated
