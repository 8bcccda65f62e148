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
    /^[0-9a-f][0-9a-f][0-9a-f][0-9a-f]  / { keep = ($1 == "1002" || $1 == "10de" || $1 == "1af4" || $1 == "1b36" || $1 == "1234"); n = 0 }
    keep && n++ < 120 { print }
' "$pciids" >fuzz/seeds/pci_ids/slice.ids
# A tiny one with each line kind, for fast mutation.
awk '
    /^# List of known device classes/ { classes = 1 }
    NR <= 12 && /^#/ { print; next }
    /^1af4  / { v = 1 } /^1af5  / { v = 0 }
    v { print; next }
    classes && c++ < 30 { print }
' "$pciids" >fuzz/seeds/pci_ids/small.ids

echo "seeds: config $(ls fuzz/seeds/config | wc -l) files, pci_ids $(du -ch fuzz/seeds/pci_ids/* | tail -1 | cut -f1)"
