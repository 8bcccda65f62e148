#!/usr/bin/env bash
# DMA map/unmap through vfio-core's safe API vs raw ioctls, in one QEMU
# TCG guest of the VM harness (tests/vm), and the markdown table for BENCHMARKS.md.
#
# Builds, static as scripts/vm-test.sh does (CARGO_TARGET_DIR=target/vm):
#   vfio-core/examples/dma_bench.rs   the safe API (owned mappings: OwnedDma::map_part and
#                                     unmap_drop, or with API=boxed map and unmap), release
#   tests/vm/guest/dma-bench.c        plain VFIO_IOMMU_MAP_DMA / UNMAP_DMA loops, gcc -O2
# boots ONE guest per IOMMU (topology rootports: the nvme at 01:00.0 on vfio-pci, alone in
# its group) whose plan runs both programs ROUNDS times per chunk size (2 MiB, 4 KiB),
# alternating, the order swapped every round, and once per round each with --overhead
# (the layers' own cost per call: guards over a space that makes no ioctl, and
# VFIO_IOMMU_UNMAP_DMA where nothing is mapped, raw vs through vfio-core), then prints
# the tables (median, min-max, ratio passthru/raw) and writes them to $OUT/table.md.
# Both programs check every call (each map returns 0, SIZE/CHUNK calls, each unmap
# unmaps CHUNK bytes, a re-map of the first chunk at the same IOVA succeeds afterwards);
# any failure fails the script.
#
# Environment (all optional):
#   SIZE=1G          bytes mapped per run (K/M/G suffixes), both chunk sizes
#   SIZE_4K=$SIZE    bytes mapped per run in the 4 KiB rows (1 GiB = 262,144 map ioctls:
#                    about 5 s of map + unmap per run under TCG at load 2; one guest with
#                    ROUNDS=7 takes about 4 minutes)
#   ROUNDS=5         runs of each program per chunk size
#   API=parts        the owned-mapping calls dma_bench times: "parts" (map_part/unmap_drop,
#                    what a VMM uses for guest RAM) or "boxed" (map/unmap, a box per mapping)
#   IOMMU=intel      emulated IOMMUs, one guest each: "intel", "amd" or "intel amd"
#   TOPOLOGY=rootports
#   OUT=target/bench-dma   guest outputs, results.txt, table.md
#   PT_VM_MEM=3072   guest memory in MiB (the 1 GiB buffer is pinned while mapped)
#   PT_VM_TIMEOUT    guest timeout in seconds (default: 300 + 60 per round)
#   BENCH_REPORT_ONLY=1   only print the table from $OUT/results.txt
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/vm/lib.sh
source tests/vm/lib.sh

to_bytes() { # 1G -> 1073741824
	local s=$1 n mul=1
	case $s in
	*[Kk]) mul=$((1 << 10)) n=${s%?} ;;
	*[Mm]) mul=$((1 << 20)) n=${s%?} ;;
	*[Gg]) mul=$((1 << 30)) n=${s%?} ;;
	*) n=$s ;;
	esac
	[[ $n =~ ^[0-9]+$ ]] || die "bad size '$s'"
	echo $((n * mul))
}

SIZE=$(to_bytes "${SIZE:-1G}")
SIZE_4K=$(to_bytes "${SIZE_4K:-$SIZE}")
ROUNDS=${ROUNDS:-5}
API=${API:-parts}
[[ $API == parts || $API == boxed ]] || die "API must be parts or boxed, not '$API'"
IOMMUS=${IOMMU:-intel}
TOPOLOGY=${TOPOLOGY:-rootports}
OUT=${OUT:-$PT_REPO/target/bench-dma}
export PT_VM_MEM=${PT_VM_MEM:-3072}
export PT_VM_TIMEOUT=${PT_VM_TIMEOUT:-$((300 + 60 * ROUNDS))}
CHUNKS="2097152 4096"
((SIZE % 2097152 == 0 && SIZE_4K % 4096 == 0)) || die "SIZE must be a multiple of 2 MiB"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "bad ROUNDS '$ROUNDS'"

