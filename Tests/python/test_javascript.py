"""JavaScript functions (TFUNCTION, TFCALL, TFCALLASYNC) over real sockets on four shards:
the Sync & Async documentation's examples unchanged, errors, conversions, atomicity across
shards, callAsync waiters, CLIENT UNBLOCK, disconnects, DELETE while pending, and the
lock-redis-timeout watchdog."""
import socket
import threading
import time

import pytest
import redis

from conftest import wait_for
from test_blocking import keys_on
from test_scripting import wire_replies


@pytest.fixture
def srv(make_server):
    return make_server("--shards", 4)


def raw(r, *args):
    try:
        return ("ok", r.execute_command(*args))
    except redis.ResponseError as e:
        return ("error", str(e))


def load(r, code, *options):
    return r.execute_command("TFUNCTION", "LOAD", *options, code)


PING = """#!js api_version=1.0 name=lib

redis.registerFunction('test', async function(client){
    return client.block(function(redis_client){
        return redis_client.call('ping');
    });
});"""

COUNT_SYNC = """#!js api_version=1.0 name=lib

redis.registerFunction('test', function(client, expected_name){
    var count = 0;
    var cursor = '0';
    do{
        var res = client.call('scan', cursor);
        cursor = res[0];
        var keys = res[1];
        keys.forEach((key) => {
            if (client.call('hget', key, 'name') == expected_name) {
                count += 1;
            }
        });
    } while(cursor != '0');
    return count;
});"""

COUNT_ASYNC = """#!js api_version=1.0 name=lib

redis.registerAsyncFunction('test', async function(async_client, expected_name){
    var count = 0;
    var cursor = '0';
    do{
        async_client.block((client)=>{
            var res = client.call('scan', cursor);
            cursor = res[0];
            var keys = res[1];
            keys.forEach((key) => {
                if (client.call('hget', key, 'name') == expected_name) {
                    count += 1;
                }
            });
        });
    } while(cursor != '0');
    return count;
});"""

COUNT_CACHED = """#!js api_version=1.0 name=lib

redis.registerAsyncFunction('test', function(client, expected_name){
    // check the cache first
    var cached_value = client.call('get', expected_name + '_count');
    if (cached_value != null) {
        return cached_value;
    }

    // cache is not set, move to background
    return client.executeAsync(async function(async_client) {
        var count = 0;
        var cursor = '0';
        do{
            async_client.block((client)=>{
                var res = client.call('scan', cursor);
                cursor = res[0];
                var keys = res[1];
                keys.forEach((key) => {
                    if (client.call('hget', key, 'name') == expected_name) {
                        count += 1;
                    }
                });
            });
        } while(cursor != '0');

        // set count to the cache wil 5 seconds expiration
        async_client.block((client)=>{
            client.call('set', expected_name + '_count', count);
            client.call('expire', expected_name + '_count', 5);
        });

        return count;
    });
});"""

MY_BLPOP = """#!js api_version=1.0 name=lib

redis.registerAsyncFunction('my_blpop', async function(client, key, expected_val) {
    var res = null
    do {
        res = await client.block((c) => {
            return c.callAsync('blpop', key, '0');
        })
    } while (res[1] != expected_val);
    return res;
});"""


