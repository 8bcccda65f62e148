#!/bin/bash
# The real-kernel tests: QEMU TCG guests with an emulated Intel or AMD IOMMU, Debian's stock
# 6.12 kernel (legacy VFIO API) and a cached iommufd kernel, one guest per (IOMMU, topology).
# See tests/vm/README.md.
#
# Does everything itself: installs the Debian packages it needs, fetches the kernel with
# `apt-get download` (cached under ~/.cache/passthru), builds the static guest binaries
# (passthru, vfio-core's vm_vfio and vm_edu examples, the C VFIO oracle) into target/vm, boots every
# guest, checks the passthru CLI's JSON against the kernel's own view, and prints a final
# line "N passed, N failed". Exit status 0 only when nothing failed.
#
# Environment:
#   PT_VM_IOMMUS="intel amd"        which emulated IOMMUs
#   PT_VM_TOPOLOGIES="..."          which topologies (default: every tests/vm/topologies/*.sh)
#   PT_VM_IOMMUFD=1                 also run the iommufd kernel (built once, ~8+ min); 0: don't
#                                   (then the run says so and counts it as a failure)
#   PT_VM_IOMMUFD_TOPOLOGIES="..."  topologies for the iommufd kernel (default: all)
#   PT_VM_KEEP=DIR                  keep every guest's output under DIR (default: a temp dir,
#                                   removed at exit)
#   PT_VM_UPDATE_FIXTURES=1         copy each guest's `passthru snapshot` into
#                                   tests/fixtures/vm-<iommu>-<topology>/
#   PT_VM_TIMEOUT=180               seconds before a guest is killed
#   PT_VM_JOBS=2                    guests run at once (one per IOMMU; 1: one at a time)
#   PT_VM_NESTED_IOMMUS=intel       which IOMMUs run the nested topologies (NESTED=1: a
#                                   guest that boots a guest of its own; minutes each).
#                                   Intel only by default: each nested guest costs 6-11 min
#                                   and exposes the run to the early-boot crash of TCG in
#                                   TCG (about 1 L2 boot in 13); the AMD nested run works
#                                   (tests/vm/README.md, "The full run and its cost"):
#                                   PT_VM_NESTED_IOMMUS="intel amd" runs it too
#   PT_VM_NESTED_STEP=trial         the nested step: `trial` (passthru trial in the guest)
#                                   or `l2` (the harness's own busybox L2, pt-nested-l2)
#   PT_VM_NESTED_BOOTS=2            L2 boots per nested step
#   PT_VM_NESTED_TIMEOUT=900        seconds per L2 boot (the guest's timeout is derived)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tests/vm/lib.sh
source tests/vm/lib.sh

t0=$SECONDS
export PT_VM_TIMEOUT=${PT_VM_TIMEOUT:-180}

# ---- outputs and cleanup --------------------------------------------------------------
if [[ -n ${PT_VM_KEEP:-} ]]; then
	outroot=$PT_VM_KEEP
	mkdir -p "$outroot"
	tmp_out=""
else
	outroot=$(mktemp -d "${TMPDIR:-/tmp}/pt-vm-out.XXXXXX")
	tmp_out=$outroot
fi
summary_done=0
# On every exit: a setup failure (die) still ends with the summary line, counted as a failure.
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	local rc=$?
	if ((!summary_done)); then
		echo "setup FAIL" >>"$records"
		echo "$(grep -c ' ok$' "$records") passed, $(grep -c ' FAIL$' "$records") failed"
	fi
	[[ -z $tmp_out ]] || rm -rf "$tmp_out"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Results: one "NAME ok|FAIL" line per test in $records (appended by parallel jobs too).
records=$outroot/records.txt
: >"$records"
record() { # NAME ok|FAIL
	echo "$1 $2" >>"$records"
}

