#!/usr/bin/env bash
# Whole-process host scan (`passthru list --json` vs
# `lspci -nn` over the same synthetic sysfs trees, N = 100, 1,000, 10,000
# functions) and `passthru check --json` over every GPU of the N = 1,000 tree,
# with the in-process split (criterion: Host::load vs check).
#
# Prints the markdown for BENCHMARKS.md ("Whole host scan", "check over every
# GPU") and writes it to $BENCH_OUT/table.md.
#
# Environment (all optional):
#   BENCH_OUT        results directory             (target/bench-scan)
#   BENCH_HOSTS      where the trees are generated (target/bench-hosts)
#   BENCH_SIZES      sizes to compare              ("100 1000 10000")
#   BENCH_ROUNDS     alternation rounds per size   (10; 5 for N >= 10,000)
#   BENCH_TREE       head: build a clean export of HEAD (default); worktree: this checkout
#   PASSTHRU_BIN     passthru binary to measure    (default: the one built here)
#   BENCH_CRITERION  0 skips the criterion split   (1)
#   BENCH_REPORT_ONLY=1  only print the table from the results in BENCH_OUT
#
# Alternation: hyperfine runs every run of one command before the next, so each
# size is measured in BENCH_ROUNDS hyperfine invocations of a few runs each, the
# order of the two commands swapped every round, and all runs pooled: both tools
# see the same machine load.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
OUT=${BENCH_OUT:-$REPO/target/bench-scan}
HOSTS=${BENCH_HOSTS:-$REPO/target/bench-hosts}
SIZES=${BENCH_SIZES:-"100 1000 10000"}
CRITERION=${BENCH_CRITERION:-1}

die() {
    echo "bench-scan: $*" >&2
    exit 1
}
need() {
    command -v "$1" >/dev/null 2>&1 || die "missing $1: $2"
}
need hyperfine "apt-get install -y hyperfine"
need lspci "apt-get install -y pciutils"
[[ -x /usr/bin/time ]] || die "missing /usr/bin/time: apt-get install -y time"
need python3 "apt-get install -y python3"
need cargo "install a Rust toolchain"
LSPCI=$(command -v lspci)

mkdir -p "$OUT" "$HOSTS"
if [[ ${BENCH_REPORT_ONLY:-0} != 1 ]]; then
rm -f "$OUT"/hf-*.json "$OUT"/rss-*.txt "$OUT"/load-*

# Binaries, built once per run and frozen into $OUT: by default from a clean
# export of the committed HEAD (other sessions edit this checkout), so the numbers
# belong to one commit; BENCH_TREE=worktree builds the working tree instead.
echo "bench-scan: building (release)" >&2
if [[ ${BENCH_TREE:-head} == worktree ]]; then
    SRC=$REPO
    BUILD_TARGET=$REPO/target
    REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [[ -n $(git status --porcelain -- src iommu-groups pci-ids 2>/dev/null) ]]; then
        REV="$REV+uncommitted changes in src/ iommu-groups/ pci-ids/"
    fi
else
    SRC=$OUT/src
    BUILD_TARGET=$OUT/target
    REV="$(git rev-parse --short HEAD) (a clean export of that commit)"
    rm -rf "$SRC"
    mkdir -p "$SRC"
    git archive HEAD | tar -x -C "$SRC"
    # Cargo.lock is not committed: pin the versions this checkout resolved.
    if [[ -f $REPO/Cargo.lock ]]; then
        cp "$REPO/Cargo.lock" "$SRC/Cargo.lock"
    fi
fi
(cd "$SRC" && CARGO_TARGET_DIR=$BUILD_TARGET cargo build --quiet --release \
    -p passthru-bench --bin gen-host -p passthru --bin passthru) || die "build failed"
