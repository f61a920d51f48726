#!/usr/bin/env bash
# Interleaved A/B of two built binaries on the checkout benchmark: runs A B A B … (PAIRS pairs,
# default 5), each on a fresh database, and prints one markdown row per run with checkouts/s,
# p99, the same-run baseline and the ratio, then the median ratio of each side. Machines drift,
# so compare the sides only through these pairs.
#
#   scripts/ab.sh BIN_A BIN_B [bench arguments …]        # SQLite (a temporary file per run)
#   PG_URL=postgres://… scripts/ab.sh BIN_A BIN_B …      # PostgreSQL (an empty database per run)
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
run() { # side, binary
  local json
  json=$("$2" bench --json "${args[@]}" --database-url "$(fresh_url)" | tail -n 1)
  python3 - "$1" "$json" <<'PY'
import json, sys
side, r = sys.argv[1], json.loads(sys.argv[2])
print(f"| {side} | {r['checkoutsPerSec']:.0f} | {(r.get('latencyMs') or {}).get('p99', 0):.1f} | "
      f"{r.get('baselineCheckoutsPerSec') or 0:.0f} | {r.get('ratio') or 0:.3f} | "
      f"{'yes' if r['invariantsOk'] else 'NO'} |")
PY
}
echo "| side | checkouts/s | p99 ms | baseline/s | ratio | invariants |"
echo "|---|---:|---:|---:|---:|---|"
rows=$(for _ in $(seq "$pairs"); do run A "$a"; run B "$b"; done | tee -a /dev/stderr)
python3 - "$rows" <<'PY'
import statistics, sys
rows = [line.split("|")[1:-1] for line in sys.argv[1].splitlines()]
for side in "AB":
    ratios = [float(r[4]) for r in rows if r[0].strip() == side]
    rates = [float(r[1]) for r in rows if r[0].strip() == side]
    print(f"median {side}: {statistics.median(rates):.0f}/s, ratio {statistics.median(ratios):.3f} "
          f"(ratios {min(ratios):.3f}–{max(ratios):.3f})")
PY