# ---- packages -------------------------------------------------------------------------
pkgs=(qemu-system-x86 busybox-static cpio kmod xz-utils zstd pciutils gcc libc6-dev linux-libc-dev jq)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
apt_updated=0
apt_update() {
	((apt_updated)) && return 0
	log "apt-get update"
	as_root apt-get update -qq || die "apt-get update failed"
	apt_updated=1
}
if ((${#missing[@]})); then
	apt_update
	log "installing ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
fi
need_tools qemu-system-x86_64 busybox cpio xz gcc jq timeout base64 cargo

# ---- kernel ---------------------------------------------------------------------------
topologies=${PT_VM_TOPOLOGIES:-$(find tests/vm/topologies -maxdepth 1 -name '*.sh' -printf '%f\n' | sed 's/\.sh$//' | sort | tr '\n' ' ')}
iommus=${PT_VM_IOMMUS:-intel amd}
nested_iommus=${PT_VM_NESTED_IOMMUS-intel}
# A nested topology needs the kernel's whole module tree (fetch-kernel.sh --tree).
tree=()
for t in $topologies; do
	if [[ $(source "tests/vm/topologies/$t.sh" && echo "${NESTED:-}") == 1 ]]; then tree=(--tree); fi
done
if ! kdir=$(tests/vm/fetch-kernel.sh ${tree[@]+"${tree[@]}"} 2>/dev/null); then
	apt_update
	kdir=$(tests/vm/fetch-kernel.sh ${tree[@]+"${tree[@]}"}) || die "fetching the stock kernel failed"
fi
log "stock kernel: $kdir"

# ---- static guest binaries ------------------------------------------------------------
bindir=$PT_VM_TARGET/x86_64-unknown-linux-gnu/debug
static_cargo() {
	CARGO_TARGET_DIR=$PT_VM_TARGET RUSTFLAGS='-C target-feature=+crt-static' \
		CARGO_PROFILE_DEV_DEBUG=0 CARGO_PROFILE_DEV_STRIP=symbols \
		cargo build --target x86_64-unknown-linux-gnu "$@"
}
mkdir -p "$PT_VM_TARGET"
log "building the VFIO oracle (static C)"
if gcc -static -O2 -Wall -Wextra -Werror -o "$PT_VM_TARGET/vfio-oracle" tests/vm/guest/vfio-oracle.c; then
	record build/vfio-oracle ok
else
	record build/vfio-oracle FAIL
	die "the VFIO oracle does not build"
fi
log "building passthru (static)"
have_passthru=0
if static_cargo -p passthru --bin passthru; then
	have_passthru=1
	record build/passthru ok
else
	log "FAIL: passthru does not build static; the CLI tests cannot run"
	record build/passthru FAIL
fi
have_vm_vfio=0
if [[ -f vfio-core/examples/vm_vfio.rs ]]; then
	log "building vfio-core's vm_vfio example (static)"
	if static_cargo -p passthru-vfio-core --example vm_vfio; then
		have_vm_vfio=1
		record build/vm_vfio ok
	else
		record build/vm_vfio FAIL
	fi
else
	log "FAIL: vfio-core/examples/vm_vfio.rs does not exist; vfio-core's real-kernel tests cannot run"
	record build/vm_vfio FAIL
fi
# vfio-core's vm_edu example: QEMU's edu device DMAs through the mappings (topologies
# that name EDU_DMA devices).
have_vm_edu=0
log "building vfio-core's vm_edu example (static)"
if static_cargo -p passthru-vfio-core --example vm_edu; then
	have_vm_edu=1
	record build/vm_edu ok
else
	record build/vm_edu FAIL
fi
# The DMA benchmark's two programs (scripts/bench-dma.sh times them); here a small
# correctness run in the rootports guests.
have_dma_bench=0
log "building the DMA benchmark programs (static C and vfio-core's dma_bench example)"
if gcc -static -O2 -Wall -Wextra -Werror -o "$PT_VM_TARGET/dma-bench" tests/vm/guest/dma-bench.c &&
	static_cargo -p passthru-vfio-core --example dma_bench; then
	have_dma_bench=1
	record build/dma-bench ok
else
	record build/dma-bench FAIL
fi

# ---- one guest ------------------------------------------------------------------------
# topology_var TOPOLOGY NAME: a variable a topology file sets (empty when it sets none).
topology_var() {
	(
		# shellcheck source=/dev/null
		source "tests/vm/topologies/$1.sh"
		printf '%s' "${!2:-}"
	)
}

# run_one KERNEL IOMMU TOPOLOGY
run_one() {
	local kernel=$1 iommu=$2 topo=$3
	local tag=$iommu-$topo
	[[ $kernel == stock ]] || tag=$kernel-$tag
	local out=$outroot/$tag plan
	mkdir -p "$out"
	plan=$out/plan
	if [[ $(topology_var "$topo" NESTED) == 1 ]]; then
		run_nested "$kernel" "$iommu" "$topo"
		return
	fi
	{
		echo "smoke pt-smoke"
		echo "kernel-view pt-kernel-view"
		if ((have_passthru)); then
			echo "cli-list pt-cli list"
			echo "cli-check pt-cli check"
			echo "cli-config pt-cli config"
			echo "cli-snapshot pt-cli snapshot"
			echo "cli-verify pt-cli verify"
		fi
		if ((have_vm_vfio)); then
			echo "vfio-core vm_vfio \$VFIO_BIND"
		fi
		# The device's own DMA, faults and interrupts (planned even when vm_edu did not
		# build: the steps then fail, as steps that cannot run must). The kernel-log
		# fault checks are a step of their own: vm_edu writes them to a file.
		if [[ -n $(topology_var "$topo" EDU_DMA) && $iommu != none ]]; then
			echo "edu-dma vm_edu --fault-log /out/edu-fault-log.txt"
			# QEMU 7.2's AMD IOMMU raises no IO page fault event for an unmapped or
			# read-only page (hw/i386/amd_iommu.c: the page walk returns without an
			# event), so the guest kernel has nothing to log there: the step cannot pass
			# on that emulation and is not planned for it (edu-dma still proves that no
			# such write lands). Said on every run, never skipped silently.
			if [[ $iommu == amd ]]; then
				log "$tag: edu-fault-log not planned: QEMU's emulated AMD IOMMU reports no IO page faults (see tests/vm/README.md); edu-dma checks the writes do not land"
			else
				echo "edu-fault-log test -s /out/edu-fault-log.txt && cat /out/edu-fault-log.txt && ! grep -qv '^ok ' /out/edu-fault-log.txt"
			fi
		fi
		if ((have_dma_bench)) && [[ $topo == rootports && $iommu != none ]]; then
			echo "dma-bench-raw dma-bench --size 64M --chunk 4K"
			echo "dma-bench-passthru dma_bench --size 64M --chunk 4K"
			echo "dma-bench-passthru-boxed dma_bench --size 64M --chunk 4K --api boxed"
		fi
	} >"$plan"
	local bins=(--bin "$PT_VM_TARGET/vfio-oracle")
	((have_passthru)) && bins+=(--bin "$bindir/passthru")
	((have_vm_vfio)) && bins+=(--bin "$bindir/examples/vm_vfio")
	((have_vm_edu)) && bins+=(--bin "$bindir/examples/vm_edu")
	((have_dma_bench)) && bins+=(--bin "$PT_VM_TARGET/dma-bench" --bin "$bindir/examples/dma_bench")
	local rc=0
	tests/vm/run-guest.sh --kernel "$kernel" --iommu "$iommu" --topology "$topo" \
		--out "$out" --plan "$plan" "${bins[@]}" || rc=$?
	# Every planned test counts: a result of 0 passes, anything else (or none) fails.
	local name _cmd r
	while read -r name _cmd; do
		r=$(awk -v n="$name" '$1 == n {print $2}' "$out/results.txt" 2>/dev/null)
		if [[ $r == 0 ]]; then record "$tag/$name" ok; else record "$tag/$name" FAIL; fi
	done <"$plan"
	if ((rc != 0)) && [[ ! -s $out/results.txt ]]; then
		record "$tag/guest" FAIL
	fi
	if ((have_passthru)) && [[ -d $out/out/kernel ]]; then
		local line
		while IFS= read -r line; do
			echo "$line" | grep -v '^@@CMP' >&2 || true
			if [[ $line =~ ^@@CMP\ ([^ ]+)\ (ok|FAIL)$ ]]; then
				log "  ${BASH_REMATCH[2]} $tag/${BASH_REMATCH[1]}"
				record "$tag/${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
			fi
		done < <(tests/vm/compare-cli.sh "$out/out" "$bindir/passthru")
		if [[ ${PT_VM_UPDATE_FIXTURES:-0} == 1 && $kernel == stock ]]; then
			if [[ -d $out/out/snapshot && $(cat "$out/out/cli/snapshot.rc") == 0 ]]; then
				rm -rf "tests/fixtures/vm-$tag"
				mkdir -p tests/fixtures
				cp -a "$out/out/snapshot" "tests/fixtures/vm-$tag"
				log "fixture tests/fixtures/vm-$tag updated"
			else
				log "FAIL: no snapshot to update tests/fixtures/vm-$tag from"
				record "$tag/fixture" FAIL
			fi
		fi
	fi
}

# run_nested KERNEL IOMMU TOPOLOGY: a guest (L1) that boots a guest of its own (L2) with
# its device NESTED_DEVICE ("BDF=DRIVER", on DRIVER in L1) passed through: the smoke test,
# then one nested step, `passthru trial` (PT_VM_NESTED_STEP=trial: first trial-restore.sh,
# the bind guard's restore with a stand-in VMM, then the real trial: the step's exit status,
# and compare-trial.sh on its JSON report: every boot saw the device with DRIVER bound, the
# driver is back in L1) or the harness's own busybox L2 (l2: pt-nested-l2). Every planned
# step counts; the nested runs exist for the stock kernel only (it needs the module tree).
run_nested() {
	local kernel=$1 iommu=$2 topo=$3
	local tag=$iommu-$topo out=$outroot/$iommu-$topo plan rc=0 line
	local dev boots=${PT_VM_NESTED_BOOTS:-2} per_boot=${PT_VM_NESTED_TIMEOUT:-900}
	local step=${PT_VM_NESTED_STEP:-trial}
	dev=$(topology_var "$topo" NESTED_DEVICE)
	plan=$out/plan
	mkdir -p "$out"
	echo "smoke pt-smoke" >"$plan"
	case $step in
	trial)
		# First the bind guard's restore on this real kernel with a stand-in VMM that
		# crashes, hangs, or sends SIGINT (cheap), then the real nested trial.
		echo "trial-restore trial-restore.sh ${dev%%=*}" >>"$plan"
		echo "nested-trial pt-trial-nested $dev $boots" >>"$plan"
		;;
	l2) echo "nested-l2 pt-nested-l2 ${dev%%=*} ${dev#*=} $boots" >>"$plan" ;;
	*)
		log "FAIL: PT_VM_NESTED_STEP=$step (trial or l2)"
		record "$tag/nested-step" FAIL
		return
		;;
	esac
	local bins=()
	if [[ $step == trial ]]; then
		if ((have_passthru)); then
			bins=(--bin "$bindir/passthru" --bin tests/vm/guest/trial-restore.sh)
		else
			log "FAIL: $tag: passthru did not build; the trial step cannot run"
		fi
	fi
	# The guest's own boot and smoke test take a minute or two; each L2 boot up to per_boot.
	local t0=$SECONDS
	NESTED_L2_TIMEOUT=$per_boot tests/vm/run-guest.sh --kernel "$kernel" --iommu "$iommu" \
		--topology "$topo" --out "$out" --plan "$plan" --timeout $((boots * per_boot + 300)) \
		${bins[@]+"${bins[@]}"} || rc=$?
	log "$tag: nested guest ($step, $boots L2 boots) took $((SECONDS - t0)) s"
	((rc == 0)) || [[ -s $out/results.txt ]] || record "$tag/guest" FAIL
	if [[ $step != trial ]]; then
		nested_results "$tag" "$out" <"$plan"
		return
	fi
	# The trial's own checks; the L1 steps before it (smoke, trial-restore) count from this run.
	local cmp why
	cmp=$(tests/vm/compare-trial.sh "$out/out" "$dev" "$boots")
	grep -v '^nested-trial ' "$plan" | nested_results "$tag" "$out"
	# Once more only when the trial step failed and every failed L2 boot is the early-boot
	# crash of TCG in TCG (tests/vm/nested-retry.sh; README "Nested guests"), with no other
	# trial check failing: a fresh L1 with the trial step alone.
	if { [[ $(awk '$1 == "nested-trial" {print $2}' "$out/results.txt" 2>/dev/null) != 0 ]] ||
		grep -q '^@@CMP .* FAIL$' <<<"$cmp"; } &&
		! grep -q '^@@CMP trial-\(restored\|boots\|report\) FAIL$' <<<"$cmp" &&
		why=$(tests/vm/nested-retry.sh "$out/out/trial/trial.json"); then
		log "NOTE: $tag: retried: ${why#retry: }"
		echo "$cmp" | grep -v '^@@CMP' >&2 || true
		out=$out/retry
		mkdir -p "$out"
		grep '^nested-trial ' "$plan" >"$out/plan"
		rc=0 t0=$SECONDS
		NESTED_L2_TIMEOUT=$per_boot tests/vm/run-guest.sh --kernel "$kernel" --iommu "$iommu" \
			--topology "$topo" --out "$out" --plan "$out/plan" --timeout $((boots * per_boot + 300)) \
			${bins[@]+"${bins[@]}"} || rc=$?
		log "$tag: the retried nested guest took $((SECONDS - t0)) s"
		((rc == 0)) || [[ -s $out/results.txt ]] || record "$tag/guest-retry" FAIL
		cmp=$(tests/vm/compare-trial.sh "$out/out" "$dev" "$boots")
	elif [[ -n ${why:-} ]]; then
		log "$tag: not retried: ${why#no retry: }"
	fi
	grep '^nested-trial ' "$plan" | nested_results "$tag" "$out"
	while IFS= read -r line; do
		echo "$line" | grep -v '^@@CMP' >&2 || true
		if [[ $line =~ ^@@CMP\ ([^ ]+)\ (ok|FAIL)$ ]]; then
			log "  ${BASH_REMATCH[2]} $tag/${BASH_REMATCH[1]}"
			record "$tag/${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
		fi
	done <<<"$cmp"
}

