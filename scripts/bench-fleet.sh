#!/usr/bin/env bash
# Fleet check: `passthru check --json --roots-dir D` over 1,000 snapshots of a
# 100-function host, against the anchor, in the same run:
#   fleet-1000   passthru check --json --roots-dir fleet-1000        (one process)
#   single-1000  1,000 separate `passthru check --json --root R`     (one per node)
#   fleet-100    passthru check --json --roots-dir fleet-100          (linearity)
# and fleet-1000 with two loader threads (PASSTHRU_FLEET_JOBS=2) against one.
#
# The host: `gen-host 100` (bench/, the synthetic fixture builder), snapshotted once
# with `passthru snapshot`; each node is a copy of that snapshot (`cp -al`: its files
# hard links, its directories its own) with its own proc/sys/kernel/hostname
# (node-0001 ...), so every node is read through its own paths. fleet-100 holds
# symbolic links to the first 100 nodes.
#
# Prints the markdown for BENCHMARKS.md ("Fleet check") and writes it to
# $BENCH_OUT/table.md.
#
# Environment (all optional):
#   BENCH_OUT      results directory          (target/bench-fleet)
#   BENCH_ROUNDS   alternation rounds         (3)
#   BENCH_RUNS     runs per command per round (2)
#   PASSTHRU_BIN   passthru binary            (built here: cargo build --release)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
OUT=${BENCH_OUT:-$REPO/target/bench-fleet}
ROUNDS=${BENCH_ROUNDS:-3}
RUNS=${BENCH_RUNS:-2}

die() {
    echo "bench-fleet: $*" >&2
    exit 1
}
command -v hyperfine >/dev/null || die "missing hyperfine: apt-get install -y hyperfine"
command -v python3 >/dev/null || die "missing python3"
[[ -x /usr/bin/time ]] || die "missing /usr/bin/time: apt-get install -y time"

mkdir -p "$OUT"
rm -f "$OUT"/hf-*.json "$OUT"/rss-*
echo "bench-fleet: building (release)" >&2
cargo build --quiet --release -p passthru-bench --bin gen-host -p passthru --bin passthru
REV=$(git rev-parse --short HEAD)
if [[ -n $(git status --porcelain -- src iommu-groups pci-ids config-gen bench) ]]; then
    REV="$REV+uncommitted changes"
fi
P=${PASSTHRU_BIN:-$REPO/target/release/passthru}
cp "$P" "$OUT/passthru"
P=$OUT/passthru

# Trees: made again only when gen-host or passthru changed (deleting 1.7 million
# entries takes minutes here: an old set is moved aside and deleted at the end).
TREES=$OUT/trees
STAMP=$(cat "$REPO/target/release/gen-host" "$P" | sha256sum | cut -d' ' -f1)
if [[ "$(cat "$TREES/.stamp" 2>/dev/null)" != "$STAMP" ]]; then
    if [[ -e $TREES ]]; then
        mv "$TREES" "$OUT/.stale.$$"
    fi
    mkdir -p "$TREES/fleet-1000" "$TREES/fleet-100"
    "$REPO/target/release/gen-host" 100 "$TREES/host" >"$OUT/host.stats.json"
    "$P" --root "$TREES/host" snapshot "$TREES/snap" >/dev/null
    for i in $(seq -w 1 1000); do
        n=node-$i
        cp -al "$TREES/snap" "$TREES/fleet-1000/$n"
        rm -f "$TREES/fleet-1000/$n/proc/sys/kernel/hostname"
        echo "$n" >"$TREES/fleet-1000/$n/proc/sys/kernel/hostname"
    done
    for i in $(seq -w 1 100); do
        ln -s "../fleet-1000/node-0$i" "$TREES/fleet-100/node-0$i"
    done
    echo "$STAMP" >"$TREES/.stamp"
