# shellcheck shell=bash disable=SC2034,SC2054
# A GPU-like slot behind a root port: a VGA-class device (QEMU's std VGA, class 0300) at .0
# and an HD audio function (ich9-intel-hda) at .1; one group, both on vfio-pci.
QEMU_DEVICES=(
	-device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1,addr=0x2,x-speed=5
	-device VGA,bus=rp1,addr=0x0.0,multifunction=on
	-device ich9-intel-hda,bus=rp1,addr=0x0.1
)
VFIO_BIND="0000:01:00.0 0000:01:00.1"
EXPECT_IDS="0000:01:00.0=1234:1111 0000:01:00.1=8086:293e"
EXPECT_GROUPS="0000:01:00.0 0000:01:00.1"
