"""Lua scripting (EVAL, EVALSHA, EVAL_RO, SCRIPT) over real sockets on four shards, and
the same scripts against redis-server for the exact replies and error texts."""
import socket
import subprocess
import threading
from pathlib import Path
import time

import pytest
import redis

from conftest import free_port, wait_for

# Replies and errors that must match redis-server byte for byte (math.random aside).
PARITY = [
    "return redis.call('nosuch')",
    "return redis.call('get')",
    "return redis.call('incr','s')",
    "x = 5",
    "return y",
    "return io",
    "return {1,2,{3,'x'},nil,4}",
    "return redis.pcall('incr','s')",
    "return {err='My Error'}",
    "return redis.error_reply('FOO bar')",
    "return redis.status_reply('FINE')",
    "return 3.99",
    "return true",
    "return false",
    "return nil",
    "error('boom')",
    "local a = 1\nlocal b = 2\nerror('on line three')",
    "foo(",
    "return KEYS[1]..ARGV[1]",
    "return #KEYS + #ARGV",
    "return redis.sha1hex('')",
    "return redis.sha1hex('hello world')",
    "error({err='X custom'})",
    "return redis.pcall('nosuch')",
    "return redis.call('set', KEYS[1], 'v')",
    "return {redis.call('get', KEYS[1]), type(redis.call('get','nope'))}",
    "return redis.call('hgetall', 'nohash')",
    "return {pcall(redis.call, 'nosuch')}",
    "return redis.call('lrange', KEYS[1], 0, -1)",
    "return redis.call('incrbyfloat', 'f', '1.5')",
    "return redis.call('ping')",
    "return cjson.encode({1, 2, 'three'})",
    "return cjson.decode('{\"a\":[1,2,3]}').a[3]",
    "return bit.band(0xff, 0x0f) + bit.lshift(1, 4)",
    "return bit.tohex(65535)",
    # Integral numbers reach commands whole (Lua alone would write 9.007199254741e+15);
    # other numbers as Redis 7.2 writes them (test_numbers_reach_commands_as_redis_7_2).
    "redis.call('set', 'n', 9007199254740991) return redis.call('get', 'n')",
    "redis.call('set', 'n', 2^53 + 2) return redis.call('get', 'n')",
    # error_reply puts ERR before a text without its own code.
    "return redis.error_reply('')",
    "return redis.error_reply('oops')",
    "return redis.error_reply('-oops')",
    "return redis.error_reply('-MY code')",
    "return redis.pcall('ping', {})",
    # SORT BY a constant orders a set's members in a script (not outside one).
    "redis.call('sadd', 'st', 'c', 'aaa', 'l', 'm', 't', 'a', 'b', 'azz', 's', 'v', 'd') "
    "return redis.call('sort', 'st', 'BY', 'nosort')",
    "return redis.call('sort', 'st', 'BY', 'nosort', 'GET', '#', 'GET', 'x_*')",
    # redis.set_repl's argument checks.
    "redis.set_repl(5)", "redis.set_repl()", "redis.set_repl(redis.REPL_NONE) return redis.REPL_ALL",
    # Commands Redis flags noscript.
    "return redis.call('multi')",
    "return redis.call('client', 'pause', 10)",
    "return redis.call('watch', 'x')",
    "return redis.call('blmpop', 0, 1, 'l', 'left')",
]

# Blocking commands in scripts: Redis 7.0 refused them (noscript); Redis 7.2 and Valkey run
# them as their non-blocking forms, XREAD BLOCK included (Valkey, Redis 7.4). Compared with
# valkey-server.
BLOCKING_IN_SCRIPTS = [
    "return redis.call('blpop', 'l', 0)",
    "return redis.pcall('blmove', 'l', 'm', 'left', 'left', 0)",
    "return redis.call('brpoplpush', 'l', 'm', 1)",
    "return redis.call('bzpopmin', 'z', 0)",
    "return redis.call('bzpopmax', 'z', 0)",
    "return redis.call('wait', 0, 0)",
    "return redis.call('xread', 'BLOCK', 0, 'STREAMS', 's', '$')",
    "return redis.call('xread', 'COUNT', 'x', 'BLOCK', 0, 'STREAMS', 's', '$')",
    "redis.call('rpush', 'l', 'a', 'b') return redis.call('blpop', 'l', 0)",
    "redis.call('zadd', 'z', 1, 'm') return redis.call('bzpopmin', 'z', 0)",
    "redis.call('xadd', 's', '1-1', 'f', 'v') return redis.call('xread', 'BLOCK', 0, 'STREAMS', 's', '0')",
]


def library_scripts():
    """The cmsgpack and struct scripts of parity_libraries.lua (the header block dropped)."""
    text = (Path(__file__).parent / "parity_libraries.lua").read_text()
    return [s.strip("\n") for s in text.split("\n----\n")[1:] if s.strip()]


def raw(r, *args):
    try:
        return ("ok", r.execute_command(*args))
    except redis.ResponseError as e:
        return ("error", str(e))


@pytest.fixture
def srv(make_server):
    return make_server("--shards", 4)


