#!/usr/bin/env bash
# Runs every test of passthru on a fresh Debian machine of the project's kind:
# installs what the tests need (Debian packages, Rust targets and components, cargo
# tools), then runs the workspace tests, Miri, the fuzzers and the real-kernel VM tests.
# Any failing step fails the whole run; nothing is skipped.
#
# Environment knobs (all optional):
#   PASSTHRU_FUZZ_SECONDS  seconds per fuzz target (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'test-all: FAILED: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

step "Debian packages"
pkgs=(pciutils pci.ids qemu-system-x86 busybox-static cpio kmod xz-utils zstd libvirt-clients libvirt0 libxml2-utils diffutils hyperfine time)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    as_root apt-get update -qq || die "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" || die "apt-get install ${missing[*]}"
fi
for t in lspci virt-xml-validate xmllint diff qemu-system-x86_64; do
    command -v "$t" >/dev/null || die "$t not found after installing packages"
done
[ -f /usr/share/misc/pci.ids ] || die "/usr/share/misc/pci.ids missing (package pci.ids)"

step "Rust targets, components and tools"
rustup target add thumbv7em-none-eabihf || die "rustup target add thumbv7em-none-eabihf"
rustup component add --toolchain nightly miri rust-src || die "rustup component add miri"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked || die "cargo install cargo-fuzz"
fi

step "Workspace tests (unit, integration, doc)"
cargo test --workspace || die "cargo test --workspace"

step "Kubernetes manifests (deploy/) against Kubernetes' schemas, with negative controls"
./scripts/validate-manifests.sh || die "validate-manifests"

step "pci-ids builds bare-metal (no_std, no default features)"
cargo build -p passthru-pci-ids --no-default-features --target thumbv7em-none-eabihf \
    || die "no_std build of pci-ids"

step "Miri over the code that parses untrusted bytes"
./scripts/miri.sh || die "miri"

step "Fuzzers (${PASSTHRU_FUZZ_SECONDS:-60} s per target)"
./scripts/fuzz.sh || die "fuzz"

step "Real-kernel VFIO tests in QEMU guests"
./scripts/vm-test.sh || die "vm tests"

printf '\ntest-all: every step passed\n'
