#!/usr/bin/env bash
# A single-node OpenStack Swift with the s3api middleware on 127.0.0.1, for the S3 tests.
#
#   swift.sh start [DIR]   set up and start (or find running) Swift in DIR; prints its S3 settings
#   swift.sh stop  [DIR]   stop it and remove DIR
#   swift.sh status [DIR]  exit 0 and print the settings when it is running and healthy
#   swift.sh install       apt-get install the Debian packages (as root; a no-op when present)
#
# DIR defaults to $TRIBUTARY_SWIFT_DIR or ${TMPDIR:-/tmp}/tributary-swift-<uid>. Everything lives there:
# configs (swift_dir), rings, one device directory, logs, pid files; the servers run as the calling user.
# The one system path read is /etc/swift/swift.conf (hash prefix/suffix and storage policies), which
# the swift package installs: Swift 2.30 reads it from there whatever swift_dir says.
#
# `start` prints KEY=VALUE lines: SWIFT_S3_ENDPOINT, SWIFT_S3_ACCESS_KEY_ID, SWIFT_S3_SECRET_ACCESS_KEY,
# SWIFT_S3_REGION, SWIFT_DIR. Exit 3 means Swift is not installed (the message says what to install).
# With --parent-pid PID, the servers are stopped (and DIR removed) once process PID has exited.
set -euo pipefail

SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
PACKAGES=(swift-proxy swift-object swift-container swift-account memcached)
PY=/usr/bin/python3 # Debian's Swift is a library of the system Python, not of a pyenv one on PATH
ACCESS_KEY_ID='tributary:tester' # tempauth: account "tributary", user "tester"
SECRET='tributary-secret'
REGION='us-east-1' # s3api's default location; SigV4 requests must be signed for it
SERVERS=(account container object proxy)

usage() { echo "usage: $0 start|stop|status [DIR] [--parent-pid PID] | install" >&2; exit 2; }

cmd=${1:-}; [ -n "$cmd" ] || usage; shift
dir=${TRIBUTARY_SWIFT_DIR:-${TMPDIR:-/tmp}/tributary-swift-$(id -u)}
parent=''
while [ $# -gt 0 ]; do
  case $1 in
    --parent-pid) parent=${2:?--parent-pid needs a PID}; shift 2 ;;
    -*) usage ;;
    *) dir=$1; shift ;;
  esac
done
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac

missing() {
  local m=()
  for b in swift-proxy-server swift-object-server swift-container-server swift-account-server memcached; do
    command -v "$b" >/dev/null 2>&1 || m+=("$b")
  done
  [ -x "$PY" ] || m+=("$PY")
  [ -r /etc/swift/swift.conf ] || m+=(/etc/swift/swift.conf)
  echo "${m[*]}"
}

install() {
  if [ -z "$(missing)" ]; then echo "swift: already installed"; return 0; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q -o Acquire::Retries=3
  apt-get install -y -q --no-install-recommends -o Acquire::Retries=3 "${PACKAGES[@]}"
  # The packages' own units/init scripts are not used: the tests run private instances.
}

settings() {
  # shellcheck disable=SC1091
  . "$dir/ports.env"
  echo "SWIFT_S3_ENDPOINT=http://127.0.0.1:$PROXY_PORT"
  echo "SWIFT_S3_ACCESS_KEY_ID=$ACCESS_KEY_ID"
  echo "SWIFT_S3_SECRET_ACCESS_KEY=$SECRET"
  echo "SWIFT_S3_REGION=$REGION"
  echo "SWIFT_DIR=$dir"
}

healthy() {
  [ -f "$dir/ports.env" ] || return 1
  # shellcheck disable=SC1091
  . "$dir/ports.env"
  local name pid
  for name in memcached "${SERVERS[@]}"; do
    pid=$(cat "$dir/run/$name.pid" 2>/dev/null) || return 1
    kill -0 "$pid" 2>/dev/null || return 1
  done
  "$PY" - "$ACCOUNT_PORT" "$CONTAINER_PORT" "$OBJECT_PORT" "$PROXY_PORT" <<'EOF'
import sys, urllib.request
for port in sys.argv[1:]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=2) as r:
            if r.status != 200:
                sys.exit(1)
    except Exception:
        sys.exit(1)
EOF
}

stop_servers() {
  local name pid
  for name in proxy object container account memcached watchdog; do
    pid=$(cat "$dir/run/$name.pid" 2>/dev/null) || continue
    [ "$pid" = "$$" ] && continue # the watchdog running this stop
    # Each server was started by setsid as the leader of its own process group (workers included).
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for _ in $(seq 50); do
    local alive=0
    for name in proxy object container account memcached; do
      pid=$(cat "$dir/run/$name.pid" 2>/dev/null) || continue
      kill -0 -- "-$pid" 2>/dev/null && alive=1
    done
    [ $alive = 0 ] && return 0
    sleep 0.1
  done
  for name in proxy object container account memcached; do
    pid=$(cat "$dir/run/$name.pid" 2>/dev/null) || continue
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
}

write_configs() {
  # shellcheck disable=SC1091
  . "$dir/ports.env"
  local user common
  user=$(id -un)
  mkdir -p "$dir/etc" "$dir/srv/d1" "$dir/run" "$dir/log"
  common="bind_ip = 127.0.0.1
workers = 1
user = $user
swift_dir = $dir/etc
devices = $dir/srv
mount_check = false
disable_fallocate = true
log_level = WARNING"
  local name port
  for name in account container object; do
    case $name in account) port=$ACCOUNT_PORT ;; container) port=$CONTAINER_PORT ;; object) port=$OBJECT_PORT ;; esac
    cat >"$dir/etc/$name-server.conf" <<EOF
