# shellcheck shell=bash disable=SC2034,SC2054
# Two root ports, each with one endpoint: an nvme (FLR) and an e1000e (no FLR: pm, bus).
# Each root port has ACS, so each endpoint is alone in its group.
QEMU_DEVICES=(
	-device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1,addr=0x2,x-speed=5
	-device nvme,bus=rp1,serial=pt-nvme1
	-device pcie-root-port,id=rp2,bus=pcie.0,chassis=2,slot=2,addr=0x3,x-speed=5
	-device e1000e,bus=rp2
)
VFIO_BIND="0000:01:00.0 0000:02:00.0"
EXPECT_IDS="0000:01:00.0=1b36:0010 0000:02:00.0=8086:10d3"
EXPECT_GROUPS="0000:01:00.0;0000:02:00.0"
