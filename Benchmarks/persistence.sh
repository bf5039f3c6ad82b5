#!/usr/bin/env bash
# RDB snapshots side by side: berth-server (2 shards; BGSAVE without fork, a background
# thread walking the shards while writes preserve the keys they are about to change)
# against redis-server (BGSAVE by fork), both started by this script on free ports, each
# in a temporary directory of its own, measured in one run:
#   1. BGSAVE under a steady write load: how long the save takes, the latency of every
#      command one timing client issued before and during it (max, p50, p99, p99.9), the
#      server's command rate, and the extra memory while it runs (redis-server: the forked
#      child's too, as RSS, which counts pages shared with the parent twice, and as PSS,
#      which does not).
#   2. Start with a large RDB file until DBSIZE answers the full count: the file the last
#      BGSAVE of each server wrote, each loaded by both servers.
#   3. SAVE (foreground) duration and the file's size.
# Prints the medians over ROUNDS with the ratio berth/redis; the raw JSON lines and the
# tables go to OUT.
#
#   Benchmarks/persistence.sh [keys]         (default 2000000 strings)
#
# Environment: BERTH=path/to/berth-server (default: a fresh release build), SHARDS=2,
#   HASHES (default keys/100) hashes of FIELDS=16 fields each, ROUNDS=3, BEFORE=2 (seconds
#   of write load timed before each BGSAVE), LOAD_CLIENTS=4 (redis-benchmark SET clients
#   writing over the keyspace beside the timing client; 0 for none),
#   SERVER_CPUS / CLIENT_CPUS (taskset lists; default: core 0 for the server and the rest
#   for the clients on 2-3 cores, cores 0-1 and the rest on 4 or more; PIN=0 turns pinning
#   off), PLACEMENTS="pinned shared" (the BGSAVE rounds are run pinned as above, then with
#   nothing pinned), OUT=Benchmarks/results/persistence.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-2000000}
HASHES=${HASHES:-$((KEYS / 100))}
FIELDS=${FIELDS:-16}
SHARDS=${SHARDS:-2}
ROUNDS=${ROUNDS:-3}
BEFORE=${BEFORE:-2}
LOAD_CLIENTS=${LOAD_CLIENTS:-4}
OUT=${OUT:-Benchmarks/results/persistence.txt}
EXPECTED=$((KEYS + HASHES))
HELPER="python3 Benchmarks/persistence_bench.py"

command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
command -v redis-benchmark >/dev/null || ./scripts/setup
if [ -z "${BERTH:-}" ]; then
  swift build -c release --product berth-server >/dev/null
  BERTH=.build/release/berth-server
fi

# shellcheck source=Benchmarks/common.sh
. Benchmarks/common.sh
WORK=$(mktemp -d /tmp/berth-persistence.XXXXXX)
# Servers first (a dying redis-server also ends its saving child), then their files.
trap 'xargs -r kill < "$PIDFILE" 2>/dev/null || true; sleep 0.2; rm -f "$PIDFILE"; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

CPUS=$(nproc)
PIN=${PIN:-1}
# Placements for the BGSAVE rounds: "pinned" (servers on SERVER_CPUS, clients on
# CLIENT_CPUS) and "shared" (nothing pinned; the clients and the servers share every core).
# Servers start pinned; SAVE and the loads at start run with no client load.
# Commands are prefixed with these arrays (never a shell function: `$!` must be the server).
SERVER_PIN=(); CLIENT_PIN=()
if [ "$PIN" = 1 ] && [ "$CPUS" -ge 2 ]; then
  if [ "$CPUS" -ge 4 ]; then SERVER_CPUS=${SERVER_CPUS:-0-1}; CLIENT_CPUS=${CLIENT_CPUS:-2-$((CPUS - 1))}
  else SERVER_CPUS=${SERVER_CPUS:-0}; CLIENT_CPUS=${CLIENT_CPUS:-1-$((CPUS - 1))}; fi
  SERVER_PIN=(taskset -c "$SERVER_CPUS"); CLIENT_PIN=(taskset -c "$CLIENT_CPUS")
  PLACEMENTS=${PLACEMENTS:-"pinned shared"}
else
  PIN=0
  PLACEMENTS=shared
fi

declare -A PORT PID
start() { # name dir: starts that server on a free port with dir as its working directory
  local port; port=$(free_port)
  mkdir -p "$2"
  STARTED_NS=$(date +%s%N)
  case $1 in
    redis) "${SERVER_PIN[@]}" redis-server --port "$port" --dir "$2" --dbfilename dump.rdb --save "" --appendonly no \
             --daemonize no --logfile "$2/server.log" >/dev/null 2>&1 & ;;
    berth) "${SERVER_PIN[@]}" "$BERTH" --port "$port" --shards "$SHARDS" --dir "$2" --dbfilename dump.rdb --save "" \
             --appendonly no --logfile "$2/server.log" >/dev/null 2>&1 & ;;
  esac
  PID[$1]=$!; PORT[$1]=$port; started "${PID[$1]}"
}
stop() { # name
  redis-cli -p "${PORT[$1]}" shutdown nosave >/dev/null 2>&1 || kill "${PID[$1]}" 2>/dev/null || true
  wait "${PID[$1]}" 2>/dev/null || true
}
record() { # test server round json
  echo "$4" | python3 -c "
import json, sys
r = json.loads(sys.stdin.read()); r.update(test='$1', server='$2', round=$3); print(json.dumps(r))" >> "$WORK/raw.jsonl"
}
fail() { echo "persistence.sh: $*" >&2; for s in redis berth; do
  [ -f "$WORK/$s/server.log" ] && { echo "--- $s log tail:" >&2; tail -20 "$WORK/$s/server.log" >&2; }; done; exit 1; }
