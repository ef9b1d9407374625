#!/usr/bin/env bash
# The profile endpoint (MALLOC_PROF=http=ADDR), end to end against
# http_workload (a loop of allocations that counts its iterations) run under
# LD_PRELOAD=libassay.so. All traffic is on 127.0.0.1 or a unix socket; every
# program started here stops by itself (a stop file, else --max-seconds).
# Checks:
#   - go tool pprof -top of /debug/pprof/heap and /debug/pprof/allocs?seconds=2
#     (the workload's two sites, the default sample types, the 2 s wait)
#   - the index, headers (Content-Type, Content-Disposition), HEAD, gzip bytes
#   - refusals: 404 (other paths), 405 (other methods, with Allow), 400 (bad
#     seconds), 431 (a header over 8 KiB), 408 + close after 5 s (a slow
#     client), 503 / close for a 5th and 6th concurrent client while 4 idle
#     ones are held, and service afterwards
#   - a parked ?seconds=3 request does not hold up another request
#   - the workload runs on throughout (exits 0, no stall of a second or more)
#   - security: a non-loopback address needs http_remote=1; a unix socket is
#     mode 0600 and removed at exit; a file at the socket path is not replaced;
#     an address in use prints one line and profiling goes on
#   - a fork child leaves the endpoint to the parent; assay run --http
# Prints (does not assert) the median latency of 20 heap requests.
#
# Usage: bash http_endpoint.sh /path/to/libassay.so /path/to/http_workload /path/to/assay
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
[[ $# -ge 3 && -x "$2" && -x "$3" ]] || fail "usage: bash $0 libassay.so http_workload assay"
PROG="$(realpath "$2")"
CLI="$(realpath "$3")"
require go curl python3 timeout stat grep
export HOME="$WORK/home" PPROF_TMPDIR="$WORK/pprof-tmp" GOTOOLCHAIN=local GOFLAGS=
mkdir -p "$HOME" "$PPROF_TMPDIR"
export LC_ALL=C
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY='*' no_proxy='*'

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# pass, flunk, check and section: lib.sh.

# start NAME MALLOC_PROF [ARGS...]: starts the workload in the background
# (stdout NAME.out, stderr NAME.err, stop file NAME.stop); sets PID.
start() {
  local name="$1" prof="$2"
  shift 2
  rm -f "$WORK/$name.stop"
  MALLOC_PROF="$prof" LD_PRELOAD="$ASSAY_LIB" "$PROG" --stop-file "$WORK/$name.stop" \
    --max-seconds 150 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null &
  PID=$!
  PIDS+=("$PID")
}
# stop NAME PID: asks the workload to stop and waits; sets RC.
stop() {
  touch "$WORK/$1.stop"
  RC=0
  wait "$2" || RC=$?
}
# up URL [CURL ARGS]: true once URL answers 200 (5 s at most).
up() {
  local i
  for i in $(seq 50); do
    if [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@")" == 200 ]]; then return 0; fi
    sleep 0.1
  done
  return 1
}

# ---- The main server: a random high port, another one while "in use". ----
section "starting the workload with http=127.0.0.1:PORT"
PORT=""
for attempt in $(seq 20); do
  p=$((20000 + RANDOM % 40000))
  start main "rate=64k,final=0,http=127.0.0.1:$p"
  MAIN=$PID
  for i in $(seq 30); do
    if grep -q "address in use" "$WORK/main.err"; then break; fi
    if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$p/debug/pprof/"; then
      PORT=$p
      break
    fi
    sleep 0.1
  done
  [[ -n "$PORT" ]] && break
  stop main "$MAIN"
done
[[ -n "$PORT" ]] || fail "no port found for the endpoint after 20 tries: $(cat "$WORK/main.err")"
URL="http://127.0.0.1:$PORT"
echo "  port $PORT"

section "go tool pprof over HTTP"
if timeout 60 go tool pprof -top -symbolize=none "$URL/debug/pprof/heap" >"$WORK/top.txt" 2>&1 &&
  grep -q "Type: inuse_space" "$WORK/top.txt" && grep -q "http_workload_big_site" "$WORK/top.txt"; then
  pass "go tool pprof -top $URL/debug/pprof/heap (inuse_space, the workload's site)"
else
  flunk "go tool pprof -top /debug/pprof/heap: $(head -n 20 "$WORK/top.txt")"
fi
t0=$(date +%s.%N)
if timeout 60 go tool pprof -top -symbolize=none "$URL/debug/pprof/allocs?seconds=2" \
  >"$WORK/top2.txt" 2>&1 && grep -q "Type: alloc_space" "$WORK/top2.txt" &&
  grep -q "http_workload_small_site" "$WORK/top2.txt"; then
  pass "go tool pprof -top /debug/pprof/allocs?seconds=2 (alloc_space, the workload's sites)"
else
  flunk "go tool pprof -top /debug/pprof/allocs?seconds=2: $(head -n 20 "$WORK/top2.txt")"
fi
t1=$(date +%s.%N)
check "the seconds=2 profile took 2 s or more ($(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s)" \
  awk -v a="$t0" -v b="$t1" 'BEGIN{exit !(b - a >= 2.0)}'

section "answers"
code() { curl -s -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' --max-time 10 "$@"; }
check "index: 200 listing heap and allocs" \
  bash -c "[[ \$(curl -s -o '$WORK/idx' -w '%{http_code}' '$URL/debug/pprof/') == 200 ]] &&
           grep -q '/debug/pprof/heap' '$WORK/idx' && grep -q '/debug/pprof/allocs' '$WORK/idx'"
c=$(code "$URL/debug/pprof/heap?gc=1&debug=0")
check "heap: 200 (gc and debug ignored)" test "$c" = 200
check "heap: Content-Type application/octet-stream" grep -qi '^Content-Type: application/octet-stream' "$WORK/headers"
check "heap: Content-Disposition attachment; filename=\"heap\"" \
  grep -qi '^Content-Disposition: attachment; filename="heap"' "$WORK/headers"
check "heap: gzip bytes" bash -c "[[ \$(head -c 2 '$WORK/body' | od -An -tx1 | tr -d ' ') == 1f8b ]]"
c=$(code "$URL/debug/pprof/allocs")
check "allocs: filename=\"allocs\"" grep -qi 'filename="allocs"' "$WORK/headers"
c=$(code -I "$URL/debug/pprof/heap")  # curl -I writes the head to both files
check "HEAD heap: 200, a Content-Length, no body" \
  bash -c "[[ $c == 200 ]] && cmp -s '$WORK/body' '$WORK/headers' &&
           grep -qi '^Content-Length: [1-9]' '$WORK/headers'"
c=$(code "$URL/nope")
check "another path: 404 ($c)" test "$c" = 404
c=$(code "$URL/debug/pprof/profile")
check "/debug/pprof/profile (not served): 404 ($c)" test "$c" = 404
c=$(code -X POST -d x=1 "$URL/debug/pprof/heap")
check "POST: 405 ($c) with Allow: GET, HEAD" \
  bash -c "[[ $c == 405 ]] && grep -qi '^Allow: GET, HEAD' '$WORK/headers'"
c=$(code -X DELETE "$URL/nope")
check "DELETE of another path: 405 ($c)" test "$c" = 405
c=$(code "$URL/debug/pprof/heap?seconds=abc")
check "seconds=abc: 400 ($c)" test "$c" = 400
c=$(code "$URL/debug/pprof/heap?seconds=601")
check "seconds=601: 400 ($c)" test "$c" = 400
big=$(head -c 9000 /dev/zero | tr '\0' a)
c=$(code -H "X-Big: $big" "$URL/debug/pprof/heap")
check "a 9000-byte header: 431 ($c)" test "$c" = 431

section "slow, surplus and parked clients"
cat >"$WORK/clients.py" <<'PY'
import socket, sys, time
port = int(sys.argv[2])
def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s
def read_all(s, limit):
    s.settimeout(limit)
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return data, True
            data += b
    except socket.timeout:
        return data, False
    except ConnectionResetError:
        return data, True
if sys.argv[1] == "slow":
    s = conn()
    t0 = time.time()
    s.sendall(b"GET /debug/pprof/heap HTTP/1.1\r\nHost: x\r\n")  # never the blank line
    data, closed = read_all(s, 10)
    dt = time.time() - t0
    print("closed=%s after=%.2f first=%r" % (closed, dt, data[:12]))
    sys.exit(0 if closed and 4.5 <= dt <= 7.5 and data.startswith(b"HTTP/1.1 408") else 1)
if sys.argv[1] == "surplus":
    held = [conn() for _ in range(4)]
    time.sleep(0.3)  # the endpoint has accepted the four
    refused = []
    for _ in range(2):
        s = conn()
        data, closed = read_all(s, 3)
        refused.append((closed, data[:12]))
    # The four held connections are still open (nothing sent to them yet).
    held_open = True
    for s in held:
        s.setblocking(False)
        try:
            s.recv(1)
            held_open = False  # data or end of file: not idle and open
        except BlockingIOError:
            pass
        except OSError:
            held_open = False
    print("refused=%r held_open=%s" % (refused, held_open))
    ok = held_open and all(c and (d == b"" or d.startswith(b"HTTP/1.1 503")) for c, d in refused)
    for s in held:
        s.close()
    sys.exit(0 if ok else 1)
PY
check "a client that never ends its request: 408 and closed after 5 s" \
  timeout 20 python3 "$WORK/clients.py" slow "$PORT"
check "4 idle clients held: the 5th and 6th refused (503 or closed), the 4 kept" \
  timeout 20 python3 "$WORK/clients.py" surplus "$PORT"
check "served again once they left" up "$URL/debug/pprof/heap"
curl -s -o "$WORK/parked.gz" --max-time 20 "$URL/debug/pprof/heap?seconds=3" &
PARKED=$!
sleep 0.3
t0=$(date +%s.%N)
c=$(code "$URL/debug/pprof/heap")
t1=$(date +%s.%N)
dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
check "a heap request while a seconds=3 one is parked: 200 in under 2 s ($dt s)" \
  awk -v c="$c" -v d="$dt" 'BEGIN{exit !(c == 200 && d < 2.0)}'
wait "$PARKED" || true
check "the parked request got its delta profile" \
  bash -c "[[ \$(head -c 2 '$WORK/parked.gz' | od -An -tx1 | tr -d ' ') == 1f8b ]]"
go tool pprof -raw -symbolize=none "$WORK/parked.gz" >"$WORK/parked.raw" 2>&1 || true
# The duration is the time between the two snapshots: 3 s and a little
# more, a second or two more on a loaded machine (the answer waits for the
# poll loop to come round).
check "the delta profile reads back, with its duration of 3 s (up to 6 under load)" \
  grep -Eq "^Duration: [3-5]\.[0-9]" "$WORK/parked.raw"

section "latency (not asserted)"
lat=()
for i in $(seq 20); do
  lat+=("$(curl -s -o /dev/null -w '%{time_total}' --max-time 10 "$URL/debug/pprof/heap")")
done
median=$(printf '%s\n' "${lat[@]}" | sort -g | awk '{a[NR]=$1} END{printf "%.1f", (a[10]+a[11])/2*1000}')
echo "  heap profile over HTTP under the running workload: median of 20 = $median ms"

section "the workload ran on"
stop main "$MAIN"
check "the workload exited 0 ($RC)" test "$RC" = 0
read -r _ iters _ secs _ gap _ <"$WORK/main.out" || true
echo "  $(cat "$WORK/main.out")"
check "it made progress (${iters:-?} iterations in ${secs:-?} s)" test "${iters:-0}" -gt 1000
check "no stall of a second or more (longest gap ${gap:-?} ms)" \
  awk -v g="${gap:-99999}" 'BEGIN{exit !(g < 1000)}'
check "stderr empty" test ! -s "$WORK/main.err"

section "security and failures"
# PORT is free again (main exited): a listener of our own takes it.
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $PORT)); s.listen(1)
open('$WORK/held', 'w').close()
time.sleep(8)" &
HOLDER=$!
PIDS+=("$HOLDER")
for i in $(seq 50); do [[ -e "$WORK/held" ]] && break; sleep 0.1; done
start inuse "rate=64k,final=0,http=127.0.0.1:$PORT" --max-seconds 1
wait "$PID"
RC=$?
check "address in use: exit 0" test "$RC" = 0
check "address in use: one line, profiling goes on" \
  bash -c "[[ \$(wc -l <'$WORK/inuse.err') == 1 ]] &&
           grep -qx 'assay: MALLOC_PROF http=127.0.0.1:$PORT: address in use; profiling goes on without the endpoint' '$WORK/inuse.err'"