# nested_results TAG OUT < PLAN: one record per plan step from OUT/results.txt.
nested_results() {
	local tag=$1 out=$2 name _cmd r
	while read -r name _cmd; do
		r=$(awk -v n="$name" '$1 == n {print $2}' "$out/results.txt" 2>/dev/null)
		if [[ $r == 0 ]]; then record "$tag/$name" ok; else record "$tag/$name" FAIL; fi
	done
}

# ---- the harness can fail -------------------------------------------------------------
# A plan with a failing test must fail the run with that test's status, and a hung guest
# must be killed at the timeout with its serial log; otherwise every result below is moot.
selftest() {
	local out=$outroot/selftest rc=0
	mkdir -p "$out"
	printf 'pass true\nfail sh -c "exit 3"\n' >"$out/plan"
	tests/vm/run-guest.sh --iommu intel --topology rootbus --out "$out/a" --plan "$out/plan" \
		>"$out/a.log" 2>&1 || rc=$?
	if ((rc == 1)) && [[ $(cat "$out/a/results.txt" 2>/dev/null) == $'pass 0\nfail 3' ]]; then
		record harness/detects-failure ok
	else
		log "FAIL: harness self-test: a failing guest test gave exit $rc, results: $(cat "$out/a/results.txt" 2>/dev/null)"
		cat "$out/a.log" >&2
		record harness/detects-failure FAIL
	fi
	rc=0
	printf 'hang sleep 600\n' >"$out/plan"
	tests/vm/run-guest.sh --iommu amd --topology rootbus --out "$out/b" --plan "$out/plan" \
		--timeout 20 >"$out/b.log" 2>&1 || rc=$?
	if ((rc == 1)) && grep -q 'timed out after 20s' "$out/b.log" && grep -q '@@PT-START hang' "$out/b.log"; then
		record harness/kills-hung-guest ok
	else
		log "FAIL: harness self-test: a hung guest gave exit $rc"
		cat "$out/b.log" >&2
		record harness/kills-hung-guest FAIL
	fi
	# The nested trial's retry rule: retries the saved early-boot crashes only.
	if tests/vm/nested-retry.sh --self-test >"$out/retry.log" 2>&1; then
		record harness/nested-retry-rule ok
	else
		log "FAIL: harness self-test: tests/vm/nested-retry.sh --self-test"
		cat "$out/retry.log" >&2
		record harness/nested-retry-rule FAIL
	fi
}
log "harness self-tests (a failing test, a hung guest, the nested retry rule)"
selftest

