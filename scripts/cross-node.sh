#!/bin/bash
# cross-node.sh CONVEYOR [EXECUTIONS]: one run of docs/benchmarks.md's
# cross-node progress latency on the local PostgreSQL (PGURL, default
# postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable): 2 embedded
# nodes, EXECUTIONS (default 1000) running on one node reporting 10 times a
# second for 10 s, each watched from the other. Prints the bench's JSON
# line and PostgreSQL's CPU time over the run (utime+stime of the postgres
# user's processes and their exited children, from /proc).
set -euo pipefail
bin=$1 n=${2:-1000}
url=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
pgcpu() { # clock ticks of every postgres process, and of its reaped children
	local total=0
	for p in $(pgrep -u postgres); do
		[ -r /proc/$p/stat ] || continue
		total=$((total + $(awk '{print $14+$15+$16+$17}' /proc/$p/stat 2>/dev/null || echo 0)))
	done
	echo $total
}
before=$(pgcpu)
"$bin" bench --scenario cross-node --nodes 2 --database-url "$url" --executions-running "$n" --workers "$((n + 16))" --json
after=$(pgcpu)
echo "postgres_cpu_seconds $(( (after - before) / $(getconf CLK_TCK) ))"
