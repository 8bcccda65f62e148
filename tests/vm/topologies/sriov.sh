# shellcheck shell=bash disable=SC2034,SC2054
# SR-IOV: an nvme PF (QEMU 7.2's nvme with sriov_max_vfs; SR-IOV needs an nvme-subsys and
# flexible queue/interrupt resources: vq_flexible >= 2*VFs, vi_flexible >= VFs,
# max_ioqpairs >= vq_flexible + 2, msix_qsize >= vi_flexible + 1) behind a root port.
# The PF is bound to vfio-pci (module parameter enable_sriov=1), then init enables two VFs
# through sriov_numvfs; vfio-pci captures them (driver_override) and each VF's reset
# methods are disabled (SRIOV_VF_RESET=none): the emulated VF's FLR stalls 65 s.
# Groups: the root port has ACS and the PF and its VFs are single-function (VFs never
# are multifunction), so the PF and each VF are alone in their groups; a bus reset of
# bus 01 touches all three.
QEMU_DEVICES=(
	-device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1,addr=0x2,x-speed=5
	-device nvme-subsys,id=pt-subsys
	-device nvme,bus=rp1,serial=pt-nvme-pf,subsys=pt-subsys,sriov_max_vfs=2,sriov_vq_flexible=4,sriov_vi_flexible=2,max_ioqpairs=6,msix_qsize=3
)
VFIO_BIND="0000:01:00.0"
MODULE_PARAMS="vfio_pci.enable_sriov=1"
SRIOV_NUMVFS="0000:01:00.0=2"
SRIOV_VF_RESET=none
# The VF token the tests agree on (vfio-pci: "BDF vf_token=UUID").
VF_TOKEN="5b3c8a2e-0f1d-4c6b-9a7e-3d2f1e0c9b8a"
EXPECT_IDS="0000:01:00.0=1b36:0010 0000:01:00.1=1b36:0010 0000:01:00.2=1b36:0010"
EXPECT_GROUPS="0000:01:00.0;0000:01:00.1;0000:01:00.2"
