/*
 * vfio-oracle: the kernel's own VFIO answers for PCI devices, printed one line per device,
 * as an independent reference for checking passthru's JSON in the VM harness. It is a
 * deliberately small, separate implementation (plain C against <linux/vfio.h>), so a bug in
 * vfio-core cannot hide itself by being on both sides of a comparison.
 *
 * usage: vfio-oracle BDF...   (each device already bound to vfio-pci)
 * With VF_TOKEN=UUID in the environment, SR-IOV PFs (sysfs sriov_totalvfs) and VFs
 * (sysfs physfn) are opened as "BDF vf_token=UUID": vfio-pci refuses a VF without its
 * PF's token (EACCES), and the PF's open with a token sets it while no VF is open.
 * output per device:
 *   BDF group=N viable=0|1 reset=0|1|- hot_reset=G:BDF,G:BDF...|E<errno name>|-
 * "reset" is VFIO_DEVICE_GET_INFO's RESET flag, "hot_reset" the device list of
 * VFIO_DEVICE_GET_PCI_HOT_RESET_INFO (or its error). A non-viable group gives "-" for
 * both, since the kernel refuses VFIO_GROUP_SET_CONTAINER there (EPERM).
 * Exit status 0 when every call that should work did, 1 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static const char *errname(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case EBUSY: return "EBUSY";
	case ENOTTY: return "ENOTTY";
	case EACCES: return "EACCES";
	case ENOSPC: return "ENOSPC";
	default: return "EOTHER";
	}
}

static int group_of(const char *bdf)
{
	char path[256], target[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -1;
	target[n] = 0;
	return atoi(basename(target));
}

/* The device name for VFIO_GROUP_GET_DEVICE_FD: the BDF, plus the VF token for an SR-IOV
 * PF or VF when VF_TOKEN is set. */
static void device_name(const char *bdf, char *name, size_t len)
{
	const char *token = getenv("VF_TOKEN");
	char path[256];

	snprintf(name, len, "%s", bdf);
	if (!token || !*token)
		return;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/physfn", bdf);
	if (access(path, F_OK) != 0) {
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/sriov_totalvfs", bdf);
		if (access(path, F_OK) != 0)
			return;
	}
	snprintf(name, len, "%s vf_token=%s", bdf, token);
}

static void print_hot_reset(int dev)
{
	struct vfio_pci_hot_reset_info probe = { .argsz = sizeof(probe) };
	struct vfio_pci_hot_reset_info *info;
	size_t size;
	__u32 i;

	if (ioctl(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &probe) == 0) {
		printf(" hot_reset=");
		return;
	}
	if (errno != ENOSPC) {
		printf(" hot_reset=E%s", errname(errno));
		return;
	}
	size = sizeof(*info) + probe.count * sizeof(struct vfio_pci_dependent_device);
	info = calloc(1, size);
	if (!info) {
		printf(" hot_reset=EOTHER");
		return;
	}
	info->argsz = size;
	if (ioctl(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info) != 0) {
		printf(" hot_reset=E%s", errname(errno));
		free(info);
		return;
	}
	printf(" hot_reset=");
	for (i = 0; i < info->count; i++) {
		struct vfio_pci_dependent_device *d = &info->devices[i];

		printf("%s%u:%04x:%02x:%02x.%x", i ? "," : "", d->group_id, d->segment, d->bus,
		       (d->devfn >> 3) & 0x1f, d->devfn & 7);
	}
	free(info);
}

static int one(const char *bdf)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	struct vfio_device_info info = { .argsz = sizeof(info) };
	char path[64], name[128];
	int container = -1, group = -1, dev = -1, rc = 1;
	int g = group_of(bdf);

	printf("%s group=%d", bdf, g);
	if (g < 0)
		goto out;
	container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	snprintf(path, sizeof(path), "/dev/vfio/%d", g);
	group = open(path, O_RDWR | O_CLOEXEC);
	if (container < 0 || group < 0) {
		printf(" open=E%s", errname(errno));
		goto out;
	}
	if (ioctl(group, VFIO_GROUP_GET_STATUS, &status) != 0) {
		printf(" status=E%s", errname(errno));
		goto out;
	}
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		printf(" viable=0 reset=- hot_reset=-");
		rc = 0;
		goto out;
	}
	printf(" viable=1");
	if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) != 0 ||
	    ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) != 0) {
		printf(" set_container=E%s", errname(errno));
		goto out;
	}
	device_name(bdf, name, sizeof(name));
	dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, name);
	if (dev < 0) {
		printf(" device_fd=E%s", errname(errno));
		goto out;
	}
	if (ioctl(dev, VFIO_DEVICE_GET_INFO, &info) != 0) {
		printf(" device_info=E%s", errname(errno));
		goto out;
	}
	printf(" reset=%d", (info.flags & VFIO_DEVICE_FLAGS_RESET) ? 1 : 0);
	print_hot_reset(dev);
	rc = 0;
out:
	printf("\n");
	if (dev >= 0)
		close(dev);
	if (group >= 0)
		close(group);
	if (container >= 0)
		close(container);
	return rc;
}

int main(int argc, char **argv)
{
	int i, rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s BDF...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc; i++)
		rc |= one(argv[i]);
	return rc;
}
