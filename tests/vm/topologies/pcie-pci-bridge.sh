# shellcheck shell=bash disable=SC2034,SC2054
# A PCIe-to-PCI bridge behind a root port with two conventional devices (edu, pci-testdev):
# the bridge and everything behind it share one group.
QEMU_DEVICES=(
	-device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1,addr=0x2,x-speed=5
	-device pcie-pci-bridge,id=br1,bus=rp1
	-device edu,bus=br1,addr=0x1
	-device pci-testdev,bus=br1,addr=0x2
)
VFIO_BIND="0000:02:01.0 0000:02:02.0"
EXPECT_IDS="0000:01:00.0=1b36:000e 0000:02:01.0=1234:11e8 0000:02:02.0=1b36:0005"
EXPECT_GROUPS="0000:01:00.0 0000:02:01.0 0000:02:02.0"
