#!/bin/sh
# `passthru trial` gives the device back on a real kernel, however the trial ends.
#
# For each bad ending (the guest crashes, the guest hangs past --timeout, passthru gets
# SIGINT while the guest runs) this runs `passthru trial` on a device that sits on its
# host driver, with a stand-in VMM that records the device's driver while it "runs" and
# then misbehaves, and checks: the device was on vfio-pci during the run, is back on its
# driver with driver_override cleared afterwards, the stand-in is gone, passthru's
# temporary directory is empty, and the exit status is the documented one.
# usage: trial-restore.sh [BDF]   (default: the first BDF=driver of HOST_BIND)
set -u
target=${1:-}
if [ -z "$target" ]; then
	first=${HOST_BIND%% *}
	target=${first%%=*}
fi
if [ -z "$target" ]; then
	echo "FAIL: no device: give a BDF, or run in a topology with HOST_BIND"
	exit 1
fi
dev=/sys/bus/pci/devices/$target
drv() { l=$(readlink "$dev/driver" 2>/dev/null) && basename "$l"; }
orig=$(drv)
if [ -z "$orig" ] || [ "$orig" = vfio-pci ]; then
	echo "FAIL: $target must sit on a host driver (it has: ${orig:-none})"
	exit 1
fi

work=/tmp/trial-restore
rm -rf "$work"
mkdir -p "$work/mods" "$work/tmp"
# No module matches (empty index files): the guest side is not under test here.
: >"$work/mods/modules.alias"
: >"$work/mods/modules.dep"
echo "not a kernel: the stand-in never boots it" >"$work/vmlinuz"
cat >"$work/fake-vmm" <<EOF
#!/bin/sh
l=\$(readlink $dev/driver) && basename "\$l" >$work/during
echo \$\$ >$work/vmm.pid
case "\$(cat $work/mode)" in
crash) echo "fake-vmm: crashing" >&2; exit 1 ;;
hang) sleep 600 ;;
sigint) kill -INT \$PPID; sleep 600 ;;
esac
EOF
chmod 755 "$work/fake-vmm"

fails=0
fail() {
	echo "FAIL ($mode): $*"
	fails=$((fails + 1))
}
for mode in crash hang sigint; do
	echo "$mode" >"$work/mode"
	rm -f "$work/during" "$work/vmm.pid"
	echo "+ passthru trial $target ($mode)"
	TMPDIR=$work/tmp passthru trial "$target" --force --boots 1 --timeout 5 --accel tcg \
		--qemu "$work/fake-vmm" --kernel "$work/vmlinuz" --modules "$work/mods" \
		>"$work/$mode.out" 2>"$work/$mode.err"
	rc=$?
	sed 's/^/  /' "$work/$mode.out" "$work/$mode.err"
	case $mode in
	crash | hang) want=1 ;;
	sigint) want=2 ;;
	esac
	[ "$rc" = "$want" ] || fail "exit $rc, expected $want"
	during=$(cat "$work/during" 2>/dev/null)
	[ "$during" = vfio-pci ] || fail "driver while the guest ran: ${during:-none}, expected vfio-pci"
	now=$(drv)
	[ "$now" = "$orig" ] || fail "driver afterwards: ${now:-none}, expected $orig"
	over=$(cat "$dev/driver_override")
	[ "$over" = "(null)" ] || fail "driver_override left as $over"
	pid=$(cat "$work/vmm.pid" 2>/dev/null)
	if [ -n "$pid" ] && [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status"; then
		fail "the stand-in VMM (pid $pid) is still running"
	fi
	left=$(ls -A "$work/tmp")
	[ -z "$left" ] || fail "left in TMPDIR: $left"
	echo "  $mode: exit $rc, during $during, after ${now:-none}"
done
[ "$fails" = 0 ] || exit 1
echo "trial-restore: $target back on $orig after crash, timeout and SIGINT"