def test_replies_and_errors_match_redis_server(srv, redis_server):
    b = srv.client(decode_responses=True)
    differences = []
    for c in (b, redis_server):
        c.set("s", "abc")
    for script in PARITY:
        ours, theirs = raw(b, "EVAL", script, 1, "key", "arg"), raw(redis_server, "EVAL", script, 1, "key", "arg")
        if ours != theirs:
            differences.append((script, ours, theirs))
    assert differences == []


def test_numbers_reach_commands_as_redis_7_2(srv, valkey_reference):
    """A Lua number passed to a command is written as Redis 7.2 and Valkey write it: whole
    numbers as integers (-0 as 0), others in the shortest form that reads back exactly
    (Redis 7.0 wrote 17 significant digits: 0.10000000000000001)."""
    script = ("local out = {} for _, v in ipairs({0.1, 9007199254740991, -0.0, 1e300, 1/3, 1e-5, 1.5e-7, "
              "123456.789, 5e18, 2^62, 2^62 * 4, 1e21, -2.5, 0.000123, 1e16, -1e-300, 1.7976931348623157e308, "
              "123e-10, 0.1 + 0.2}) do redis.call('set', 'n', v) out[#out + 1] = redis.call('get', 'n') end "
              "return out")
    ours = srv.client(decode_responses=True).eval(script, 0)
    assert ours == valkey_reference.eval(script, 0)
    assert ours[:3] == ["0.1", "9007199254740991", "0"]


def test_blocking_commands_in_scripts_answer_as_valkey(srv, valkey_reference):
    ours = srv.client(decode_responses=True)
    differences = []
    for script in BLOCKING_IN_SCRIPTS:
        a, b = raw(ours, "EVAL", script, 0), raw(valkey_reference, "EVAL", script, 0)
        if a != b:
            differences.append((script, a, b))
    assert differences == []


def test_cmsgpack_struct_and_helper_errors_match_redis_server(srv, redis_server):
    # cmsgpack and struct return binary strings: compare bytes, not text.
    b = srv.client()
    theirs_client = redis.Redis(port=redis_server.connection_pool.connection_kwargs["port"])
    scripts = library_scripts()
    assert len(scripts) > 70
    differences = []
    for script in scripts:
        ours, theirs = raw(b, "EVAL", script, 1, "key", "arg"), raw(theirs_client, "EVAL", script, 1, "key", "arg")
        if ours != theirs:
            differences.append((script, ours, theirs))
    assert differences == []


# RESP3 both ways: what redis.call hands a script after redis.setresp(3), and the RESP3
# reply tables a script returns, as RESP2 and RESP3 clients receive them.
RESP3_PARITY = [
    "redis.setresp(3); return redis.call('hgetall', 'h')",
    "redis.setresp(3); local r = redis.call('hgetall', 'h'); return r.map.f",
    "redis.setresp(3); return redis.call('smembers', 'st')",
    "redis.setresp(3); local r = redis.call('smembers', 'st'); return r.set.a",
    "redis.setresp(3); return redis.call('zscore', 'z', 'm')",
    "redis.setresp(3); return redis.call('zscore', 'z', 'm').double * 2",
    "redis.setresp(3); return type(redis.call('get', 'nosuch'))",
    "redis.setresp(3); return redis.call('get', 'nosuch')",
    "redis.setresp(3); return redis.call('zscore', 'z', 'nosuch')",
    "redis.setresp(3); return redis.call('zrange', 'z', 0, -1, 'withscores')",
    "redis.setresp(3); return redis.call('smismember', 'st', 'a', 'b')",
    "redis.setresp(3); return redis.call('set', 'x', 'y')",
    "redis.setresp(3); return redis.pcall('incr', 'h')",
    "redis.setresp(3); return true",
    "redis.setresp(3); return false",
    "redis.setresp(3); return {true, false, 1}",
    "redis.setresp(4)",
    "return false",
    "return {double=3.14}",
    "return {double=1/0}",
    "return {double=-1/0}",
    "return {double=0.1}",
    "return {double=42}",
    "return {map={a=1}}",
    "return {map={a={1,2}, b={map={c='d'}}}}",
    "return {set={a=true}}",
    "return {set={}}",
    "return {map={}}",
    "return {big_number='123456789012345678901234567890'}",
    "return {verbatim_string={format='txt', string='hello'}}",
    "return {verbatim_string={format='mkd', string='# x'}}",
    "return {ok='fine\\r\\nnow'}",
]


def read_reply(f):
    """One whole RESP2/RESP3 reply, as the bytes on the wire."""
    line = f.readline()
    kind, out = line[:1], line
    if kind in (b"$", b"=", b"!"):
        n = int(line[1:-2])
        if n >= 0:
            out += f.read(n + 2)
    elif kind in (b"*", b"~", b">", b"%", b"|"):
        n = int(line[1:-2]) * (2 if kind in (b"%", b"|") else 1)
        for _ in range(max(n, 0)):
            out += read_reply(f)
        if kind == b"|":
            out += read_reply(f)
    return out