def test_documented_examples(srv):
    r = srv.client(decode_responses=True)
    assert load(r, PING) == "OK"
    assert r.execute_command("TFCALLASYNC", "lib.test", 0) == "PONG"
    for i in range(120):
        r.hset(f"person:{i}", mapping={"name": "bob" if i % 3 == 0 else "alice"})
    # The same count synchronously and as a coroutine (numbers reply as bulk strings in RESP2).
    assert load(r, COUNT_SYNC, "REPLACE") == "OK"
    assert r.execute_command("TFCALL", "lib.test", 0, "bob") == "40"
    assert load(r, COUNT_ASYNC, "REPLACE") == "OK"
    assert r.execute_command("TFCALLASYNC", "lib.test", 0, "bob") == "40"
    # Start sync, move async: the second call is served from the cache.
    assert load(r, COUNT_CACHED, "REPLACE") == "OK"
    assert r.execute_command("TFCALLASYNC", "lib.test", 0, "bob") == "40"
    assert r.get("bob_count") == "40" and 0 < r.ttl("bob_count") <= 5
    r.hset("person:x", "name", "bob")
    assert r.execute_command("TFCALLASYNC", "lib.test", 0, "bob") == "40"
    # my_blpop waits for the expected value while everyone else keeps working.
    assert load(r, MY_BLPOP, "REPLACE") == "OK"
    waiter = srv.client(decode_responses=True)
    out = {}
    t = threading.Thread(target=lambda: out.update(r=waiter.execute_command("TFCALLASYNC", "lib.my_blpop", 1, "list", "yes")))
    t.start()
    assert wait_for(lambda: r.info("clients")["blocked_clients"] >= 2)
    assert r.set("other", 1) is True and r.incr("other") == 2
    r.lpush("list", "no")
    r.lpush("list", "maybe")
    assert wait_for(lambda: r.llen("list") == 0)
    assert t.is_alive()
    r.lpush("list", "yes")
    t.join(10)
    assert out["r"] == ["list", "yes"]
    assert r.llen("list") == 0


LOAD_ERRORS = [
    ("return 1", "ERR the library code must start with '#!js api_version=1.0 name=<library name>'"),
    ("#!lua name=x\n", "ERR unknown engine 'lua': only 'js' is supported"),
    ("#!js api_version=2.0 name=x\n", "ERR unsupported api version '2.0': Berth supports 1.0"),
    ("#!js name=x\n", "ERR the library metadata has no api_version"),
    ("#!js api_version=1.0\n", "ERR the library metadata needs name=<library name> (letters, digits and underscores)"),
    ("#!js api_version=1.0 name=e\nvar x = 1;", "ERR the library registered no functions"),
    ("#!js api_version=1.0 name=s\nfoo(", "ERR Failed loading the library: expected expression, got end of script (library.js line 2)"),
    ("#!js api_version=1.0 name=d\nredis.registerFunction('a', () => 1);\nredis.registerFunction('a', () => 2);",
     "ERR Failed loading the library: Function a already exists in the library (library.js line 3)"),
    ("#!js api_version=1.0 name=f\nredis.registerFunction('a', () => 1, {flags: ['bogus']});",
     "ERR Failed loading the library: Unknown function flag: bogus (library.js line 2)"),
    ("#!js api_version=1.0 name=n\nredis.registerFunction('a-b', () => 1);",
     "ERR Failed loading the library: Function names can only contain letters, numbers, or underscores(_) and must be at least one character long (library.js line 2)"),
]


def test_load_time_code_is_stopped_at_lock_redis_timeout(srv):
    r = srv.client(decode_responses=True)
    other = srv.client(decode_responses=True)
    # Under either failure policy: a load that never ends would hold every client.
    for policy in ["kill", "abort"]:
        r.config_set("library-fatal-failure-policy", policy)
        spin = "#!js api_version=1.0 name=spin\nwhile (true) {}\nredis.registerFunction('f', () => 1);"
        assert raw(r, "TFUNCTION", "LOAD", spin) == ("error", "Execution was terminated due to timeout")
        assert other.ping()
    assert r.execute_command("TFUNCTION", "LIST") == []


