#!/usr/bin/env bash
# Interleaved A/B of two built binaries on the checkout benchmark: runs A B A B … (PAIRS pairs,
# default 5), each on a fresh database, and prints one markdown row per run with checkouts/s,
# p99, the same-run baseline and the ratio, and the CPU per checkout (the service's, a local
# PostgreSQL's, the delay line's), then the medians of each side. Machines drift, so compare the sides only through these pairs.
#
#   scripts/ab.sh BIN_A BIN_B [bench arguments …]        # SQLite (a temporary file per run)
#   PG_URL=postgres://… scripts/ab.sh BIN_A BIN_B …      # PostgreSQL (an empty database per run)
#   HTTP=1 scripts/ab.sh BIN_A BIN_B …                   # each run a `serve` of its own (SQLite,
#                                                        # limits off) driven by `bench --url`
#
# The bench arguments default to `--buyers 64 --duration 10s --baseline`.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,10p "$0"; exit 2; }
a=$1 b=$2; shift 2
args=("$@"); [ ${#args[@]} -gt 0 ] || args=(--buyers 64 --duration 10s --baseline)
pairs=${PAIRS:-5}
fresh_url() {
  if [ -n "${PG_URL:-}" ]; then
    local db="ab_$(date +%s%N)"
    psql "$PG_URL" -qc "CREATE DATABASE $db" >/dev/null
    echo "${PG_URL%/*}/$db"
  else
    echo "sqlite://$(mktemp -d)/ab.db"
  fi
}
port=${PORT:-18650}
serve() { # binary, database URL: a server of its own with the limits off, its pid in $served
  MICROCOMMERCE_ADMIN_TOKEN=ab "$1" serve --addr "127.0.0.1:$port" --database-url "$2" --rate-limit 0 \
    --max-unpaid-per-address 0 --max-unpaid-per-buyer 0 --max-held-per-address 512 \
    --log-level warn >/dev/null 2>&1 &
  served=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "serve did not start on port $port" >&2; kill "$served"; exit 1
}
run() { # side, binary
  local json
  if [ -n "${HTTP:-}" ]; then
    serve "$2" "$(fresh_url)"
    json=$(MICROCOMMERCE_ADMIN_TOKEN=ab "$2" bench --json "${args[@]}" --url "http://127.0.0.1:$port" | tail -n 1)
    kill "$served"; wait "$served" 2>/dev/null || true
  else
    json=$("$2" bench --json "${args[@]}" --database-url "$(fresh_url)" | tail -n 1)
  fi
  python3 - "$1" "$json" <<'PY'
import json, sys
side, r = sys.argv[1], json.loads(sys.argv[2])
print(f"| {side} | {r['checkoutsPerSec']:.0f} | {(r.get('latencyMs') or {}).get('p99', 0):.1f} | "
      f"{r.get('baselineCheckoutsPerSec') or 0:.0f} | {r.get('ratio') or 0:.3f} | "
      f"{((r.get('cpuMsPerCheckout') or {}).get('service') or 0):.3f} | "
      f"{((r.get('cpuMsPerCheckout') or {}).get('postgres') or 0):.3f} | "
      f"{((r.get('cpuMsPerCheckout') or {}).get('delayLine') or 0):.3f} | "
      f"{'yes' if r['invariantsOk'] else 'NO'} |")
PY
}
echo "| side | checkouts/s | p99 ms | baseline/s | ratio | CPU ms/checkout | PostgreSQL CPU ms | delay line CPU ms | invariants |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
rows=$(mktemp)
for _ in $(seq "$pairs"); do run A "$a"; run B "$b"; done | tee "$rows"
python3 - "$rows" <<'PY'
import statistics, sys
rows = [line.split("|")[1:-1] for line in open(sys.argv[1])]
pairs = list(zip([r for r in rows if r[0].strip() == "A"], [r for r in rows if r[0].strip() == "B"]))
for side in "AB":
    ratios = [float(r[4]) for r in rows if r[0].strip() == side]
    rates = [float(r[1]) for r in rows if r[0].strip() == side]
    cpu = [float(r[5]) for r in rows if r[0].strip() == side]
    database = [float(r[6]) for r in rows if r[0].strip() == side]
    print(f"median {side}: {statistics.median(rates):.0f}/s, ratio {statistics.median(ratios):.3f} "
          f"(ratios {min(ratios):.3f}–{max(ratios):.3f}), CPU {statistics.median(cpu):.3f} ms/checkout"
          + (f", PostgreSQL {statistics.median(database):.3f} ms" if max(database) > 0 else ""))
per_pair = [float(b[1]) / float(a[1]) for a, b in pairs]
cpu_pair = [float(b[5]) / float(a[5]) for a, b in pairs if float(a[5]) > 0]
print("checkouts/s B/A per pair: " + ", ".join(f"{x:.2f}" for x in per_pair)
      + f" (median {statistics.median(per_pair):.2f})")
if cpu_pair:
    print("CPU per checkout B/A per pair: " + ", ".join(f"{x:.2f}" for x in cpu_pair)
          + f" (median {statistics.median(cpu_pair):.2f})")
for column, name in ((6, "PostgreSQL"), (7, "delay line")):
    ratios = [float(b[column]) / float(a[column]) for a, b in pairs if float(a[column]) > 0]
    if ratios:
        print(f"{name} CPU per checkout B/A per pair: " + ", ".join(f"{x:.2f}" for x in ratios)
              + f" (median {statistics.median(ratios):.2f})")
PY
rm -f "$rows"