def wire_replies(port, protocol, commands):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        replies = []
        for args in [("HELLO", protocol)] + commands:
            parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
            s.sendall(b"".join([b"*%d\r\n" % len(parts)] + [b"$%d\r\n%s\r\n" % (len(p), p) for p in parts]))
            replies.append(read_reply(f))
        return replies[1:]


@pytest.mark.parametrize("protocol", [2, 3])
def test_resp3_conversions_match_redis_server(srv, redis_server, protocol):
    setup = [("FLUSHALL",), ("HSET", "h", "f", "v"), ("SADD", "st", "a"), ("ZADD", "z", "1.5", "m")]
    commands = setup + [("EVAL", script, 0) for script in RESP3_PARITY]
    ours = wire_replies(srv.port, protocol, commands)
    theirs = wire_replies(redis_server.connection_pool.connection_kwargs["port"], protocol, commands)
    differences = [(c, a, b) for c, a, b in zip(commands, ours, theirs) if a != b]
    assert len(ours) == len(commands)
    assert differences == []


def test_evalsha_script_load_exists_flush(srv):
    r = srv.client(decode_responses=True)
    sha = r.script_load("return ARGV[1] .. '!'")
    assert sha == "a1b0b3a1c4f9b6fd3fd3ac43f32af06b6ec9cb4b" or len(sha) == 40
    assert r.evalsha(sha, 0, "hi") == "hi!"
    assert r.evalsha(sha.upper(), 0, "x") == "x!"
    assert r.script_exists(sha, "0" * 40) == [True, False]
    with pytest.raises(redis.exceptions.NoScriptError, match="No matching script"):
        r.evalsha("0" * 40, 0)
    # EVAL caches what it runs, as Redis does.
    r.eval("return 42", 0)
    assert r.script_exists("1fa00e76656cc152ad327c13fe365858fd7be306") == [True]
    assert r.script_flush() is True
    assert r.script_exists(sha) == [False]
    with pytest.raises(redis.exceptions.NoScriptError):
        r.evalsha(sha, 0, "hi")
    with pytest.raises(redis.ResponseError, match="Error compiling script"):
        r.script_load("return (")
    with pytest.raises(redis.ResponseError, match="Number of keys can't be negative"):
        r.eval("return 1", -1)
    with pytest.raises(redis.ResponseError, match="greater than number of args"):
        r.eval("return 1", 3, "a")


def test_read_only_scripts_and_shebang_flags(srv):
    r = srv.client(decode_responses=True)
    r.set("k", "v")
    assert r.eval_ro("return redis.call('get', KEYS[1])", 1, "k") == "v"
    with pytest.raises(redis.ResponseError, match="Write commands are not allowed from read-only scripts"):
        r.eval_ro("return redis.call('set', KEYS[1], 'x')", 1, "k")
    with pytest.raises(redis.ResponseError, match="Write commands are not allowed from read-only scripts"):
        r.eval("#!lua flags=no-writes\nreturn redis.call('del', KEYS[1])", 1, "k")
    assert r.eval("#!lua flags=allow-oom\nreturn redis.call('get', KEYS[1])", 1, "k") == "v"
    with pytest.raises(redis.ResponseError, match="Unexpected flag in script shebang"):
        r.eval("#!lua flags=bogus\nreturn 1", 0)
    assert r.get("k") == "v"


def test_redis_py_lock_across_clients(srv):
    a, b = srv.client(), srv.client()
    lock_a = a.lock("resource", timeout=5)
    lock_b = b.lock("resource", timeout=5, blocking=False)
    assert lock_a.acquire(blocking=False)
    assert not lock_b.acquire()
    assert lock_a.extend(5) and 5000 < a.pttl("resource") <= 10000  # EVALSHA checking the token
    lock_a.release()
    assert lock_b.acquire()
    lock_b.release()
    assert a.exists("resource") == 0
    # A lock that expired and was taken by another client cannot be released or extended
    # by its first owner: the scripts compare tokens.
    short = a.lock("resource", timeout=0.1)
    assert short.acquire(blocking=False)
    time.sleep(0.25)
    other = b.lock("resource", timeout=5)
    assert other.acquire(blocking=False)
    with pytest.raises(redis.exceptions.LockNotOwnedError):
        short.extend(1)
    with pytest.raises(redis.exceptions.LockNotOwnedError):
        short.release()
    assert other.owned()
    other.release()


TOKEN_BUCKET = """
local tokens = tonumber(redis.call('hget', KEYS[1], 'tokens') or ARGV[1])
local stamp = tonumber(redis.call('hget', KEYS[1], 'stamp') or ARGV[3])
local now, capacity, rate = tonumber(ARGV[3]), tonumber(ARGV[1]), tonumber(ARGV[2])
tokens = math.min(capacity, tokens + (now - stamp) * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('hset', KEYS[1], 'tokens', tokens, 'stamp', now)
return allowed
"""


def test_token_bucket_rate_limiter(srv):
    r = srv.client()
    limiter = r.register_script(TOKEN_BUCKET)
    allowed = sum(limiter(keys=["bucket:user1"], args=[10, 1, 1000]) for _ in range(25))
    assert allowed == 10  # capacity, no time passed
    assert limiter(keys=["bucket:user1"], args=[10, 1, 1003]) == 1  # three tokens refilled
    assert sum(limiter(keys=["bucket:user1"], args=[10, 1, 1003]) for _ in range(5)) == 2


