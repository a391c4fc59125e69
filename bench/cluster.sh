#!/usr/bin/env bash
# feedwire cluster measurements (issue 11's acceptance), release builds, all on
# loopback. Prints one Markdown report and writes it to
# bench/results/cluster-<YYYY-MM-DD>.md.
#
#   bench/cluster.sh
#   FEEDWIRE_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:55432/postgres bench/cluster.sh
#
# 1. Event-to-publish on SQLite vs PostgreSQL: one daemon over a CORPUS-article
#    archive (default 1 000); examples/latency drops DROPS articles (default
#    100) one at a time (written whole outside the folder, then renamed in)
#    and times each from the rename until its title is in feeds/rss.xml on
#    disk. The same daemon config but for `[catalog] url`.
# 2. Delivery drain rate with one vs two instances: DELIVERIES articles
#    (default 2 000), one partner on a loopback receiver that answers each
#    POST after RECEIVER_MS (default 20 ms, a remote partner's round trip).
#    The deliveries are queued first (one instance ingests the articles while
#    the receiver is not listening, then stops), then the receiver starts and
#    1 or 2 instances drain the queue; rate = deliveries / (last arrival -
#    first arrival), each idempotency key counted once.
# 3. Failover: two instances with the default [cluster] (lease 10 s, renew
#    3 s); KILLS times (default 5) the leader is killed with -9 and an article
#    dropped at once; measured until the other instance logs that it leads,
#    and until that article is in the survivor's /feeds/rss.xml over HTTP.
#    The killed instance is restarted as a standby before the next kill,
#    which comes 1-7 s (random) after the previous takeover, so the kills
#    fall anywhere in the 3 s renewal cycle.
#
# PostgreSQL: FEEDWIRE_BENCH_DATABASE_URL (an administrator's URL; default the
# shared test cluster); each scenario gets a fresh database, dropped at exit.
# KEEP_WORK=1 keeps /tmp/feedwire-cluster-bench.* (configs and daemon logs).
set -euo pipefail

for arg in "$@"; do
    case "$arg" in
        -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PG_ADMIN=${FEEDWIRE_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:55432/postgres}
CORPUS=${CORPUS:-1000}
DROPS=${DROPS:-100}
DELIVERIES=${DELIVERIES:-2000}
RECEIVER_MS=${RECEIVER_MS:-20}
KILLS=${KILLS:-5}
DEBOUNCE_MS=${DEBOUNCE_MS:-50}
PORT_A=${PORT_A:-18191}
PORT_B=${PORT_B:-18192}
RECV_PORT=${RECV_PORT:-18193}

log() { echo "[$(date +%T)] $*" >&2; }

(cd "$ROOT" && cargo build --release --quiet --bin feedwire --example gen_corpus --example latency --example startup)
BIN=$CARGO_TARGET_DIR/release/feedwire
EX=$CARGO_TARGET_DIR/release/examples

