# shellcheck shell=bash
# Shared helpers of the VM harness (sourced, never run).
#
# Paths:
#   PT_REPO        the checkout (derived from this file's location)
#   PT_CACHE       downloaded and built artifacts, outside the repo
#                  (default ~/.cache/passthru; override with PT_CACHE=DIR)
#   PT_VM_TARGET   cargo target dir of the static guest binaries (target/vm)

PT_VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PT_REPO=$(cd "$PT_VM_DIR/../.." && pwd)
PT_CACHE=${PT_CACHE:-$HOME/.cache/passthru}
PT_VM_TARGET=${PT_VM_TARGET:-$PT_REPO/target/vm}
export PT_VM_DIR PT_REPO PT_CACHE PT_VM_TARGET

# The vfio modules in load order, then the host drivers the topologies use.
# shellcheck disable=SC2034 # used by the scripts that source this file
PT_MODULES=(irqbypass vfio vfio_iommu_type1 vfio-pci-core vfio-pci e1000e)

# Print a message to stderr.
log() { printf '[vm] %s\n' "$*" >&2; }

# Print a message and exit non-zero.
die() {
	printf '[vm] ERROR: %s\n' "$*" >&2
	exit 1
}

# Run a command as root (apt-get install), through sudo when not root already.
as_root() {
	if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi
}

# Fail loudly unless every named command exists.
need_tools() {
	local t missing=()
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || missing+=("$t")
	done
	((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (run scripts/vm-test.sh, which installs them)"
}

# The directory holding the unpacked stock kernel: PT_CACHE/kernel/<release>.
# Echoes the newest one present; fails when none was fetched.
stock_kernel_dir() {
	local d
	d=$(find "$PT_CACHE/kernel" -mindepth 1 -maxdepth 1 -type d -name '6.12.*' 2>/dev/null | sort -V | tail -n1)
	[[ -n $d && -f $d/vmlinuz && -f $d/.complete ]] || die "no stock kernel under $PT_CACHE/kernel (run tests/vm/fetch-kernel.sh)"
	echo "$d"
}

# For the host-side compare scripts (compare-cli.sh, compare-noiommu.sh): one
# "@@CMP NAME ok|FAIL" line per check, the messages under a failure; and the exit status
# a guest CLI run recorded (cli/NAME.rc under $dir, the guest's /out).
result() { # NAME OK(0/1) [MESSAGE...]
	local name=$1 ok=$2
	shift 2
	if ((ok == 0)); then
		echo "@@CMP $name ok"
	else
		echo "@@CMP $name FAIL"
		printf '    %s\n' "$@"
	fi
}
# shellcheck disable=SC2154 # $dir: set by the compare script that sources this file
rc_of() { cat "$dir/cli/$1.rc" 2>/dev/null || echo missing; }

# Replay every CLI output the guest kept (cli/list, cli/check-BDF, cli/config-BDF) with
# HOST_PASSTHRU on the guest's snapshot: each must print byte for byte what the guest's
# live run printed, with the same exit status. Echoes one message per difference.
replay_snapshot() { # HOST_PASSTHRU
	local host_passthru=$1 f name out rc want
	out=$(mktemp "${TMPDIR:-/tmp}/pt-replay.XXXXXX")
	for f in "$dir"/cli/list.json "$dir"/cli/check-*.json "$dir"/cli/config-*.json; do
		[[ -e $f ]] || continue
		name=$(basename "$f" .json)
		case $name in
		list) set -- list --json ;;
		check-*) set -- check --json "${name#check-}" ;;
		config-*)
			local bdf=${name#config-}
			set -- config --json "${bdf%.*}"
			;;
		esac
		"$host_passthru" --root "$dir/snapshot" "$@" >"$out" 2>/dev/null
		rc=$?
		want=$(rc_of "$name")
		[[ $rc == "$want" ]] || echo "passthru $* on the snapshot exited $rc, $want in the guest"
		if ! cmp -s "$f" "$out"; then
			echo "passthru $* on the snapshot prints differently from the guest:"
			diff "$f" "$out" | head -n 20
		fi
	done
	rm -f "$out"
}