def test_script_moving_values_across_shards_is_atomic(srv):
    r = srv.client()
    keys = ["{a}account", "{b}account", "{c}account", "{d}account"]
    r.mset({k: 100 for k in keys})
    move = r.register_script("""
        local v = tonumber(redis.call('get', KEYS[1]))
        redis.call('set', KEYS[1], v - 1)
        redis.call('incrby', KEYS[2], 1)
        return v""")
    stop = threading.Event()
    seen = []

    def reader():
        c = srv.client()
        while not stop.is_set():
            seen.append(sum(int(v) for v in c.mget(keys)))

    def mover(i):
        c = srv.client()
        m = c.register_script(move.script)
        for j in range(300):
            m(keys=[keys[(i + j) % 4], keys[(i + j + 1) % 4]])
    readers = [threading.Thread(target=reader) for _ in range(2)]
    movers = [threading.Thread(target=mover, args=(i,)) for i in range(4)]
    for t in readers + movers:
        t.start()
    for t in movers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert seen and set(seen) == {400}
    assert sum(int(v) for v in r.mget(keys)) == 400


def test_writes_wake_blocked_clients_after_the_script(srv):
    r = srv.client(decode_responses=True)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("v", srv.client(decode_responses=True).blpop(["jobs"], 10)))
    t.start()
    assert wait_for(lambda: any(c["cmd"] == "blpop" for c in r.client_list()))
    # The script pushes two and pops one: the waiter gets what is left, never the first.
    got = r.eval("redis.call('rpush', KEYS[1], 'a'); redis.call('rpush', KEYS[1], 'b'); "
                 "return redis.call('lpop', KEYS[1])", 1, "jobs")
    t.join()
    assert got == "a" and out["v"] == ("jobs", "b") or out["v"] == ["jobs", "b"]
    # A blocking command inside a script answers at once, as its non-blocking form.
    assert r.eval("return redis.call('blpop', KEYS[1], 0)", 1, "empty") is None
    assert r.eval("return redis.call('blmpop', 0, 1, KEYS[1], 'left')", 1, "empty") is None


def test_sandbox(srv):
    r = srv.client(decode_responses=True)
    for script, message in [("x = 1", "Attempt to modify a readonly table"),
                            ("return os.time()", "attempt to call field 'time'"),
                            ("return io.open('/etc/passwd')", "nonexistent global variable 'io'"),
                            ("return loadfile('/etc/passwd')", "nonexistent global variable 'loadfile'"),
                            ("return dofile('/etc/passwd')", "nonexistent global variable 'dofile'")]:
        with pytest.raises(redis.ResponseError, match=message):
            r.eval(script, 0)
    # math.random goes on from run to run, as in Redis 7; randomseed makes it repeatable.
    seq = "return {math.random(1000000), math.random(1000000), math.random(1000000)}"
    assert r.eval(seq, 0) != r.eval(seq, 0)
    seeded = "math.randomseed(5) return {math.random(1000000), math.random(1000000)}"
    assert r.eval(seeded, 0) == r.eval(seeded, 0)
    # Deep recursion fails cleanly; the server keeps serving.
    with pytest.raises(redis.ResponseError, match="stack overflow"):
        r.eval("local function f(n) return f(n + 1) + 1 end return f(1)", 0)
    assert r.eval("local t = {} for i = 1, 100000 do t[i] = i end return t", 0)[-1] == 100000
    assert r.ping()


# What a script may not change for the scripts after it, each with the error Redis 7 and
# Valkey give (they patch Lua with read-only tables; Berth builds them from proxies).
READONLY_TRICKS = [
    "setmetatable(_G, {})",
    "local g = getmetatable(_G); g.__index = {}",
    "redis = function() return 1 end",
    "server = function() return 1 end",
    "_G = {}",
    "redis.call = function() return 1 end",
    "server.call = function() return 1 end",
    "cjson.encode = function() return 1 end",
    "cmsgpack.pack = function() return 1 end",
    "bit.lshift = function() return 1 end",
    "string.len = function() return 1 end",
    "math.floor = nil",
    "table.insert = nil",
    "struct.pack = nil",
    "getmetatable('').__index = {}",
    "rawset(_G, 'x', 1)",
    "rawset(string, 'rep', 1)",
    "rawset(getfenv(redis.call), 'redis', 1)",
    "setfenv(0, {})",
    "KEYS = {}",
    "table.insert(_G, 1)",
]


