# shellcheck shell=bash disable=SC2034,SC2054
# An endpoint on the root bus (an integrated endpoint): an e1000e at 00:05.0, alone in its
# group; no bus reset is possible on a root bus.
QEMU_DEVICES=(
	-device e1000e,bus=pcie.0,addr=0x5
)
VFIO_BIND="0000:00:05.0"
EXPECT_IDS="0000:00:05.0=8086:10d3"
EXPECT_GROUPS="0000:00:05.0"
