/*
 * dma-bench: the raw-ioctl anchor of the DMA mapping benchmark. It does
 * what vfio-core/examples/dma_bench.rs does through vfio-core's safe API, with plain
 * ioctls against <linux/vfio.h>, so scripts/bench-dma.sh can compare the two in one guest.
 *
 * usage: dma-bench [--size BYTES] [--chunk BYTES] [--overhead] [BDF]
 *   (sizes accept a K, M or G suffix; defaults 1G and 4K; BDF defaults to the first of
 *   $VFIO_BIND)
 *
 * Outside the timed region: container and group (VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU
 * TYPE1v2), VFIO_IOMMU_GET_INFO and its IOVA-range and DMA_AVAIL capabilities, the lowest
 * 2 MiB aligned IOVA at or above 2 MiB where SIZE bytes fit in one range, a buffer of SIZE
 * bytes (anonymous mmap, 2 MiB aligned) touched page by page, and a warm-up: the first two
 * chunks mapped and unmapped once, in the timed order (as dma_bench does, so that neither
 * program's first timed call pays for first execution of its code: under TCG, the
 * translation of new code). Timed with
 * clock_gettime(CLOCK_MONOTONIC):
 *   map:   SIZE/CHUNK VFIO_IOMMU_MAP_DMA (read|write) of consecutive chunks at consecutive
 *          IOVAs;
 *   unmap: SIZE/CHUNK VFIO_IOMMU_UNMAP_DMA of the same chunks, each checked to have
 *          unmapped CHUNK bytes.
 * Then a fresh map of the first chunk at the same IOVA must succeed (the unmaps really
 * unmapped). Output, one line:
 *   dma-bench impl=raw chunk=C size=S iova=0x.. map_ns=N unmap_ns=N calls=N remap=ok thp_kb=N
 * --overhead times SIZE/CHUNK VFIO_IOMMU_UNMAP_DMA on IOVAs where nothing is mapped (the
 * kernel returns at once, 0 bytes) instead, the anchor of dma_bench's --overhead; one line
 *   dma-bench impl=raw mode=overhead chunk=C calls=N unmap_empty_ns=N
 * Any failure prints "dma-bench impl=raw FAIL <ioctl>: errno <NAME> (<n>)" on stderr and
 * exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define ALIGN (2ULL << 20)
#define MAX_RANGES 64

static const char *errname(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EBADF: return "EBADF";
	case ENOMEM: return "ENOMEM";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case ENOSPC: return "ENOSPC";
	case ENOTTY: return "ENOTTY";
	default: return "errno";
	}
}

static void fail_errno(const char *what)
{
	int e = errno;

	fprintf(stderr, "dma-bench impl=raw FAIL %s: errno %s (%d) %s\n", what, errname(e), e,
		strerror(e));
	exit(1);
}

static void fail(const char *what)
{
	fprintf(stderr, "dma-bench impl=raw FAIL %s\n", what);
	exit(1);
}

static uint64_t parse_size(const char *s)
{
	char *end;
	unsigned long long n;
	uint64_t mul = 1;

	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno || end == s)
		fail("bad size");
	switch (*end) {
	case 'K': case 'k': mul = 1ULL << 10; end++; break;
	case 'M': case 'm': mul = 1ULL << 20; end++; break;
	case 'G': case 'g': mul = 1ULL << 30; end++; break;
	default: break;
	}
	if (*end || (n && mul > UINT64_MAX / n))
		fail("bad size");
	return n * mul;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
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

struct range {
	uint64_t start, end;
};

/* VFIO_IOMMU_GET_INFO with its capability chain: IOVA ranges and DMA_AVAIL. */
static void iommu_info(int container, struct range *ranges, unsigned *nranges, int64_t *avail)
{
	struct vfio_iommu_type1_info probe = { .argsz = sizeof(probe) };
	struct vfio_iommu_type1_info *info;
	uint32_t off, i;

	*nranges = 0;
	*avail = -1;
	if (ioctl(container, VFIO_IOMMU_GET_INFO, &probe) != 0)
		fail_errno("VFIO_IOMMU_GET_INFO");
	if (probe.argsz < sizeof(probe) || probe.argsz > (1u << 20))
		fail("VFIO_IOMMU_GET_INFO: bad argsz");
	info = calloc(1, probe.argsz);
	if (!info)
		fail("out of memory");
	info->argsz = probe.argsz;
	if (ioctl(container, VFIO_IOMMU_GET_INFO, info) != 0)
		fail_errno("VFIO_IOMMU_GET_INFO (with caps)");
	if (!(info->flags & VFIO_IOMMU_INFO_CAPS))
		goto out;
	for (off = info->cap_offset; off; ) {
		struct vfio_info_cap_header *h;

		if (off < sizeof(*info) || off + sizeof(*h) > info->argsz)
			fail("VFIO_IOMMU_GET_INFO: capability outside the buffer");
		h = (struct vfio_info_cap_header *)((char *)info + off);
		if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
			struct vfio_iommu_type1_info_cap_iova_range *r = (void *)h;

			if (off + sizeof(*r) > info->argsz ||
			    off + sizeof(*r) + (uint64_t)r->nr_iovas * sizeof(r->iova_ranges[0]) >
				    info->argsz)
				fail("VFIO_IOMMU_GET_INFO: IOVA range capability truncated");
			for (i = 0; i < r->nr_iovas && *nranges < MAX_RANGES; i++) {
				ranges[*nranges].start = r->iova_ranges[i].start;
				ranges[*nranges].end = r->iova_ranges[i].end;
				(*nranges)++;
			}
		} else if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
			struct vfio_iommu_type1_info_dma_avail *d = (void *)h;

			if (off + sizeof(*d) > info->argsz)
				fail("VFIO_IOMMU_GET_INFO: DMA_AVAIL capability truncated");
			*avail = d->avail;
		}
		if (h->next && h->next <= off)
			fail("VFIO_IOMMU_GET_INFO: capability chain goes backwards");
		off = h->next;
	}