def test_libraries_and_globals_are_read_only(srv):
    r = srv.client(decode_responses=True)
    for script in READONLY_TRICKS:
        with pytest.raises(redis.ResponseError, match="Attempt to modify a readonly table"):
            r.eval(script, 0)
    # Nothing of it stuck: the next script sees the libraries as they were.
    assert r.eval("return {redis.call('ping')['ok'], string.len('abc'), math.floor(2.5), "
                  "cjson.encode({1}), bit.lshift(1, 2), #cmsgpack.pack(1), type(struct.pack)}", 0) == \
        ["PONG", 3, 2, "[1]", 4, 1, "function"]
    # Reading around the proxies still works: iteration, rawget, methods on strings.
    assert r.eval("local n = 0 for k in pairs(redis) do n = n + 1 end return n", 0) > 10
    assert r.eval("return rawget(string, 'upper')('x') .. ('y'):upper()", 0) == "XY"
    assert r.eval("return server.call('set', KEYS[1], ARGV[1])", 1, "k", "v") == "OK"
    assert r.eval("return getfenv(redis.call) == _G", 0) == 1
    assert r.eval("return type(os.clock())", 0) == "number"


def test_info_counts_cached_scripts_and_functions(srv):
    r = srv.client(decode_responses=True)
    r.script_flush()
    for i in range(3):
        r.eval(f"return {i}", 0)
    r.function_load("#!lua name=cnt\nredis.register_function('a', function() return 1 end)\n"
                    "redis.register_function('b', function() return 2 end)")
    memory = r.info("memory")
    assert memory["number_of_cached_scripts"] == 3 and memory["number_of_functions"] == 2
    r.script_flush("ASYNC")
    assert r.info("memory")["number_of_cached_scripts"] == 0


def test_lua_library_weaknesses_are_guarded(srv):
    r = srv.client(decode_responses=True)
    # CVE-2024-31449: lua-bitop wrote past its buffer for the smallest digit count.
    assert r.eval("return bit.tohex(65535, -2147483648)", 0) == "0000FFFF"
    assert r.eval("return {bit.tohex(255), bit.tohex(255, -4), bit.tohex(-1, 2)}", 0) == ["000000ff", "00FF", "ff"]
    # CVE-2025-46817: unpack over a range wider than an int.
    for args in ["{}, -2147483648, 2147483647", "{}, 1, 2147483647", "{}, -2147483647, 2"]:
        with pytest.raises(redis.ResponseError, match="too many results to unpack"):
            r.eval(f"return unpack({args})", 0)
    assert r.eval("return {unpack({1, 2, 3}, 2)}", 0) == [2, 3]
    # Bytecode is never loaded: Lua 5.1 runs it unverified.
    with pytest.raises(redis.ResponseError, match="attempt to call a nil value"):
        r.eval("return loadstring(string.dump(function() return 1 end))()", 0)
    with pytest.raises(redis.ResponseError, match="Error compiling script"):
        r.eval("\x1bLua" + "\x51" + "\x00" * 20, 0)
    # No userdata with finalizers (CVE-2024-46981 class).
    with pytest.raises(redis.ResponseError, match="nonexistent global variable 'newproxy'"):
        r.eval("return newproxy(true)", 0)
    assert r.ping()


def test_function_load_time_is_limited(srv):
    r = srv.client(decode_responses=True)
    other = srv.client(decode_responses=True)
    for body in ["local a = 1 while 1 do a = a + 1 end",
                 "local t = {} while true do t[1] = (t[1] or 0) + 1 end"]:
        with pytest.raises(redis.ResponseError, match="FUNCTION LOAD timeout"):
            r.function_load("#!lua name=spin\n" + body)
        assert other.ping()
    assert r.function_list() == []
    with pytest.raises(redis.ResponseError, match="Attempt to modify a readonly table"):
        r.function_load("#!lua name=glob\na = 1")
    r.function_load("#!lua name=ok\nserver.register_function('f', function(k, a) return server.call('ping') end)")
    assert r.fcall("f", 0) == "PONG"