def test_load_and_call_errors(srv):
    r = srv.client(decode_responses=True)
    for code, error in LOAD_ERRORS:
        assert raw(r, "TFUNCTION", "LOAD", code) == ("error", error.removeprefix("ERR "))
    assert r.execute_command("TFUNCTION", "LIST") == []
    lib = "#!js api_version=1.0 name=lib\nredis.registerFunction('f', () => 1);\nredis.registerAsyncFunction('a', async () => 2);"
    assert load(r, lib) == "OK"
    assert raw(r, "TFUNCTION", "LOAD", lib) == ("error", "Library lib already exists")
    assert raw(r, "TFCALL", "lib.a", 0) == ("error", "function a is async: call it with TFCALLASYNC")
    assert raw(r, "TFCALL", "nolib.f", 0) == ("error", "Unknown library nolib")
    assert raw(r, "TFCALL", "lib.nofn", 0) == ("error", "Unknown function nofn in library lib")
    assert raw(r, "TFCALL", "libf", 0) == ("error", "the function name must be <library name>.<function name>")
    assert raw(r, "TFCALL", "lib.f", "x") == ("error", "value is not an integer or out of range")
    assert raw(r, "TFCALL", "lib.f", -1) == ("error", "Number of keys can't be negative")
    assert raw(r, "TFCALL", "lib.f", 3, "k") == ("error", "Number of keys can't be greater than number of args")
    assert raw(r, "TFCALL", "lib.f") == ("error", "wrong number of arguments for 'tfcall' command")
    assert r.execute_command("TFCALLASYNC", "lib.a", 0) == "2"
    assert r.execute_command("TFCALL", "lib.f", 0) == "1"
    assert raw(r, "TFUNCTION", "DELETE", "nolib") == ("error", "library does not exist")
    assert raw(r, "TFUNCTION", "BOGUS") == ("error", "unknown subcommand or wrong number of arguments for 'BOGUS'. Try TFUNCTION HELP.")


def test_list_config_and_delete(srv):
    r = srv.client(decode_responses=True)
    code = ("#!js api_version=1.0 name=cfg\n"
            "redis.registerFunction('get', () => redis.config.greeting, {description: 'says hi'});\n"
            "redis.registerAsyncFunction({name: 'later', callback: async () => 1, flags: [redis.functionFlags.NO_WRITES]});")
    assert load(r, code, "CONFIG", '{"greeting": "hi"}') == "OK"
    assert r.execute_command("TFCALL", "cfg.get", 0) == "hi"
    [entry] = r.execute_command("TFUNCTION", "LIST")
    info = dict(zip(entry[::2], entry[1::2]))
    assert info["library_name"] == "cfg" and info["engine"] == "js" and info["api_version"] == "1.0"
    assert info["configuration"] == '{"greeting": "hi"}' and info["functions"] == ["get", "later"]
    assert "code" not in info and info["pending_jobs"] == 0
    [entry] = r.execute_command("TFUNCTION", "LIST", "WITHCODE", "VERBOSE", "LIBRARY", "cfg")
    info = dict(zip(entry[::2], entry[1::2]))
    assert info["code"] == code
    verbose = [dict(zip(f[::2], f[1::2])) for f in info["functions"]]
    assert verbose == [{"name": "get", "description": "says hi", "is_async": 0, "flags": []},
                       {"name": "later", "description": "", "is_async": 1, "flags": ["no-writes"]}]
    assert r.execute_command("TFUNCTION", "LIST", "LIBRARY", "other") == []
    assert raw(r, "TFUNCTION", "LOAD", "REPLACE", "CONFIG", "{bad", code) == ("error", "the CONFIG argument is not valid JSON")
    assert r.execute_command("TFUNCTION", "DELETE", "cfg") == "OK"
    assert r.execute_command("TFUNCTION", "LIST") == []
    assert raw(r, "TFCALL", "cfg.get", 0) == ("error", "Unknown library cfg")


CONVERSIONS = """#!js api_version=1.0 name=conv
redis.registerFunction('values', () => [1, 1.5, true, false, null, undefined, 'text', 10n, [1, [2]], {a: 'b'}, new Set(['x'])]);
redis.registerFunction('status', () => { const s = new String('FINE'); s.__reply_type = 'status'; return s; });
redis.registerFunction('types', (c) => {
    c.call('set', 's', 'v'); c.call('rpush', 'l', 'a'); c.call('hset', 'h', 'f', 'v'); c.call('sadd', 'st', 'm');
    c.call('zadd', 'z', '1.5', 'm');
    const ok = c.call('set', 'x', 'y');
    return [typeof c.call('get', 's'), typeof c.call('incr', 'n'), ok.__reply_type, String(ok),
            Array.isArray(c.call('lrange', 'l', 0, -1)), c.call('hgetall', 'h').f, c.call('smembers', 'st') instanceof Set,
            typeof c.call('zscore', 'z', 'm'), c.call('get', 'nothing') === null, c.call('exists', 's') === 1n];
});
redis.registerFunction('raw', (c, k) => {
    const v = c.callRaw('get', k);
    return [v instanceof ArrayBuffer, v.byteLength, v];
}, {flags: [redis.functionFlags.RAW_ARGUMENTS]});
redis.registerFunction('rawargs', (c, k) => [k instanceof ArrayBuffer, k.byteLength], {flags: [redis.functionFlags.RAW_ARGUMENTS]});
redis.registerFunction('thrown', (c) => c.call('lpush', 's', 'x'));
redis.registerFunction('blpop', (c) => c.call('blpop', 'nolist', '0'));
redis.registerFunction('ignored', (c) => c.executeAsync(async () => 'never'));
redis.registerFunction('nowrite', (c) => c.call('set', 'a', 'b'), {flags: [redis.functionFlags.NO_WRITES]});
"""