size_for() { if (($1 == 4096)); then echo "$SIZE_4K"; else echo "$SIZE"; fi; }

mkdir -p "$OUT"
if [[ ${BENCH_REPORT_ONLY:-0} != 1 ]]; then
	need_tools qemu-system-x86_64 gcc cargo busybox cpio
	kdir=$(tests/vm/fetch-kernel.sh) || die "no stock kernel (run scripts/vm-test.sh once)"
	log "stock kernel: $kdir"

	# ---- build ----------------------------------------------------------------------
	mkdir -p "$PT_VM_TARGET"
	log "building tests/vm/guest/dma-bench.c (static, -O2)"
	gcc -static -O2 -Wall -Wextra -Werror -o "$PT_VM_TARGET/dma-bench" tests/vm/guest/dma-bench.c ||
		die "dma-bench.c does not build"
	log "building vfio-core's dma_bench example (static, release)"
	CARGO_TARGET_DIR=$PT_VM_TARGET RUSTFLAGS='-C target-feature=+crt-static' \
		cargo build --quiet --release --target x86_64-unknown-linux-gnu \
		-p passthru-vfio-core --example dma_bench || die "dma_bench does not build"
	rust_bin=$PT_VM_TARGET/x86_64-unknown-linux-gnu/release/examples/dma_bench

	# ---- plan: alternate the two programs, order swapped every round -----------------
	plan=$OUT/plan
	limit=$((SIZE_4K / 4096 + 16))
	((limit > 65535)) || limit=65535
	{
		# type1 refuses more than dma_entry_limit (default 65,535) mappings per container.
		echo "limit echo $limit >/sys/module/vfio_iommu_type1/parameters/dma_entry_limit"
		for ((r = 1; r <= ROUNDS; r++)); do
			if ((r % 2)); then order="raw passthru"; else order="passthru raw"; fi
			for c in $CHUNKS; do
				for impl in $order; do
					if [[ $impl == raw ]]; then prog=dma-bench; else prog="dma_bench --api $API"; fi
					echo "r$r-c$c-$impl $prog --chunk $c --size $(size_for "$c")"
				done
			done
			for impl in $order; do
				if [[ $impl == raw ]]; then prog=dma-bench; else prog="dma_bench --api $API"; fi
				echo "r$r-overhead-$impl $prog --overhead --chunk 4096 --size $SIZE_4K"
			done
		done
	} >"$plan"

	: >"$OUT/results.txt"
	: >"$OUT/machine.txt"
	{
		echo "cpus: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
		echo "host kernel: $(uname -r); qemu: $(qemu-system-x86_64 --version | head -n1)"
		echo "guest: $(basename "$kdir"), TCG, -smp 1, ${PT_VM_MEM} MiB, topology $TOPOLOGY"
		echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git status --porcelain -- vfio-core tests/vm/guest/dma-bench.c 2>/dev/null | grep -q . && echo ' + uncommitted changes in vfio-core/ or dma-bench.c')"
	} >>"$OUT/machine.txt"
	for iommu in $IOMMUS; do
		echo "load before ($iommu): $(uptime)" >>"$OUT/machine.txt"
		t0=$SECONDS
		tests/vm/run-guest.sh --iommu "$iommu" --topology "$TOPOLOGY" --out "$OUT/$iommu" \
			--plan "$plan" --bin "$PT_VM_TARGET/dma-bench" --bin "$rust_bin" ||
			die "the $iommu guest failed (outputs in $OUT/$iommu)"
		echo "guest run ($iommu): $((SECONDS - t0)) s wall, boot to power-off" >>"$OUT/machine.txt"
		echo "load after ($iommu): $(uptime)" >>"$OUT/machine.txt"
		while read -r name _; do
			[[ $name == limit ]] && continue
			line=$(grep -h '^dma-bench impl=' "$OUT/$iommu/out/$name.log") ||
				die "$iommu/$name printed no result line"
			echo "iommu=$iommu round=${name%%-*} $line" >>"$OUT/results.txt"
		done <"$plan"
	done
