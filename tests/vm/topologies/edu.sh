# shellcheck shell=bash disable=SC2034,SC2054
# QEMU's educational device (hw/misc/edu.c, docs/specs/edu.rst: vendor 1234, device 11e8;
# DMA engine, a 4 KiB buffer at device address 0x40000, MSI and INTx) on the root bus at
# 00:05.0, alone in its group and bound to vfio-pci. vm_edu (EDU_DMA) has the device itself
# DMA through the IOMMU: a round trip through mapped buffers, writes to read-only and
# unmapped IOVAs and to a buffer's guest-physical address that must not land and must
# fault, and its MSI and INTx on eventfds.
# dma_mask: the device clamps DMA addresses to 28 bits by default; 32 bits lets the IOVAs
# lie above the guest's RAM (1 GiB), so only a translation can bring them to the buffers.
# On the root bus, not behind a root port: QEMU 7.2's AMD IOMMU takes a device's bus
# number when the device is created (hw/i386/amd_iommu.c amdvi_host_dma_iommu), before
# the guest numbers the root port's secondary bus, so it translates the DMA of a device
# at 01:00.0 with the device table entry of 00:00.0: nothing lands and no fault is logged
# (seen with `-trace amdvi_*`: "amdvi_translation_result devid: 00:00.0"). Behind a root
# port the Intel IOMMU passed every check.
QEMU_DEVICES=(
	-device edu,bus=pcie.0,addr=0x5,dma_mask=0xffffffff
)
VFIO_BIND="0000:00:05.0"
EXPECT_IDS="0000:00:05.0=1234:11e8"
EXPECT_GROUPS="0000:00:05.0"
# The devices vm_edu drives (the edu-dma step of scripts/vm-test.sh).
EDU_DMA="0000:00:05.0"
