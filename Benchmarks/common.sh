# Helpers the benchmark scripts share: free ports, waiting for a server, cleaning up the
# servers a script started, medians. Sourced, not run.

REDIS_CLI=${REDIS_CLI:-redis-cli}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 40000))
}
# Up once PING answers PONG (a server loading its data set answers -LOADING).
wait_port() { for _ in $(seq 600); do [ "$("$REDIS_CLI" -p "$1" ping 2>/dev/null)" = PONG ] && return 0; sleep 0.05; done; return 1; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Every server started through `started` is killed when the script exits.
PIDFILE=$(mktemp)
trap 'xargs -r kill < "$PIDFILE" 2>/dev/null || true; rm -f "$PIDFILE"' EXIT
started() { echo "$1" >> "$PIDFILE"; }

# redis-server from Debian's package when it is missing, and BERTH defaulting to a fresh
# release build: what the side-by-side scripts need before they start anything.
need_servers() {
  command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
  if [ -z "${BERTH:-}" ]; then
    swift build -c release --product berth-server >/dev/null
    BERTH=.build/release/berth-server
  fi
}
