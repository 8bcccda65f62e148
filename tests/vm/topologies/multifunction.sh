# shellcheck shell=bash disable=SC2034,SC2054
# A multifunction endpoint behind a root port: e1000e at .0, edu at .1, no ACS between
# them, so one group; both functions on vfio-pci.
QEMU_DEVICES=(
	-device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1,addr=0x2,x-speed=5
	-device e1000e,bus=rp1,addr=0x0.0,multifunction=on
	-device edu,bus=rp1,addr=0x0.1
)
VFIO_BIND="0000:01:00.0 0000:01:00.1"
EXPECT_IDS="0000:01:00.0=8086:10d3 0000:01:00.1=1234:11e8"
EXPECT_GROUPS="0000:01:00.0 0000:01:00.1"