WORK=$(mktemp -d /tmp/feedwire-cluster-bench.XXXXXX)
PIDS=()
DBS=()
cleanup() {
    # Instances started in a command substitution are known by their pid files.
    for f in "$WORK"/*/daemon.pid; do
        [[ -f $f ]] && PIDS+=("$(cat "$f")")
    done
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    # Databases made in a command substitution are listed in a file.
    [[ -f "$WORK/databases" ]] && mapfile -t DBS <"$WORK/databases"
    for db in "${DBS[@]}"; do psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
    [[ "${KEEP_WORK:-0}" == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT

# A fresh database; prints its URL.
newdb() {
    local name="fwbench_$$_$1"
    psql -q "$PG_ADMIN" -c "CREATE DATABASE $name" >/dev/null
    echo "$name" >>"$WORK/databases"
    echo "${PG_ADMIN%/*}/$name"
}

# config DIR PORT ARTICLES [EXTRA]: an instance's config.toml.
config() {
    local dir=$1 port=$2 articles=$3 extra=${4:-}
    mkdir -p "$dir"
    cat >"$dir/config.toml" <<EOF
[site]
title = "feedwire cluster bench"
base_url = "http://127.0.0.1:$port"
[paths]
articles = "$articles"
feeds = "$dir/feeds"
state = "$dir/state"
[watch]
debounce_ms = $DEBOUNCE_MS
rescan_secs = 0
[server]
listen = "127.0.0.1:$port"
[log]
level = "info"
$extra
EOF
}

# start DIR PORT LOG: start an instance and wait until /healthz is 200;
# prints its pid (also in DIR/daemon.pid, which the cleanup reads).
start() {
    local dir=$1 port=$2 logf=$3 out
    if curl -s --max-time 1 "http://127.0.0.1:$port/healthz" >/dev/null; then
        echo "something already answers on 127.0.0.1:$port: stop it first" >&2
        exit 1
    fi
    out=$("$EX/startup" --bin "$BIN" --config "$dir/config.toml" --addr "127.0.0.1:$port" \
        --log "$logf" --pidfile "$dir/daemon.pid" --timeout-secs 300) || {
        echo "the instance in $dir did not become ready; log: $logf" >&2
        tail -20 "$logf" >&2
        exit 1
    }
    cat "$dir/daemon.pid"
}

stop() { # PID: SIGTERM and wait (a clean stop)
    kill "$1" 2>/dev/null || true
    while kill -0 "$1" 2>/dev/null; do sleep 0.05; done
}

kv() { sed -nE "s/.*(^| )$1=([0-9.-]+).*/\2/p" <<<"$2"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

ROWS=()
row() { ROWS+=("| $1 | $2 |"); }

# ------------------------------------------------------------ 1. event-to-publish
"$EX/gen_corpus" --count "$CORPUS" --out "$WORK/corpus" --seed 1 >/dev/null
for backend in sqlite postgres; do
    d="$WORK/e2p-$backend"
    mkdir -p "$d"
    cp -r "$WORK/corpus" "$d/articles"
    extra=""
    if [[ $backend == postgres ]]; then
        extra="[catalog]
url = \"$(newdb e2p)\""
    fi
    config "$d" "$PORT_A" "$d/articles" "$extra"
    log "event-to-publish on $backend: $CORPUS archived, $DROPS drops"
    pid=$(start "$d" "$PORT_A" "$d/daemon.log")
    out=$("$EX/latency" --articles "$d/articles" --feeds "$d/feeds" --staging "$d/staging" \
        --count "$DROPS" --seed 7 --debounce-ms "$DEBOUNCE_MS" --timeout-secs 30)
    log "  $out"
    stop "$pid"
    row "event-to-publish, $backend catalog ($DROPS drops over $CORPUS archived; raw, including the ${DEBOUNCE_MS} ms debounce)" \
        "p50 $(kv raw_p50_ms "$out") ms · p99 $(kv raw_p99_ms "$out") ms · max $(kv raw_max_ms "$out") ms"
    row "event-to-publish, $backend catalog, minus the debounce" \
        "p50 $(kv p50_ms "$out") ms · p99 $(kv p99_ms "$out") ms"
done

# ------------------------------------------------------------ 2. delivery drain
cat >"$WORK/receiver.py" <<'EOF'
# A partner's webhook on loopback: each POST is answered after DELAY_MS; the
# arrival time and idempotency key of each is appended to OUT.
import sys, time, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
port, delay, out = int(sys.argv[1]), float(sys.argv[2]) / 1000, sys.argv[3]
lock = threading.Lock()
f = open(out, "a", buffering=1)
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        time.sleep(delay)
        with lock:
            f.write(f"{time.time():.6f} {self.headers.get('Idempotency-Key', '')}\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
"$EX/gen_corpus" --count "$DELIVERIES" --out "$WORK/drain-articles" --seed 2 >/dev/null
declare -A RATE
for n in 1 2; do
    url=$(newdb "drain$n")
    articles="$WORK/drain$n-articles"
    cp -r "$WORK/drain-articles" "$articles"
    extra="[catalog]
url = \"$url\"
[delivery]
retry_base_ms = 100
retry_max_ms = 500
[[partners]]
name = \"bench\"
url = \"http://127.0.0.1:$RECV_PORT/in\"
format = \"json\"
secret = \"bench-secret\""
    config "$WORK/drain$n-a" "$PORT_A" "$articles" "$extra
[cluster]
instance = \"a\""
    config "$WORK/drain$n-b" "$PORT_B" "$articles" "$extra
[cluster]
instance = \"b\""
    log "drain with $n instance(s): queueing $DELIVERIES deliveries (receiver down)"
    pid=$(start "$WORK/drain$n-a" "$PORT_A" "$WORK/drain$n-a/queue.log")
    stop "$pid"
    queued=$(psql -tA "$url" -c "SELECT count(*) FROM syndicate_outbox WHERE kind = 'partner' AND state = 'pending'")
    log "  $queued partner deliveries queued"
    recv_out="$WORK/drain$n-received"
    : >"$recv_out"
    python3 "$WORK/receiver.py" "$RECV_PORT" "$RECEIVER_MS" "$recv_out" &
    recv_pid=$!
    PIDS+=("$recv_pid")
    sleep 0.5
    t0=$(now)
    # Both instances start together, so both drain from the first delivery.
    start "$WORK/drain$n-a" "$PORT_A" "$WORK/drain$n-a/drain.log" >"$WORK/drain$n-a/pid" &
    starting=($!)
    if [[ $n == 2 ]]; then
        start "$WORK/drain$n-b" "$PORT_B" "$WORK/drain$n-b/drain.log" >"$WORK/drain$n-b/pid" &
        starting+=($!)
    fi
    wait "${starting[@]}"
    pids=("$(cat "$WORK/drain$n-a/pid")")
    [[ $n == 2 ]] && pids+=("$(cat "$WORK/drain$n-b/pid")")
    deadline=$(( $(date +%s) + 600 ))
    while (( $(awk '{print $2}' "$recv_out" | sort -u | wc -l) < queued )); do
        (( $(date +%s) < deadline )) || { echo "the queue did not drain in 600 s" >&2; exit 1; }
        sleep 0.2
    done
    wall=$(since "$t0")
    rate=$(awk -v q="$queued" 'NR == 1 {first = $1} {last = $1} END {printf "%.0f", q / (last - first)}' "$recv_out")
    dup=$(awk '{print $2}' "$recv_out" | sort | uniq -d | wc -l)
    log "  drained $queued in ${wall} s from start: ${rate}/s between first and last arrival; keys received twice: $dup"
    RATE[$n]=$rate
    row "delivery drain, $n instance(s): $queued queued partner deliveries, receiver answers after ${RECEIVER_MS} ms" \
        "${rate} deliveries/s (first to last arrival); ${wall} s from start-up to the last; $dup keys received twice"
    for p in "${pids[@]}"; do stop "$p"; done
    kill "$recv_pid"; wait "$recv_pid" 2>/dev/null || true
done
row "delivery drain, two instances vs one" "× $(awk -v a="${RATE[2]}" -v b="${RATE[1]}" 'BEGIN {printf "%.2f", a / b}')"

# ------------------------------------------------------------ 3. failover
url=$(newdb failover)
articles="$WORK/failover-articles"
mkdir -p "$articles" "$WORK/failover-staging"
"$EX/gen_corpus" --count 20 --out "$articles" --seed 3 >/dev/null
extra="[catalog]
url = \"$url\""
config "$WORK/failover-a" "$PORT_A" "$articles" "$extra
[cluster]
instance = \"a\""
config "$WORK/failover-b" "$PORT_B" "$articles" "$extra
[cluster]
instance = \"b\""
declare -A PID PORT
PORT[a]=$PORT_A
PORT[b]=$PORT_B
PID[a]=$(start "$WORK/failover-a" "$PORT_A" "$WORK/failover-a/start0.log")
PID[b]=$(start "$WORK/failover-b" "$PORT_B" "$WORK/failover-b/start0.log")
grep -q "became the leader" "$WORK/failover-a/start0.log" || { echo "a did not lead" >&2; exit 1; }
declare -A LOGF
LOGF[a]="$WORK/failover-a/start0.log"
LOGF[b]="$WORK/failover-b/start0.log"
leader=a
LEASE_T=()
PUB_T=()
for round in $(seq 1 "$KILLS"); do
    other=b
    [[ $leader == b ]] && other=a
    before=$(grep -c "became the leader" "${LOGF[$other]}" || true)
    title="Failover round $round $$"
    printf 'Thời sự\n\n%s\n\nHà Nội\n\nBản tin ngắn về %s.\n\nTTXVN - Bài kiểm tra chuyển đổi số %s/.\n\nPhóng viên\n' \
        "$title" "$title" "$round" >"$WORK/failover-staging/f$round.txt"
    # At a random point of the renewal cycle: a lease runs from its last
    # renewal, so a kill just after one is the slowest case.
    pause_ms=$((1000 + RANDOM % 6000))
    sleep "$(awk -v ms="$pause_ms" 'BEGIN {printf "%.3f", ms / 1000}')"
    t0=$(now)
    kill -9 "${PID[$leader]}"
    mv "$WORK/failover-staging/f$round.txt" "$articles/failover-$round.txt"
    lease_t=""
    pub_t=""
    deadline=$(( $(date +%s) + 120 ))
    while [[ -z $pub_t ]]; do
        (( $(date +%s) < deadline )) || { echo "round $round: no takeover in 120 s; log: ${LOGF[$other]}" >&2; exit 1; }
        if [[ -z $lease_t ]] && (( $(grep -c "became the leader" "${LOGF[$other]}" || true) > before )); then
            lease_t=$(since "$t0")
        fi
        if [[ -n $lease_t ]] && curl -s --max-time 2 "http://127.0.0.1:${PORT[$other]}/feeds/rss.xml" | grep -q "$title"; then
            pub_t=$(since "$t0")
        fi
        sleep 0.02
    done
    log "failover $round (killed ${pause_ms} ms after the previous takeover settled): $other leads ${lease_t} s after kill -9 of $leader; the new article is in its feed at ${pub_t} s"
    LEASE_T+=("$lease_t")
    PUB_T+=("$pub_t")
    LOGF[$leader]="$WORK/failover-$leader/start$round.log"
    PID[$leader]=$(start "$WORK/failover-$leader" "${PORT[$leader]}" "${LOGF[$leader]}")
    leader=$other
done
row "failover (lease 10 s, renew 3 s): kill -9 of the leader until the other instance holds the lease, median of $KILLS" \
    "$(printf '%s\n' "${LEASE_T[@]}" | median) s (each: ${LEASE_T[*]})"
row "failover: kill -9 until an article dropped at the kill is in the new leader's feed over HTTP, median of $KILLS" \
    "$(printf '%s\n' "${PUB_T[@]}" | median) s (each: ${PUB_T[*]})"

# ------------------------------------------------------------ report
DATE=$(date +%F)
OUT="$ROOT/bench/results/cluster-$DATE.md"
{
    echo "# feedwire cluster measurements, $DATE"
    echo
    echo "Command: \`bench/cluster.sh\` (CORPUS=$CORPUS DROPS=$DROPS DELIVERIES=$DELIVERIES RECEIVER_MS=$RECEIVER_MS KILLS=$KILLS DEBOUNCE_MS=$DEBOUNCE_MS), release build, commit $(cd "$ROOT" && git rev-parse --short HEAD)."
    echo "Machine: $(nproc) shared cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), other builds running alongside;"
    echo "PostgreSQL $(psql -tA "$PG_ADMIN" -c 'SHOW server_version') on the same machine, everything on loopback."
    echo
    echo "| measurement | result |"
    echo "|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "How to read them: a delivery to this partner is at most \`partners.concurrency\` (4) requests in"
    echo "flight per instance, so one instance drains at most 4 / ${RECEIVER_MS} ms = $((4000 / RECEIVER_MS))/s and two at most twice"
    echo "that; the shortfall is the two shared cores (two daemons, PostgreSQL and the Python receiver on them)."
    echo "A lease runs from its holder's last renewal: after a kill -9 the other instance can take it between"
    echo "lease_secs - renew_secs (7 s) and lease_secs (10 s) later. Figures from one run on a noisy machine."
} | tee "$OUT"
log "written to $OUT"
