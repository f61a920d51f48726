#!/usr/bin/env bash
# Regenerates the numbers in docs/benchmarks.md: the checkout benchmark on the embedded default
# (SQLite, synchronous=FULL) and on PostgreSQL, at 1, 16, 64 and 256 buyers, the hot-product
# case, the in-process engine, and the plain-SQL baseline with its ratio. Prints markdown rows.
#
#   scripts/bench.sh                 # SQLite only
#   PG_URL=postgres://… scripts/bench.sh   # also PostgreSQL (an empty database per row is
#                                          # created on PG_URL's server with psql)
#   DURATION=10s (each row), LONG=120s (the long run that shows peak memory), BIN=… (a built binary)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${BIN:-}" ] || cargo build --release -p microcommerce >&2
bin=${BIN:-target/release/microcommerce}
duration=${DURATION:-10s}

row() { # label, then bench arguments
  local label=$1; shift
  local json
  json=$("$bin" bench --json --duration "$duration" "$@" | tail -n 1)
  python3 - "$label" "$json" <<'PY'
import json, sys
label, report = sys.argv[1], json.loads(sys.argv[2])
lat = report.get("latencyMs") or {}
base = report.get("baselineCheckoutsPerSec")
ratio = report.get("ratio")
print(f"| {label} | {report['buyers']} | {report['checkoutsPerSec']:.0f} | {lat.get('p50', 0):.1f} | "
      f"{lat.get('p99', 0):.1f} | {report['requestsPerSec']:.0f} | "
      f"{'' if base is None else f'{base:.0f}'} | {'' if ratio is None else f'{ratio:.2f}'} | "
      f"{report.get('peakRssMib') or 0:.0f} | {'yes' if report['invariantsOk'] else 'NO'} |")
PY
}

echo "| run | buyers | checkouts/s | p50 ms | p99 ms | requests/s | baseline/s | ratio | peak RSS MiB | invariants |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for buyers in 1 16 64 256; do
  row "SQLite FULL, HTTP" --buyers "$buyers" --baseline
done
row "SQLite FULL, HTTP, hot product (stock 100)" --buyers 64 --hot-product --hot-stock 100
row "SQLite FULL, engine in-process" --buyers 64 --engine --baseline
row "SQLite NORMAL, HTTP" --buyers 64 --synchronous normal --baseline
# The writer lane without its CPU binding: what binding the writer to one CPU gains.
row "SQLite FULL, HTTP, writer not pinned" --buyers 64 --pin-writer false --baseline
# Every message through the queue, as before hand-over (see docs/architecture.md).
row "SQLite FULL, HTTP, hand-over off" --buyers 64 --hand-over false --baseline
# Peak memory over a long run, to compare with the 64-buyer row above.
duration=${LONG:-120s} row "SQLite FULL, HTTP, long run (${LONG:-120s})" --buyers 64
if [ -n "${PG_URL:-}" ]; then
  fresh_pg() { # an empty database on PG_URL's server; prints its URL
    local db="bench_$(date +%s%N)"
    psql "$PG_URL" -qc "CREATE DATABASE $db" >/dev/null
    echo "${PG_URL%/*}/$db"
  }
  for buyers in 1 16 64 256; do
    row "PostgreSQL, HTTP" --buyers "$buyers" --database-url "$(fresh_pg)" --baseline
  done
  row "PostgreSQL, HTTP, hot product (stock 100)" --buyers 64 --hot-product --hot-stock 100 \
    --database-url "$(fresh_pg)"
  row "PostgreSQL, engine in-process" --buyers 64 --engine --baseline --database-url "$(fresh_pg)"
  row "PostgreSQL, engine in-process, lane not pinned" --buyers 64 --engine --pin-writer false \
    --baseline --database-url "$(fresh_pg)"
  row "PostgreSQL, HTTP, hand-over off" --buyers 64 --hand-over false --baseline \
    --database-url "$(fresh_pg)"
fi
