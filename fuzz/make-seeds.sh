#!/usr/bin/env bash
# Regenerates the committed seed corpora under fuzz/seeds/<target>/ from real data:
# the QEMU captures in tests/data/captures/ and the system's pci.ids. Hand-written seeds
# (grub files, modprobe.d files, command lines, identifiers) live beside them and are kept.
# Run from anywhere; needs bash, coreutils, awk, od and /usr/share/misc/pci.ids.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'make-seeds.sh: FAILED: %s\n' "$*" >&2; exit 1; }
for t in awk od sha1sum; do command -v "$t" >/dev/null || die "$t not found"; done
pciids=/usr/share/misc/pci.ids
[ -f "$pciids" ] || die "$pciids missing (package pci.ids)"
caps=tests/data/captures
[ -d "$caps" ] || die "$caps missing"

# config: every distinct real config space (sysfs and VFIO-region reads), named by content.
mkdir -p fuzz/seeds/config
for f in "$caps"/*/config/*.bin; do
    h=$(sha1sum "$f" | cut -c1-12)
    cp -- "$f" "fuzz/seeds/config/$(basename "$(dirname "$(dirname "$f")")")-${h}.bin"
done
# Drop content duplicates (same hash, different capture name).
declare -A seen=()
for f in fuzz/seeds/config/*.bin; do
    h=${f##*-}
    if [ -n "${seen[$h]:-}" ]; then rm -f -- "$f"; else seen[$h]=1; fi
done

# pci_ids: the file header, a few vendors that appear in the captures (with devices and
# subsystems) and the whole device-class section, as one small database.
mkdir -p fuzz/seeds/pci_ids
awk '
    /^# List of known device classes/ { classes = 1 }
    classes { print; next }
    NR <= 40 { print; next }
    /^[0-9a-f][0-9a-f][0-9a-f][0-9a-f]  / { keep = ($1 == "1002" || $1 == "10de" || $1 == "1af4" || $1 == "1b36"); n = 0 }
    keep && n++ < 40 { print }
' "$pciids" >fuzz/seeds/pci_ids/slice.ids
# A tiny one with each line kind, for fast mutation.
awk '
    /^# List of known device classes/ { classes = 1 }
    NR <= 12 && /^#/ { print; next }
    /^1af4  / { v = 1 } /^1af5  / { v = 0 }
    v { print; next }
    classes && c++ < 30 { print }
' "$pciids" >fuzz/seeds/pci_ids/small.ids

# lspci_dump: real config spaces written as `lspci -x` (64 bytes), `-xxx` (256) and
# `-xxxx` (4096, three-digit offsets) text, one device per file and one multi-device dump.
mkdir -p fuzz/seeds/lspci_dump
dump() { # dump BIN NBYTES DESCRIPTION
    local bin=$1 n=$2 desc=$3 bdf
    bdf=$(basename "$bin" .bin)
    printf '%s %s\n' "${bdf#0000:}" "$desc"
    head -c "$n" "$bin" | od -An -v -tx1 -w16 | awk -v n="$n" '
        { printf (n > 256 ? "%03x:" : "%02x:"), (NR - 1) * 16; for (i = 1; i <= NF; i++) printf " %s", $i; print "" }'
    printf '\n'
}
amd=$caps/tcg-amd/config
dump "$amd/0000:00:02.0.bin" 4096 "PCI bridge: Red Hat, Inc. QEMU PCIe Root port" >fuzz/seeds/lspci_dump/rootport-xxxx.txt
dump "$amd/0000:05:01.0.bin" 256 "Unclassified device [00ff]: Device 1234:11e8 (rev 10)" >fuzz/seeds/lspci_dump/edu-xxx.txt
dump "$amd/0000:00:1f.0.bin" 64 "ISA bridge: Intel Corporation 82801IB (ICH9) LPC Interface Controller (rev 02)" >fuzz/seeds/lspci_dump/lpc-x.txt
{
    dump "$amd/0000:00:00.0.bin" 256 "Host bridge: Intel Corporation 82G33/G31/P35/P31 Express DRAM Controller"
    dump "$amd/0000:06:00.1.bin" 64 "Unclassified device [00ff]: Device 1234:11e8 (rev 10)"
    printf '\tSubsystem: Red Hat, Inc. Device 1100\n'
    dump "$amd/0000:03:00.0.bin" 256 "Ethernet controller: Red Hat, Inc. Virtio 1.0 network device (rev 01)"
} >fuzz/seeds/lspci_dump/multi.txt

# vfio_info: kernel answers rebuilt from tests/data/captures/tcg-amd/vfiotest-0000:06:00.0.txt
# (native endian = little endian on the x86-64 capture host).
mkdir -p fuzz/seeds/vfio_info
le() { # le BYTES VALUE: VALUE as BYTES little-endian bytes
    local n=$1 v=$2 i
    for ((i = 0; i < n; i++)); do printf '\\x%02x' $(((v >> (8 * i)) & 0xff)); done
}
u16() { printf '%b' "$(le 2 "$1")"; }
u32() { printf '%b' "$(le 4 "$1")"; }
u64() { printf '%b' "$(le 8 "$1")"; }
{ # VFIO_IOMMU_GET_INFO: flags=0x3, caps migration -> dma_avail -> iova ranges
    u32 136; u32 0x3; u64 0xfff7ffffff000; u32 24; u32 0
    u16 2; u16 1; u32 56; u32 0; u32 0; u64 0x1000; u64 268435456
    u16 3; u16 1; u32 72; u32 65535; u32 0
    u16 1; u16 1; u32 0; u32 3; u32 0
    u64 0x0; u64 0xfedfffff; u64 0xfef00000; u64 0xfcffffffff; u64 0x10000000000; u64 -1
} >fuzz/seeds/vfio_info/iommu-info-amd.bin
{ u32 24; u32 0x3; u32 9; u32 5; u32 0; u32 0; } >fuzz/seeds/vfio_info/device-info-e1000e.bin
{ u32 32; u32 0x3; u32 7; u32 0; u64 0x1000; u64 0x70000000000; } >fuzz/seeds/vfio_info/region-config.bin
{ # BAR3 with the MSI-X mappable cap
    u32 40; u32 0xf; u32 3; u32 32; u64 0x4000; u64 0x30000000000; u16 3; u16 1; u32 0
} >fuzz/seeds/vfio_info/region-bar3-msix.bin
{ # a BAR with a sparse mmap cap (two areas) then a type cap
    u32 96; u32 0xf; u32 0; u32 32; u64 0x1000000; u64 0
    u16 1; u16 1; u32 80; u32 2; u32 0; u64 0; u64 0x3000; u64 0x4000; u64 0xffc000
    u16 2; u16 1; u32 0; u32 0x80000000; u32 1
} >fuzz/seeds/vfio_info/region-sparse-type.bin
{ # hot-reset info of 06:00.0: group 16 holds 06:00.0 and 06:00.1
    u32 28; u32 0; u32 2; u32 16; u16 0; printf '\x06\x00'; u32 16; u16 0; printf '\x06\x01'
} >fuzz/seeds/vfio_info/hot-reset-06.bin

# host: attribute files of one device as the kernel writes them, NUL-separated in the
# order of fuzz_targets/host.rs ATTRS, then proc/cmdline, etc/default/grub, a modprobe.d
# file and the binary config (a real one from the captures).
mkdir -p fuzz/seeds/host
host_seed() { # host_seed OUT CONFIG_BIN ATTR... (14 attrs, cmdline, grub, modprobe)
    local out=$1 bin=$2 a
    shift 2
    : >"$out"
    for a in "$@"; do printf '%s\0' "$a" >>"$out"; done
    cat "$bin" >>"$out"
}
res_nvme=$(printf '%s\n' \
    '0x00000000fe600000 0x00000000fe603fff 0x0000000000140204' \
    '0x0000000000000000 0x0000000000000000 0x0000000000000000' \
    '0x0000000000000000 0x0000000000000000 0x0000000000000000')
host_seed fuzz/seeds/host/nvme.bin "$amd/0000:0a:00.0.bin" \
    0x1b36 0x0010 0x010802 0x02 0x1af4 0x1100 'flr bus' '' '' '' -1 D0 "$res_nvme" '' \
    "$(sed -n 's/^console=/console=/p' "$caps/tcg-amd/kinfo.txt" | head -n 1)" \
    "$(cat fuzz/seeds/grub/proxmox)" "$(cat fuzz/seeds/modprobe/vfio.conf)"
res_gpu=$(printf '%s\n' \
    '0x000000d000000000 0x000000d00fffffff 0x000000000014220c' \
    '0x0000000000000000 0x0000000000000000 0x0000000000000000' \
    '0x000000000000e000 0x000000000000e0ff 0x0000000000040101' \
    '0x00000000fca00000 0x00000000fca7ffff 0x0000000000040200')
host_seed fuzz/seeds/host/gpu-like.bin "$amd/0000:03:00.0.bin" \
    0x1002 0x73bf 0x030000 0xc1 0x1458 0x2326 'pm bus' 1 0 0 0 D3hot "$res_gpu" vfio-pci \
    'BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet amd_iommu=on iommu=pt' \
    "$(cat fuzz/seeds/grub/debian)" "$(cat fuzz/seeds/modprobe/blacklist.conf)"

echo "seeds: config $(ls fuzz/seeds/config | wc -l) files, pci_ids $(du -ch fuzz/seeds/pci_ids/* | tail -1 | cut -f1), lspci_dump $(ls fuzz/seeds/lspci_dump | wc -l) files"