def test_conversions_both_ways(srv):
    r = srv.client(decode_responses=True)
    assert load(r, CONVERSIONS) == "OK"
    assert r.execute_command("TFCALL", "conv.values", 0) == [
        "1", "1.5", 1, 0, None, None, "text", 10, ["1", ["2"]], ["a", "b"], ["x"]]
    assert r.execute_command("TFCALL", "conv.status", 0) == "FINE"
    assert r.execute_command("TFCALL", "conv.types", 0) == [
        "string", "bigint", "status", "OK", 1, "v", 1, "number", 1, 1]
    r3 = srv.client(decode_responses=True, protocol=3)
    values = r3.execute_command("TFCALL", "conv.values", 0)
    assert values[:7] == [1, 1.5, True, False, None, None, "text"] and values[7] == 10
    assert values[9] == {"a": "b"}
    [wire] = wire_replies(srv.port, 3, [("TFCALL", "conv.values", 0)])
    assert wire.startswith(b"*11\r\n,1\r\n,1.5\r\n#t\r\n#f\r\n_\r\n_\r\n$4\r\ntext\r\n:10\r\n")
    assert wire.endswith(b"%1\r\n$1\r\na\r\n$1\r\nb\r\n~1\r\n$1\r\nx\r\n")
    # Bytes stay bytes with callRaw and RAW_ARGUMENTS.
    b = srv.client()
    blob = bytes(range(256))
    b.set("blob", blob)
    assert b.execute_command("TFCALL", "conv.raw", 1, "blob") == [1, b"256", blob]
    assert b.execute_command("TFCALL", "conv.rawargs", 1, b"\xff\x00") == [1, b"2"]
    # A blocking command in a sync function answers at once; a registerFunction function's
    # Promise is ignored.
    assert r.execute_command("TFCALL", "conv.blpop", 0) is None
    assert r.execute_command("TFCALL", "conv.ignored", 0) is None
    # Errors of commands are thrown; NO_WRITES refuses writes.
    assert raw(r, "TFCALL", "conv.thrown", 0) == ("error", "WRONGTYPE Operation against a key holding the wrong kind of value")
    assert raw(r, "TFCALL", "conv.nowrite", 0) == ("error", "Write command 'set' was called while write is not allowed.")
    assert r.get("a") is None


ATOMIC = """#!js api_version=1.0 name=bank
redis.registerFunction('move', (c, from, to) => {
    c.call('decrby', from, '1');
    c.call('incrby', to, '1');
    return 1;
});
redis.registerAsyncFunction('move_async', async (c, from, to) => {
    c.block((s) => { s.call('decrby', from, '1'); s.call('incrby', to, '1'); });
    return 1;
});
"""


def test_sync_functions_and_block_sections_are_atomic_across_shards(srv):
    r = srv.client(decode_responses=True)
    assert load(r, ATOMIC) == "OK"
    keys = [keys_on(s, 1, f"acct{s}_")[0] for s in range(4)]
    r.mset({k: 100 for k in keys})
    stop = threading.Event()
    sums = []

    def reader():
        c = srv.client()
        while not stop.is_set():
            sums.append(sum(int(v) for v in c.mget(keys)))

    def mover(i):
        c = srv.client()
        for j in range(150):
            a, b = keys[(i + j) % 4], keys[(i + j + 1) % 4]
            c.execute_command("TFCALL" if j % 2 else "TFCALLASYNC", "bank.move" if j % 2 else "bank.move_async", 2, a, b)
    readers = [threading.Thread(target=reader) for _ in range(2)]
    movers = [threading.Thread(target=mover, args=(i,)) for i in range(4)]
    for t in readers + movers:
        t.start()
    for t in movers:
        t.join(120)
    stop.set()
    for t in readers:
        t.join(30)
    assert sums and set(sums) == {400}
    assert sum(int(v) for v in r.mget(keys)) == 400


