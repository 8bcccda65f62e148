#!/usr/bin/env bash
# The library crates as crates.io would receive them: `cargo publish --dry-run` of all
# four at once (cargo packages them in dependency order and verifies each against its
# packaged siblings through a temporary local registry; nothing is uploaded), then each
# unpacked package's own tests, run outside the repository against its unpacked
# siblings. A package that misses a file its tests need fails here.
#
# Environment knobs (optional):
#   PASSTHRU_PACKAGE_ALLOW_DIRTY=1  package uncommitted changes too (local use)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'package-check: FAILED: %s\n' "$*" >&2; exit 1; }

crates=(passthru-pci-ids passthru-iommu-groups passthru-vfio-core passthru-config-gen)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || die "no workspace version in Cargo.toml"
sel=()
for c in "${crates[@]}"; do sel+=(-p "$c"); done
dirty=()
[ "${PASSTHRU_PACKAGE_ALLOW_DIRTY:-0}" = 1 ] && dirty=(--allow-dirty)

# cargo verifies each package against its siblings through a local registry under
# target/package, and unpacks what that registry serves into CARGO_HOME's registry
# source cache, keyed by the registry's path and the crate's version. The version does
# not change between runs, so a copy unpacked by an earlier run would be used instead of
# the package just made. Those copies are ours alone (a local registry's cache
# directories are named "-<hash>", crates.io's "index.crates.io-<hash>"): remove them.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
for c in "${crates[@]}"; do
    rm -rf "$cargo_home"/registry/src/-*/"$c-$version" "$cargo_home"/registry/cache/-*/"$c-$version.crate"
done

printf '==> cargo publish --dry-run %s\n' "${crates[*]}"
cargo publish --dry-run "${dirty[@]}" "${sel[@]}" || die "cargo publish --dry-run"

target_root=${CARGO_TARGET_DIR:-$PWD/target}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/.cargo"
{
    echo '# The siblings are not on crates.io yet: use their unpacked packages.'
    echo '[patch.crates-io]'
    for c in "${crates[@]}"; do
        # A multi-package publish leaves the .crate files in package/tmp-crate/ (cargo
        # 1.95), a `cargo package` in package/: take the newest one there is.
        crate_file=$({ ls -t "$target_root/package/tmp-crate/$c-$version.crate" \
            "$target_root/package/$c-$version.crate" 2>/dev/null || true; } | head -n 1)
        [ -n "$crate_file" ] || die "no $c-$version.crate under $target_root/package"
        tar xzf "$crate_file" -C "$out" || die "unpack $c"
        echo "$c = { path = \"$out/$c-$version\" }"
    done
} >"$out/.cargo/config.toml"

for c in "${crates[@]}"; do
    printf '==> cargo test --all-features in the unpacked %s-%s\n' "$c" "$version"
    (cd "$out/$c-$version" && CARGO_TARGET_DIR="$target_root/package-check" cargo test --all-features) \
        || die "tests of the packaged $c"
done
printf 'package-check: every package passed its own tests\n'
