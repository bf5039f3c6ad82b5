#!/usr/bin/env bash
# What recording the effect stream costs: berth-server with `effect-log` (every write's
# effect appended under its locks, drained every 10 ms and written to a file) against the
# same binary without a consumer, in the same run, each test in turns, medians of ROUNDS.
# Prints requests/second and the ratio with/without per test.
#
#   Benchmarks/effects.sh [requests]        (default 500000 requests per test)
#
# Environment: BERTH=path/to/berth-server (default: a fresh release build), SHARDS=2,
#              PIPELINE=16, CLIENTS=50, ROUNDS=3, TESTS=set,incr,lpush,sadd,hset,get.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500000}
SHARDS=${SHARDS:-2}
PIPELINE=${PIPELINE:-16}
CLIENTS=${CLIENTS:-50}
ROUNDS=${ROUNDS:-3}
TESTS=${TESTS:-set,incr,lpush,sadd,hset,get}
if [ -z "${BERTH:-}" ]; then
  swift build -c release --product berth-server >/dev/null
  BERTH=.build/release/berth-server
fi
# shellcheck source=Benchmarks/common.sh
. Benchmarks/common.sh

LOGDIR=$(mktemp -d)
start_berth() { # extra args -> "port"
  local port; port=$(free_port)
  "$BERTH" --port "$port" --shards "$SHARDS" --loglevel warning "$@" >/dev/null 2>&1 &
  started $!
  wait_port "$port"
  echo "$port"
}
plain=$(start_berth)
logged=$(start_berth --effect-log "$LOGDIR/effects.aof")

rps() { # port test -> requests per second
  redis-benchmark -p "$1" -c "$CLIENTS" -n "$N" -r 100000 -P "$PIPELINE" -t "$2" -q 2>/dev/null \
    | awk -F'[: ]+' '/requests per second/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) { print $i; exit } }'
}

echo "# redis-benchmark -c $CLIENTS -n $N -r 100000 -P $PIPELINE, berth $SHARDS shards, $(nproc) CPUs, $(date +%F)"
echo
echo "| test | without consumer rps | with effect-log rps | ratio |"
echo "|---|---|---|---|"
for t in ${TESTS//,/ }; do
  a=""; b=""
  for _ in $(seq "$ROUNDS"); do
    a="$a $(rps "$plain" "$t")"
    b="$b $(rps "$logged" "$t")"
  done
  ma=$(echo "$a" | median); mb=$(echo "$b" | median)
  printf '| %s | %.0f | %.0f | %.2fx |\n' "${t^^}" "$ma" "$mb" "$(echo "$mb / $ma" | bc -l)"
done
echo
echo "effect-log written: $(du -h "$LOGDIR/effects.aof" | cut -f1)"
rm -rf "$LOGDIR"
