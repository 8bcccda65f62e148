#!/bin/bash
# Boot one QEMU TCG guest with an emulated IOMMU and one named topology, run a test plan
# in it, and bring the results back.
#
# usage: tests/vm/run-guest.sh --iommu intel|amd|none --topology NAME --out DIR
#            [--kernel stock|iommufd] [--plan FILE] [--bin PATH]... [--timeout SECONDS]
#            [--nested]
#
#   --plan FILE   lines "NAME COMMAND..." run in order by the guest's /init (in /out,
#                 as root, with the topology's devices already bound); default: the
#                 smoke test only. COMMAND sees PATH=/pt/bin:/bin and the variables of
#                 /pt/topology.sh (TOPOLOGY, IOMMU, VFIO_BIND, HOST_BIND, EXPECT_*,
#                 MODULE_PARAMS, SRIOV_NUMVFS, SRIOV_VF_RESET, VF_TOKEN, EDU_DMA).
#   --iommu none  no emulated IOMMU; vfio.enable_unsafe_noiommu_mode=1 (no-IOMMU mode)
#   --bin PATH    a static binary or script copied to /pt/bin/ (repeatable)
#   --nested      also pack what a guest needs to run QEMU itself (build-nested.sh: QEMU,
#                 its libraries and firmware, /boot/vmlinuz-<release>, a module subset,
#                 the harness's L2 initramfs); so does a topology that sets NESTED=1.
#                 Stock kernel only; memory default 2048 MiB; each test's timeout in the
#                 guest is --timeout.
#   --out DIR     receives console.log (the serial log), results.txt ("NAME RC" lines),
#                 and out/ (the guest's /out: NAME.log per test plus whatever tests wrote)
#
# Environment: PT_VM_MEM guest memory in MiB (default 1024; 2048 nested), PT_VM_TIMEOUT (default 240),
# PT_VM_CMDLINE extra kernel parameters; nested: NESTED_L2_MEM, NESTED_L2_CPU,
# NESTED_L2_TIMEOUT are passed on to the guest's nested steps (guest/tests/pt-nested-l2).
#
# Exit status: 0 when the guest ran every test and each returned 0; 1 otherwise (boot
# failure, setup failure, timeout, missing results, a failed test), with the serial log
# printed. The guest is killed at the timeout; temporary files are removed on every exit.
set -euo pipefail
# shellcheck source=tests/vm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

iommu="" topology="" out="" kernel=stock plan="" timeout_s=${PT_VM_TIMEOUT:-240} nested=0
bins=()
while (($#)); do
	case $1 in
	--iommu) iommu=$2 && shift 2 ;;
	--topology) topology=$2 && shift 2 ;;
	--out) out=$2 && shift 2 ;;
	--kernel) kernel=$2 && shift 2 ;;
	--plan) plan=$2 && shift 2 ;;
	--bin) bins+=("$2") && shift 2 ;;
	--timeout) timeout_s=$2 && shift 2 ;;
	--nested) nested=1 && shift ;;
	*) echo "usage: $0 --iommu intel|amd|none --topology NAME --out DIR [--kernel stock|iommufd] [--plan FILE] [--bin PATH]... [--timeout S] [--nested]" >&2 && exit 2 ;;
	esac
done
[[ -n $iommu && -n $topology && -n $out ]] || die "--iommu, --topology and --out are required"
topo_file=$PT_VM_DIR/topologies/$topology.sh
[[ -f $topo_file ]] || die "unknown topology '$topology' (see $PT_VM_DIR/topologies/)"
need_tools qemu-system-x86_64 cpio busybox timeout base64 tar
busybox_bin=$(command -v busybox)
if ldd "$busybox_bin" >/dev/null 2>&1; then
	die "busybox at $busybox_bin is dynamically linked (install busybox-static)"
fi

case $kernel in
stock)
	kdir=$(stock_kernel_dir)
	vmlinuz=$kdir/vmlinuz
	;;
iommufd)
	kdir=$PT_CACHE/iommufd-kernel
	vmlinuz=$kdir/bzImage
	[[ -f $vmlinuz && -f $kdir/.complete ]] || die "no iommufd kernel in $kdir (run tests/vm/build-iommufd-kernel.sh)"
	;;
*) die "unknown kernel '$kernel' (stock or iommufd)" ;;
esac

# shellcheck disable=SC2054 # commas belong to QEMU's option syntax
case $iommu in
intel)
	iommu_dev=(-device intel-iommu,intremap=on,caching-mode=on)
	iommu_cmdline="intel_iommu=on"
	;;
amd)
	iommu_dev=(-device amd-iommu,intremap=on)
	iommu_cmdline=""
	;;
none)
	# No IOMMU at all: vfio's unsafe no-IOMMU mode gives each vfio-pci device a
	# /dev/vfio/noiommu-N group (needs CONFIG_VFIO_NOIOMMU: the iommufd kernel has it,
	# Debian's stock 6.12 does not).
	iommu_dev=()
	iommu_cmdline=""
	;;
