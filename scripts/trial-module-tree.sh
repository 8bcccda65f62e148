#!/bin/bash
# Unpack Debian's whole 6.12 module tree (the kernel the VM harness boots) and index it
# with depmod, for the trial's full-tree test (tests/trial_initramfs.rs,
# full_tree_resolution_matches_modprobe). Uses `apt-get download` only.
# Result: ~/.cache/passthru/trial-tree/x/lib/modules/<release>/
set -euo pipefail
release=6.12.118+deb12-amd64
pkg=linux-image-$release-unsigned
dir=${PT_CACHE:-$HOME/.cache/passthru}/trial-tree
if [[ -f $dir/x/lib/modules/$release/modules.dep ]]; then
	echo "$dir/x/lib/modules/$release"
	exit 0
fi
mkdir -p "$dir"
cd "$dir"
rm -f ./*.deb
apt-get download -q -o APT::Sandbox::User=root "$pkg"
rm -rf x
mkdir x
dpkg-deb --fsys-tarfile ./*.deb | tar -x -C x ./lib/modules
depmod -b x "$release"
echo "$dir/x/lib/modules/$release"