fi
# The anchor's command list: one `check --json --root R` per node.
: >"$OUT/single.sh"
for d in "$TREES"/fleet-1000/*; do
    echo "\"$P\" check --json --root \"$d\"" >>"$OUT/single.sh"
done
echo "true" >>"$OUT/single.sh"

# Both answers agree: each node's report in the fleet output is what the node
# alone prints (checked on every 100th node), and every node is there.
"$P" check --json --roots-dir "$TREES/fleet-1000" >"$OUT/fleet-1000.json" || true
python3 - "$OUT/fleet-1000.json" "$P" "$TREES/fleet-1000" <<'EOF' || die "fleet output check failed"
import json, subprocess, sys
fleet = json.load(open(sys.argv[1]))
assert len(fleet["nodes"]) == 1000, len(fleet["nodes"])
for i in range(1, 1001, 100):
    n = f"node-{i:04d}"
    alone = subprocess.run([sys.argv[2], "check", "--json", "--root", f"{sys.argv[3]}/{n}"],
                           capture_output=True, text=True).stdout
    assert fleet["nodes"][n] == json.loads(alone), n
print(f"bench-fleet: 1000 nodes, {len(fleet['nodes']['node-0001']['devices'])} devices each, "
      f"summary {dict((k, len(v)) for k, v in fleet['summary'].items() if isinstance(v, list))}", file=sys.stderr)
EOF

load() { uptime | sed 's/.*load average: //'; }
load >"$OUT/load-start"
F1000="$P check --json --roots-dir $TREES/fleet-1000"
F100="$P check --json --roots-dir $TREES/fleet-100"
for ((r = 1; r <= ROUNDS; r++)); do
    echo "bench-fleet: round $r/$ROUNDS, load $(load)" >&2
    # -i: check exits 1 when a device fails, a result, not an error.
    if ((r % 2)); then
        hyperfine -i --style none --runs "$RUNS" --export-json "$OUT/hf-main-$r.json" \
            -n fleet-1000 "$F1000" -n single-1000 "bash $OUT/single.sh" -n fleet-100 "$F100" \
            -n fleet-1000-2jobs "env PASSTHRU_FLEET_JOBS=2 $F1000" >/dev/null
    else
        hyperfine -i --style none --runs "$RUNS" --export-json "$OUT/hf-main-$r.json" \
            -n fleet-1000-2jobs "env PASSTHRU_FLEET_JOBS=2 $F1000" -n fleet-100 "$F100" \
            -n single-1000 "bash $OUT/single.sh" -n fleet-1000 "$F1000" >/dev/null
    fi
done
load >"$OUT/load-end"
/usr/bin/time -f %M -o "$OUT/rss-fleet-1000" $F1000 >/dev/null || true
/usr/bin/time -f %M -o "$OUT/rss-fleet-100" $F100 >/dev/null || true

python3 - "$OUT" "$REV" <<'EOF' | tee "$OUT/table.md"
import glob, json, os, statistics as st, sys
out, rev = sys.argv[1:3]
res = {}
for f in sorted(glob.glob(f"{out}/hf-main-*.json")):
    for r in json.load(open(f))["results"]:
        d = res.setdefault(r["command"], {"t": [], "cpu": []})
        d["t"] += r["times"]
        d["cpu"] += [r["user"] + r["system"]] * len(r["times"])
med = {k: st.median(v["t"]) for k, v in res.items()}
cpu = {k: st.mean(v["cpu"]) for k, v in res.items()}
rss = {}
for k in ("fleet-1000", "fleet-100"):
    try:
        rss[k] = f"{int(open(f'{out}/rss-{k}').read()) / 1024:.0f} MiB"
    except (OSError, ValueError):
        rss[k] = "n/a"
load0, load1 = (open(f"{out}/load-{x}").read().strip() for x in ("start", "end"))
stats = json.load(open(f"{out}/host.stats.json"))
print("## Fleet check")
print()
print("Reproduce: `scripts/bench-fleet.sh` (prints this table; results in target/bench-fleet/).")
print()
print(f"Machine: {os.cpu_count()} CPUs (`nproc`); passthru {rev}; load average at start {load0}, "
      f"at end {load1} (shared machine). Nodes: 1,000 copies of one `passthru snapshot` of "
      f"`gen-host 100` ({stats['devices']} functions, {stats['groups']} groups, {stats['gpus']} GPUs), "
      f"each with its own host name; `hyperfine -i`, {len(res['fleet-1000']['t'])} runs per command, "
      f"the commands' order swapped every round.")
print()
print("| command | what | median | min – max | CPU user+sys, mean | max RSS |")
print("|---|---|---|---|---|---|")
rows = [("fleet-1000", "`passthru check --json --roots-dir fleet-1000`", rss.get("fleet-1000", "")),
        ("single-1000", "1,000 × `passthru check --json --root fleet-1000/node-N` (the anchor)", ""),
        ("fleet-100", "`passthru check --json --roots-dir fleet-100`", rss.get("fleet-100", "")),
        ("fleet-1000-2jobs", "fleet-1000 with `PASSTHRU_FLEET_JOBS=2` (two loader threads)", "")]
for k, what, m in rows:
    t = res[k]["t"]
    print(f"| {k} | {what} | {med[k]:.2f} s | {min(t):.2f} – {max(t):.2f} s | {cpu[k]:.2f} s | {m} |")
print()
print(f"Ratios (medians): fleet-1000 / single-1000 = **{med['fleet-1000'] / med['single-1000']:.2f}**; "
      f"fleet-1000 / fleet-100 = **{med['fleet-1000'] / med['fleet-100']:.1f}** (linear: 10); "
      f"two threads / one = **{med['fleet-1000-2jobs'] / med['fleet-1000']:.2f}** "
      f"(CPU {cpu['fleet-1000-2jobs'] / cpu['fleet-1000']:.2f}).")
EOF

rm -rf "$OUT"/.stale.*
