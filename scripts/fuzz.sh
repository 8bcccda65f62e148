#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time, one after another.
#
# Builds all targets once, then for each target: copies the committed seeds
# (fuzz/seeds/<target>/) into the git-ignored working corpus (fuzz/corpus/<target>/) and
# runs libFuzzer for PASSTHRU_FUZZ_SECONDS. Any crash, panic, timeout (an input taking
# longer than PASSTHRU_FUZZ_TIMEOUT seconds) or out-of-memory (PASSTHRU_FUZZ_RSS_MB) fails
# the run; the summary names the artifact and the command that reproduces and minimizes it.
#
# Usage: scripts/fuzz.sh [TARGET...]        (default: every target `cargo fuzz list` shows)
#
# Environment knobs (all optional):
#   PASSTHRU_FUZZ_SECONDS  seconds per target (default 60)
#   PASSTHRU_FUZZ_TIMEOUT  seconds one input may take before it counts as a hang (default 10)
#   PASSTHRU_FUZZ_RSS_MB   memory limit in MiB (default 2048)
#   PASSTHRU_FUZZ_NICE     niceness of the fuzzing processes (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'fuzz.sh: FAILED: %s\n' "$*" >&2; exit 1; }

seconds="${PASSTHRU_FUZZ_SECONDS:-60}"
timeout="${PASSTHRU_FUZZ_TIMEOUT:-10}"
rss_mb="${PASSTHRU_FUZZ_RSS_MB:-2048}"
niceness="${PASSTHRU_FUZZ_NICE:-10}"
for v in "$seconds" "$timeout" "$rss_mb" "$niceness"; do
    [[ "$v" =~ ^[0-9]+$ ]] || die "knob value '$v' is not a non-negative integer"
done
[ "$seconds" -gt 0 ] || die "PASSTHRU_FUZZ_SECONDS must be > 0"

command -v cargo >/dev/null || die "cargo not found"
cargo +nightly --version >/dev/null 2>&1 || die "nightly toolchain missing (rustup toolchain install nightly)"
cargo +nightly fuzz --version >/dev/null 2>&1 || die "cargo-fuzz missing (cargo install cargo-fuzz --locked)"

# Same flags for build and run, so `run` does not rebuild: release with debug
# assertions (integer overflow is a bug in a parser of untrusted input).
fuzz_flags=(--debug-assertions --fuzz-dir fuzz)

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi
[ "${#targets[@]}" -gt 0 ] || die "no fuzz targets found"

start=$SECONDS
printf '==> fuzz regressions and seed checks (fuzz/regressions)\n'
# A failing regression does not stop the fuzzing (its target will likely crash too);
# it fails the run at the end.
regressions=ok
nice -n "$niceness" cargo +nightly test --manifest-path fuzz/Cargo.toml --test regressions \
    || regressions=FAILED
printf '==> building %d fuzz targets\n' "${#targets[@]}"
nice -n "$niceness" cargo +nightly fuzz build "${fuzz_flags[@]}" || die "cargo fuzz build"
build_secs=$((SECONDS - start))

logdir=fuzz/target/fuzz-logs
mkdir -p "$logdir"
summary=()
failed=()
for t in "${targets[@]}"; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus"
    if [ -d "fuzz/seeds/$t" ]; then
        for f in fuzz/seeds/"$t"/*; do
            [ -f "$f" ] || continue
            [ -e "$corpus/${f##*/}" ] || cp -- "$f" "$corpus/"
        done
    fi
    extra=()
    [ -f "fuzz/dicts/$t.dict" ] && extra+=("-dict=fuzz/dicts/$t.dict")
    log="$logdir/$t.log"
    printf '==> %s: %ss (corpus %d files)\n' "$t" "$seconds" "$(find "$corpus" -type f | wc -l)"
    t0=$SECONDS
    status=ok
    if ! nice -n "$niceness" cargo +nightly fuzz run "${fuzz_flags[@]}" "$t" "$corpus" -- \
        -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb="$rss_mb" \
        -malloc_limit_mb="$rss_mb" -print_final_stats=1 "${extra[@]}" >"$log" 2>&1; then
        status=FAILED
        failed+=("$t")
        tail -n 40 "$log" >&2
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1 || true)
    summary+=("$(printf '%-22s %-6s %4ss %12s execs  corpus %5d' "$t" "$status" \
        "$((SECONDS - t0))" "${runs:-?}" "$(find "$corpus" -type f | wc -l)")")
done

printf '\n==> fuzz summary (%ss per target, build %ss, total %ss; logs in %s)\n' \
    "$seconds" "$build_secs" "$((SECONDS - start))" "$logdir"
printf '  %-22s %s\n' "(fuzz/regressions)" "$regressions"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    for t in "${failed[@]}"; do
        printf '\n%s: artifacts in fuzz/artifacts/%s/\n' "$t" "$t" >&2
        printf '  reproduce: cargo +nightly fuzz run %s %s fuzz/artifacts/%s/<file>\n' \
            "${fuzz_flags[*]}" "$t" "$t" >&2
        printf '  minimize:  cargo +nightly fuzz tmin %s %s fuzz/artifacts/%s/<file>\n' \
            "${fuzz_flags[*]}" "$t" "$t" >&2
    done
    die "${#failed[@]} fuzz target(s) failed: ${failed[*]}"
fi
[ "$regressions" = ok ] || die "fuzz regression tests failed (cargo +nightly test --manifest-path fuzz/Cargo.toml)"
echo "fuzz.sh: all ${#targets[@]} targets ran ${seconds}s without a crash"
