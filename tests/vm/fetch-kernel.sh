#!/bin/bash
# Fetch Debian's stock 6.12 kernel with `apt-get download` (no other download) and
# unpack what the guests need into PT_CACHE/kernel/<release>/:
#   vmlinuz, config, modules/<name>.ko (decompressed), modules/<name>.deps
# Picks the newest linux-image-6.12.*-amd64-unsigned that apt offers a candidate for
# (run `apt-get update` first). A cached, complete unpack is reused.
# Prints the kernel directory on stdout.
#
# With --tree also the whole package as a system has it, for nested guests (a guest that
# runs QEMU itself, see build-nested.sh): tree/boot/vmlinuz-<release> and
# tree/lib/modules/<release>/ (the .ko.xz files as shipped, modules.dep and modules.alias
# made by `depmod -b`, since the package leaves that to its postinst). Cached too.
set -euo pipefail
# shellcheck source=tests/vm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_tools apt-cache apt-get dpkg-deb tar xz modinfo
want_tree=0
case ${1:-} in
--tree) want_tree=1 ;;
'') ;;
*) die "usage: $0 [--tree]" ;;
esac

pkg=""
while read -r name; do
	cand=$(apt-cache policy "$name" | awk '/Candidate:/ {print $2}')
	if [[ -n $cand && $cand != "(none)" ]]; then
		pkg=$name
		break
	fi
done < <(apt-cache pkgnames linux-image-6.12. | grep -E '^linux-image-6\.12\.[0-9]+\+deb[0-9]+-amd64-unsigned$' | sort -rV)
[[ -n $pkg ]] || die "apt offers no linux-image-6.12.*-amd64-unsigned (did apt-get update run?)"
release=${pkg#linux-image-}
release=${release%-unsigned}
kdir=$PT_CACHE/kernel/$release

if [[ -f $kdir/.complete ]] && ((!want_tree)) || [[ -f $kdir/.tree-complete ]]; then
	log "kernel $release cached in $kdir"
	echo "$kdir"
	exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pt-kernel.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log "downloading $pkg"
(cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg") || die "apt-get download $pkg failed"
deb=$(find "$tmp" -maxdepth 1 -name '*.deb' | head -n1)
[[ -n $deb ]] || die "apt-get download produced no .deb"
mkdir -p "$tmp/x"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" ./boot ./lib/modules || die "unpacking $deb failed"

rm -rf "$kdir"
mkdir -p "$kdir/modules"
cp "$tmp/x/boot/vmlinuz-$release" "$kdir/vmlinuz"
cp "$tmp/x/boot/config-$release" "$kdir/config"
for m in "${PT_MODULES[@]}"; do
	f=$(find "$tmp/x/lib/modules/$release/kernel" \( -name "$m.ko.xz" -o -name "${m//-/_}.ko.xz" -o -name "${m//_/-}.ko.xz" \) | head -n1)
	[[ -n $f ]] || die "module $m not found in $pkg"
	xz -dc "$f" >"$kdir/modules/$m.ko"
	modinfo -F depends "$kdir/modules/$m.ko" | tr ',' ' ' >"$kdir/modules/$m.deps"
done
echo "$pkg" >"$kdir/package"
touch "$kdir/.complete"
if ((want_tree)); then
	need_tools depmod
	mkdir -p "$kdir/tree/boot" "$kdir/tree/lib/modules"
	cp "$tmp/x/boot/vmlinuz-$release" "$kdir/tree/boot/"
	mv "$tmp/x/lib/modules/$release" "$kdir/tree/lib/modules/"
	depmod -b "$kdir/tree" "$release" || die "depmod of the $release module tree failed"
	[[ -s $kdir/tree/lib/modules/$release/modules.dep ]] || die "depmod wrote no modules.dep"
	touch "$kdir/.tree-complete"
	log "module tree of $release in $kdir/tree"
fi
log "kernel $release unpacked in $kdir"
echo "$kdir"