out:
	free(info);
}

/* The lowest ALIGN-aligned IOVA >= ALIGN where size bytes fit inside one range. */
static int find_iova(const struct range *r, unsigned n, uint64_t size, uint64_t *iova)
{
	int found = 0;
	unsigned i;

	for (i = 0; i < n; i++) {
		uint64_t start = r[i].start < ALIGN ? ALIGN : r[i].start;

		if (start > UINT64_MAX - (ALIGN - 1))
			continue;
		start = (start + ALIGN - 1) / ALIGN * ALIGN;
		if (start > UINT64_MAX - (size - 1) || start + (size - 1) > r[i].end)
			continue;
		if (!found || start < *iova) {
			*iova = start;
			found = 1;
		}
	}
	return found;
}

/* AnonHugePages of this process in kB (/proc/self/smaps_rollup), -1 when unreadable: how
 * much of the buffer is backed by transparent huge pages, which changes what pinning it
 * costs the kernel; printed so both programs' backing can be compared. */
static long thp_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/smaps_rollup", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static int map_one(int container, uint64_t vaddr, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = vaddr,
		.iova = iova,
		.size = size,
	};

	return ioctl(container, VFIO_IOMMU_MAP_DMA, &map);
}

/* Returns the size unmapped, or -1 with errno. */
static int64_t unmap_one(int container, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.iova = iova,
		.size = size,
	};

	if (ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) != 0)
		return -1;
	return (int64_t)unmap.size;
}

