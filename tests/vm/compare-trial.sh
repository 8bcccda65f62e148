#!/bin/bash
# Host-side checks of a nested guest's `passthru trial` report (pt-trial-nested's
# /out/trial): one "@@CMP NAME ok|FAIL" line per check.
#
# usage: tests/vm/compare-trial.sh OUT_DIR BDF=DRIVER BOOTS
#   trial-boot-N       boot N's verdict is trial-ok, its records hold a device record with
#                      the device's vendor:device, not all ones, with DRIVER bound, and a
#                      done record (the guest finished its report)
#   trial-boots        the report has exactly BOOTS boots
#   trial-restored     no restore failed, not interrupted, and the device is on the driver
#                      it had before (driver-before = driver-after in the guest)
set -uo pipefail
# shellcheck source=tests/vm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_tools jq
dir=$1 pair=$2 boots=$3
bdf=${pair%%=*} driver=${pair#*=}
json=$dir/trial/trial.json
if ! jq -e . "$json" >/dev/null 2>&1; then
	result trial-report 1 "no JSON report in $json: $(head -c 300 "$json" 2>/dev/null)"
	for ((n = 1; n <= boots; n++)); do result "trial-boot-$n" 1 "no report"; done
	exit 0
fi
ids=$(jq -r --arg b "$bdf" '.functions[] | select(.bdf == $b) | "\(.vendor):\(.device)"' "$json")
got=$(jq '.boots | length' "$json")
result trial-boots "$((got == boots ? 0 : 1))" "the report has $got boots, $boots asked for"
for ((n = 1; n <= boots; n++)); do
	why=$(jq -r --argjson n "$n" --arg ids "$ids" --arg drv "$driver" '
		(.boots[] | select(.boot == $n)) as $b
		| [ (if $b.verdict != "trial-ok" then "verdict \($b.verdict)" else empty end),
		    ([$b.records[] | select(.type == "device" and "\(.vendor):\(.device)" == $ids)] as $d
		     | if ($d | length) == 0 then "no device record for \($ids)"
		       elif $d[0].all_ones then "the device read all ones"
		       elif $d[0].driver != $drv then "driver \($d[0].driver // "none"), not \($drv)"
		       else empty end),
		    (if any($b.records[]; .type == "done") then empty else "no done record" end) ]
		| join("; ")' "$json" 2>&1)
	[[ -n $ids ]] || why="the report names no function $bdf"
	jq -e --argjson n "$n" '.boots[] | select(.boot == $n)' "$json" >/dev/null || why="no boot $n in the report"
	result "trial-boot-$n" "$([[ -z $why ]] && echo 0 || echo 1)" "$why" \
		"evidence: $(jq -c --argjson n "$n" '.boots[] | select(.boot == $n) | .evidence' "$json" 2>/dev/null | head -c 600)"
done
restore=$(jq -r '[(.restore_failures[]? | "restore failed: \(.)"), (if .interrupted then "interrupted" else empty end)] | join("; ")' "$json")
before=$(cat "$dir/trial/driver-before" 2>/dev/null) after=$(cat "$dir/trial/driver-after" 2>/dev/null)
[[ -n $after && $after == "$before" ]] || restore="$restore; driver $after after the trial, $before before"
result trial-restored "$([[ -z $restore ]] && echo 0 || echo 1)" "$restore"
