#!/bin/bash
# Host-side checks of the passthru CLI's JSON taken in a guest against the kernel's own
# view taken in the same guest (tests/vm/guest/tests/pt-kernel-view, vfio-oracle).
#
# usage: tests/vm/compare-cli.sh GUEST_OUT_DIR HOST_PASSTHRU
#   GUEST_OUT_DIR  the guest's /out as run-guest.sh brought it back (kernel/, cli/, snapshot/)
#   HOST_PASSTHRU  a passthru binary runnable on the host (for the snapshot replay)
# Prints "@@CMP NAME ok|FAIL" per check (the driver counts them) and details on failure.
# Checks:
#   list-groups      `list --json`: every (group, device) pair equals /sys/kernel/iommu_groups
#   list-devices     `list --json`: every device's vendor:device and driver equal sysfs
#   check-BDF        `check --json BDF`: names the device and every member of its group,
#                    any (device, group) it states agrees with the kernel, and it fails
#                    group-shared exactly when the kernel's group holds another endpoint
#   verify-BDF       `verify --bind --reset --json BDF`: fails (exit 1) on a non-viable
#                    group and, with reset-failed only, on a device the kernel offers no
#                    reset (RESET flag 0, hot-reset info refused); its group, viable flag, RESET flag (VFIO_DEVICE_GET_INFO) and
#                    hot-reset device list equal vfio-oracle's answers; it used iommufd
#                    on the iommufd kernel and the container API on the stock one
#   snapshot-replay  `passthru --root SNAPSHOT` list, check and config (--json) on the host
#                    print byte for byte what they printed in the guest
set -uo pipefail
# shellcheck source=tests/vm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_tools jq

dir=$1
host_passthru=$2
kgroups=$dir/kernel/groups.txt
kvfio=$dir/kernel/vfio.txt


