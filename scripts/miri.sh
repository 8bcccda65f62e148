#!/usr/bin/env bash
# Runs the tests of the code that handles untrusted bytes under Miri (undefined
# behaviour, out-of-bounds and uninitialised reads, alignment, leaks):
#   - every test of passthru-pci-ids (config-space views, capability walks, pci.ids), and
#   - the tests of the pure parser modules of passthru-vfio-core (VFIO info capability
#     chains), filtered by module path so that Miri never reaches an ioctl.
# Miri is ~100x slower than native code, so property tests run few cases here
# (PASSTHRU_MIRI_PROPTEST_CASES, default 4); the native `cargo test` runs the full count.
#
# Environment knobs (all optional):
#   PASSTHRU_MIRI_PROPTEST_CASES  proptest cases per property under Miri (default 4)
#   PASSTHRU_MIRI_VFIO_FILTERS    space-separated test-name filters for vfio-core
#                                 (default: the pure parser modules, see below)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'miri.sh: FAILED: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found"
cargo +nightly --version >/dev/null 2>&1 || die "nightly toolchain missing (rustup toolchain install nightly)"
cargo +nightly miri --version >/dev/null 2>&1 \
    || die "miri missing (rustup component add --toolchain nightly miri rust-src)"

export PROPTEST_CASES="${PASSTHRU_MIRI_PROPTEST_CASES:-4}"
# Shrinking a failure under Miri would take hours; report the first failing case.
export PROPTEST_MAX_SHRINK_ITERS=0
# proptest keeps failure seeds in files beside the sources; Miri's isolation forbids
# file access, so allow it (and the clock proptest reads) explicitly.
export MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-disable-isolation"

# vfio-core modules whose tests are pure byte parsing (no /dev/vfio, no ioctl, no mock
# of the kernel seam). A filter that matches no test fails the run below, so this list
# cannot silently go stale.
read -r -a vfio_filters <<<"${PASSTHRU_MIRI_VFIO_FILTERS:-info::}"

# Tests that only scan the real 1.4 MB pci.ids (file I/O and text volume, no new code
# paths; the db parser's unit tests do run) would take tens of minutes under Miri.
# Skipped by name here; the pci-ids crate marks its other such tests
# #[cfg_attr(miri, ignore)], which is the better home for these two as well.
pci_skip=(--skip scenario_devices_have_names --skip scan_and_index_agree_on_misses)

start=$SECONDS
printf '==> miri: passthru-pci-ids (PROPTEST_CASES=%s)\n' "$PROPTEST_CASES"
cargo +nightly miri test -p passthru-pci-ids -- "${pci_skip[@]}" || die "miri test -p passthru-pci-ids"
pci_secs=$((SECONDS - start))

t0=$SECONDS
for f in "${vfio_filters[@]}"; do
    printf '==> miri: passthru-vfio-core, tests matching %s\n' "$f"
    out=$(mktemp)
    if ! cargo +nightly miri test -p passthru-vfio-core --lib -- "$f" 2>&1 | tee "$out"; then
        rm -f "$out"
        die "miri test -p passthru-vfio-core -- $f"
    fi
    if ! grep -Eq 'test result: ok\. [1-9][0-9]* passed' "$out"; then
        rm -f "$out"
        die "filter '$f' matched no vfio-core test (module renamed? update PASSTHRU_MIRI_VFIO_FILTERS default)"
    fi
    rm -f "$out"
done
vfio_secs=$((SECONDS - t0))

printf '\n==> miri summary: pci-ids %ss, vfio-core parsers %ss, total %ss\n' \
    "$pci_secs" "$vfio_secs" "$((SECONDS - start))"