*) die "unknown iommu '$iommu' (intel, amd or none)" ;;
esac

# The topology: QEMU_DEVICES (array), VFIO_BIND, HOST_BIND, EXPECT_GROUPS, EXPECT_IDS.
QEMU_DEVICES=() VFIO_BIND="" HOST_BIND="" EXPECT_GROUPS="" EXPECT_IDS="" EXPECT_RESET=""
MODULE_PARAMS="" SRIOV_NUMVFS="" SRIOV_VF_RESET="" VF_TOKEN="" EDU_DMA="" NESTED="" NESTED_DEVICE=""
# shellcheck source=/dev/null
source "$topo_file"
[[ $NESTED != 1 ]] || nested=1
if ((nested)); then
	[[ $kernel == stock ]] || die "--nested needs the stock kernel (its module tree goes into the guest)"
fi
((${#QEMU_DEVICES[@]})) || die "topology $topology defines no QEMU_DEVICES"
[[ $iommu != none ]] || MODULE_PARAMS="$MODULE_PARAMS vfio.enable_unsafe_noiommu_mode=1"
MODULE_PARAMS=${MODULE_PARAMS# }

work=$(mktemp -d "${TMPDIR:-/tmp}/pt-vm.XXXXXX")
qemu_pid=""
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	# qemu_pid is `timeout`, which passes TERM on to QEMU and then exits.
	if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
		kill -TERM "$qemu_pid" 2>/dev/null || true
		wait "$qemu_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Base initramfs: busybox, /init, modules (stock kernel only; the iommufd kernel has
# everything built in).
base=$work/base
mkdir -p "$base/bin" "$base/modules" "$base/dev"
cp "$busybox_bin" "$base/bin/busybox"
cp "$PT_VM_DIR/guest/init" "$base/init"
chmod 755 "$base/init"
if [[ $kernel == stock ]]; then
	for m in "${PT_MODULES[@]}"; do
		cp "$kdir/modules/$m.ko" "$base/modules/"
	done
	echo "${PT_MODULES[*]}" >"$base/modules/order"
fi
(cd "$base" && find . -print0 | cpio --null -o -H newc --quiet) >"$work/base.cpio"

# Appended initramfs: topology, plan, guest tests, binaries.
over=$work/over
mkdir -p "$over/pt/bin"
{
	printf 'TOPOLOGY=%q\nIOMMU=%q\nKERNEL=%q\n' "$topology" "$iommu" "$kernel"
	printf 'VFIO_BIND=%q\nHOST_BIND=%q\n' "$VFIO_BIND" "$HOST_BIND"
	printf 'EXPECT_GROUPS=%q\nEXPECT_IDS=%q\nEXPECT_RESET=%q\n' "$EXPECT_GROUPS" "$EXPECT_IDS" "$EXPECT_RESET"
	printf 'MODULE_PARAMS=%q\nSRIOV_NUMVFS=%q\nSRIOV_VF_RESET=%q\nVF_TOKEN=%q\nEDU_DMA=%q\n' \
		"$MODULE_PARAMS" "$SRIOV_NUMVFS" "$SRIOV_VF_RESET" "$VF_TOKEN" "$EDU_DMA"
	echo "export TOPOLOGY IOMMU KERNEL VFIO_BIND HOST_BIND EXPECT_GROUPS EXPECT_IDS EXPECT_RESET"
	echo "export MODULE_PARAMS SRIOV_NUMVFS SRIOV_VF_RESET VF_TOKEN EDU_DMA"
} >"$over/pt/topology.sh"
cp "$PT_VM_DIR"/guest/tests/* "$over/pt/bin/"
# Names for the guest's `passthru list` (the fixtures' pci.ids subset): a snapshot
# carries it, so the host's replay prints the same names.
mkdir -p "$over/usr/share/misc"
cp "$PT_REPO/tests/fixtures/pci.ids" "$over/usr/share/misc/pci.ids"
if [[ -n $plan ]]; then
	[[ -f $plan ]] || die "plan $plan not found"
	cp "$plan" "$over/pt/plan"
else
	echo "smoke pt-smoke" >"$over/pt/plan"
fi
for b in "${bins[@]}"; do
	[[ -f $b ]] || die "binary $b not found"
	cp "$b" "$over/pt/bin/"
done
chmod 755 "$over"/pt/bin/*
if ((nested)); then
	# A nested step may take the guest's whole time; the L2 knobs pass through.
	{
		printf 'PT_TEST_TIMEOUT=%q\nNESTED_DEVICE=%q\n' "$timeout_s" "$NESTED_DEVICE"
		echo "export PT_TEST_TIMEOUT NESTED_DEVICE"
		for v in NESTED_L2_MEM NESTED_L2_CPU NESTED_L2_TIMEOUT; do
			[[ -z ${!v:-} ]] || printf 'export %s=%q\n' "$v" "${!v}"
		done
	} >>"$over/pt/topology.sh"
fi
(cd "$over" && find . -print0 | cpio --null -o -H newc --quiet) >"$work/over.cpio"
cat "$work/base.cpio" "$work/over.cpio" >"$work/initrd.cpio"
# Nested: QEMU and the kernel for a guest of the guest (opt-in: tens of MiB).
if ((nested)); then
	"$PT_VM_DIR/build-nested.sh" "$kdir" "$work/nested" || die "staging the nested payload failed"
	(cd "$work/nested" && find . -print0 | cpio --null -o -H newc --quiet) >>"$work/initrd.cpio"
	log "nested payload: $(du -sm "$work/nested" | cut -f1) MiB"
fi
mem=${PT_VM_MEM:-$((nested ? 2048 : 1024))}

# Kernel command line: no_timer_check, since under TCG on a loaded host the IO-APIC timer
# check can miss its window and panic ("timer doesn't work through Interrupt-remapped IO-APIC").
mkdir -p "$out"
console=$out/console.log
data=$work/data.log
: >"$console"
log "boot: $iommu iommu, $kernel kernel, topology $topology (timeout ${timeout_s}s)"
start=$SECONDS
set +e
timeout --kill-after=5 "$timeout_s" qemu-system-x86_64 \
	-nodefaults -display none -no-user-config -no-reboot \
	-machine q35,kernel-irqchip=split -accel tcg,thread=multi -cpu max -smp 1 -m "$mem" \
	${iommu_dev[@]+"${iommu_dev[@]}"} \
	"${QEMU_DEVICES[@]}" \
	-kernel "$vmlinuz" -initrd "$work/initrd.cpio" \
	-append "console=ttyS0 loglevel=4 panic=-1 no_timer_check rdinit=/init $iommu_cmdline $MODULE_PARAMS ${PT_VM_CMDLINE:-}" \
	-serial "file:$console" -serial "file:$data" &
qemu_pid=$!
wait "$qemu_pid"
qrc=$?
qemu_pid=""
set -e
elapsed=$((SECONDS - start))
# CPU seconds the guest used (children of this shell: timeout, which waited for QEMU):
# on a loaded host this, not the wall clock, says what the guest costs.
# (`times` in this shell, not in a command substitution's subshell, which has no children.)
times >"$work/times"
cpu=$(tail -n1 "$work/times" | awk '{ for (i = 1; i <= 2; i++) { split($i, a, "m"); s += a[1] * 60 + a[2] } printf "%.0f", s }')

fail_with_log() {
	log "FAILED ($iommu/$topology): $*"
	log "---- serial log ($console) ----"
	cat "$console" >&2
	log "---- end of serial log ----"
	exit 1
}

tr -d '\r' <"$console" >"$work/console.txt"
grep -E '^@@PT-RESULT ' "$work/console.txt" | awk '{print $2, $3}' >"$out/results.txt" || true
if ((qrc == 124 || qrc == 137)); then
	fail_with_log "guest timed out after ${timeout_s}s and was killed"
fi
((qrc == 0)) || fail_with_log "qemu exited with status $qrc"
if grep -q '^@@PT-SETUP-FAILED' "$work/console.txt"; then
	fail_with_log "guest setup: $(grep '^@@PT-SETUP-FAILED' "$work/console.txt" | head -n1 | cut -d' ' -f2-)"
fi
grep -q '^@@PT-DONE' "$work/console.txt" || fail_with_log "guest stopped before the end of its plan"

# Unpack the guest's /out.
tr -d '\r' <"$data" | sed -n '/^@@PT-DATA-BEGIN$/,/^@@PT-DATA-END$/p' | sed '1d;$d' >"$work/data.b64"
grep -q '^@@PT-DATA-END' <(tr -d '\r' <"$data") || fail_with_log "results on the data port are truncated"
rm -rf "$out/out"
mkdir -p "$out/out"
base64 -d "$work/data.b64" | tar -xzmf - -C "$out/out" || fail_with_log "results on the data port are corrupt"

planned=$(grep -cvE '^\s*(#|$)' "$over/pt/plan")
got=$(wc -l <"$out/results.txt")
((planned == got)) || fail_with_log "$got results for $planned planned tests"
log "guest finished in ${elapsed}s (QEMU used ${cpu} s of CPU)"
bad=0
while read -r name rc; do
	if ((rc == 0)); then
		log "  ok   $iommu/$topology/$name"
	else
		log "  FAIL $iommu/$topology/$name (exit $rc); its output:"
		sed 's/^/      /' "$out/out/$name.log" >&2 || true
		bad=1
	fi
done <"$out/results.txt"
exit "$bad"