WAITERS = """#!js api_version=1.0 name=q
redis.registerAsyncFunction('take', async (c, key) => {
    const res = await c.block((s) => s.callAsync('blpop', key, '0'));
    return res[1];
});
redis.registerAsyncFunction('take_timeout', async (c, key) => {
    return await c.callAsync('blpop', key, '0.2');
});
redis.registerFunction('isblock', (c) => c.isBlockAllowed());
redis.registerAsyncFunction('isblock_async', (c) => c.isBlockAllowed());
"""


def test_hundreds_of_callasync_waiters_are_served_exactly_once(srv):
    r = srv.client(decode_responses=True)
    assert load(r, WAITERS) == "OK"
    queues = [keys_on(s, 1, f"jobs{s}_")[0] for s in range(4)]
    n = 200
    results, errors = [], []

    def client_loop(i):
        c = redis.Redis(port=srv.port, decode_responses=True)
        try:
            results.append(c.execute_command("TFCALLASYNC", "q.take", 1, queues[i % 4]))
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)
        finally:
            c.close()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    assert wait_for(lambda: r.info("clients")["blocked_clients"] >= 2 * n, timeout=60)
    for i in range(n):
        r.rpush(queues[i % 4], f"job{i}")
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(results) == sorted(f"job{i}" for i in range(n))
    assert all(r.llen(q) == 0 for q in queues)
    assert wait_for(lambda: r.info("clients")["blocked_clients"] == 0)
    # A callAsync waiter's timeout settles the promise with the command's timeout reply.
    assert r.execute_command("TFCALLASYNC", "q.take_timeout", 1, "empty") is None
    assert r.execute_command("TFCALL", "q.isblock", 0) == 0
    assert r.execute_command("TFCALLASYNC", "q.isblock_async", 0) == 1


def test_client_unblock_disconnect_and_delete_while_pending(srv):
    r = srv.client(decode_responses=True)
    assert load(r, WAITERS) == "OK"

    def start(c, key):
        out = {}

        def run():
            try:
                out["r"] = c.execute_command("TFCALLASYNC", "q.take", 1, key)
            except redis.RedisError as e:
                out["r"] = e
        t = threading.Thread(target=run)
        t.start()
        return t, out
    # CLIENT UNBLOCK ... ERROR and TIMEOUT end the client's wait; the coroutine's later
    # result is dropped, and the client goes on working.
    for how, expect in (("ERROR", "UNBLOCKED client unblocked via CLIENT UNBLOCK"), ("TIMEOUT", None)):
        c = srv.client(decode_responses=True)
        cid = c.client_id()  # the pool's one connection, which the call below uses too
        before = r.info("clients")["blocked_clients"]
        t, out = start(c, "q1")
        assert wait_for(lambda: r.info("clients")["blocked_clients"] >= before + 2)
        assert r.client_unblock(cid, error=how == "ERROR") is True
        t.join(10)
        assert (str(out["r"]) if expect else out["r"]) == expect
        assert c.ping() is True
    r.rpush("q1", "a", "b")  # the two abandoned coroutines take them
    assert wait_for(lambda: r.llen("q1") == 0)
    # A client that disconnects while waiting.
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"*4\r\n$11\r\nTFCALLASYNC\r\n$6\r\nq.take\r\n$1\r\n1\r\n$2\r\nq2\r\n")
    assert wait_for(lambda: r.info("clients")["blocked_clients"] >= 2)
    s.close()
    r.rpush("q2", "x")
    assert wait_for(lambda: r.llen("q2") == 0)
    # DELETE with a call pending: the client gets an error, its waiter is withdrawn.
    c = srv.client(decode_responses=True)
    t, out = start(c, "q3")
    assert wait_for(lambda: r.info("clients")["blocked_clients"] >= 2)
    assert r.execute_command("TFUNCTION", "DELETE", "q") == "OK"
    t.join(10)
    assert str(out["r"]) == "the library was deleted while the function ran"
    assert wait_for(lambda: r.info("clients")["blocked_clients"] == 0)
    r.rpush("q3", "kept")
    assert r.lrange("q3", 0, -1) == ["kept"]
    # REPLACE with a call pending: the same, and the new code serves the next call.
    assert load(r, WAITERS) == "OK"
    t, out = start(c, "q4")
    assert wait_for(lambda: r.info("clients")["blocked_clients"] >= 2)
    assert load(r, WAITERS, "REPLACE") == "OK"
    t.join(10)
    assert str(out["r"]) == "the library was replaced while the function ran"
    r.rpush("q4", "v")
    assert c.execute_command("TFCALLASYNC", "q.take", 1, "q4") == "v"


