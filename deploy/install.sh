#!/usr/bin/env bash
# Builds a fully static berth-server (Swift runtime and liburing included; the binary
# needs no Swift toolchain and no shared library at all) and installs it as a systemd
# service.
#
#   deploy/install.sh               build, install binary/config/unit, create the user,
#                                   enable and start the service (as root)
#   deploy/install.sh --build-only  just build; prints the binary's path
#   deploy/install.sh --uninstall   stop and remove the service, binary and user
#                                   (the config in /etc/berth is kept unless --purge)
#
# Environment: PREFIX=/usr/local, CONFDIR=/etc/berth, UNITDIR=/etc/systemd/system,
#              BUILD_DIR=.build-static, BINARY=path (install this binary, do not build),
#              STATIC_GLIBC=0 to link glibc dynamically (the binary then depends on the C
#              library only): needed to load modules and JavaScript libraries, since a
#              fully static executable cannot host a shared C library safely. It also
#              builds libBerthJS.so (SpiderMonkey from libmozjs-102-dev) and installs it in
#              $PREFIX/lib/berth; the unit's MemoryDenyWriteExecute must then be turned off
#              (a drop-in) for SpiderMonkey's JIT.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr/local}
CONFDIR=${CONFDIR:-/etc/berth}
UNITDIR=${UNITDIR:-/etc/systemd/system}
BUILD_DIR=${BUILD_DIR:-.build-static}
MODE=${1:-install}
have_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

build() {
  local need=()
  for pkg in liburing-dev libjemalloc-dev liblua5.1-0-dev lua-cjson-dev lua-bitop-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  # --static-swift-stdlib links the Swift runtime and Foundation in; -static-executable
  # links glibc statically too. Berth never resolves host names, so glibc's NSS (which
  # a static binary cannot load) is not needed. BERTH_STATIC_EXECUTABLE makes MODULE
  # LOAD refuse clearly instead of running a module against a second C library.
  # A static executable cannot replace malloc by defining it, so the linker's --wrap
  # routes every call of the malloc family through the counting in CAllocator
  # (used_memory and maxmemory depend on it).
  local wrap=()
  for fn in malloc free calloc realloc reallocarray memalign aligned_alloc posix_memalign valloc pvalloc malloc_usable_size; do
    wrap+=(-Xlinker "--wrap=$fn")
  done
  local static=(-Xswiftc -static-executable -Xswiftc -DBERTH_STATIC_EXECUTABLE -Xcc -DBERTH_WRAP_MALLOC "${wrap[@]}")
  [ "${STATIC_GLIBC:-1}" = 0 ] && static=()
  swift build -c release --product berth-server --scratch-path "$BUILD_DIR" \
    --static-swift-stdlib "${static[@]}" >&2
  if [ "${STATIC_GLIBC:-1}" = 0 ]; then
    dpkg -s libmozjs-102-dev >/dev/null 2>&1 || apt-get install -y -qq libmozjs-102-dev >/dev/null
    swift build -c release --product BerthJS --scratch-path "$BUILD_DIR" >&2
  fi
  local bin="$BUILD_DIR/release/berth-server"
  strip "$bin" 2>/dev/null || true
  echo "$bin"
}

case "$MODE" in
  --build-only)
    build
    ;;
  --uninstall|--purge)
    if have_systemd; then
      systemctl disable --now berth.service 2>/dev/null || true
    fi
    rm -f "$UNITDIR/berth.service" "$PREFIX/bin/berth-server"
    rm -rf "$PREFIX/lib/berth"
    rm -rf "$PREFIX/share/doc/berth"
    have_systemd && systemctl daemon-reload || true
    if id berth >/dev/null 2>&1; then userdel berth 2>/dev/null || true; fi
    if [ "${2:-}" = "--purge" ] || [ "$MODE" = "--purge" ]; then rm -rf "$CONFDIR" /var/lib/berth /var/log/berth; fi
    echo "berth uninstalled"
    ;;
  install)
    [ "$(id -u)" -eq 0 ] || { echo "install needs root (sudo $0)" >&2; exit 1; }
    bin=${BINARY:-$(build)}
    install -D -m 0755 "$bin" "$PREFIX/bin/berth-server"
    js="$(dirname "$bin")/libBerthJS.so"
    [ -f "$js" ] && install -D -m 0755 "$js" "$PREFIX/lib/berth/libBerthJS.so"
    install -D -m 0644 README.md "$PREFIX/share/doc/berth/README.md"
    if [ ! -f "$CONFDIR/berth.conf" ]; then
      install -D -m 0640 deploy/berth.conf "$CONFDIR/berth.conf"
    else
      echo "keeping existing $CONFDIR/berth.conf (new default: deploy/berth.conf)"
    fi
    "$PREFIX/bin/berth-server" --check-config "$CONFDIR/berth.conf"
    if ! id berth >/dev/null 2>&1; then
      useradd --system --home-dir /var/lib/berth --no-create-home --shell /usr/sbin/nologin berth
    fi
    chown root:berth "$CONFDIR/berth.conf"
    sed "s|/usr/local/bin/berth-server|$PREFIX/bin/berth-server|; s|/etc/berth/berth.conf|$CONFDIR/berth.conf|" \
      deploy/berth.service > "$UNITDIR/berth.service"
    if have_systemd; then
      systemctl daemon-reload
      systemctl enable --now berth.service
      systemctl --no-pager status berth.service | head -5
    else
      echo "installed; this machine does not run systemd, so start it with:"
      echo "  $PREFIX/bin/berth-server $CONFDIR/berth.conf"
    fi
    ;;
  *)
    echo "usage: $0 [--build-only | --uninstall | --purge]" >&2
    exit 2
    ;;
esac
