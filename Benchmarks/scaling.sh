#!/usr/bin/env bash
# Multi-shard scaling: berth-server with 1, 2, 4, ... shards, each run pinned to as many
# cores as it has shards (cores 0..N-1), redis-server pinned to core 0 as the one-thread
# reference, and one multi-threaded redis-benchmark pinned to the cores no server uses,
# so the client side is the same for every run. Prints requests/second per test and
# configuration, each berth run's speed-up over one shard, and its ratio to redis-server.
#
#   Benchmarks/scaling.sh [requests]          (default 2000000 requests per test)
#
# Environment: SHARDS="1 2 4 8" (default: powers of two up to half the CPUs),
#   TESTS=set,get,incr,lpush,sadd,hset, PIPELINE=16, CLIENTS=256, ROUNDS=3 (medians),
#   BENCH_THREADS (default: the cores left for the client, at most 16),
#   BERTH=path/to/berth-server (default: a fresh release build), REDIS_SERVER,
#   REDIS_BENCHMARK, REDIS_CLI (paths; default: from PATH).
#
# Runs on a machine without Swift (a fully static berth-server from deploy/install.sh
# --build-only, with redis-benchmark and redis-cli carried along) as long as BERTH is set.
# With fewer cores than shards + 1 the pinning is skipped and the table says so: the
# figures then measure time-sharing, not scaling.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000000}
CPUS=$(nproc)
if [ -z "${SHARDS:-}" ]; then
  SHARDS=1; s=2
  while [ $((s * 2)) -le "$CPUS" ]; do SHARDS+=" $s"; s=$((s * 2)); done
fi
TESTS=${TESTS:-set,get,incr,lpush,sadd,hset}
PIPELINE=${PIPELINE:-16}
CLIENTS=${CLIENTS:-256}
ROUNDS=${ROUNDS:-3}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-redis-benchmark}
# shellcheck source=Benchmarks/common.sh
. Benchmarks/common.sh
if [ -z "${BERTH:-}" ]; then
  swift build -c release --product berth-server >/dev/null
  BERTH=.build/release/berth-server
fi

MAX_SHARDS=$(echo "$SHARDS" | tr ' ' '\n' | sort -n | tail -1)
if [ "$CPUS" -gt "$MAX_SHARDS" ]; then
  PINNED=1
  CLIENT_CORES="$MAX_SHARDS-$((CPUS - 1))"
  FREE=$((CPUS - MAX_SHARDS))
  BENCH_THREADS=${BENCH_THREADS:-$((FREE < 16 ? FREE : 16))}
else
  PINNED=0
  BENCH_THREADS=${BENCH_THREADS:-1}
fi
pin() { # cores command... (runs unpinned when this machine is too small to pin)
  local cores=$1; shift
  if [ "$PINNED" = 1 ]; then taskset -c "$cores" "$@"; else "$@"; fi
}

start_redis() {
  local port; port=$(free_port)
  pin 0 "$REDIS_SERVER" --port "$port" --save "" --appendonly no --daemonize no --logfile /dev/null \
    >/dev/null 2>&1 &
  started $!; wait_port "$port"; echo "$port"
}
start_berth() { # shards
  local port; port=$(free_port)
  pin "0-$(($1 - 1))" "$BERTH" --port "$port" --shards "$1" --loglevel warning >/dev/null 2>&1 &
  started $!; wait_port "$port"; echo "$port"
}
bench() { # port test -> requests per second
  pin "${CLIENT_CORES:-0}" "$REDIS_BENCHMARK" -p "$1" -c "$CLIENTS" -n "$N" -P "$PIPELINE" -t "$2" \
    -r 1000000 --threads "$BENCH_THREADS" --csv 2>/dev/null | awk -F, 'NR==2 { gsub(/"/, ""); print $2 }'
}

echo "# redis-benchmark -c $CLIENTS -n $N -P $PIPELINE -r 1000000 --threads $BENCH_THREADS, $CPUS CPUs, $(date -u +%Y-%m-%d)"
if [ "$PINNED" = 1 ]; then
  echo "# berth with N shards on cores 0-(N-1), redis-server on core 0, redis-benchmark on cores $CLIENT_CORES"
else
  echo "# NOT PINNED: $CPUS CPUs cannot hold $MAX_SHARDS shard(s) and the client apart; this is not a scaling measurement"
fi
echo "# $("$REDIS_SERVER" --version | awk '{print $1, $3}'), berth $("$BERTH" --version | awk '{print $3}')"
echo
header="| test | redis rps |"; sep="|---|---|"
for s in $SHARDS; do header+=" berth ${s}sh rps | vs 1 shard | vs redis |"; sep+="---|---|---|"; done
echo "$header"; echo "$sep"

# One server at a time, so that each has its cores to itself.
declare -A RESULT=()
for test in ${TESTS//,/ }; do
  port=$(start_redis)
  runs=""; for _ in $(seq "$ROUNDS"); do runs+=" $(bench "$port" "$test")"; done
  RESULT[redis,$test]=$(echo "$runs" | median)
  "$REDIS_CLI" -p "$port" shutdown nosave >/dev/null 2>&1 || true
  for s in $SHARDS; do
    port=$(start_berth "$s")
    runs=""; for _ in $(seq "$ROUNDS"); do runs+=" $(bench "$port" "$test")"; done
    RESULT[$s,$test]=$(echo "$runs" | median)
    "$REDIS_CLI" -p "$port" shutdown nosave >/dev/null 2>&1 || true
  done
  redis=${RESULT[redis,$test]}
  one=${RESULT[${SHARDS%% *},$test]}
  row="| ${test^^} | ${redis%.*} |"
  for s in $SHARDS; do
    b=${RESULT[$s,$test]}
    row+=" ${b%.*} | $(awk -v a="$b" -v o="$one" 'BEGIN { printf "%.2fx", a / o }') |"
    row+=" $(awk -v a="$b" -v r="$redis" 'BEGIN { printf "%.2fx", a / r }') |"
  done
  echo "$row"
done
