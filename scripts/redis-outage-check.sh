#!/usr/bin/env bash
# Runs a worker and a scheduler against a Redis of their own, kills that Redis at second 20 of
# a minute, starts it again empty after OUTAGE_S seconds, and reports whether ticks resumed.
#
#   scripts/redis-outage-check.sh DIR PORT cron|scheduler OUTAGE_S
#
# `cron` runs `rq cron usage_entrypoints.rq_cron`, `scheduler` runs `usage-sync scheduler`.
# Takes about four minutes; the timeline and the log are left in DIR.
set -u
DIR=$1 PORT=$2 MODE=$3 OUTAGE_S=$4
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin}
mkdir -p "$DIR" && cd "$DIR" || exit 1

start_redis() {
    redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" \
        >/dev/null 2>&1 &
    REDIS_PID=$!
    sleep 0.5
}
alive() { kill -0 "$1" 2>/dev/null && echo yes || echo no; }

start_redis
export USAGE_SYNC_REDIS_URL=redis://127.0.0.1:$PORT/0
export USAGE_SYNC_LOG_FILE=$DIR/usage-sync.log
export USAGE_SYNC_DATABASE_URL=sqlite:///$DIR/app.sqlite
export USAGE_SYNC_STATE_DIR=$DIR/state
"$BIN/usage-sync" db init >/dev/null
"$BIN/usage-sync" settings set reseller.usage_sync_interval_minutes 1 >/dev/null
"$BIN/usage-sync" worker >worker.out 2>&1 &
WORKER_PID=$!
if [ "$MODE" = cron ]; then
    "$BIN/rq" cron usage_entrypoints.rq_cron -u "$USAGE_SYNC_REDIS_URL" >scheduler.out 2>&1 &
else
    "$BIN/usage-sync" scheduler >scheduler.out 2>&1 &
fi
SCHEDULER_PID=$!
date -u +"%T start" >>timeline
sleep $(((60 - $(date +%-S)) + 20))
date -u +"%T Redis killed for $OUTAGE_S s" >>timeline
kill -9 "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null
sleep "$OUTAGE_S"
date -u +"%T Redis started, empty" >>timeline
start_redis
sleep 150
date -u +"%T worker alive: $(alive $WORKER_PID); scheduler alive: $(alive $SCHEDULER_PID)" >>timeline
kill "$WORKER_PID" "$SCHEDULER_PID" 2>/dev/null
sleep 2
kill -9 "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null
cat timeline
grep -E "Scheduling SyncResellerUsageJob|Redis is|re-created" usage-sync.log
