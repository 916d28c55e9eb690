#!/usr/bin/env bash
# Starts the whole system on this machine: Redis, one CPU worker, the API (:18081) and Flower (:5555).
# Ctrl-C stops all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
REDIS_PORT=${REDIS_PORT:-6379}
API_PORT=${API_PORT:-18081}
FLOWER_PORT=${FLOWER_PORT:-5555}
export FACEREST_REDIS_URL=${FACEREST_REDIS_URL:-redis://127.0.0.1:${REDIS_PORT}/0}
export FLOWER_UNAUTHENTICATED_API=${FLOWER_UNAUTHENTICATED_API:-true}

pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "using the Redis already running on port $REDIS_PORT"
else
  mkdir -p var/redis
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$PWD/var/redis" \
    --appendonly yes --save "" --daemonize no --loglevel warning &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

$BIN/python -m worker --device "${FACEREST_DEVICE:-cpu}" &
pids+=($!)
# api/gunicorn_conf.py: gthread, graceful_timeout > sync timeout, /ready false while draining,
# shared Prometheus metrics, and the malloc-arena cap (shared/memory.py; see README, Soak test).
$BIN/gunicorn --config python:api.gunicorn_conf \
  --bind "0.0.0.0:${API_PORT}" --workers "${API_PROCESSES:-2}" --threads "${API_THREADS:-16}" \
  'api.app:create_app()' &
pids+=($!)
$BIN/celery --broker "$FACEREST_REDIS_URL" flower --address=0.0.0.0 --port="$FLOWER_PORT" &
pids+=($!)

echo "facerest: API http://localhost:${API_PORT} (docs /docs), Flower http://localhost:${FLOWER_PORT}; Ctrl-C stops"
wait -n "${pids[@]}"