fi

# ---- checks and table -------------------------------------------------------------------
[[ -s $OUT/results.txt ]] || die "no results in $OUT/results.txt"
# Every run: calls = size/chunk, remap ok, and both programs used the same IOVA.
awk '
	/mode=overhead/ { next }
	{ for (i = 1; i <= NF; i++) if (split($i, kv, "=") == 2) f[kv[1]] = kv[2] }
	f["calls"] * f["chunk"] != f["size"] || f["remap"] != "ok" { print "bad run: " $0; bad = 1 }
	{ k = f["iommu"] " " f["chunk"]; if (k in iova && iova[k] != f["iova"]) { print "IOVA differs: " $0; bad = 1 }; iova[k] = f["iova"] }
	END { exit bad }
' "$OUT/results.txt" >&2 || die "result check failed"

table=$OUT/table.md
awk '
	function median(a, n,   t, i, j, x) {
		for (i = 1; i <= n; i++) t[i] = a[i]
		for (i = 2; i <= n; i++) { x = t[i]; for (j = i - 1; j >= 1 && t[j] > x; j--) t[j + 1] = t[j]; t[j + 1] = x }
		return (n % 2) ? t[(n + 1) / 2] : (t[n / 2] + t[n / 2 + 1]) / 2
	}
	function minv(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] < m) m = a[i]; return m }
	function maxv(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }
	function ms(ns) { return sprintf("%.1f ms", ns / 1e6) }
	function human(b) { return b >= 1073741824 ? (b / 1073741824) " GiB" : (b / 1048576) " MiB" }
	/mode=overhead/ { next }
	{
		delete f
		for (i = 1; i <= NF; i++) if (split($i, kv, "=") == 2) f[kv[1]] = kv[2]
		key = f["iommu"] SUBSEP f["chunk"]
		if (!(key in seen)) { seen[key] = 1; keys[++nk] = key; size[key] = f["size"]; calls[key] = f["calls"] }
		for (p = 1; p <= 2; p++) {
			ph = p == 1 ? "map" : "unmap"
			k = key SUBSEP ph SUBSEP f["impl"]
			v[k, ++n[k]] = f[ph "_ns"]
			r[k SUBSEP f["round"]] = f[ph "_ns"]
		}
		rs[f["round"]] = 1
	}
	END {
		print "| IOMMU | chunk | size (calls) | phase | raw ioctls: median (min-max) | passthru: median (min-max) | per call raw / passthru | passthru / raw: medians | minima | per-round ratio: median (min-max) |"
		print "|---|---|---|---|---|---|---|---|---|---|"
		for (q = 1; q <= nk; q++) {
			key = keys[q]; split(key, kk, SUBSEP)
			for (p = 1; p <= 2; p++) {
				ph = p == 1 ? "map" : "unmap"
				kr = key SUBSEP ph SUBSEP "raw"; kp = key SUBSEP ph SUBSEP "passthru"
				nr = n[kr]; np = n[kp]
				delete a; delete b
				for (i = 1; i <= nr; i++) a[i] = v[kr, i]
				for (i = 1; i <= np; i++) b[i] = v[kp, i]
				mr = median(a, nr); mp = median(b, np)
				nrat = 0; delete rat
				for (rd in rs) if ((kr SUBSEP rd) in r && (kp SUBSEP rd) in r) rat[++nrat] = r[kp SUBSEP rd] / r[kr SUBSEP rd]
				printf "| %s | %s | %s (%d) | %s | %s (%s-%s) | %s (%s-%s) | %.2f / %.2f µs | **%.3f** | %.3f | %.3f (%.3f-%.3f) |\n", \
					kk[1], kk[2] == 4096 ? "4 KiB" : "2 MiB", human(size[key]), calls[key], ph, \
					ms(mr), ms(minv(a, nr)), ms(maxv(a, nr)), ms(mp), ms(minv(b, np)), ms(maxv(b, np)), \
					mr / calls[key] / 1000, mp / calls[key] / 1000, mp / mr, minv(b, np) / minv(a, nr), median(rat, nrat), minv(rat, nrat), maxv(rat, nrat)
			}
		}
		nrs = 0; for (rd in rs) nrs++
		printf "\n%d rounds; each row pools the runs of one guest.\n", nrs
	}