[DEFAULT]
bind_port = $port
$common
log_name = $name-server

[pipeline:main]
pipeline = healthcheck $name-server

[app:$name-server]
use = egg:swift#$name

[filter:healthcheck]
use = egg:swift#healthcheck
EOF
  done
  # s3api sits before the auth middleware (tempauth), and needs slo for multipart uploads and copy
  # for CopyObject; bulk is what DeleteObjects is built on in Swift.
  cat >"$dir/etc/proxy-server.conf" <<EOF
[DEFAULT]
bind_port = $PROXY_PORT
$common
log_name = proxy-server

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = $REGION
# DeleteObjects deletes key by key, 2 at a time by default: a 1,000-key batch would take half a minute.
multi_delete_concurrency = 16
# Listing pages of at most 100 keys instead of S3's 1,000 (S3 may always answer less than MaxKeys), so
# the paging tests need a few hundred objects rather than a thousand.
max_bucket_listing = 100

[filter:tempauth]
use = egg:swift#tempauth
user_${ACCESS_KEY_ID%%:*}_${ACCESS_KEY_ID#*:} = $SECRET .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MEMCACHED_PORT

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
EOF
}

build_rings() {
  # One device, one replica, 2^6 partitions; the library directly (one Python start instead of
  # nine swift-ring-builder runs).
  # shellcheck disable=SC1091
  . "$dir/ports.env"
  "$PY" - "$dir/etc" "$ACCOUNT_PORT" "$CONTAINER_PORT" "$OBJECT_PORT" <<'EOF'
import sys
from swift.common.ring import RingBuilder
etc, ports = sys.argv[1], dict(zip(("account", "container", "object"), map(int, sys.argv[2:])))
for name, port in ports.items():
    b = RingBuilder(6, 1, 1)
    b.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": port, "device": "d1", "weight": 100, "meta": ""})
    b.rebalance()
    b.save(f"{etc}/{name}.builder")
    b.get_ring().save(f"{etc}/{name}.ring.gz")
EOF
}

free_ports() {
  "$PY" - <<'EOF'
import socket
socks = []
for _ in range(5):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
names = ("ACCOUNT_PORT", "CONTAINER_PORT", "OBJECT_PORT", "PROXY_PORT", "MEMCACHED_PORT")
for n, s in zip(names, socks):
    print(f"{n}={s.getsockname()[1]}")
EOF
}

spawn() { # name command...
  local name=$1; shift
  setsid "$@" </dev/null >>"$dir/log/$name.log" 2>&1 9>&- &
  echo $! >"$dir/run/$name.pid"
}

check_installed() {
  local m
  m=$(missing)
  if [ -n "$m" ]; then
    echo "OpenStack Swift is not installed (missing: $m; install: apt-get install --no-install-recommends ${PACKAGES[*]})" >&2
    exit 3
  fi
}

start_once() {
  stop_servers
  rm -rf "$dir"
  mkdir -p "$dir"
  free_ports >"$dir/ports.env"
  write_configs
  build_rings
  # shellcheck disable=SC1091
  . "$dir/ports.env"
  local memuser=()
  if [ "$(id -u)" = 0 ]; then memuser=(-u root); fi # memcached refuses root without an explicit -u
  spawn memcached memcached -l 127.0.0.1 -p "$MEMCACHED_PORT" -U 0 -m 64 "${memuser[@]}"
  local name
  for name in "${SERVERS[@]}"; do spawn "$name" "swift-$name-server" "$dir/etc/$name-server.conf"; done
  local deadline=$((SECONDS + ${TRIBUTARY_SWIFT_START_TIMEOUT:-90}))
  until healthy; do
    for name in memcached "${SERVERS[@]}"; do
      if ! kill -0 "$(cat "$dir/run/$name.pid")" 2>/dev/null; then
        echo "swift: $name exited during start; its log ($dir/log/$name.log):" >&2
        tail -n 30 "$dir/log/$name.log" >&2 || true
        stop_servers
        return 1
      fi
    done
    if [ $SECONDS -ge $deadline ]; then
      echo "swift: not healthy after ${TRIBUTARY_SWIFT_START_TIMEOUT:-90} s; logs in $dir/log" >&2
      tail -n 5 "$dir"/log/*.log >&2 || true
      stop_servers
      return 1
    fi
    sleep 0.2
  done
}

start() {
  if healthy; then settings; return 0; fi
  # Another process may take a port between free_ports and the servers' bind: try again on new ports.
  local attempt
  for attempt in 1 2 3; do
    if start_once; then break; fi
    if [ $attempt = 3 ]; then rm -rf "$dir"; exit 1; fi
    echo "swift: start attempt $attempt failed; retrying" >&2
  done
  if [ -n "$parent" ]; then
    # Stops everything once the process that asked for this instance is gone, however it ended.
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec bash "$2" stop "$3"' _ "$parent" "$SELF" "$dir" \
      </dev/null >>"$dir/log/watchdog.log" 2>&1 9>&- &
    echo $! >"$dir/run/watchdog.pid"
  fi
  settings
}

case $cmd in
  install) install ;;
  start) check_installed; exec 9>"$dir.lock"; flock 9; start ;;
  status) healthy && settings ;;
  stop)
    exec 9>"$dir.lock"; flock 9
    stop_servers
    rm -rf "$dir"
    rm -f "$dir.lock"
    ;;
  *) usage ;;
esac