RUNAWAY = """#!js api_version=1.0 name=slow
redis.registerFunction('spin', (c) => { c.call('set', 'partial', '1'); while (true) {} });
redis.registerFunction('busy', (c, ms) => { const end = Date.now() + Number(ms); while (Date.now() < end) {} return 'done'; });
redis.registerAsyncFunction('spin_block', async (c) => c.block(() => { while (true) {} }));
redis.registerFunction('recurse', function f(c) { return f(c); });
redis.registerFunction('ok', () => 'fine');
"""


def test_lock_redis_timeout_and_runaway_code(srv):
    r = srv.client(decode_responses=True)
    assert load(r, RUNAWAY) == "OK"
    assert r.config_get("lock-redis-timeout") == {"lock-redis-timeout": "500"}
    r.config_set("lock-redis-timeout", 200)
    # abort: the section stops with an error; its partial effects stay.
    assert raw(r, "TFCALL", "slow.spin", 0) == ("error", "Execution was terminated due to timeout")
    assert r.get("partial") == "1"
    assert raw(r, "TFCALLASYNC", "slow.spin_block", 0) == ("error", "Execution was terminated due to timeout")
    assert r.execute_command("TFCALL", "slow.ok", 0) == "fine"
    # kill: atomicity is kept and the function runs to its end.
    r.config_set("library-fatal-failure-policy", "kill")
    assert r.execute_command("TFCALL", "slow.busy", 0, 600) == "done"
    assert raw(r, "TFCALL", "slow.recurse", 0) == ("error", "too much recursion")
    assert r.execute_command("TFCALL", "slow.ok", 0) == "fine"
    assert raw(r, "CONFIG", "SET", "library-fatal-failure-policy", "maybe")[0] == "error"


OOM_LIB = """#!js api_version=1.0 name=oom
redis.registerFunction('write', (c) => c.call('set', 'k', 'v'));
redis.registerFunction('read', (c) => c.call('get', 'k'), {flags: [redis.functionFlags.NO_WRITES]});
redis.registerFunction('anyway', (c) => c.call('set', 'k', 'w'), {flags: [redis.functionFlags.ALLOW_OOM]});
redis.registerAsyncFunction('caught', async (c) => {
    try { return c.block((s) => s.call('set', 'k', 'x')); } catch (e) { return 'caught: ' + e.message; }
});
"""