# FUNCTION LOAD metadata and register_function's argument checks, FCALL and FUNCTION's
# argument errors: each case runs on an empty function set, here and on redis-server.
FUNCTION_CASES = [
    ["FUNCTION", "LOAD", "#!lua name=t\nredis.register_function()"],
    ["FUNCTION", "LOAD", "#!lua name=t\nredis.register_function('f')"],
    ["FUNCTION", "LOAD", "#!lua name=t\nredis.register_function('f', function() end, 3)"],
    ["FUNCTION", "LOAD", "#!lua name=t\nredis.register_function(1, 2)"],
    ["FUNCTION", "LOAD", "#!lua name=t\nredis.register_function('f', 2)"],
    ["FUNCTION", "LOAD", "#!lua name=t\nredis.register_function{function_name=1, callback=function() end}"],
    ["FUNCTION", "LOAD", "#!lua name=t\nredis.register_function{function_name='f', callback=1}"],
    ["FUNCTION", "LOAD", "#!lua name=t\nredis.register_function{function_name='f', callback=function() end, description=1}"],
    ["FUNCTION", "LOAD", "#!lua name=t\nredis.register_function{function_name='f', callback=function() end, foo=1}"],
    ["FUNCTION", "LOAD", "#!lua name=t\nredis.register_function{callback=function() end}"],
    ["FUNCTION", "LOAD", "#!lua name=t\nredis.register_function{function_name='f'}"],
    ["FUNCTION", "LOAD", "#!lua name=t\nredis.register_function{function_name='f', callback=function() end, flags='x'}"],
    ["FUNCTION", "LOAD", "#!lua name=t\nredis.register_function('f b', function() end)"],
    ["FUNCTION", "LOAD", "#!lua name=t\nredis.register_function('f', function() end)\nredis.register_function('f', function() end)"],
    ["FUNCTION", "LOAD", "#!lua name=t\nreturn math.random()"],
    ["FUNCTION", "LOAD", "#!lua name=t\nreturn getmetatable('')"],
    ["FUNCTION", "LOAD", "#!lua name=t\nlocal a = redis.call"],
    ["FUNCTION", "LOAD", "#!lua name=t\nlocal a = REDIS_VERSION_NUM redis.register_function('f', function() return a end)"],
    ["FUNCTION", "LOAD", "#!lua"],
    ["FUNCTION", "LOAD", "#! name=test\nredis.register_function('f', function() end)"],
    ["FUNCTION", "LOAD", "#!lua name=foo name=bar\nredis.register_function('f', function() end)"],
    ["FUNCTION", "LOAD", "#!lua name=\"foo\"\nredis.register_function('f', function() end)"],
    ["FUNCTION", "LOAD", "#!lua name=a-b\nredis.register_function('f', function() end)"],
    ["FUNCTION", "LOAD", "#!lua name=\nredis.register_function('f', function() end)"],
    ["FUNCTION", "LOAD", "#!lua name=x foo=bar\nredis.register_function('f', function() end)"],
    ["FUNCTION", "LOAD", "foo", "bar"],
    ["FUNCTION", "LOAD", "REPLACE", "x", "#!lua name=t\n"],
    ["FUNCTION", "LOAD", "#!lua name=lib1\nredis.register_function('f1', function() return 1 end)"],
    ["FCALL", "F1", "0"],
    ["FCALL", "f1", "bad"],
    ["FCALL", "f1", "-1"],
    ["FCALL", "f1", "5"],
    ["FUNCTION", "LIST", "LIBRARYNAME"],
    ["FUNCTION", "LIST", "WITHCODE", "WITHCODE"],
    ["FUNCTION", "LIST", "LIBRARYNAME", "a", "LIBRARYNAME", "b"],
    ["FUNCTION", "LIST", "foo"],
    ["FUNCTION", "DELETE", "nosuch"],
    ["FUNCTION", "RESTORE", "bad"],
    ["FUNCTION", "FLUSH", "bad"],
    ["FUNCTION", "STATS", "x"],
    ["EVAL", "return redis.error_reply('')", "0"],
    ["EVAL", "return redis.error_reply('MY_ERR x')", "0"],
    ["EVAL", "return {err='x'}", "0"],
    ["EVAL", "return redis.pcall('get', {})", "0"],
    ["EVAL", "return redis.status_reply('')", "0"],
]


def test_function_errors_match_redis_server(srv, redis_server):
    b = srv.client(decode_responses=True)
    lib = "#!lua name=lib1\nredis.register_function('f1', function() return 1 end)"
    differences = []
    for case in FUNCTION_CASES:
        replies = []
        for c in (b, redis_server):
            c.execute_command("FUNCTION", "FLUSH")
            c.execute_command("FUNCTION", "LOAD", lib)
            replies.append(raw(c, *case))
        if replies[0] != replies[1]:
            differences.append((case, *replies))
    assert differences == []


def test_eval_inside_multi(srv):
    r = srv.client(decode_responses=True)
    p = r.pipeline(transaction=True)
    p.set("m", 1)
    p.eval("return redis.call('incr', KEYS[1])", 1, "m")
    p.get("m")
    assert p.execute() == [True, 2, "2"]


LIBRARY = """#!lua name=bank
local function transfer(keys, args)
    local amount = tonumber(args[1])
    local from = tonumber(redis.call('get', keys[1]) or '0')
    if from < amount then return redis.error_reply('ERR insufficient funds') end
    redis.call('decrby', keys[1], amount)
    return redis.call('incrby', keys[2], amount)
end
redis.register_function('transfer', transfer)
redis.register_function{function_name='balance', callback=function(keys) return tonumber(redis.call('get', keys[1]) or '0') end,
                        flags={'no-writes'}, description='read a balance'}
"""

FUNCTION_PARITY = [
    ("FUNCTION", "LOAD", "return 1"),
    ("FUNCTION", "LOAD", "#!lua name=bad\nfoo("),
    ("FUNCTION", "LOAD", "#!lua name=empty\nlocal x = 1"),
    ("FUNCTION", "LOAD", "#!lua name=callload\nredis.call('ping')"),
    ("FUNCTION", "LOAD", "#!js name=x\n"),
    ("FUNCTION", "LOAD", "#!lua name=b-d\n"),
    ("FUNCTION", "LOAD", "#!lua name=g\nx = 1\nredis.register_function('gg', function() return 1 end)"),
    ("FUNCTION", "LOAD", "#!lua name=err\nredis.register_function('e', function() error('boom') end)"),
    ("FCALL", "e", 0),
    ("FUNCTION", "LOAD", "#!lua name=dupe\nredis.register_function('e', function() return 1 end)"),
    ("FCALL", "nosuch", 0),
    ("FCALL_RO", "e", 0),
    ("FUNCTION", "DELETE", "nolib"),
    ("FUNCTION", "STATS"),
]


