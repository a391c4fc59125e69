#!/usr/bin/env bash
# feedwire macro benchmarks: cold build, restart, event-to-publish latency,
# HTTP against nginx, WebSub fan-out (when the hub exists), daemon memory, and
# Hugo as a peer. Prints one Markdown table and writes it to
# bench/results/<YYYY-MM-DD>.md (<YYYY-MM-DD>-quick.md with --quick).
#
#   bench/run.sh           # 1k, 10k and 100k articles, 20 s HTTP loads
#   bench/run.sh --quick   # 1k and 10k, 10 s HTTP loads, a few minutes
#
# Everything runs on 127.0.0.1; every load is bounded in time; every process
# started here is stopped on exit. See BENCHMARKS.md for what each figure means.
set -euo pipefail

QUICK=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
FW_PORT=${FW_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
DEBOUNCE_MS=${DEBOUNCE_MS:-50}
SEED=${SEED:-1}
DROPS=${DROPS:-200}
if (( QUICK )); then
    SIZES=(1000 10000); HTTP_SECS=10; BUILD_RUNS=3; PEERS=(10000)
else
    SIZES=(1000 10000 100000); HTTP_SECS=20; BUILD_RUNS=3; PEERS=(10000 100000)
fi
BIG=${SIZES[-1]}
WRK_THREADS=2
WRK_CONNS=32

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- tools
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx)
command -v hugo >/dev/null || need+=(hugo)
command -v curl >/dev/null || need+=(curl)
[[ -x /usr/bin/time ]] || need+=(time)
if (( ${#need[@]} )); then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# ---------------------------------------------------------------- build
log "building --release (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
examples=(--example gen_corpus --example latency --example startup)
HAVE_FANOUT=0
if [[ -f "$ROOT/examples/websub_fanout.rs" ]]; then
    HAVE_FANOUT=1
    examples+=(--example websub_fanout)
fi
(cd "$ROOT" && cargo build --release --quiet --bin feedwire "${examples[@]}")
# FEEDWIRE_BENCH_BIN measures another build (an older commit's binary, for a
# before/after table) with this tree's tools; RESULT_NAME names the result file.
BIN=${FEEDWIRE_BENCH_BIN:-$CARGO_TARGET_DIR/release/feedwire}
EX=$CARGO_TARGET_DIR/release/examples

WORK=$(mktemp -d /tmp/feedwire-bench.XXXXXX)
DAEMON_PID=""
NGINX_PID=""
cleanup() {
    [[ -n "$DAEMON_PID" ]] && stop_pid "$DAEMON_PID"
    [[ -n "$NGINX_PID" ]] && stop_pid "$NGINX_PID"
    [[ -n "${KEEP_WORK:-}" ]] || rm -rf "$WORK"
}
stop_pid() { # SIGTERM, then SIGKILL after 20 s
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log "work folder $WORK"

for port in "$FW_PORT" "$NGINX_PORT"; do
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
        echo "port 127.0.0.1:$port is in use; set FW_PORT / NGINX_PORT" >&2
        exit 1
    fi
done

# ---------------------------------------------------------------- helpers
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
now_ns() { date +%s%N; }
fmt_int() { echo "$1" | sed -E ':a; s/^([0-9]+)([0-9]{3})/\1 \2/; ta'; }

# site DIR ARTICLES: a feedwire site with the bench config
site() {
    local dir=$1 articles=$2
    mkdir -p "$dir"
    cat >"$dir/config.toml" <<EOF
[site]
title = "feedwire bench"
base_url = "http://127.0.0.1:$FW_PORT"
[paths]
articles = "$articles"
feeds = "feeds"
state = "state"
[watch]
debounce_ms = $DEBOUNCE_MS
rescan_secs = 0
[server]
listen = "127.0.0.1:$FW_PORT"
[websub]
allowed_callback_hosts = ["127.0.0.1"]
# The fan-out's 1,000 subscribers are all one client (127.0.0.1): raise the
# per-client limits that rightly refuse or slow one client that large.
client_burst = 2000
max_pending_verifications_per_client = 2000
max_subscriptions_per_client = 2000
max_deliveries_in_flight_per_client = 64
[log]
level = "info"
EOF
}

# timed_build DIR: fresh state, prints "wall_s peak_rss_kb"
timed_build() {
    local dir=$1
    rm -rf "$dir/state" "$dir/feeds"
    timeout 900 /usr/bin/time -f '%e %M' -o "$dir/time.out" \
        "$BIN" build --config "$dir/config.toml" >"$dir/build.out" 2>"$dir/build.err"
    cat "$dir/time.out"
}

start_daemon() { # DIR -> sets DAEMON_PID and READY_MS
    local dir=$1 out
    rm -f "$dir/daemon.pid"
    out=$("$EX/startup" --bin "$BIN" --config "$dir/config.toml" --addr "127.0.0.1:$FW_PORT" \
        --log "$dir/daemon.log" --pidfile "$dir/daemon.pid" --timeout-secs 300) || {
        [[ -f "$dir/daemon.pid" ]] && DAEMON_PID=$(cat "$dir/daemon.pid")
        echo "the daemon did not become ready; log: $dir/daemon.log" >&2
        return 1
    }
    DAEMON_PID=$(cat "$dir/daemon.pid")
    READY_MS=$(sed -E 's/.*ready_ms=([0-9.]+).*/\1/' <<<"$out")
}
stop_daemon() { [[ -n "$DAEMON_PID" ]] && stop_pid "$DAEMON_PID"; DAEMON_PID=""; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 |"); }
verdict() { # value op target -> met / missed
    if awk -v v="$1" -v t="$3" "BEGIN {exit !(v $2 t)}"; then echo "met"; else echo "**missed**"; fi
}

# ---------------------------------------------------------------- corpora
for n in "${SIZES[@]}"; do
    log "generating $n articles"
    md=()
    [[ " ${PEERS[*]} " == *" $n "* ]] && md=(--markdown "$WORK/hugo$n")
    "$EX/gen_corpus" --count "$n" --out "$WORK/c$n/articles" --seed "$SEED" "${md[@]}" >&2
    site "$WORK/c$n" articles
done

# ---------------------------------------------------------------- cold build
declare -A BUILD_S
for n in "${SIZES[@]}"; do
    runs=$BUILD_RUNS
    walls=(); rsss=()
    for ((r = 0; r < runs; r++)); do
        read -r wall rss < <(timed_build "$WORK/c$n")
        log "cold build $n: ${wall}s, peak RSS ${rss} KiB"
        walls+=("$wall"); rsss+=("$rss")
    done
    wall=$(printf '%s\n' "${walls[@]}" | median)
    rss=$(printf '%s\n' "${rsss[@]}" | median)
    BUILD_S[$n]=$wall
    rate=$(awk -v n="$n" -v w="$wall" 'BEGIN {printf "%.0f", n/w}')
    target="peak RSS ≤ 128 MiB (speed: peer rows)"
    ok=$(verdict "$rss" '<=' 131072)
    if [[ "$n" == 100000 ]]; then
        target="≤ 4 s, peak RSS ≤ 128 MiB"
        [[ $(verdict "$wall" '<=' 4) == met ]] || ok="**missed**"
    fi
    row "cold build, $(fmt_int "$n") articles (median of $runs)" \
        "${wall} s · $(fmt_int "$rate") art/s · peak RSS $(mib "$rss") MiB" "$target" "$ok"
done

# ---------------------------------------------------------------- restart, memory, HTTP over the big archive
B="$WORK/c$BIG"
"$BIN" build --config "$B/config.toml" >/dev/null 2>&1 # make sure the catalog is complete
readies=()
for r in 1 2 3; do
    start_daemon "$B"
    log "restart over $BIG unchanged: ready in ${READY_MS} ms"
    readies+=("$READY_MS")
    if (( r < 3 )); then stop_daemon; fi
done
ready=$(printf '%s\n' "${readies[@]}" | median)
row "restart over $(fmt_int "$BIG") unchanged, until /healthz 200 (median of 3)" "$ready ms" "≤ 1 000 ms (100k)" "$(verdict "$ready" '<=' 1000)"

sleep 2
idle_kb=$(rss_kb "$DAEMON_PID")
log "daemon idle RSS ${idle_kb} KiB"

# HTTP: feedwire
URL="http://127.0.0.1:$FW_PORT/feeds/rss.xml"
hdrs=$(curl -s -D - -o /dev/null -H 'Accept-Encoding: gzip' "$URL")
grep -qi '^content-encoding: *gzip' <<<"$hdrs" || { echo "feedwire did not answer gzip: $hdrs" >&2; exit 1; }
FW_ETAG=$(awk 'tolower($1)=="etag:" {sub(/\r$/,""); $1=""; sub(/^ /,""); print}' <<<"$hdrs")
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept-Encoding: gzip' -H "If-None-Match: $FW_ETAG" "$URL")
[[ "$code" == 304 ]] || { echo "feedwire: If-None-Match $FW_ETAG gave $code, not 304" >&2; exit 1; }
gz_bytes=$(curl -s -H 'Accept-Encoding: gzip' "$URL" | wc -c)
plain_bytes=$(curl -s "$URL" | wc -c)

wrk_rps() { # URL [header...] -> req/s; fails on socket errors or non-2xx/3xx
    local url=$1; shift
    local args=() h out
    for h in "$@"; do args+=(-H "$h"); done
    out=$(wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${HTTP_SECS}s" --timeout 5s "${args[@]}" "$url")
    echo "$out" >>"$WORK/wrk.log"
    if grep -q 'Non-2xx or 3xx' <<<"$out"; then echo "wrk saw errors: $out" >&2; return 1; fi
    awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out"
}

sample_rss() { # PID SECONDS -> peak VmRSS (KiB) over the period
    local pid=$1 secs=$2 peak=0 v i
    for ((i = 0; i < secs * 4; i++)); do
        v=$(rss_kb "$pid" 2>/dev/null || echo 0)
        (( v > peak )) && peak=$v
        sleep 0.25
    done
    echo "$peak"
}

log "wrk ${HTTP_SECS}s: feedwire 200+gzip"
sample_rss "$DAEMON_PID" "$HTTP_SECS" >"$WORK/rss_load" &
SAMPLER=$!
fw_200=$(wrk_rps "$URL" 'Accept-Encoding: gzip')
wait "$SAMPLER"
load_kb=$(cat "$WORK/rss_load")
log "wrk ${HTTP_SECS}s: feedwire 304"
fw_304=$(wrk_rps "$URL" 'Accept-Encoding: gzip' "If-None-Match: $FW_ETAG")

# HTTP: nginx on the same file
NG="$WORK/nginx"
mkdir -p "$NG/www/feeds" "$NG/logs"
cp "$B/feeds/rss.xml" "$NG/www/feeds/rss.xml"
gzip -9 -k "$NG/www/feeds/rss.xml"
touch -r "$NG/www/feeds/rss.xml" "$NG/www/feeds/rss.xml.gz"
cat >"$NG/nginx.conf" <<EOF
user root;
worker_processes auto;
daemon off;
pid $NG/nginx.pid;
error_log $NG/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    types { application/rss+xml xml; }
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    gzip_static on;
    etag on;
    client_body_temp_path $NG/tmp_body;
    proxy_temp_path $NG/tmp_proxy;
    fastcgi_temp_path $NG/tmp_fastcgi;
    uwsgi_temp_path $NG/tmp_uwsgi;
    scgi_temp_path $NG/tmp_scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $NG/www;
        location / { }
    }
}
EOF
nginx -p "$NG" -c "$NG/nginx.conf" &
NGINX_PID=$!
NURL="http://127.0.0.1:$NGINX_PORT/feeds/rss.xml"
for ((i = 0; i < 100; i++)); do
    curl -s -o /dev/null --max-time 1 "$NURL" && break
    sleep 0.05
done
nhdrs=$(curl -s -D - -o /dev/null -H 'Accept-Encoding: gzip' "$NURL")
grep -qi '^content-encoding: *gzip' <<<"$nhdrs" || { echo "nginx did not answer gzip: $nhdrs" >&2; exit 1; }
NG_ETAG=$(awk 'tolower($1)=="etag:" {sub(/\r$/,""); $1=""; sub(/^ /,""); print}' <<<"$nhdrs")
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept-Encoding: gzip' -H "If-None-Match: $NG_ETAG" "$NURL")
[[ "$code" == 304 ]] || { echo "nginx: If-None-Match $NG_ETAG gave $code, not 304" >&2; exit 1; }
log "wrk ${HTTP_SECS}s: nginx 200+gzip"
ng_200=$(wrk_rps "$NURL" 'Accept-Encoding: gzip')
log "wrk ${HTTP_SECS}s: nginx 304"
ng_304=$(wrk_rps "$NURL" 'Accept-Encoding: gzip' "If-None-Match: $NG_ETAG")
stop_pid "$NGINX_PID"; NGINX_PID=""

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
row "HTTP /feeds/rss.xml 200 + gzip ($(fmt_int "$gz_bytes") B of $(fmt_int "$plain_bytes") B), wrk -t$WRK_THREADS -c$WRK_CONNS ${HTTP_SECS}s" \
    "feedwire $(fmt_int "$fw_200") req/s · nginx $(fmt_int "$ng_200") req/s · ratio $(ratio "$fw_200" "$ng_200")" "≥ nginx (ratio ≥ 1)" "$(verdict "$fw_200" '>=' "$ng_200")"
row "HTTP /feeds/rss.xml 304 (If-None-Match), same load" \
    "feedwire $(fmt_int "$fw_304") req/s · nginx $(fmt_int "$ng_304") req/s · ratio $(ratio "$fw_304" "$ng_304")" "≥ nginx (ratio ≥ 1)" "$(verdict "$fw_304" '>=' "$ng_304")"
row "daemon RSS, $(fmt_int "$BIG") articles in the catalog, idle" "$(mib "$idle_kb") MiB" "≤ 64 MiB (100k)" "$(verdict "$idle_kb" '<=' 65536)"
row "daemon RSS, same, peak under the 200+gzip load" "$(mib "$load_kb") MiB" "≤ 64 MiB (100k)" "$(verdict "$load_kb" '<=' 65536)"

# ---------------------------------------------------------------- WebSub fan-out (hook)
# HOOK websub_fanout: when examples/websub_fanout.rs exists it is built above
# and run here against the daemon over the big archive. Contract: it takes
# --addr (the daemon's loopback address), --config (the daemon's config: its
# base_url, articles folder and catalog), --subscribers, --timeout-secs, and
# prints a line containing fanout_ms=<ms> (time from the triggering change
# until all subscribers got a signed update); it exits non-zero when any
# subscriber did not get exactly one correctly signed delivery of the change.
# This is where the 1,000-subscriber figure comes from (not `cargo test`).
if (( HAVE_FANOUT )); then
    log "WebSub fan-out to 1000 loopback subscribers"
    fan=""
    if timeout 300 "$EX/websub_fanout" --addr "127.0.0.1:$FW_PORT" --config "$B/config.toml" \
        --subscribers 1000 --timeout-secs 60 >"$WORK/fanout.log" 2>&1; then
        fan=$(sed -nE 's/.*fanout_ms=([0-9.]+).*/\1/p' "$WORK/fanout.log" | tail -1)
    fi
    if [[ -n "$fan" ]]; then
        log "  $(tail -1 "$WORK/fanout.log")"
        row "WebSub: 1 000 loopback subscribers have a signed update" "$fan ms" "≤ 1 000 ms" "$(verdict "$fan" '<=' 1000)"
    else
        log "websub_fanout failed:"
        cat "$WORK/fanout.log" >&2
        row "WebSub: 1 000 loopback subscribers have a signed update" "failed (see websub_fanout output)" "≤ 1 000 ms" "**missed**"
    fi
else
    log "WebSub fan-out: not measured (hub not present)"
    row "WebSub: 1 000 loopback subscribers have a signed update" "not measured (hub not present)" "≤ 1 000 ms" "—"
fi

# ---------------------------------------------------------------- event-to-publish latency
latency() { # DIR -> key=value line
    "$EX/latency" --articles "$1/articles" --feeds "$1/feeds" --staging "$1/staging" \
        --count "$DROPS" --debounce-ms "$DEBOUNCE_MS" --timeout-secs 30
}
log "latency: $DROPS drops over $BIG archived"
lat_big=$(latency "$B")
log "  $lat_big"
stop_daemon
S="$WORK/c1000"
"$BIN" build --config "$S/config.toml" >/dev/null 2>&1
start_daemon "$S"
log "latency: $DROPS drops over 1000 archived"
lat_small=$(latency "$S")
log "  $lat_small"
stop_daemon
kv() { sed -nE "s/.*(^| )$1=([0-9.-]+).*/\2/p" <<<"$2"; }
for pair in "1000:$lat_small" "$BIG:$lat_big"; do
    n=${pair%%:*}; l=${pair#*:}
    ok=$(verdict "$(kv p99_ms "$l")" '<=' 10)
    [[ $(verdict "$(kv p50_ms "$l")" '<=' 5) == met ]] || ok="**missed**"
    row "event-to-publish over $(fmt_int "$n") archived, $DROPS drops, minus debounce ${DEBOUNCE_MS} ms" \
        "p50 $(kv p50_ms "$l") ms · p99 $(kv p99_ms "$l") ms · max $(kv max_ms "$l") ms" "p50 ≤ 5 ms, p99 ≤ 10 ms" "$ok"
done
scale=$(ratio "$(kv p99_ms "$lat_big")" "$(kv p99_ms "$lat_small")")
row "event-to-publish p99, $(fmt_int "$BIG") vs 1 000 archived" "× $scale" "≤ × 1.2 (100k vs 1k)" "$(verdict "$scale" '<=' 1.2)"

# ---------------------------------------------------------------- peer: Hugo
for PEER_N in "${PEERS[@]}"; do
    H="$WORK/hugo$PEER_N"
    site "$WORK/peer$PEER_N" "$H/content/posts"
    hugo_t=(); fw_t=()
    for r in 1 2 3; do
        rm -rf "$WORK/hugo-out"
        t0=$(now_ns)
        timeout 900 hugo --quiet -s "$H" -d "$WORK/hugo-out" >"$WORK/hugo.log" 2>&1
        t1=$(now_ns)
        hugo_t+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b-a)/1e9}')")
        read -r wall _ < <(timed_build "$WORK/peer$PEER_N")
        fw_t+=("$wall")
        log "peer $PEER_N run $r: hugo ${hugo_t[-1]}s, feedwire ${wall}s"
    done
    test -s "$WORK/hugo-out/index.xml" || { echo "hugo wrote no index.xml" >&2; exit 1; }
    rm -rf "$WORK/hugo-out" "$WORK/peer$PEER_N/feeds" "$WORK/peer$PEER_N/state"
    hugo_med=$(printf '%s\n' "${hugo_t[@]}" | median)
    fw_med=$(printf '%s\n' "${fw_t[@]}" | median)
    speedup=$(ratio "$hugo_med" "$fw_med")
    row "peer: $(fmt_int "$PEER_N") Markdown articles, Hugo $(hugo version | awk '{print $2}' | cut -d+ -f1) (RSS only) vs feedwire build (median of 3)" \
        "Hugo $hugo_med s · feedwire $fw_med s · feedwire is × $speedup faster" "≥ × 3" "$(verdict "$speedup" '>=' 3)"
done

# ---------------------------------------------------------------- report
mode=full; (( QUICK )) && mode=quick
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(free -h | awk '/^Mem:/ {print $2}')
{
    echo "feedwire benchmarks ($mode run, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), binary ${FEEDWIRE_BENCH_BIN:-built from it})"
    echo "machine: $(nproc) cores, $mem RAM, $cpu; debounce ${DEBOUNCE_MS} ms; seed $SEED"
    echo
    echo "| figure | measured | target | verdict |"
    echo "|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} >"$WORK/table.md"
mkdir -p "$ROOT/bench/results"
suffix=""; (( QUICK )) && suffix="-quick"
out="$ROOT/bench/results/${RESULT_NAME:-$(date +%Y-%m-%d)$suffix}.md"
cp "$WORK/table.md" "$out"
cat "$WORK/table.md"
log "written to $out"