# Servers take turns, the first one alternating by round.
order() { if [ $(($1 % 2)) = 1 ]; then echo redis berth; else echo berth redis; fi; }

header() {
  echo "# persistence.sh: $KEYS strings + $HASHES hashes x $FIELDS fields, berth $SHARDS shards, $ROUNDS rounds, $CPUS CPUs, $(date -u +%Y-%m-%d)"
  echo "# $(redis-server --version | awk '{print $1, $3}' | sed 's/v=//'), berth $("$BERTH" --version | awk '{print $3}' | sed 's/v=//')"
  if [ "$PIN" = 1 ]; then echo "# pinned: servers (and redis-server's saving child) on cores $SERVER_CPUS, clients on cores $CLIENT_CPUS; shared: nothing pinned"
  else echo "# not pinned"; fi
  echo "# BGSAVE placements: $PLACEMENTS; SAVE and load at start: $([ "$PIN" = 1 ] && echo pinned || echo shared)"
  echo "# write load: one timing client (SET, 1 in 10 HSET, random keys)$([ "$LOAD_CLIENTS" -gt 0 ] && echo " + redis-benchmark -c $LOAD_CLIENTS -t set -r $KEYS -d 16"); $BEFORE s timed before each BGSAVE"
}
header

echo "filling both servers..." >&2
for s in redis berth; do
  start $s "$WORK/$s"
  wait_port "${PORT[$s]}" || fail "$s did not start"
  "${CLIENT_PIN[@]}" $HELPER fill "${PORT[$s]}" "$KEYS" "$HASHES" "$FIELDS" || fail "filling $s failed"
done

echo "SAVE..." >&2
for r in $(seq "$ROUNDS"); do
  for s in $(order "$r"); do
    j=$("${CLIENT_PIN[@]}" $HELPER save "${PORT[$s]}") || fail "SAVE on $s failed"
    size=$(stat -c %s "$WORK/$s/dump.rdb")
    record save $s "$r" "$(echo "$j" | sed "s/}$/, \"file_bytes\": $size}/")"
  done
done

# Each placement sets the servers' CPUs (every thread; a saving thread or child started
# later inherits them) and the clients' before its rounds.
for placement in $PLACEMENTS; do
  echo "BGSAVE under write load ($placement)..." >&2
  if [ "$placement" = pinned ]; then cpus=$SERVER_CPUS; clients=("${CLIENT_PIN[@]}")
  else cpus=0-$((CPUS - 1)); clients=(); fi
  for s in redis berth; do taskset -a -p -c "$cpus" "${PID[$s]}" >/dev/null; done
  for r in $(seq "$ROUNDS"); do
    for s in $(order "$r"); do
      bench_pid=
      if [ "$LOAD_CLIENTS" -gt 0 ]; then
        "${clients[@]}" redis-benchmark -p "${PORT[$s]}" -c "$LOAD_CLIENTS" -n 2000000000 -r "$KEYS" -t set -d 16 -q \
          >/dev/null 2>&1 &
        bench_pid=$!; started "$bench_pid"
        sleep 0.5
      fi
      j=$("${clients[@]}" $HELPER bgsave "${PORT[$s]}" "${PID[$s]}" "$KEYS" "$HASHES" "$BEFORE") \
        || fail "BGSAVE on $s failed"
      [ -n "$bench_pid" ] && { kill "$bench_pid" 2>/dev/null || true; wait "$bench_pid" 2>/dev/null || true; }
      record "bgsave-$placement" $s "$r" "$j"
      echo "$j" | grep -q '"rdb_last_bgsave_status": "ok"' || fail "BGSAVE on $s did not end ok: $j"
    done
  done
done
for s in redis berth; do cp "$WORK/$s/dump.rdb" "$WORK/from-$s.rdb"; stop $s; done

echo "load at start..." >&2
for r in $(seq "$ROUNDS"); do
  for f in redis berth; do
    for s in $(order "$r"); do
      dir="$WORK/load-$s"; rm -rf "$dir"; mkdir -p "$dir"; cp "$WORK/from-$f.rdb" "$dir/dump.rdb"
      start $s "$dir"
      t1=$("${CLIENT_PIN[@]}" $HELPER wait-loaded "${PORT[$s]}" "$EXPECTED" 600) \
        || fail "$s loading the file written by $f: no DBSIZE $EXPECTED (log: $dir/server.log)"
      stop $s
      record "load-$f" $s "$r" "{\"load_s\": $(awk -v a="$STARTED_NS" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')}"
    done
  done
done

summary=$($HELPER summary "$WORK/raw.jsonl")
echo "$summary"
mkdir -p "$(dirname "$OUT")"
{ header; echo "$summary"; echo; echo "# raw results, one JSON line per measurement"; cat "$WORK/raw.jsonl"; } > "$OUT"
