#!/bin/bash
# Should a failed nested trial be run once more? Only when every failed L2 boot is the
# early-boot crash of TCG inside TCG (tests/vm/README.md, "Nested guests"): the L2 kernel
# died before its /init ran, so the guest sent no report record at all, and its console
# ends in a CPU exception's oops or the panic that follows one.
#
# usage: tests/vm/nested-retry.sh TRIAL_JSON   (`passthru trial --json`'s report)
#        tests/vm/nested-retry.sh --self-test  (the saved excerpts in tests/vm/nested-retry/)
# Prints "retry: L2 kernel crashed before init: <signature line>" and exits 0 when the
# trial should be retried; prints "no retry: <why>" and exits 1 otherwise.
#
# Not retried: a boot that sent any record (its init ran: a driver or device failure),
# a console that says init ran ("Run /init as init process", init/main.c), a panic with no
# exception behind it (such as check_timer's "IO-APIC + timer doesn't work!", which
# no_timer_check prevents: seeing it again is a regression, not noise), a report that is
# not JSON, a failed restore, an interrupted trial, and a trial with no failed boot.
set -uo pipefail
here=$(dirname "${BASH_SOURCE[0]}")

# A CPU exception in the kernel (arch/x86/kernel/traps.c, dumpstack.c: "Oops: <what>",
# "traps: PANIC: double fault", "general protection fault"), or the panic an exception in
# early boot ends in (kernel/exit.c: "Attempted to kill the idle task!"; dumpstack.c:
# "Fatal exception"). The oops line itself may be cut from the report's console tail (its
# last 30 lines), the panic line is at its end.
signature='Oops|double fault|general protection fault|Kernel panic - not syncing: (Attempted to kill the idle task|Fatal exception)'

classify() { # TRIAL_JSON
	local json=$1 why
	if ! jq -e '.boots | type == "array"' "$json" >/dev/null 2>&1; then
		echo "no retry: no trial report in $json"
		return 1
	fi
	why=$(jq -r --arg sig "$signature" '
		[.boots[] | select(.verdict != "trial-ok")] as $bad
		| if (.restore_failures // []) != [] then "no retry: a restore failed"
		  elif .interrupted then "no retry: the trial was interrupted"
		  elif ($bad | length) == 0 then "no retry: no boot failed"
		  else
		    [ $bad[]
		      | . as $b
		      | ((.console_tail // []) + [(.evidence // [])[] | select(startswith("console: ")) | ltrimstr("console: ")]) as $con
		      | if (.records // []) != [] then "no: boot \($b.boot) sent \(.records | length) report record(s), so its init ran (\($b.verdict))"
		        elif any($con[]; test("Run /init as init process")) then "no: boot \($b.boot)'"'"'s console says init ran"
		        else ([$con[] | select(test("Oops|double fault|general protection fault"))] + [$con[] | select(test($sig))]) as $hit
		          | if ($hit | length) == 0 then "no: boot \($b.boot) (\($b.verdict)) sent nothing and its console shows no kernel crash"
		            else "yes: boot \($b.boot): \($hit[0])" end
		        end ]
		    | (map(select(startswith("no: "))) | first) as $no
		    | if $no then "no retry: \($no | ltrimstr("no: "))"
		      else "retry: L2 kernel crashed before init: \(first | ltrimstr("yes: "))" end
		  end' "$json" 2>&1)
	echo "$why"
	[[ $why == retry:* ]]
}

# The saved excerpts: each FILE.json under nested-retry/ with the first word of its
# expected answer in FILE.expect ("retry" or "no"); README there says where each comes from.
self_test() {
	local f want got bad=0 n=0
	for f in "$here"/nested-retry/*.json; do
		want=$(cat "${f%.json}.expect")
		got=$(classify "$f")
		n=$((n + 1))
		if [[ ${got%%[: ]*} == "$want" ]]; then
			echo "ok: $(basename "$f"): $got"
		else
			echo "FAIL: $(basename "$f"): wanted '$want', got: $got"
			bad=1
		fi
	done
	((n >= 2)) || {
		echo "FAIL: only $n excerpts under $here/nested-retry"
		bad=1
	}
	return "$bad"
}

case ${1:-} in
--self-test) self_test ;;
'' | -*) echo "usage: $0 TRIAL_JSON | --self-test" >&2 && exit 2 ;;
*) classify "$1" ;;
esac
