#!/usr/bin/env bash
# Memory per key, side by side: the same data loaded into a fresh redis-server and a fresh
# berth-server (2 shards) in one run, each data set into its own pair of servers, and the
# growth of used_memory (INFO memory) and of resident memory (RSS) divided by the number
# of keys. Ratios are berth / redis-server; below 1.00x Berth needs less.
#
#   Benchmarks/memory.sh
#
# Environment: BERTH=path/to/berth-server (default: a fresh release build),
#              STRINGS=1000000 (SET key:N value-N), COLLECTIONS=100000 (the same strings
#              with a TTL; hashes, sets and sorted sets of 5 short elements each; strings
#              of 1,000 bytes, and of 20 to 2,000 bytes spread evenly, as cached pages
#              and sessions are), SHARDS=2.
set -euo pipefail
cd "$(dirname "$0")/.."
STRINGS=${STRINGS:-1000000}
COLLECTIONS=${COLLECTIONS:-100000}
SHARDS=${SHARDS:-2}

# shellcheck source=Benchmarks/common.sh
. Benchmarks/common.sh
need_servers

# RESP for redis-cli --pipe: one command per key of the data set named.
commands() { # kind count
  python3 - "$1" "$2" <<'EOF'
import sys
kind, n = sys.argv[1], int(sys.argv[2])
out = sys.stdout.buffer
def cmd(*args):
    b = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        b.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(b)
for i in range(n):
    if kind == "strings":
        out.write(cmd("SET", "key:%d" % i, "value-%d" % i))
    elif kind == "hashes":
        out.write(cmd("HSET", "hash:%d" % i, *[x for f in range(5) for x in ("field%d" % f, "v%d" % (i + f))]))
    elif kind == "sets":
        out.write(cmd("SADD", "set:%d" % i, *["member%d" % (i + f) for f in range(5)]))
    elif kind == "zsets":
        out.write(cmd("ZADD", "zset:%d" % i, *[x for f in range(5) for x in (str(f), "member%d" % (i + f))]))
    elif kind == "volatile":
        out.write(cmd("SET", "key:%d" % i, "value-%d" % i, "EX", "100000"))
    elif kind == "values-1k":
        out.write(cmd("SET", "page:%d" % i, b"x" * 1000))
    elif kind == "values-mixed":
        out.write(cmd("SET", "page:%d" % i, b"x" * (20 + (i * 7919) % 1981)))
EOF
}

rss() { awk '/VmRSS/ { print $2 * 1024 }' /proc/"$1"/status; }
used() { redis-cli -p "$1" info memory | awk -F: '/^used_memory:/ { print $2 }' | tr -d '\r'; }

measure() { # port pid kind count -> "used-bytes-per-key rss-bytes-per-key"
  local u0 r0 u1 r1
  u0=$(used "$1"); r0=$(rss "$2")
  commands "$3" "$4" | redis-cli -p "$1" --pipe >/dev/null
  u1=$(used "$1"); r1=$(rss "$2")
  echo "$(( (u1 - u0) / $4 )) $(( (r1 - r0) / $4 ))"
}

echo "# memory per key: redis-server $(redis-server --version | awk '{print $3}' | tr -d 'v='), berth $SHARDS shards, $(date -u +%Y-%m-%d)"
echo "| data set | keys | redis used/key | berth used/key | used ratio | redis RSS/key | berth RSS/key | RSS ratio |"
echo "|---|---|---|---|---|---|---|---|"
for kind in strings volatile hashes sets zsets values-1k values-mixed; do
  count=$COLLECTIONS; [ "$kind" = strings ] && count=$STRINGS
  rport=$(free_port)
  redis-server --port "$rport" --save "" --appendonly no --daemonize no --logfile /dev/null >/dev/null 2>&1 &
  rpid=$!; started $rpid; wait_port "$rport"
  bport=$(free_port)
  "$BERTH" --port "$bport" --shards "$SHARDS" --save "" --appendonly no --loglevel warning >/dev/null 2>&1 &
  bpid=$!; started $bpid; wait_port "$bport"
  read -r ru rr <<< "$(measure "$rport" "$rpid" "$kind" "$count")"
  read -r bu br <<< "$(measure "$bport" "$bpid" "$kind" "$count")"
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
  echo "| $kind | $count | $ru | $bu | $(ratio "$bu" "$ru") | $rr | $br | $(ratio "$br" "$rr") |"
  kill "$rpid" "$bpid"; wait "$rpid" "$bpid" 2>/dev/null || true
done