def test_maxmemory_refuses_sections_of_functions_that_may_write(srv):
    r = srv.client(decode_responses=True)
    assert load(r, OOM_LIB) == "OK"
    r.config_set("maxmemory", 1)
    try:
        assert wire_replies(srv.port, 2, [("TFCALL", "oom.write", 0)]) == [b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"]
        assert r.execute_command("TFCALL", "oom.read", 0) is None
        assert r.execute_command("TFCALL", "oom.anyway", 0) == "OK"
        assert r.execute_command("TFCALLASYNC", "oom.caught", 0) == "caught: OOM command not allowed when used memory > 'maxmemory'."
    finally:
        r.config_set("maxmemory", 0)
    assert r.execute_command("TFCALL", "oom.write", 0) == "OK"


def test_memory_limit_stops_a_script(srv):
    r = srv.client(decode_responses=True)
    code = ("#!js api_version=1.0 name=mem\n"
            "redis.registerFunction('grow', () => { const keep = []; while (true) keep.push(new ArrayBuffer(1 << 20)); });\n"
            "redis.registerFunction('ok', () => 'fine');\n"
            "redis.registerAsyncFunction('grow_later', async (c) => {\n"
            "    await c.callAsync('ping');\n"
            "    const keep = []; while (true) keep.push(new ArrayBuffer(1 << 20));\n"
            "});")
    assert load(r, code) == "OK"
    r.config_set("js-memory-limit", 256 * 1024 * 1024)
    r.config_set("lock-redis-timeout", 20000)
    assert raw(r, "TFCALL", "mem.grow", 0) == ("error", "Execution was terminated: the memory limit was reached")
    assert r.execute_command("TFCALL", "mem.ok", 0) == "fine"
    # Stopped in a coroutine's continuation, outside any section: the call still replies.
    assert raw(r, "TFCALLASYNC", "mem.grow_later", 0) == ("error", "Execution was terminated: the memory limit was reached")
    assert r.execute_command("TFCALL", "mem.ok", 0) == "fine"


MULTI_LIB = """#!js api_version=1.0 name=m
redis.registerFunction('copy', (c, from, to) => { c.call('set', to, c.call('get', from)); return c.call('get', to); });
redis.registerFunction('canblock', (c) => c.isBlockAllowed());
redis.registerAsyncFunction('canblock_async', (c) => c.isBlockAllowed());
redis.registerAsyncFunction('later', (c) => c.executeAsync(async () => 'later'));
redis.registerAsyncFunction('co', async () => 'co');
redis.registerFunction('bump', (c, k) => c.call('incr', k));
"""


def test_functions_inside_multi(srv):
    r = srv.client(decode_responses=True)
    assert load(r, MULTI_LIB) == "OK"
    a, b = keys_on(0, 1, "ma")[0], keys_on(3, 1, "mb")[0]
    p = r.pipeline(transaction=True)
    p.set(a, "v1")
    p.execute_command("TFCALL", "m.copy", 2, a, b)
    p.execute_command("TFCALL", "m.canblock", 0)
    p.execute_command("TFCALLASYNC", "m.canblock_async", 0)
    p.execute_command("TFCALLASYNC", "m.later", 0)
    p.execute_command("TFCALLASYNC", "m.co", 0)
    p.get(b)
    out = p.execute(raise_on_error=False)
    assert out[:4] == [True, "v1", 0, 0]
    assert str(out[4]) == "can not wait for a promise here: blocking is not allowed"
    assert str(out[5]) == "can not run a coroutine here: blocking is not allowed"
    assert out[6] == "v1"
    # Transactions that call functions, and functions called outside them, side by side:
    # the library's thread gives the transaction's locks back its turn, and nobody hangs.
    counter = keys_on(1, 1, "cnt")[0]
    errors = []

    def transactions():
        c = srv.client()
        try:
            for _ in range(150):
                p = c.pipeline(transaction=True)
                p.execute_command("TFCALL", "m.bump", 1, counter)
                p.incr(counter)
                p.execute()
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    def calls():
        c = srv.client()
        try:
            for _ in range(150):
                c.execute_command("TFCALL", "m.bump", 1, counter)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)
    threads = [threading.Thread(target=transactions) for _ in range(2)] + [threading.Thread(target=calls) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and not any(t.is_alive() for t in threads)
    assert int(r.get(counter)) == 2 * 150 * 2 + 2 * 150


def test_redis_log_reaches_the_server_log(make_server):
    srv = make_server("--shards", 2, "--loglevel", "notice")
    r = srv.client(decode_responses=True)
    code = ("#!js api_version=1.0 name=logger\n"
            "redis.log('loading the logger library');\n"
            "redis.registerFunction('say', (c, text) => { redis.log('said: ' + text); return text; });")
    assert load(r, code) == "OK"
    assert r.execute_command("TFCALL", "logger.say", 0, "hello there") == "hello there"
    assert wait_for(lambda: "<logger> said: hello there" in srv.output())
    assert "<logger> loading the logger library" in srv.output()