def test_function_replies_and_errors_match_redis_server(srv, redis_server):
    b = srv.client(decode_responses=True)
    differences = [(cmd, raw(b, *cmd), raw(redis_server, *cmd)) for cmd in FUNCTION_PARITY]
    differences = [d for d in differences if d[1] != d[2]]
    assert differences == []


def test_fcall_libraries_on_every_shard(srv):
    r = srv.client(decode_responses=True)
    assert r.function_load(LIBRARY) == "bank"
    clients = [srv.client(decode_responses=True) for _ in range(8)]  # homed on all four shards
    r.mset({"{a}alice": 100, "{b}bob": 0})
    for c in clients:
        assert c.fcall("transfer", 2, "{a}alice", "{b}bob", 5) > 0
    assert r.fcall_ro("balance", 1, "{a}alice") == 60 and r.fcall("balance", 1, "{b}bob") == 40
    with pytest.raises(redis.ResponseError, match="insufficient funds"):
        r.fcall("transfer", 2, "{b}bob", "{a}alice", 1000)
    with pytest.raises(redis.ResponseError, match="Can not execute a script with write flag"):
        r.fcall_ro("transfer", 2, "{a}alice", "{b}bob", 1)
    # REPLACE reaches every shard's interpreter; DELETE too.
    r.function_load(LIBRARY.replace("return tonumber(redis.call('get', keys[1]) or '0')", "return -1"), replace=True)
    assert all(c.fcall("balance", 1, "{a}alice") == -1 for c in clients)
    [lib] = r.function_list(library="ba*", withcode=True)
    lib = dict(zip(lib[::2], lib[1::2]))  # RESP2 maps are flat arrays
    assert lib["library_name"] == "bank" and lib["library_code"].startswith("#!lua name=bank")
    functions = [dict(zip(f[::2], f[1::2])) for f in lib["functions"]]
    assert sorted(f["name"] for f in functions) == ["balance", "transfer"]
    assert [f["flags"] for f in functions if f["name"] == "balance"] == [["no-writes"]]
    payload = srv.client().function_dump()
    assert r.function_delete("bank") is True
    for c in clients:
        with pytest.raises(redis.ResponseError, match="Function not found"):
            c.fcall("balance", 1, "{a}alice")
    assert srv.client().function_restore(payload) is True
    assert clients[3].fcall("balance", 1, "{a}alice") == -1
    with pytest.raises(redis.ResponseError, match="already exists"):
        srv.client().function_restore(payload)
    assert srv.client().function_restore(payload, "REPLACE") is True
    assert r.function_flush() is True
    assert r.function_list() == []


def client_on_other_shard(server, shard):
    """A connection homed on a shard other than `shard` (connections go round robin)."""
    for _ in range(16):
        c = server.client(decode_responses=True)
        if home_shard(c) != shard:
            return c
    raise AssertionError("no connection on another shard")


def home_shard(c):
    info = c.execute_command("CLIENT", "INFO")
    return int(info.split("shard=")[1].split()[0])


def in_background(call):
    """Runs `call` on a thread; its reply, or the error it raised, lands in out["reply"]."""
    out = {}

    def run():
        try:
            out["reply"] = call()
        except redis.ResponseError as e:
            out["reply"] = e
    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_busy_script_and_script_kill(srv):
    r = srv.client(decode_responses=True)
    assert r.config_set("busy-reply-threshold", 100) is True
    assert r.config_get("lua-time-limit") == {"lua-time-limit": "100"}
    runner = srv.client(decode_responses=True)
    other = client_on_other_shard(srv, home_shard(runner))
    # A read-only spin: other clients get -BUSY, then SCRIPT KILL stops it.
    t, out = in_background(lambda: runner.eval("local i = 0 while true do i = i + 1 end", 0))
    assert wait_for(lambda: "BUSY" in str(raw(other, "GET", "x")[1]))
    assert raw(other, "GET", "x") == ("error", "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.")
    assert raw(other, "FUNCTION", "KILL")[0] == "error"
    assert other.script_kill() is True
    t.join(10)
    assert str(out["reply"]).startswith("Script killed by user with SCRIPT KILL... script:")
    assert other.get("x") is None and raw(other, "SCRIPT", "KILL") == ("error", "NOTBUSY No scripts in execution right now.")
    # A script's own pcall cannot catch the kill.
    t, out = in_background(lambda: runner.eval(
        "while true do pcall(function() local i = 0 while true do i = i + 1 end end) end", 0))
    assert wait_for(lambda: "BUSY" in str(raw(other, "PING")[1]))
    assert other.script_kill() is True
    t.join(10)
    assert "Script killed by user" in str(out["reply"])
    # A script that wrote cannot be killed; it runs to its end.
    t, out = in_background(lambda: runner.eval(
        "redis.call('set', 'w', 1) local i = 0 while i < 3e8 do i = i + 1 end return 'done'", 0))
    assert wait_for(lambda: "BUSY" in str(raw(other, "PING")[1]))
    assert raw(other, "SCRIPT", "KILL")[1].startswith("UNKILLABLE Sorry the script already executed write commands")
    t.join(120)
    assert out["reply"] == "done" and other.get("w") == "1"


