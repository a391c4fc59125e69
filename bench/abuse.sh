#!/usr/bin/env bash
# feedwire abuse harness: runs each attack against a fresh daemon and measures,
# meanwhile, a normal reader's GET /feeds/rss.xml latency and the daemon's
# memory. Prints one Markdown table (one row per attack) and writes it to
# bench/results/abuse-<YYYY-MM-DD>[-<label>].md.
#
#   bench/abuse.sh                                  # build --release, every attack, 30 s each
#   bench/abuse.sh --bin /path/to/feedwire --label before --seconds 20
#   bench/abuse.sh slow-headers idle-flood          # only these attacks
#   bench/abuse.sh --seconds 10 -- --conns 100      # after --, options for examples/abuse.rs
#
# Attacks (examples/abuse.rs --help has their knobs): baseline (no attack),
# slow-headers, idle-flood, slow-hub-body, big-hub-body, huge-callback-reply,
# subscription-flood.
#
# For each attack: a fresh site state, a fresh daemon on 127.0.0.1:$FW_PORT
# (default 18090), then examples/abuse.rs attacks from 127.0.0.1 while a
# normal reader bound to 127.0.0.2 sends 20 requests/s (5 s timeout; a failure
# counts as 5 000 ms), and the daemon's VmRSS is sampled every 100 ms from
# /proc/<pid>/status. Five seconds after the attack: RSS again, VmHWM (peak)
# and GET /healthz. A daemon whose RSS passes RSS_CEILING_MIB (default 4096)
# is killed so it cannot take the machine down; its row says so.
#
# Everything stays on loopback. The run takes about (seconds + 12) per attack,
# plus up to two minutes for the subscription flood's legitimate subscriber.
# KEEP_WORK=1 keeps /tmp/feedwire-abuse.* (daemon logs per attack).
# DAEMON_NOFILE=N runs the daemon under `ulimit -n N` (default: this shell's
# limit); the attacker can open no more connections than its own hard limit
# allows, so a lower daemon limit is how to see descriptor exhaustion.
set -euo pipefail

BIN=""
SECS=30
LABEL=""
ATTACKS=()
EXTRA=()
while (($#)); do
    case "$1" in
        --bin) BIN=$2; shift 2 ;;
        --seconds) SECS=$2; shift 2 ;;
        --label) LABEL=$2; shift 2 ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        -*) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
        *) ATTACKS+=("$1"); shift ;;
    esac
