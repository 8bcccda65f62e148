# shellcheck shell=bash disable=SC2034,SC2054
# Capture-only topology (not in scripts/vm-test.sh's run; use it as --topology
# capture/vga-bootfb): a VGA-class device (QEMU's std VGA, class 0300) on the root bus,
# the guest's only display, left on no driver. With `vga=0x317` in PT_VM_CMDLINE
# (QEMU's -kernel loader copies the number into the boot protocol's vid_mode,
# hw/i386/x86.c x86_load_linux) the kernel's setup code sets that VESA mode through
# SeaBIOS's VGA BIOS and the kernel registers a boot framebuffer (vesafb) in the
# device's BAR 0. It is not bound to vfio-pci: since "vfio/pci: Remove console drivers"
# (Linux 6.0) vfio-pci removes a firmware framebuffer on the device it binds, so the
# framebuffer shows only before binding, as on a host before passthrough. Behind a
# root port (topology vga-audio) the same parameter left the console in VGA text mode.
QEMU_DEVICES=(
	-device VGA,bus=pcie.0,addr=0x5
)
VFIO_BIND=""
EXPECT_IDS="0000:00:05.0=1234:1111"
EXPECT_GROUPS="0000:00:05.0"
