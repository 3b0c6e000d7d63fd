/*
 * weft_pages.h - zero-aware mmap/munmap for C code running inside WebAssembly.
 *
 * Link libweft_pages.a (built by crates/weft-pages/build-wasm.sh) into a
 * wasm32-wasi program to replace wasi-libc's malloc+memset mmap emulation.
 * Do NOT also link -lwasi-emulated-mman.
 *
 * Supported: mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
 * always returning zeroed, page-aligned (64 KiB) memory; the hint is ignored.
 * MAP_SHARED, MAP_FIXED, unknown flags or a non-zero offset fail with EINVAL,
 * file mappings and PROT_EXEC with ENOTSUP, exhaustion with ENOMEM.
 * munmap(addr, len) frees any page range of earlier mappings (partial and
 * middle ranges too); an unaligned address, zero length or memory not
 * obtained from mmap fails with EINVAL.
 *
 * Without the crate's "threads" feature the functions are single-threaded.
 */
#ifndef WEFT_PAGES_H
#define WEFT_PAGES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Same spellings as wasi-libc's <sys/mman.h>, so including both is fine. */
#ifndef MAP_FAILED
#define MAP_FAILED ((void *) -1)
#endif
#ifndef MAP_SHARED
#define MAP_SHARED     0x01
#endif
#ifndef MAP_PRIVATE
#define MAP_PRIVATE    0x02
#endif
#ifndef MAP_FIXED
#define MAP_FIXED      0x10
#endif
#ifndef MAP_ANON
#define MAP_ANON       0x20
#endif
#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS  MAP_ANON
#endif
#ifndef PROT_NONE
#define PROT_NONE      0
#endif
#ifndef PROT_READ
#define PROT_READ      1
#endif
#ifndef PROT_WRITE
#define PROT_WRITE     2
#endif
#ifndef PROT_EXEC
#define PROT_EXEC      4
#endif

void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
int munmap(void *addr, size_t length);

/* Counters of the global page manager. */
struct weft_pages_stats {
    uint64_t page_size;              /* bytes per page */
    uint64_t pages_in_use;           /* pages currently mapped */
    uint64_t pages_owned;            /* pages grown by the manager (mapped or free) */
    uint64_t bytes_memset;           /* bytes cleared: dirty pages handed out */
    uint64_t bytes_avoided;          /* bytes handed out zeroed without memset */
    uint64_t largest_free_run_bytes; /* longest run of free pages */
};

/* Fills *out; does nothing if out is NULL. */
void weft_pages_stats(struct weft_pages_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_PAGES_H */