done
ALL=(baseline slow-headers idle-flood slow-hub-body big-hub-body huge-callback-reply subscription-flood)
((${#ATTACKS[@]})) || ATTACKS=("${ALL[@]}")

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
FW_PORT=${FW_PORT:-18090}
RSS_CEILING_MIB=${RSS_CEILING_MIB:-4096}
DAEMON_NOFILE=${DAEMON_NOFILE:-$(ulimit -n)}
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

log() { printf '[abuse %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- build
build=(--example abuse)
[[ -n "$BIN" ]] || build+=(--bin feedwire)
log "building --release ${build[*]} (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
(cd "$ROOT" && cargo build --release --quiet "${build[@]}")
if [[ -n "$BIN" ]]; then
    BIN=$(realpath "$BIN")
else
    BIN=$CARGO_TARGET_DIR/release/feedwire
fi
[[ -x "$BIN" ]] || { echo "no feedwire binary at $BIN" >&2; exit 1; }
ABUSE=$CARGO_TARGET_DIR/release/examples/abuse

# ---------------------------------------------------------------- site
WORK=$(mktemp -d /tmp/feedwire-abuse.XXXXXX)
DAEMON_PID=""
stop_pid() { # SIGTERM, then SIGKILL after 20 s; reaps it
    local pid=$1 i
    if kill -TERM "$pid" 2>/dev/null; then
        for ((i = 0; i < 200; i++)); do
            [[ "$(state_of "$pid")" =~ ^(Z|gone)$ ]] && break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
state_of() { awk '/^State:/ {print $2; f=1} END {if (!f) print "gone"}' "/proc/$1/status" 2>/dev/null || echo gone; }
cleanup() {
    [[ -n "$DAEMON_PID" ]] && stop_pid "$DAEMON_PID"
    [[ -n "${KEEP_WORK:-}" ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if curl --noproxy '*' -s -o /dev/null --max-time 1 "http://127.0.0.1:$FW_PORT/"; then
    echo "port 127.0.0.1:$FW_PORT is in use; set FW_PORT" >&2
    exit 1
fi

mkdir -p "$WORK/articles"
cp "$ROOT"/tests/fixtures/corpus/wire/*.txt "$WORK/articles/"
# Only keys every feedwire version knows, so an old binary runs the same site.
cat >"$WORK/config.toml" <<EOF
[site]
title = "feedwire abuse"
base_url = "http://127.0.0.1:$FW_PORT"
[paths]
articles = "articles"
feeds = "feeds"
state = "state"
[watch]
rescan_secs = 0
[server]
listen = "127.0.0.1:$FW_PORT"
[websub]
# Loopback callbacks: the attacker's on 127.0.0.1, the legitimate subscriber's on 127.0.0.2.
allowed_callback_hosts = ["127.0.0.1", "127.0.0.2"]
[log]
level = "info"
EOF
log "work folder $WORK; binary $BIN"

start_daemon() { # ATTACK -> DAEMON_PID, once /healthz answers 200
    local name=$1 i
    rm -rf "$WORK/state" "$WORK/feeds"
    (ulimit -n "$DAEMON_NOFILE" && exec "$BIN" run --config "$WORK/config.toml") \
        >"$WORK/daemon-$name.log" 2>&1 &
    DAEMON_PID=$!
    for ((i = 0; i < 600; i++)); do
        [[ "$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 1 \
            "http://127.0.0.1:$FW_PORT/healthz")" == 200 ]] && return 0
        [[ "$(state_of "$DAEMON_PID")" =~ ^(Z|gone)$ ]] && break
        sleep 0.1
    done
    echo "the daemon did not become ready; log: $WORK/daemon-$name.log" >&2
    tail -5 "$WORK/daemon-$name.log" >&2
    return 1
}

# ---------------------------------------------------------------- attacks
ROWS=()
for attack in "${ATTACKS[@]}"; do
    start_daemon "$attack"
    log "$attack: daemon pid $DAEMON_PID, attacking for ${SECS}s"
    set +e
    row=$("$ABUSE" --addr "127.0.0.1:$FW_PORT" --pid "$DAEMON_PID" --attack "$attack" \
        --seconds "$SECS" --rss-ceiling-mib "$RSS_CEILING_MIB" "${EXTRA[@]}")
    rc=$?
    set -e
    if ((rc != 0)) || [[ -z "$row" ]]; then
        row="| $attack | harness failed (exit $rc) | | | | | | | |"
    fi
    if [[ "$(state_of "$DAEMON_PID")" =~ ^(Z|gone)$ ]]; then
        wait "$DAEMON_PID" 2>/dev/null && code=0 || code=$?
        log "$attack: the daemon exited with status $code; last log lines:"
        tail -5 "$WORK/daemon-$attack.log" >&2
        row="${row% |}; daemon exit status $code |"
        DAEMON_PID=""
    else
        stop_pid "$DAEMON_PID"
        DAEMON_PID=""
    fi
    log "$row"
    ROWS+=("$row")
done

# ---------------------------------------------------------------- report
DATE=$(date -u +%Y-%m-%d)
OUT="$ROOT/bench/results/abuse-$DATE${LABEL:+-$LABEL}.md"
mkdir -p "$ROOT/bench/results"
{
    echo "# Abuse harness${LABEL:+ — $LABEL}"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%MZ), harness commit \`$(git -C "$ROOT" rev-parse --short HEAD)\`, binary \`$BIN\`."
    echo "Command: \`bench/abuse.sh --seconds $SECS${LABEL:+ --label $LABEL} ${ATTACKS[*]}${EXTRA[*]:+ -- ${EXTRA[*]}}\`."
    echo "$SECS s per attack on a fresh daemon (25 wire articles); normal reader: GET /feeds/rss.xml from 127.0.0.2,"
    echo "20/s, new connection each, 5 s timeout (a failure counts as 5 000 ms in the percentiles)."
    echo "Daemon RLIMIT_NOFILE $DAEMON_NOFILE; RSS ceiling $RSS_CEILING_MIB MiB; $(nproc) cores,"
    echo "$(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r | cut -d- -f1); load average"
    echo "$LOAD_BEFORE at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (the machine is shared)."
    echo
    "$ABUSE" --header
    printf '%s\n' "${ROWS[@]}"
} >"$OUT"
cat "$OUT"
log "wrote $OUT"
