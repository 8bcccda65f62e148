# shellcheck shell=bash disable=SC2034,SC2054
# A PCIe switch (x3130 upstream, two xio3130 downstream ports) behind a root port, with an
# nvme and an e1000e below the two downstream ports.
QEMU_DEVICES=(
	-device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1,addr=0x2,x-speed=5
	-device x3130-upstream,id=up1,bus=rp1
	-device xio3130-downstream,id=dn1,bus=up1,chassis=11,slot=11,addr=0x0
	-device xio3130-downstream,id=dn2,bus=up1,chassis=12,slot=12,addr=0x1
	-device nvme,bus=dn1,serial=pt-nvme1
	-device e1000e,bus=dn2
)
VFIO_BIND="0000:03:00.0 0000:04:00.0"
EXPECT_IDS="0000:01:00.0=104c:8232 0000:02:00.0=104c:8233 0000:02:01.0=104c:8233 0000:03:00.0=1b36:0010 0000:04:00.0=8086:10d3"
EXPECT_GROUPS="0000:01:00.0;0000:02:00.0 0000:03:00.0;0000:02:01.0 0000:04:00.0"
