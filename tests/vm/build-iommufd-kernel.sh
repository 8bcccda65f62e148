#!/bin/bash
# Build (once) the guest kernel for the iommufd runs: Debian's linux-source-6.12 with
# x86_64_defconfig plus IOMMUFD, VFIO_DEVICE_CDEV, the legacy VFIO container, vfio-pci,
# VFIO_NOIOMMU (Debian's stock kernel lacks it; the no-IOMMU guest boots this one), the
# Intel/AMD IOMMU drivers with interrupt remapping, and 9p, all built in (no modules).
# Cached in PT_CACHE/iommufd-kernel/ (bzImage, config, source, options); rebuilt only when
# missing or built with another option list.
# About 8 minutes on 2 idle cores; runs under `nice -n 19`.
set -euo pipefail
# shellcheck source=tests/vm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dest=$PT_CACHE/iommufd-kernel
opts=(
	IOMMU_SUPPORT IOMMU_API IOMMUFD VFIO VFIO_GROUP VFIO_CONTAINER VFIO_IOMMU_TYPE1
	VFIO_DEVICE_CDEV VFIO_PCI_CORE VFIO_PCI VFIO_PCI_MMAP VFIO_PCI_INTX IRQ_BYPASS_MANAGER
	VFIO_NOIOMMU INTEL_IOMMU AMD_IOMMU IRQ_REMAP PCI_IOV PCIEPORTBUS E1000E
	NET_9P NET_9P_VIRTIO 9P_FS VIRTIO_PCI DEVTMPFS BLK_DEV_INITRD SERIAL_8250_CONSOLE
)
if [[ -f $dest/.complete && -f $dest/bzImage && $(cat "$dest/options" 2>/dev/null) == "${opts[*]}" ]]; then
	log "iommufd kernel cached in $dest ($(cat "$dest/source"))"
	exit 0
fi
[[ ! -f $dest/.complete ]] || log "the cached iommufd kernel was built with other options; rebuilding"

# Build tools (Debian packages), installed when missing.
pkgs=(make gcc bc bison flex libelf-dev libssl-dev xz-utils)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	log "installing ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
fi
need_tools apt-get dpkg-deb tar make gcc nice

mkdir -p "$PT_CACHE"
work=$(mktemp -d "$PT_CACHE/iommufd-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

log "downloading linux-source-6.12"
(cd "$work" && apt-get download -q -o APT::Sandbox::User=root linux-source-6.12) ||
	die "apt-get download linux-source-6.12 failed (apt-get update first?)"
deb=$(find "$work" -maxdepth 1 -name 'linux-source-6.12_*.deb' | head -n1)
[[ -n $deb ]] || die "apt-get download produced no linux-source-6.12 .deb"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" ./usr/src
tarball=$(find "$work/usr/src" -name 'linux-source-6.12*.tar.xz' | head -n1)
[[ -n $tarball ]] || die "no source tarball in $deb"
tar -xJf "$tarball" -C "$work"
src=$(find "$work" -maxdepth 1 -type d -name 'linux-source-6.12*' | head -n1)
[[ -n $src ]] || die "source tree not found after unpacking $tarball"

log "configuring $(basename "$src"): x86_64_defconfig + ${opts[*]}"
(
	cd "$src"
	make -s x86_64_defconfig
	for o in "${opts[@]}"; do scripts/config --enable "$o"; done
	scripts/config --disable IOMMUFD_VFIO_CONTAINER
	make -s olddefconfig
) || die "configuring the kernel failed"
for o in "${opts[@]}"; do
	grep -q "^CONFIG_$o=y" "$src/.config" || die "CONFIG_$o is not =y after olddefconfig (a missing dependency?)"
done

log "building bzImage (nice -n 19, -j$(nproc)); this takes several minutes"
start=$SECONDS
nice -n 19 make -C "$src" -s -j"$(nproc)" bzImage >"$work/build.log" 2>&1 || {
	tail -n 40 "$work/build.log" >&2
	die "the kernel build failed"
}
log "built in $((SECONDS - start))s"

rm -rf "$dest"
mkdir -p "$dest"
cp "$src/arch/x86/boot/bzImage" "$dest/bzImage"
cp "$src/.config" "$dest/config"
basename "$src" >"$dest/source"
echo "${opts[*]}" >"$dest/options"
touch "$dest/.complete"
log "iommufd kernel cached in $dest"