kill "$HOLDER" 2>/dev/null || true

start remote "rate=64k,final=0,http=0.0.0.0:$PORT" --max-seconds 1
wait "$PID" || true
check "0.0.0.0 without http_remote=1: refused with one line" \
  grep -q "http=0.0.0.0:$PORT: not a loopback address (add http_remote=1" "$WORK/remote.err"
start remote2 "rate=64k,final=0,http=0.0.0.0:$PORT,http_remote=1"
R2=$PID
check "0.0.0.0 with http_remote=1: served (asked on 127.0.0.1)" up "$URL/debug/pprof/"
stop remote2 "$R2"

SOCK="$WORK/prof.sock"
start unix "rate=64k,final=0,http=unix:$SOCK" --fork
U=$PID
check "unix socket: served" up --unix-socket "$SOCK" "http://x/debug/pprof/heap"
check "unix socket: mode 0600 ($(stat -c %a "$SOCK" 2>/dev/null))" \
  bash -c "[[ \$(stat -c %a '$SOCK') == 600 && -S '$SOCK' ]]"
stop unix "$U"
check "unix socket: exit 0 after a fork child came and went" test "$RC" = 0
check "unix socket: removed at exit" test ! -e "$SOCK"
(umask 000 && start umask0 "rate=64k,final=0,http=unix:$SOCK" --max-seconds 3 && sleep 1 &&
  stat -c %a "$SOCK" >"$WORK/umask0.mode"; wait)
