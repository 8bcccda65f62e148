# shellcheck shell=bash disable=SC2034,SC2054
# QEMU's educational device (hw/misc/edu.c, docs/specs/edu.rst: vendor 1234, device 11e8;
# DMA engine, a 4 KiB buffer at device address 0x40000, MSI and INTx) behind a root port,
# alone in its group and bound to vfio-pci. vm_edu (EDU_DMA) has the device itself DMA
# through the IOMMU: a round trip through mapped buffers, writes to a read-only and an
# unmapped IOVA that must fault, and its MSI and INTx on eventfds. dma_mask: the device
# clamps DMA addresses to 28 bits by default; 32 bits lets the IOVAs lie above the
# guest's RAM (1 GiB), so only a translation can bring them to the buffers.
QEMU_DEVICES=(
	-device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1,addr=0x2,x-speed=5
	-device edu,bus=rp1,dma_mask=0xffffffff
)
VFIO_BIND="0000:01:00.0"
EXPECT_IDS="0000:01:00.0=1234:11e8"
EXPECT_GROUPS="0000:01:00.0"
# The devices vm_edu drives (the edu-dma step of scripts/vm-test.sh).
EDU_DMA="0000:01:00.0"
