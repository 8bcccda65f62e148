# shellcheck shell=bash disable=SC2034,SC2054
# A non-viable group: a multifunction slot whose .0 (nvme) is on vfio-pci while its
# sibling .1 (e1000e) stays on its host driver e1000e.
QEMU_DEVICES=(
	-device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1,addr=0x2,x-speed=5
	-device nvme,bus=rp1,serial=pt-nvme1,addr=0x0.0,multifunction=on
	-device e1000e,bus=rp1,addr=0x0.1
)
VFIO_BIND="0000:01:00.0"
HOST_BIND="0000:01:00.1=e1000e"
EXPECT_IDS="0000:01:00.0=1b36:0010 0000:01:00.1=8086:10d3"
EXPECT_GROUPS="0000:01:00.0 0000:01:00.1"
