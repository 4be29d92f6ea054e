#!/bin/bash
# progress-flood.sh CONVEYOR [DATA_EVERY]: one run of docs/benchmarks.md's
# progress flood. A server (SQLite in a temporary folder, or PostgreSQL in a
# fresh database when DBURL is a server's postgres URL) runs one exec step
# printing 10,000 ::progress lines a second for 20 s (every DATA_EVERY-th a
# ::data line) while curl follows its SSE progress stream. Prints the
# server's CPU time (utime+stime from /proc/PID/stat) over the run, the
# messages the subscriber received and the step's achieved rate.
set -euo pipefail
bin=$(realpath "$1") every=${2:-0}
root=$(cd "$(dirname "$0")/.." && pwd)
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
(cd "$root" && go build -o "$d/emit" ./scripts/progressflood)
mkdir "$d/pipelines"
cat >"$d/pipelines/flood.yaml" <<YAML
steps:
  - name: flood
    timeout: 5m
    exec:
      command: ["$d/emit", "-rate", "10000", "-duration", "20s", "-data-every", "$every", "-report", "$d/rate.txt"]
YAML
store=(--data "$d/data")
if [ -n "${DBURL:-}" ]; then # e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
	db=flood_$$
	psql "$DBURL" -qc "create database $db"
	trap 'rm -rf "$d"; psql "$DBURL" -qc "drop database if exists $db"' EXIT
	store=(--database-url "$(printf '%s' "$DBURL" | sed "s|/[^/?]*?|/$db?|")")
fi
port=$((18100 + RANDOM % 800))
"$bin" serve --addr "127.0.0.1:$port" "${store[@]}" --pipelines "$d/pipelines" >"$d/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
c0=$(cpu) t0=$(date +%s.%N)
id=$(curl -sf -H 'Content-Type: application/json' -d '{"pipeline":"flood"}' \
	"http://127.0.0.1:$port/executions" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
curl -sN "http://127.0.0.1:$port/executions/$id/progress/sse" >"$d/sse.txt"
c1=$(cpu) t1=$(date +%s.%N)
kill "$pid"
wait "$pid" || true
awk -v c=$((c1 - c0)) -v tck="$(getconf CLK_TCK)" -v t0="$t0" -v t1="$t1" \
	'BEGIN { printf "server cpu %.2f s over %.2f s: %.1f %% of one core\n", c / tck, t1 - t0, 100 * c / tck / (t1 - t0) }'
echo "subscriber: $(grep -c '"type":"progress"' "$d/sse.txt") progress, $(grep -c '"type":"data"' "$d/sse.txt") data messages," \
	"$(grep -o '"type":"\(completed\|failed\|cancelled\)"' "$d/sse.txt" | tail -1)"
echo "step: $(cat "$d/rate.txt")"
