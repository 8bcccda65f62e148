#!/bin/bash
# Host-side checks of the passthru CLI's JSON taken in a no-IOMMU guest (run-guest.sh
# --iommu none: vfio.enable_unsafe_noiommu_mode=1, groups /dev/vfio/noiommu-N).
#
# usage: tests/vm/compare-noiommu.sh GUEST_OUT_DIR HOST_PASSTHRU
#   GUEST_OUT_DIR  the guest's /out (cli/ from pt-cli list|check|verify|snapshot,
#                  kernel/groups.txt from pt-kernel-view)
#   HOST_PASSTHRU  a passthru binary that runs here (the static guest build does)
# Prints "@@CMP NAME ok|FAIL" per check, details on failure. Checks:
#   noiommu-list       `list --json` exits 0 and its (group, device) pairs equal
#                      /sys/kernel/iommu_groups (the vfio-noiommu groups)
#   noiommu-check-BDF  `check --json BDF` exits 1 with an iommu-off failure: no IOMMU
#   noiommu-verify-BDF `verify --json BDF` exits 1, never says dma_map "ok", fails with
#                      no-iommu (no DMA isolation), used the container API and the device's
#                      sysfs group, which VIABLE says is viable
#   noiommu-snapshot-replay  `passthru --root SNAPSHOT list --json` here equals the guest's
#                      list, and `check --json` on the snapshot fails iommu-off as in the guest
set -uo pipefail
# shellcheck source=tests/vm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_tools jq

dir=$1
host_passthru=$2
kgroups=$dir/kernel/groups.txt


# noiommu-list
msgs=()
if [[ $(rc_of list) != 0 ]]; then
	msgs+=("list exited $(rc_of list): $(head -c 300 "$dir/cli/list.err" 2>/dev/null)")
elif ! jq -e . "$dir/cli/list.json" >/dev/null 2>&1; then
	msgs+=("list --json printed invalid JSON")
else
	# As compare-cli.sh: objects with a bdf and an iommu_group, or group objects with an id
	# and a devices list.
	got=$(jq -r '
		def b: if type == "object" then (.bdf // empty) else . end;
		([.. | objects | select(has("bdf") and has("iommu_group") and .iommu_group != null)
			| "\(.iommu_group) \(.bdf)"]) as $a
		| ([.. | objects | select(has("id") and (.devices | type) == "array")
			| .id as $g | .devices[] | b | "\($g) \(.)"]) as $b
		| ($a + $b) | unique[]' "$dir/cli/list.json")
	want=$(sort -u "$kgroups" 2>/dev/null)
	[[ -n $want ]] || msgs+=("no kernel groups recorded ($kgroups)")
	[[ $got == "$want" ]] || msgs+=("list's (group, device) pairs differ from the kernel's:" "$(diff <(echo "$want") <(echo "$got") | grep '^[<>]')")
fi
result noiommu-list "${#msgs[@]}" "${msgs[@]}"

# noiommu-check-BDF
n=0
for f in "$dir"/cli/check-*.rc; do
	[[ -e $f ]] || break
	n=$((n + 1))
	name=$(basename "$f" .rc)
	json=$dir/cli/$name.json
	msgs=()
	[[ $(cat "$f") == 1 ]] || msgs+=("check exited $(cat "$f"), expected 1 (no IOMMU)")
	if ! jq -e . "$json" >/dev/null 2>&1; then
		msgs+=("check --json printed invalid JSON")
	elif [[ $(jq '[.. | objects | select(.code? == "iommu-off" and .severity? == "fail")] | length' "$json") == 0 ]]; then
		msgs+=("no iommu-off failure (no-IOMMU groups are not an active IOMMU): $(jq -c '[.. | objects | select(.severity? == "fail") | .code]' "$json")")
	fi
	result "noiommu-$name" "${#msgs[@]}" "${msgs[@]}"
done
((n)) || result noiommu-check 1 "no check output at all"

# noiommu-verify-BDF
n=0
for f in "$dir"/cli/verify-*.rc; do
	[[ -e $f ]] || break
	n=$((n + 1))
	name=$(basename "$f" .rc)
	bdf=${name#verify-}
	json=$dir/cli/$name.json
	msgs=()
	[[ $(cat "$f") == 1 ]] || msgs+=("verify exited $(cat "$f"), expected 1 (no DMA isolation)")
	if ! jq -e . "$json" >/dev/null 2>&1; then
		msgs+=("verify --json printed invalid JSON")
	else
		[[ $(jq -r '.dma_map' "$json") != ok ]] || msgs+=("verify claims dma_map ok in no-IOMMU mode")
		jq -e '[.findings[] | select(.code == "no-iommu" and .severity == "fail"
			and (.message | test("no IOMMU isolates")))] | length > 0' "$json" >/dev/null ||
			msgs+=("no no-iommu failure saying there is no DMA isolation: $(jq -c '[.findings[].code]' "$json")")
		[[ $(jq -r '.api' "$json") == container ]] || msgs+=("api $(jq -r '.api' "$json"), expected container (no cdev in no-IOMMU mode)")
		kg=$(awk -v b="$bdf" '$2 == b {print $1}' "$kgroups")
		[[ $(jq -r '.group' "$json") == "$kg" ]] || msgs+=("group $(jq -r '.group' "$json"), the kernel says $kg")
		[[ $(jq -r '.viable' "$json") == true ]] || msgs+=("viable $(jq -r '.viable' "$json"), expected true")
	fi
	result "noiommu-$name" "${#msgs[@]}" "${msgs[@]}"
done
((n)) || result noiommu-verify 1 "no verify output at all"

# noiommu-snapshot-replay
msgs=()
if [[ $(rc_of snapshot) != 0 || ! -d $dir/snapshot ]]; then
	msgs+=("snapshot did not run (exit $(rc_of snapshot)): $(head -c 300 "$dir/cli/snapshot.err" 2>/dev/null)")
elif [[ $(rc_of list) != 0 ]]; then
	msgs+=("no guest list to compare with")
else
	replay=$(mktemp "${TMPDIR:-/tmp}/pt-replay.XXXXXX")
	trap 'rm -f "$replay"' EXIT
	mapfile -t -O "${#msgs[@]}" msgs < <(replay_snapshot "$host_passthru")
	for f in "$dir"/cli/check-*.json; do
		[[ -e $f ]] || continue
		bdf=$(basename "$f" .json)
		bdf=${bdf#check-}
		"$host_passthru" --root "$dir/snapshot" check --json "$bdf" >"$replay" 2>/dev/null
		rrc=$?
		((rrc == 1)) || msgs+=("check $bdf on the snapshot exited $rrc, expected 1")
		[[ $(jq '[.. | objects | select(.code? == "iommu-off" and .severity? == "fail")] | length' "$replay") != 0 ]] ||
			msgs+=("check $bdf on the snapshot has no iommu-off failure")
	done
fi
result noiommu-snapshot-replay "${#msgs[@]}" "${msgs[@]}"