' "$OUT/results.txt" >"$table"
# The layers' own cost (--overhead runs): per call, median (min-max) over the rounds.
if grep -q 'mode=overhead' "$OUT/results.txt"; then
	awk '
	function median(a, n,   t, i, j, x) {
		for (i = 1; i <= n; i++) t[i] = a[i]
		for (i = 2; i <= n; i++) { x = t[i]; for (j = i - 1; j >= 1 && t[j] > x; j--) t[j + 1] = t[j]; t[j + 1] = x }
		return (n % 2) ? t[(n + 1) / 2] : (t[n / 2] + t[n / 2 + 1]) / 2
	}
	function minv(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] < m) m = a[i]; return m }
	function maxv(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }
	function cell(k,   a, i) { for (i = 1; i <= n[k]; i++) a[i] = v[k, i]; return sprintf("%.0f (%.0f-%.0f)", median(a, n[k]), minv(a, n[k]), maxv(a, n[k])) }
	function med(k,   a, i) { for (i = 1; i <= n[k]; i++) a[i] = v[k, i]; return median(a, n[k]) }
	!/mode=overhead/ { next }
	{
		delete f
		for (i = 1; i <= NF; i++) if (split($i, kv, "=") == 2) f[kv[1]] = kv[2]
		io = f["iommu"]; if (!(io in seen)) { seen[io] = 1; ios[++ni] = io; calls[io] = f["calls"] }
		for (m in f) if (m ~ /_ns$/) { k = io SUBSEP f["impl"] SUBSEP m; v[k, ++n[k]] = f[m] / f["calls"] }
	}
	END {
		print ""
		print "Overhead runs (`--overhead`, 4 KiB, ns per call, median (min-max) over the rounds):"
		print ""
		print "| IOMMU | calls | owned map, no ioctl (fake kernel) | owned unmap, no ioctl (fake kernel) | UNMAP_DMA of nothing: raw ioctl | through `DmaSpace::unmap` | difference (medians) |"
		print "|---|---|---|---|---|---|---|"
		for (q = 1; q <= ni; q++) {
			io = ios[q]
			printf "| %s | %d | %s | %s | %s | %s | %.0f |\n", io, calls[io], \
				cell(io SUBSEP "passthru" SUBSEP "noioctl_map_ns"), cell(io SUBSEP "passthru" SUBSEP "noioctl_unmap_ns"), \
				cell(io SUBSEP "raw" SUBSEP "unmap_empty_ns"), cell(io SUBSEP "passthru" SUBSEP "unmap_empty_ns"), \
				med(io SUBSEP "passthru" SUBSEP "unmap_empty_ns") - med(io SUBSEP "raw" SUBSEP "unmap_empty_ns")
		}
	}
	' "$OUT/results.txt" >>"$table"
fi
{
	echo "Command: $(printf '%q ' env SIZE="$SIZE" SIZE_4K="$SIZE_4K" ROUNDS="$ROUNDS" API="$API" IOMMU="$IOMMUS" PT_VM_MEM="$PT_VM_MEM")scripts/bench-dma.sh"
	echo
	sed 's/^/- /' "$OUT/machine.txt"
	echo
	cat "$table"
}
