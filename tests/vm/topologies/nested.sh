# shellcheck shell=bash disable=SC2034,SC2054
# A guest that boots guests: an e1000e on the root bus (00:05.0, alone in its group) on
# its host driver, to be passed through from this guest (L1) to a guest of its own (L2)
# by the nested steps, which bind it to vfio-pci and must give it back to e1000e.
# No option ROM (romfile=): L2's firmware would run it (iPXE), which costs minutes under
# TCG in TCG. On the root bus, since QEMU 7.2's AMD IOMMU translates a device behind a
# root port with the wrong requester id (README: "The device's own DMA").
# NESTED=1: run-guest.sh packs QEMU, the kernel and a module subset (build-nested.sh).
QEMU_DEVICES=(
	-device e1000e,bus=pcie.0,addr=0x5,romfile=
)
VFIO_BIND=""
HOST_BIND="0000:00:05.0=e1000e"
EXPECT_IDS="0000:00:05.0=8086:10d3"
EXPECT_GROUPS="0000:00:05.0"
NESTED=1
NESTED_DEVICE="0000:00:05.0=e1000e"