check "unix socket under umask 000: still 0600 ($(cat "$WORK/umask0.mode" 2>/dev/null))" \
  grep -qx 600 "$WORK/umask0.mode"
echo "not a socket" >"$SOCK"
start file "rate=64k,final=0,http=unix:$SOCK" --max-seconds 1
wait "$PID" || true
check "a file at the socket path: refused with one line, left as it was" \
  bash -c "grep -q 'the path exists and is not a socket' '$WORK/file.err' &&
           [[ \$(cat '$SOCK') == 'not a socket' ]]"
rm -f "$SOCK"

section "assay run --http"
start_cli() {
  "$CLI" run --prefix "$WORK/cli/p" --http "unix:$SOCK" -- "$PROG" --stop-file "$WORK/cli.stop" \
    --max-seconds 150 >"$WORK/cli.out" 2>"$WORK/cli.err" </dev/null &
  PID=$!
  PIDS+=("$PID")
}
start_cli
C=$PID
check "assay run --http unix:PATH: served" up --unix-socket "$SOCK" "http://x/debug/pprof/allocs"
stop cli "$C"
check "assay run --http: exit 0" test "$RC" = 0

echo
if [[ $n_fail -gt 0 ]]; then
  echo "FAIL [$it_name]: $n_fail of $((n_pass + n_fail)) checks failed:"
  printf '  - %s\n' "${failures[@]}"
  exit 1
fi
echo "PASS [$it_name]: $n_pass checks"