int main(int argc, char **argv)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	struct range ranges[MAX_RANGES];
	unsigned nranges;
	int64_t avail, got;
	uint64_t size = 1ULL << 30, chunk = 4096, calls, i, iova = 0, t0, t1, t2, mapped = 0;
	const char *bdf = NULL;
	char path[64], what[160], bdfbuf[64];
	char *raw, *buf;
	int container, group, g, a, overhead = 0;
	long thp;

	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--size") && a + 1 < argc)
			size = parse_size(argv[++a]);
		else if (!strcmp(argv[a], "--chunk") && a + 1 < argc)
			chunk = parse_size(argv[++a]);
		else if (!strcmp(argv[a], "--overhead"))
			overhead = 1;
		else if (argv[a][0] != '-' && !bdf)
			bdf = argv[a];
		else
			fail("usage: dma-bench [--size BYTES] [--chunk BYTES] [--overhead] [BDF]");
	}
	if (!bdf) {
		const char *env = getenv("VFIO_BIND");

		if (!env || sscanf(env, "%63s", bdfbuf) != 1)
			fail("no BDF given (argv or $VFIO_BIND)");
		bdf = bdfbuf;
	}
	if (!chunk || chunk % 4096 || !size || size % chunk)
		fail("size must be a non-zero multiple of chunk, itself a multiple of 4096");
	calls = size / chunk;

	g = group_of(bdf);
	if (g < 0)
		fail_errno("iommu group from sysfs");
	container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (container < 0)
		fail_errno("open /dev/vfio/vfio");
	snprintf(path, sizeof(path), "/dev/vfio/%d", g);
	group = open(path, O_RDWR | O_CLOEXEC);
	if (group < 0)
		fail_errno("open the group");
	if (ioctl(group, VFIO_GROUP_GET_STATUS, &status) != 0)
		fail_errno("VFIO_GROUP_GET_STATUS");
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE))
		fail("VFIO_GROUP_GET_STATUS: group not viable");
	if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) != 0)
		fail_errno("VFIO_GROUP_SET_CONTAINER");
	if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) != 0)
		fail_errno("VFIO_SET_IOMMU TYPE1v2");
	iommu_info(container, ranges, &nranges, &avail);
	if (avail >= 0 && (uint64_t)avail <= calls) {
		fprintf(stderr,
			"dma-bench impl=raw FAIL the container accepts %" PRId64 " mappings, %" PRIu64
			" + 1 needed: raise /sys/module/vfio_iommu_type1/parameters/dma_entry_limit\n",
			avail, calls);
		return 1;
	}
	if (nranges == 0) {
		iova = ALIGN; /* no ranges reported: nothing to check against, as vfio-core */
	} else if (!find_iova(ranges, nranges, size, &iova)) {
		fail("no IOVA span of SIZE bytes in the reported ranges");
	}

	raw = mmap(NULL, size + ALIGN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		fail_errno("mmap of the buffer");
	buf = raw + (ALIGN - (uintptr_t)raw % ALIGN) % ALIGN;
	for (i = 0; i < size; i += 4096)
		((volatile char *)buf)[i] = 1;

	if (overhead) {
		t0 = now_ns();
		for (i = 0; i < calls; i++) {
			got = unmap_one(container, iova + i * chunk, chunk);
			if (got < 0)
				fail_errno("VFIO_IOMMU_UNMAP_DMA of nothing");
			if (got != 0)
				fail("VFIO_IOMMU_UNMAP_DMA of nothing unmapped something");
		}
		t1 = now_ns();
		printf("dma-bench impl=raw mode=overhead chunk=%" PRIu64 " calls=%" PRIu64
		       " unmap_empty_ns=%" PRIu64 "\n", chunk, calls, t1 - t0);
		return 0;
	}

	thp = thp_kb();
	for (i = 0; i < 2 && i < calls; i++)
		if (map_one(container, (uint64_t)(uintptr_t)buf + i * chunk, iova + i * chunk, chunk) != 0)
			fail_errno("warm-up VFIO_IOMMU_MAP_DMA");
	for (i = 0; i < 2 && i < calls; i++)
		if (unmap_one(container, iova + i * chunk, chunk) != (int64_t)chunk)
			fail_errno("warm-up VFIO_IOMMU_UNMAP_DMA");

	t0 = now_ns();
	for (i = 0; i < calls; i++) {
		if (map_one(container, (uint64_t)(uintptr_t)buf + i * chunk, iova + i * chunk,
			    chunk) != 0) {
			snprintf(what, sizeof(what), "VFIO_IOMMU_MAP_DMA #%" PRIu64 " at 0x%" PRIx64, i,
				 iova + i * chunk);
			fail_errno(what);
		}
		mapped++;
	}
	t1 = now_ns();
	for (i = 0; i < calls; i++) {
		got = unmap_one(container, iova + i * chunk, chunk);
		if (got < 0) {
			snprintf(what, sizeof(what), "VFIO_IOMMU_UNMAP_DMA #%" PRIu64 " at 0x%" PRIx64,
				 i, iova + i * chunk);
			fail_errno(what);
		}
		if ((uint64_t)got != chunk) {
			fprintf(stderr,
				"dma-bench impl=raw FAIL VFIO_IOMMU_UNMAP_DMA #%" PRIu64 " at 0x%" PRIx64
				" unmapped 0x%" PRIx64 " bytes, not 0x%" PRIx64 "\n",
				i, iova + i * chunk, (uint64_t)got, chunk);
			return 1;
		}
	}
	t2 = now_ns();

	if (mapped != calls)
		fail("map call count differs from SIZE/CHUNK");
	/* The first chunk's IOVA is free again: a fresh map there succeeds. */
	if (map_one(container, (uint64_t)(uintptr_t)buf, iova, chunk) != 0)
		fail_errno("re-map of chunk 0 after unmap (VFIO_IOMMU_MAP_DMA)");
	got = unmap_one(container, iova, chunk);
	if (got < 0)
		fail_errno("re-map check: VFIO_IOMMU_UNMAP_DMA");
	if ((uint64_t)got != chunk)
		fail("re-map check: unmap returned a different size");

	close(group);
	close(container);
	munmap(raw, size + ALIGN);
	printf("dma-bench impl=raw chunk=%" PRIu64 " size=%" PRIu64 " iova=0x%" PRIx64
	       " map_ns=%" PRIu64 " unmap_ns=%" PRIu64 " calls=%" PRIu64 " remap=ok thp_kb=%ld\n",
	       chunk, size, iova, t1 - t0, t2 - t1, mapped, thp);
	return 0;
}