@pytest.mark.parametrize("io", ["uring", "epoll"])
def test_busy_script_on_a_one_shard_server_still_serves_and_dies(make_server, io):
    """On one shard every client shares the script's thread: they still get -BUSY, a
    client connecting meanwhile too, pipelined commands in order, and SCRIPT KILL works."""
    s = make_server("--shards", 1, "--io", io, "--busy-reply-threshold", 100)
    runner = s.client(decode_responses=True)
    other = s.client(decode_responses=True, socket_timeout=10)
    watcher = s.client(decode_responses=True, single_connection_client=True)
    assert watcher.execute_command("WATCH", "w") is True
    t, out = in_background(lambda: runner.eval("local i = 0 while true do i = i + 1 end", 0))
    busy = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
    assert wait_for(lambda: raw(other, "GET", "x") == ("error", busy))
    late = s.client(decode_responses=True, socket_timeout=10)
    assert raw(late, "PING") == ("error", busy)
    p = other.pipeline(transaction=False)
    p.get("a")
    p.incr("b")
    p.ping()
    replies = p.execute(raise_on_error=False)
    assert len(replies) == 3 and all(busy in str(e) for e in replies), replies
    # A client leaving while the script runs: its WATCH goes once the script is over.
    watcher.close()
    assert t.is_alive()
    assert other.script_kill() is True
    t.join(10)
    assert not t.is_alive()
    assert str(out["reply"]).startswith("Script killed by user with SCRIPT KILL...")
    assert other.set("w", 1) is True
    assert late.ping() is True
    assert int(other.info("clients")["connected_clients"]) == 3
    assert other.info("clients")["total_watched_keys"] == 0


@pytest.mark.parametrize("io", ["uring", "epoll"])
def test_busy_script_clients_own_pipeline_waits_for_it(make_server, io):
    s = make_server("--shards", 1, "--io", io, "--busy-reply-threshold", 50)
    other = s.client(decode_responses=True, socket_timeout=10)
    runner = socket.create_connection(("127.0.0.1", s.port))
    runner.settimeout(10)
    spin = b"local i = 0 while true do i = i + 1 end"
    runner.sendall(b"*3\r\n$4\r\nEVAL\r\n$%d\r\n%s\r\n$1\r\n0\r\n" % (len(spin), spin) + b"INCR n\r\nPING\r\n")
    assert wait_for(lambda: "BUSY" in str(raw(other, "PING")[1]))
    # More input from the script's own client meanwhile: it waits behind the script.
    runner.sendall(b"INCR n\r\n")
    assert other.script_kill() is True
    want = b":1\r\n+PONG\r\n:2\r\n"
    got = b""
    while not got.endswith(want):
        chunk = runner.recv(4096)
        assert chunk, got
        got += chunk
    assert got.startswith(b"-ERR Script killed by user with SCRIPT KILL..."), got
    assert other.get("n") == "2"
    runner.close()


def test_busy_function_and_function_kill(srv):
    r = srv.client(decode_responses=True)
    r.config_set("busy-reply-threshold", 100)
    r.function_load("#!lua name=spin\nredis.register_function{function_name='spin', "
                    "callback=function() local i = 0 while true do i = i + 1 end end, flags={'no-writes'}}")
    runner = srv.client(decode_responses=True)
    other = client_on_other_shard(srv, home_shard(runner))
    t, out = in_background(lambda: runner.fcall("spin", 0))
    assert wait_for(lambda: "BUSY" in str(raw(other, "GET", "x")[1]))
    assert raw(other, "GET", "x")[1] == "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
    assert raw(other, "SCRIPT", "KILL")[0] == "error"
    # FUNCTION STATS names the running function, as Redis answers it (clients poll it to
    # learn when to kill); allow-busy commands run too.
    stats = other.execute_command("FUNCTION", "STATS")
    running = stats[1]
    assert running[0::2] == ["name", "command", "duration_ms"]
    assert running[1] == "spin" and running[3] == ["FCALL", "spin", "0"] and running[5] >= 100
    assert other.execute_command("MULTI") == "OK" and other.execute_command("DISCARD") == "OK"
    assert other.function_kill() == "OK"
    t.join(10)
    assert str(out["reply"]).startswith("Script killed by user with FUNCTION KILL...")
    assert r.execute_command("FUNCTION", "STATS")[1] is None


def test_shutdown_nosave_stops_a_script_that_wrote(make_server):
    s = make_server("--shards", 2, "--busy-reply-threshold", 100)
    runner = s.client(decode_responses=True)
    other = client_on_other_shard(s, home_shard(runner))
    def spin():
        with pytest.raises(redis.ConnectionError):  # the server goes away under it
            runner.eval("redis.call('set','w',1) while true do end", 0)
    t = threading.Thread(target=spin)
    t.start()
    assert wait_for(lambda: "BUSY" in str(raw(other, "PING")[1]))
    other.shutdown(nosave=True)  # redis-py treats the closed connection as success
    assert s.proc.wait(10) == 0
    t.join(10)
