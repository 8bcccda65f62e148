#!/bin/bash
# Stage what a nested guest needs to run QEMU itself: a directory tree that run-guest.sh
# packs as one more initramfs part (only for topologies with NESTED=1 or --nested), so
# that a plan step in the guest (L1) can boot a guest of its own (L2) with one of L1's
# devices passed through with vfio-pci.
#
# usage: tests/vm/build-nested.sh KERNEL_DIR DEST
#   KERNEL_DIR  the stock kernel's cache dir, fetched with `fetch-kernel.sh --tree`
#   DEST        created; receives the tree (the caller packs it with cpio)
#
# What DEST holds (paths as on a Debian system, so L1 looks like a host):
#   usr/bin/qemu-system-x86_64, every shared library it and its TCG accelerator module
#     (usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so, loaded with dlopen, so ldd of
#     the binary does not name it) need, the dynamic loader; lib, lib64 -> usr/lib, usr/lib64
#   usr/share/seabios/bios-256k.bin, usr/share/qemu/{linuxboot_dma.bin,kvmvapic.bin}: the
#     firmware q35 loads with -kernel (Debian's QEMU searches /usr/share/qemu and
#     /usr/share/seabios); no option ROMs (L2's vfio-pci devices get romfile=)
#   boot/vmlinuz-<release>: the same kernel L1 runs, so /boot/vmlinuz-$(uname -r) exists
#   lib/modules/<release>/: the modules of PT_NESTED_MODULES (default "e1000e nvme
#     vfio-pci") with their modules.dep dependencies, .ko.xz as Debian ships them, and
#     modules.dep/modules.alias made by `depmod -b` for exactly that subset
#   pt/nested/l2-initrd.cpio: the harness's own L2 initramfs (static busybox,
#     guest/nested/l2-init, the same modules decompressed, in dependency order), used by
#     guest/tests/pt-nested-l2
#   pt/nested/release: the kernel release
set -euo pipefail
# shellcheck source=tests/vm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_tools qemu-system-x86_64 ldd depmod xz cpio busybox

(($# == 2)) || die "usage: $0 KERNEL_DIR DEST"
kdir=$1 dest=$2
[[ -f $kdir/.tree-complete ]] || die "no module tree in $kdir (run tests/vm/fetch-kernel.sh --tree)"
release=$(basename "$kdir")
tree=$kdir/tree/lib/modules/$release
[[ -f $kdir/tree/boot/vmlinuz-$release && -s $tree/modules.dep ]] || die "incomplete module tree in $kdir/tree"
mkdir -p "$dest"

# ---- QEMU, its libraries, its accelerator module, its firmware -------------------------
qemu=$(command -v qemu-system-x86_64)
qemu=$(readlink -f "$qemu")
moddir=/usr/lib/x86_64-linux-gnu/qemu
accel=$moddir/accel-tcg-x86_64.so
[[ -f $accel ]] || die "QEMU's TCG module $accel is missing"
mkdir -p "$dest/usr/bin" "$dest/usr/lib/x86_64-linux-gnu" "$dest/usr/lib64" "$dest$moddir"
ln -s usr/lib "$dest/lib"
ln -s usr/lib64 "$dest/lib64"
cp "$qemu" "$dest/usr/bin/qemu-system-x86_64"
cp "$accel" "$dest$accel"
# "name => /path (addr)" and "/lib64/ld-linux-x86-64.so.2 (addr)": every absolute path,
# copied under /usr (the host is merged-/usr; lib and lib64 are links in DEST too).
libs=$( (ldd "$qemu" && ldd "$accel") | grep -oE '/[^ ]+' | sort -u)
[[ -n $libs ]] || die "ldd named no libraries for $qemu"
for l in $libs; do
	[[ -e $l ]] || die "library $l (needed by QEMU) does not exist"
	case $l in
	/usr/*) to=$l ;;
	*) to=/usr$l ;;
	esac
	mkdir -p "$dest$(dirname "$to")"
	cp -L "$l" "$dest$to"
done
firmware=(/usr/share/seabios/bios-256k.bin /usr/share/qemu/linuxboot_dma.bin /usr/share/qemu/kvmvapic.bin)
for f in "${firmware[@]}"; do
	[[ -f $f ]] || die "QEMU firmware $f is missing"
	mkdir -p "$dest$(dirname "$f")"
	cp -L "$f" "$dest$f"
done

# ---- kernel and module subset ----------------------------------------------------------
mkdir -p "$dest/boot" "$dest/usr/lib/modules/$release"
cp "$kdir/tree/boot/vmlinuz-$release" "$dest/boot/"
# dep_closure NAME...: the modules.dep paths of the named modules and of their dependencies
# (modules.dep lists a module's full dependency set), dependencies first.
dep_closure() {
	local m line path deps
	for m in "$@"; do
		line=$(grep -E "/${m//[-_]/[-_]}\.ko(\.xz|\.zst|\.gz)?:" "$tree/modules.dep" | head -n1)
		[[ -n $line ]] || die "module $m not in $tree/modules.dep"
		path=${line%%:*}
		deps=${line#*:}
		# modules.dep lists a module's dependencies with the ones it uses directly first;
		# loading them last-to-first loads each before its users.
		printf '%s\n' $deps | tac
		echo "$path"
	done | awk 'NF && !seen[$0]++'
}
mods=$(dep_closure ${PT_NESTED_MODULES:-e1000e nvme vfio-pci})
for p in $mods; do
	mkdir -p "$dest/usr/lib/modules/$release/$(dirname "$p")"
	cp "$tree/$p" "$dest/usr/lib/modules/$release/$p"
done
cp "$tree"/modules.builtin "$tree"/modules.builtin.modinfo "$tree"/modules.order "$dest/usr/lib/modules/$release/"
depmod -b "$dest" "$release" || die "depmod of the module subset failed"
[[ -s $dest/usr/lib/modules/$release/modules.dep ]] || die "depmod wrote no modules.dep for the subset"

# ---- the harness's own L2 initramfs ----------------------------------------------------
l2=$(mktemp -d "${TMPDIR:-/tmp}/pt-l2.XXXXXX")
trap 'rm -rf "$l2"' EXIT
mkdir -p "$l2/bin" "$l2/modules" "$l2/dev"
cp "$(command -v busybox)" "$l2/bin/busybox"
cp "$PT_VM_DIR/guest/nested/l2-init" "$l2/init"
chmod 755 "$l2/init"
order=()
for p in $mods; do
	name=$(basename "$p")
	name=${name%%.ko*}
	case $name in vfio* | irqbypass) continue ;; esac # L2 needs the device drivers only
	case $p in
	*.xz) xz -dc "$tree/$p" >"$l2/modules/$name.ko" ;;
	*.ko) cp "$tree/$p" "$l2/modules/$name.ko" ;;
	*) die "module $p: unknown compression" ;;
	esac
	order+=("$name")
done
echo "${order[*]}" >"$l2/modules/order"
mkdir -p "$dest/pt/nested"
(cd "$l2" && find . -print0 | cpio --null -o -H newc --quiet) >"$dest/pt/nested/l2-initrd.cpio"
echo "$release" >"$dest/pt/nested/release"