# run_all KERNEL TOPOLOGIES: every (IOMMU, topology) guest; with PT_VM_JOBS=2 (default) the
# IOMMUs run side by side, one guest each (TCG uses one host core per guest). Each guest's
# log is printed whole when it ends.
run_all() {
	local kernel=$1 topos=$2 iommu topo pids=() jobs=${PT_VM_JOBS:-2}
	for iommu in $iommus; do
		(
			for topo in $topos; do
				if [[ $(topology_var "$topo" NESTED) == 1 ]]; then
					if [[ $kernel != stock ]]; then
						log "$kernel-$iommu-$topo: not run: nested guests need the stock kernel's module tree"
						continue
					fi
					if [[ " $nested_iommus " != *" $iommu "* ]]; then
						log "$iommu-$topo: not run: PT_VM_NESTED_IOMMUS='$nested_iommus'"
						continue
					fi
				fi
				run_one "$kernel" "$iommu" "$topo" >"$outroot/$kernel-$iommu-$topo.log" 2>&1 || true
				cat "$outroot/$kernel-$iommu-$topo.log" >&2
			done
		) &
		pids+=($!)
		if ((${#pids[@]} >= jobs)); then
			wait "${pids[0]}" || true
			pids=("${pids[@]:1}")
		fi
	done
	for p in "${pids[@]}"; do wait "$p" || true; done
}

run_all stock "$topologies"

# ---- no-IOMMU mode --------------------------------------------------------------------
# One guest with no IOMMU at all and vfio's unsafe no-IOMMU mode (run-guest.sh --iommu
# none: /dev/vfio/noiommu-N). It needs CONFIG_VFIO_NOIOMMU, which only the iommufd kernel
# has. Plan: smoke, the kernel's groups, list/check/verify (compare-noiommu.sh holds their
# JSON to no-IOMMU answers), vm_vfio's no-IOMMU checks. Every planned step counts.
run_noiommu() {
	local topo=rootports tag=noiommu-rootports
	local out=$outroot/$tag plan=$outroot/$tag.plan rc=0 name _cmd r line
	mkdir -p "$out"
	{
		echo "smoke pt-smoke"
		echo "kernel-view pt-kernel-view"
		echo "cli-list pt-cli list"
		echo "cli-check pt-cli check"
		echo "cli-config pt-cli config"
		echo "cli-verify pt-cli verify"
		echo "cli-snapshot pt-cli snapshot"
		echo "vfio-core vm_vfio \$VFIO_BIND"
	} >"$plan"
	if ((!have_passthru || !have_vm_vfio)); then
		log "FAIL: $tag needs passthru and vm_vfio"
		record "$tag/not-run" FAIL
		return
	fi
	tests/vm/run-guest.sh --kernel iommufd --iommu none --topology "$topo" --out "$out" --plan "$plan" \
		--bin "$PT_VM_TARGET/vfio-oracle" --bin "$bindir/passthru" --bin "$bindir/examples/vm_vfio" \
		>"$outroot/$tag.log" 2>&1 || rc=$?
	cat "$outroot/$tag.log" >&2
	while read -r name _cmd; do
		r=$(awk -v n="$name" '$1 == n {print $2}' "$out/results.txt" 2>/dev/null)
		if [[ $r == 0 ]]; then record "$tag/$name" ok; else record "$tag/$name" FAIL; fi
	done <"$plan"
	((rc == 0)) || [[ -s $out/results.txt ]] || record "$tag/guest" FAIL
	while IFS= read -r line; do
		echo "$line" | grep -v '^@@CMP' >&2 || true
		if [[ $line =~ ^@@CMP\ ([^ ]+)\ (ok|FAIL)$ ]]; then
			log "  ${BASH_REMATCH[2]} $tag/${BASH_REMATCH[1]}"
			record "$tag/${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
		fi
	done < <(tests/vm/compare-noiommu.sh "$out/out" "$bindir/passthru")
	if [[ ${PT_VM_UPDATE_FIXTURES:-0} == 1 ]]; then
		if [[ -d $out/out/snapshot && $(cat "$out/out/cli/snapshot.rc") == 0 ]]; then
			rm -rf "tests/fixtures/vm-$tag"
			cp -a "$out/out/snapshot" "tests/fixtures/vm-$tag"
			log "fixture tests/fixtures/vm-$tag updated"
		else
			log "FAIL: no snapshot to update tests/fixtures/vm-$tag from"
			record "$tag/fixture" FAIL
		fi
	fi
}

# ---- iommufd kernel -------------------------------------------------------------------
if [[ ${PT_VM_IOMMUFD:-1} == 1 ]]; then
	if tests/vm/build-iommufd-kernel.sh; then
		record build/iommufd-kernel ok
		run_all iommufd "${PT_VM_IOMMUFD_TOPOLOGIES:-$topologies}"
		run_noiommu
	else
		log "FAIL: the iommufd kernel does not build"
		record build/iommufd-kernel FAIL
		record noiommu/not-run FAIL
	fi
else
	log "FAIL: PT_VM_IOMMUFD=0: the iommufd runs (and the no-IOMMU guest, which needs that kernel) were not done"
	record iommufd/not-run FAIL
	record noiommu/not-run FAIL
fi

# ---- summary --------------------------------------------------------------------------
log "VM tests took $((SECONDS - t0))s; outputs in $outroot$([[ -n $tmp_out ]] && echo ' (removed at exit)')"
passed=$(grep -c ' ok$' "$records" || true)
failed=$(grep -c ' FAIL$' "$records" || true)
if ((failed)); then
	log "failed:"
	sed -n 's/ FAIL$//p' "$records" | sed 's/^/[vm]   /' >&2
fi
summary_done=1
echo "$passed passed, $failed failed"
((failed == 0))