# "GROUP BDF" pairs a JSON document states, wherever they are: objects with a bdf and an
# iommu_group, or group objects with an id and a devices list (of BDFs or of objects).
json_pairs() {
	jq -r '
		def b: if type == "object" then (.bdf // empty) else . end;
		([.. | objects | select(has("bdf") and has("iommu_group") and .iommu_group != null)
			| "\(.iommu_group) \(.bdf)"]) as $a
		| ([.. | objects | select(has("id") and (.devices | type) == "array")
			| .id as $g | .devices[] | b | "\($g) \(.)"]) as $b
		| ($a + $b) | unique[]' "$1"
}


# list-groups
if [[ $(rc_of list) != 0 ]]; then
	result list-groups 1 "list did not run (exit $(rc_of list)): $(head -c 300 "$dir/cli/list.err" 2>/dev/null)"
elif ! jq -e . "$dir/cli/list.json" >/dev/null 2>&1; then
	result list-groups 1 "list --json printed invalid JSON"
else
	got=$(json_pairs "$dir/cli/list.json" | sort -u)
	want=$(sort -u "$kgroups")
	if [[ -z $got ]]; then
		result list-groups 1 "list --json states no (group, device) pairs"
	elif [[ $got == "$want" ]]; then
		result list-groups 0
	else
		result list-groups 1 "list --json groups differ from the kernel's:" "$(diff <(echo "$want") <(echo "$got") | grep '^[<>]')"
	fi
fi

# list-devices: ids and drivers of every device equal sysfs (devices.txt)
if [[ $(rc_of list) == 0 ]] && jq -e . "$dir/cli/list.json" >/dev/null 2>&1; then
	got=$(jq -r '[.. | objects | select(has("bdf") and has("vendor_id") and has("device_id"))
		| "\(.bdf) \(.vendor_id):\(.device_id) \(.driver // "-")"] | unique[]' "$dir/cli/list.json")
	want=$(awk '{print $1, $2, $4}' "$dir/kernel/devices.txt" | sort -u)
	if [[ -z $got ]]; then
		result list-devices 1 "list --json states no devices with bdf, vendor_id, device_id"
	elif [[ $got == "$want" ]]; then
		result list-devices 0
	else
		result list-devices 1 "list --json devices differ from sysfs (BDF ids driver):" "$(diff <(echo "$want") <(echo "$got") | grep '^[<>]')"
	fi
else
	result list-devices 1 "list did not run"
fi

# check-groups (one per device under test)
for f in "$dir"/cli/check-*.rc; do
	[[ -e $f ]] || {
		result check-groups 1 "no check output at all"
		break
	}
	name=$(basename "$f" .rc)
	bdf=${name#check-}
	rc=$(cat "$f")
	json=$dir/cli/$name.json
	if [[ $rc != 0 && $rc != 1 ]]; then
		result "$name" 1 "check exited $rc: $(head -c 300 "$dir/cli/$name.err")"
		continue
	fi
	if ! jq -e . "$json" >/dev/null 2>&1; then
		result "$name" 1 "check --json printed invalid JSON"
		continue
	fi
	msgs=()
	g=$(awk -v b="$bdf" '$2 == b {print $1}' "$kgroups")
	while read -r m; do
		grep -q "\"$m\"" "$json" || msgs+=("does not name $m (kernel group $g)")
	done < <(awk -v g="$g" '$1 == g {print $2}' "$kgroups")
	while read -r jg jb; do
		[[ -n $jb ]] || continue
		kg=$(awk -v b="$jb" '$2 == b {print $1}' "$kgroups")
		[[ $kg == "$jg" ]] || msgs+=("states $jb in group $jg, the kernel says '${kg:-none}'")
	done < <(json_pairs "$json")
	# Group isolation as the kernel's groups say it: with the devices the check covered
	# (.devices[].bdf; a display device brings its slot's functions), group-shared must be
	# a failure exactly when one of their groups holds an endpoint (not a PCI bridge,
	# class 0604) outside them.
	covered=" $(jq -r '.devices[]?.bdf' "$json" | tr '\n' ' ')"
	others=""
	for c in $covered; do
		cg=$(awk -v b="$c" '$2 == b {print $1}' "$kgroups")
		while read -r m; do
			[[ $covered == *" $m "* ]] && continue
			mclass=$(awk -v b="$m" '$1 == b {print $3}' "$dir/kernel/devices.txt")
			[[ $mclass == 0x0604* ]] || others+="$m "
		done < <(awk -v g="$cg" '$1 == g {print $2}' "$kgroups")
	done
	shared=$(jq -r '[.. | objects | select(.code? == "group-shared" and .severity? == "fail")] | length > 0' "$json")
	if [[ -n $others && $shared != true ]]; then
		msgs+=("no group-shared failure, yet the kernel's group also holds $others")
	elif [[ -z $others && $shared == true ]]; then
		msgs+=("group-shared failure, yet the kernel's groups hold only [$covered] and bridges")
	fi
	result "$name" "${#msgs[@]}" "${msgs[@]}"
done

# verify-vfio (one per device under test)
for f in "$dir"/cli/verify-*.rc; do
	[[ -e $f ]] || {
		result verify-vfio 1 "no verify output at all"
		break
	}
	name=$(basename "$f" .rc)
	bdf=${name#verify-}
	rc=$(cat "$f")
	json=$dir/cli/$name.json
	line=$(grep "^$bdf " "$kvfio")
	if [[ -z $line ]]; then
		# Not on vfio-pci when the oracle ran (a HOST_BIND device, bound by verify --bind):
		# the kernel's answer is its sysfs group, which is viable once verify has bound it.
		line="$bdf group=$(awk -v b="$bdf" '$2 == b {print $1}' "$kgroups") viable=1 reset=? hot_reset=?"
	fi
	viable=$(sed -n 's/.* viable=\([01-]\).*/\1/p' <<<"$line")
	kreset=$(sed -n 's/.* reset=\([01?-]\).*/\1/p' <<<"$line")
	msgs=()
	if [[ $rc != 0 && $rc != 1 ]]; then
		result "$name" 1 "verify exited $rc: $(head -c 300 "$dir/cli/$name.err")"
		continue
	fi
	jq -e . "$json" >/dev/null 2>&1 || msgs+=("verify --json printed invalid JSON")
	if [[ $viable == 0 && $rc != 1 ]]; then
		msgs+=("group is not viable (kernel: $line) but verify exited $rc")
	fi
	if ((${#msgs[@]} == 0)); then
		# VerifyReport (vfio-core): group, viable, reset.device_reset, reset.hot_reset_devices.
		jgroup=$(jq -r '.group // "none"' "$json")
		jviable=$(jq -r '.viable' "$json")
		japi=$(jq -r '.api' "$json")
		# verify's default API: iommufd where the kernel has it, else the container API.
		wantapi=container
		grep -q 'KERNEL=iommufd' "$dir/kernel/env.txt" && wantapi=iommufd
		[[ $viable == 0 || $japi == "$wantapi" ]] || msgs+=("verify used the $japi API, expected $wantapi on this kernel")
		kgroup=$(sed -n 's/.* group=\([0-9-]*\).*/\1/p' <<<"$line")
		[[ $jgroup == "$kgroup" ]] || msgs+=("verify says group $jgroup, the kernel $kgroup")
		case $jviable:$viable in
		true:1 | false:0) ;;
		*) msgs+=("verify says viable=$jviable, the kernel's VIABLE flag is $viable") ;;
		esac
		# A device the kernel offers no reset at all (RESET flag 0 and hot-reset info
		# refused, e.g. QEMU's edu on the root bus) must fail verify --reset on exactly
		# that: one fail finding, reset-failed. Every other viable device passes.
		fails=$(jq -c '[.findings[] | select(.severity == "fail") | .code]' "$json")
		if [[ $viable == 1 && $kreset == 0 && $line =~ \ hot_reset=E ]]; then
			[[ $rc == 1 && $fails == '["reset-failed"]' ]] ||
				msgs+=("the kernel offers no reset, so verify --reset must fail with reset-failed only; it exited $rc with $fails")
		else
			[[ $viable == 0 || $rc == 0 ]] || msgs+=("verify failed (exit $rc) on a viable group: $(jq -c '[.findings[] | select(.severity == "fail")]' "$json")")
		fi
		if [[ $viable == 1 && $kreset != "?" ]]; then
			jreset=$(jq -r '.reset.device_reset' "$json")
			case $jreset:$kreset in
			true:1 | false:0) ;;
			*) msgs+=("verify says device_reset=$jreset, the kernel's RESET flag is $kreset") ;;
			esac
			# Hot reset: the BDFs verify names equal those of VFIO_DEVICE_GET_PCI_HOT_RESET_INFO
			# (none when the kernel refused it, e.g. ENODEV on a root bus).
			khot=$(sed -n 's/.* hot_reset=\([^ ]*\).*/\1/p' <<<"$line" | tr ',' '\n' |
				grep -oE '[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]' | sort -u | tr '\n' ' ')
			jhot=$(jq -r '.reset.hot_reset_devices[]' "$json" |
				grep -oE '[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]' | sort -u | tr '\n' ' ')
			[[ $jhot == "$khot" ]] || msgs+=("verify's hot-reset devices [ $jhot] differ from the kernel's [ $khot]")
		fi
		((${#msgs[@]} == 0)) || msgs+=("kernel (vfio-oracle): $line")
	fi
	result "$name" "${#msgs[@]}" "${msgs[@]}"
done

# snapshot-replay
if [[ $(rc_of snapshot) != 0 || ! -d $dir/snapshot ]]; then
	result snapshot-replay 1 "snapshot did not run (exit $(rc_of snapshot)): $(head -c 300 "$dir/cli/snapshot.err" 2>/dev/null)"
elif [[ $(rc_of list) != 0 ]]; then
	result snapshot-replay 1 "no guest list to compare with"
elif ! ls "$dir"/cli/config-*.json >/dev/null 2>&1; then
	result snapshot-replay 1 "no guest config output to compare with"
else
	mapfile -t msgs < <(replay_snapshot "$host_passthru")
	result snapshot-replay "${#msgs[@]}" "${msgs[@]}"
fi