BENCH_EXE=$(cd "$SRC" && CARGO_TARGET_DIR=$BUILD_TARGET cargo bench --quiet --no-run \
    --message-format=json -p passthru-bench --bench check_gpus |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "check_gpus":
        print(m["executable"])') || die "building the criterion bench failed"
[[ -x $BENCH_EXE ]] || die "no criterion bench executable"
cp "$BUILD_TARGET/release/gen-host" "$OUT/gen-host"
cp "$BENCH_EXE" "$OUT/check_gpus-bench"
GEN=$OUT/gen-host
PASSTHRU_BIN=${PASSTHRU_BIN:-$BUILD_TARGET/release/passthru}
[[ -x $PASSTHRU_BIN ]] || die "no passthru binary at $PASSTHRU_BIN"
cp "$PASSTHRU_BIN" "$OUT/passthru"
P=$OUT/passthru

# Trees: regenerated when missing or when gen-host changed.
GEN_SUM=$(sha256sum "$GEN" | cut -d' ' -f1)
for n in $SIZES; do
    dir=$HOSTS/$n
    if [[ ! -f $dir.stats.json || "$(cat "$dir.gen" 2>/dev/null)" != "$GEN_SUM" ]]; then
        echo "bench-scan: generating N=$n into $dir" >&2
        rm -f "$dir.gen" "$dir.stats.json"
        # Deleting a 230,000-file tree takes minutes here: move it aside now,
        # delete it after the measurements.
        if [[ -e $dir ]]; then
            mkdir -p "$HOSTS/.stale"
            mv "$dir" "$HOSTS/.stale/$n.$$.$RANDOM"
        fi
        "$GEN" "$n" "$dir" >"$dir.stats.json.tmp"
        mv "$dir.stats.json.tmp" "$dir.stats.json"
        echo "$GEN_SUM" >"$dir.gen"
    fi
    # Both tools must read the whole tree, silently, and agree with the generator.
    "$P" list --json --root "$dir" >"$OUT/list-$n.json" 2>"$OUT/list-$n.err" ||
        die "passthru list failed on N=$n (see $OUT/list-$n.err)"
    if [[ -s $OUT/list-$n.err ]]; then
        die "passthru list printed notes on N=$n: $(head -3 "$OUT/list-$n.err")"
    fi
    "$LSPCI" -nn -A linux-sysfs -O "sysfs.path=$dir/sys/bus/pci" >"$OUT/lspci-$n.txt" 2>"$OUT/lspci-$n.err" ||
        die "lspci failed on N=$n"
    if [[ -s $OUT/lspci-$n.err ]]; then
        die "lspci printed errors on N=$n: $(head -3 "$OUT/lspci-$n.err")"
    fi
    python3 - "$dir.stats.json" "$OUT/list-$n.json" "$OUT/lspci-$n.txt" "$n" <<'EOF' || die "N=$n: tree check failed"
import json, sys
stats = json.load(open(sys.argv[1]))
out = json.load(open(sys.argv[2]))
lspci = [l for l in open(sys.argv[3]) if l.strip()]
n = int(sys.argv[4])
groups = len(out["groups"])
devs = sum(len(g["devices"]) for g in out["groups"]) + len(out["ungrouped"])
gpus = sum(1 for g in out["groups"] for d in g["devices"] if d["class"].startswith("03"))
ok = (stats["devices"] == n == devs == len(lspci) and groups == stats["groups"]
      and gpus == stats["gpus"])
print(f"bench-scan: N={n}: generated {stats}; passthru list: {devs} functions, "
      f"{groups} groups, {gpus} GPUs; lspci: {len(lspci)} lines", file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
done

load() { uptime | sed 's/.*load average: //'; }

# hf TAG ROUNDS RUNS NAME1 CMD1 NAME2 CMD2 [extra hyperfine args]
hf() {
    local tag=$1 rounds=$2 runs=$3 n1=$4 c1=$5 n2=$6 c2=$7
    shift 7
    local r
    for ((r = 1; r <= rounds; r++)); do
        if ((r % 2)); then
            hyperfine -N --style none --warmup 1 --runs "$runs" "$@" \
                --export-json "$OUT/hf-$tag-$r.json" -n "$n1" "$c1" -n "$n2" "$c2" >/dev/null
        else
            hyperfine -N --style none --warmup 1 --runs "$runs" "$@" \
                --export-json "$OUT/hf-$tag-$r.json" -n "$n2" "$c2" -n "$n1" "$c1" >/dev/null
        fi
    done
}

# Peak RSS (KiB), the largest of 3 runs.
rss() {
    local tag=$1 i
    shift
    for i in 1 2 3; do
        /usr/bin/time -f %M -o "$OUT/rss-$tag.$i" "$@" >/dev/null 2>&1 || true
    done
    sort -n "$OUT"/rss-"$tag".? | tail -1 >"$OUT/rss-$tag.txt"
}

load >"$OUT/load-start"
for n in $SIZES; do
    dir=$HOSTS/$n
    rounds=${BENCH_ROUNDS:-$((n >= 10000 ? 5 : 10))}
    runs=$((n >= 10000 ? 2 : n >= 1000 ? 3 : 5))
    echo "bench-scan: N=$n: $rounds rounds x $runs runs each, load $(load)" >&2
    load >"$OUT/load-$n.before"
    hf "scan-$n" "$rounds" "$runs" \
        "passthru" "$P list --json --root $dir" \
        "lspci" "$LSPCI -nn -A linux-sysfs -O sysfs.path=$dir/sys/bus/pci"
    load >"$OUT/load-$n.after"
    rss "passthru-$n" "$P" list --json --root "$dir"
    rss "lspci-$n" "$LSPCI" -nn -A linux-sysfs -O "sysfs.path=$dir/sys/bus/pci"
done

# Item 4: check over every GPU of the N = 1,000 tree (whole process).
C1000=$HOSTS/1000
if [[ " $SIZES " == *" 1000 "* ]]; then
    echo "bench-scan: check over every GPU (N=1000), load $(load)" >&2
    "$P" check --json --root "$C1000" >"$OUT/check-1000.json" || true
    load >"$OUT/load-check.before"
    # -i: check exits 1 when a device fails, which is a result, not an error.
    hyperfine -N --style none -i --warmup 2 --runs 30 --export-json "$OUT/hf-check-1.json" \
        -n "passthru check" "$P check --json --root $C1000" >/dev/null
    load >"$OUT/load-check.after"
    rss "check-1000" "$P" check --json --root "$C1000"
    if [[ $CRITERION == 1 ]]; then
        echo "bench-scan: criterion split (Host::load vs check), load $(load)" >&2
        rm -rf "$REPO/target/criterion/check_every_gpu_n1000" "$REPO/target/criterion/check_every_gpu_large"
        large=
        if [[ " $SIZES " == *" 10000 "* ]]; then
            large=$HOSTS/10000
        fi
        (cd "$SRC/bench" && CRITERION_HOME=$REPO/target/criterion PASSTHRU_BENCH_ROOT=$C1000 \
            PASSTHRU_BENCH_ROOT_LARGE=$large "$OUT/check_gpus-bench" --bench) \
            >"$OUT/criterion.txt" 2>&1 || die "criterion bench failed (see $OUT/criterion.txt)"
    fi
fi
load >"$OUT/load-end"
echo "$REV" >"$OUT/rev"
fi # BENCH_REPORT_ONLY

python3 - "$OUT" "$HOSTS" "$REPO" "$SIZES" <<'EOF' | tee "$OUT/table.md"
import glob, json, os, platform, statistics as st, sys
out, hosts, repo, sizes = sys.argv[1:5]
rev, load0, load1 = (open(f"{out}/{f}").read().strip() for f in ("rev", "load-start", "load-end"))
sizes = [int(s) for s in sizes.split()]

def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"

def pooled(tag):
    res = {}
    for f in sorted(glob.glob(f"{out}/hf-{tag}-*.json")):
        for r in json.load(open(f))["results"]:
            d = res.setdefault(r["command"], {"t": [], "cpu": []})
            d["t"] += r["times"]
            # hyperfine reports mean user and system time per invocation.
            d["cpu"] += [r["user"] + r["system"]] * len(r["times"])
    return res

def ms(x):
    return f"{x * 1000:.1f} ms" if x < 10 else f"{x:.2f} s"

def row(d):
    t = d["t"]
    sd = st.stdev(t) if len(t) > 1 else 0.0
    return st.median(t), f"{ms(min(t))} – {ms(max(t))} (σ {ms(sd)})", st.mean(d["cpu"]), len(t)

def rss(tag):
    try:
        return f"{int(open(f'{out}/rss-{tag}.txt').read()) / 1024:.1f} MiB"
    except (OSError, ValueError):
        return "n/a"

def load(name):
    try:
        return open(f"{out}/load-{name}").read().strip()
    except OSError:
        return "?"

print("## Whole host scan")
print()
print("Reproduce: `scripts/bench-scan.sh` (prints this table; results in target/bench-scan/).")
print()
print("Machine: %d CPUs (`nproc`), %s, Linux %s; passthru %s. Load average (1, 5, 15 min) "
      "at start %s, at end %s (shared machine: other jobs were compiling)." % (
          os.cpu_count(), cpu_model(), platform.release(), rev, load0, load1))
print()
print("Trees: `gen-host N target/bench-hosts/N` (bench/, built by the script). Commands, stdout to "
      "/dev/null, `hyperfine -N`, the two commands alternated (rounds of a few runs each, order "
      "swapped every round, runs pooled):")
print()
print("- `passthru list --json --root R`")
print("- `lspci -nn -A linux-sysfs -O sysfs.path=R/sys/bus/pci`")
print()
print("| N | tree (groups, GPUs, VFs, switches) | command | median | spread: min – max (σ) | CPU user+sys, mean | runs | max RSS | passthru / lspci: median (CPU mean) | load before → after |")
print("|---|---|---|---|---|---|---|---|---|---|")
med = {}
for n in sizes:
    s = json.load(open(f"{hosts}/{n}.stats.json"))
    p = pooled(f"scan-{n}")
    tree = f"{s['groups']} groups, {s['gpus']} GPUs, {s['vfs']} VFs, {s['switches']} switches"
    rp = row(p["passthru"])
    rl = row(p["lspci"])
    med[n] = (rp[0], rl[0], rp[2], rl[2])
    ld = f"{load(f'{n}.before')} → {load(f'{n}.after')}"
    print(f"| {n:,} | {tree} | passthru list | {ms(rp[0])} | {rp[1]} | {ms(rp[2])} | {rp[3]} | {rss(f'passthru-{n}')} | **{rp[0] / rl[0]:.2f}** (CPU {rp[2] / rl[2]:.2f}) | {ld} |")
    print(f"| {n:,} | | lspci -nn | {ms(rl[0])} | {rl[1]} | {ms(rl[2])} | {rl[3]} | {rss(f'lspci-{n}')} | | |")
print()
if 1000 in med and 10000 in med:
    gp = med[10000][0] / med[1000][0]
    gl = med[10000][1] / med[1000][1]
    print(f"Growth N = 1,000 → 10,000 (median): passthru **{gp:.1f}x** (target ≤ 11x: "
          f"{'met' if gp <= 11 else 'MISSED'}), lspci {gl:.1f}x; CPU time: passthru "
          f"{med[10000][2] / med[1000][2]:.1f}x, lspci {med[10000][3] / med[1000][3]:.1f}x.")
if 1000 in med:
    r = med[1000][0] / med[1000][1]
    print(f"N = 1,000: passthru / lspci = **{r:.2f}** (target ≤ 0.5: {'met' if r <= 0.5 else 'MISSED'}); "
          f"by CPU time {med[1000][2] / med[1000][3]:.2f}.")
print()
c = pooled("check")
if c:
    print("## check over every GPU")
    print()
    print("Same run and machine as \"Whole host scan\" (`scripts/bench-scan.sh`).")
    print()
    cj = json.load(open(f"{out}/check-1000.json"))
    nd = len(cj["devices"])
    print(f"Tree N = 1,000; `passthru check --json --root R` with no device named checks every "
          f"display device and its companion functions ({nd} functions reported). "
          f"Whole process: `hyperfine -N -i --warmup 2 --runs 30`. Split: criterion "
          f"(`PASSTHRU_BENCH_ROOT=$PWD/target/bench-hosts/1000 cargo bench -p passthru-bench --bench check_gpus`, absolute path; "
          f"the script builds it with passthru from the same commit), in process, "
          f"median of the per-iteration estimate with its 95% confidence interval.")
    print()
    print("| what | command / function | median | spread | CPU user+sys, mean | runs | max RSS | load before → after |")
    print("|---|---|---|---|---|---|---|---|")
    r = row(c["passthru check"])
    print(f"| whole process | `passthru check --json --root R` | {ms(r[0])} | {r[1]} | {ms(r[2])} | {r[3]} | "
          f"{rss('check-1000')} | {load('check.before')} → {load('check.after')} |")
    cdir = f"{repo}/target/criterion/check_every_gpu_n1000"
    names = [("load_sysfs", "reading sysfs", "`Host::load(root)`"),
             ("analysis_check", "analysis", "`check(&host, &[])`"),
             ("load_and_check", "both", "`Host::load` + `check`")]
    ests = {}
    for key, what, fn in names:
        try:
            e = json.load(open(f"{cdir}/{key}/new/estimates.json"))["median"]
        except OSError:
            continue
        ci = e["confidence_interval"]
        ests[key] = e["point_estimate"]
        print(f"| {what} | {fn} | {ms(e['point_estimate'] / 1e9)} | 95% CI {ms(ci['lower_bound'] / 1e9)} – "
              f"{ms(ci['upper_bound'] / 1e9)} | | criterion | | |")
    try:
        e = json.load(open(f"{repo}/target/criterion/check_every_gpu_large/analysis_check/new/estimates.json"))["median"]
        s10 = json.load(open(f"{hosts}/10000.stats.json"))
        ci = e["confidence_interval"]
        print(f"| analysis, N = 10,000 ({s10['gpus']} GPUs) | `check(&host, &[])` | {ms(e['point_estimate'] / 1e9)} | "
              f"95% CI {ms(ci['lower_bound'] / 1e9)} – {ms(ci['upper_bound'] / 1e9)} | | criterion | | |")
        if "analysis_check" in ests:
            ests["large"] = e["point_estimate"]
    except OSError:
        pass
    if "load_sysfs" in ests and "analysis_check" in ests:
        tot = ests["load_sysfs"] + ests["analysis_check"]
        print()
        print(f"Split: reading sysfs {100 * ests['load_sysfs'] / tot:.1f}%, analysis "
              f"{100 * ests['analysis_check'] / tot:.1f}% of load + check.", end="")
        if "large" in ests:
            print(f" Analysis N = 1,000 → 10,000: {ests['large'] / ests['analysis_check']:.0f}x.", end="")
        print()
EOF

if [[ -d $HOSTS/.stale ]]; then
    echo "bench-scan: deleting stale trees in $HOSTS/.stale" >&2
    rm -rf "$HOSTS/.stale"
fi
