/*
 * Self-checking test of weft-pages' C ABI, built for wasm32-wasi by
 * build-wasm.sh. Exits 0 and prints "pages_test: N passed, 0 failed" on success.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft_pages.h"

#define MIB (1024u * 1024u)

static int passed, failed;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (cond) {                                                        \
            passed++;                                                      \
        } else {                                                           \
            failed++;                                                      \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
        }                                                                  \
    } while (0)

static void *map(size_t len) {
    return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static int all_zero(const unsigned char *p, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (p[i] != 0) return 0;
    return 1;
}

static int overlaps(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen) {
    return a < b + blen && b < a + alen;
}

static struct weft_pages_stats stats(void) {
    struct weft_pages_stats s;
    weft_pages_stats(&s);
    return s;
}

int main(void) {
    /* Nothing has called malloc yet (no printf either): mmap must still keep
     * wasi-libc's lazily initialised heap out of the pages it grows. */
    struct weft_pages_stats s = stats();
    const size_t page = (size_t)s.page_size;
    CHECK(page == 65536);
    CHECK(s.pages_in_use == 0);

    /* Fresh allocations: zeroed, aligned, disjoint, and no memset at all. */
    enum { N = 8 };
    unsigned char *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = map(MIB);
        CHECK(blocks[i] != MAP_FAILED);
        CHECK(((uintptr_t)blocks[i] % page) == 0);
        CHECK(all_zero(blocks[i], MIB));
        memset(blocks[i], 0xA0 + i, MIB);
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) CHECK(!overlaps(blocks[i], MIB, blocks[j], MIB));
    s = stats();
    CHECK(s.bytes_memset == 0);
    CHECK(s.bytes_avoided == (uint64_t)N * MIB);
    CHECK(s.pages_in_use == N * (MIB / page));
    printf("after %d fresh 1 MiB maps: bytes_memset=%llu bytes_avoided=%llu\n", N,
           (unsigned long long)s.bytes_memset, (unsigned long long)s.bytes_avoided);

    /* A foreign allocator (malloc) grows memory in between: no overlap. */
    unsigned char *foreign = malloc(3 * MIB);
    CHECK(foreign != NULL);
    memset(foreign, 0x5A, 3 * MIB);
    unsigned char *after_foreign = map(2 * MIB);
    CHECK(after_foreign != MAP_FAILED);
    CHECK(!overlaps(after_foreign, 2 * MIB, foreign, 3 * MIB));
    CHECK(all_zero(after_foreign, 2 * MIB));
    memset(after_foreign, 0x11, 2 * MIB);

    /* Unmap the middle of block 0; the hole is reused first and cleared. */
    unsigned char *hole = blocks[0] + 4 * page;
    CHECK(munmap(hole, 4 * page) == 0);
    CHECK(stats().pages_in_use == N * (MIB / page) + 2 * MIB / page - 4);
    uint64_t memset_before = stats().bytes_memset;
    unsigned char *reuse = map(2 * page);
    CHECK(reuse == hole);
    CHECK(all_zero(reuse, 2 * page));
    CHECK(stats().bytes_memset == memset_before + 2 * page);
    /* The rest of block 0 keeps its contents. */
    CHECK(blocks[0][0] == 0xA0 && blocks[0][4 * page - 1] == 0xA0 && blocks[0][8 * page] == 0xA0);

    /* Free everything; a large map then reuses the welded free memory. */
    for (int i = 0; i < N; i++) CHECK(munmap(blocks[i], MIB) == 0);
    CHECK(munmap(after_foreign, 2 * MIB) == 0);
    s = stats();
    CHECK(s.pages_in_use == 0);
    unsigned char *big = map(4 * MIB);
    CHECK(big != MAP_FAILED);
    CHECK(all_zero(big, 4 * MIB));
    CHECK(!overlaps(big, 4 * MIB, foreign, 3 * MIB));
    CHECK(munmap(big, 4 * MIB) == 0);

    /* The foreign block was never touched. */
    int foreign_intact = 1;
    for (size_t i = 0; i < 3 * MIB; i++) foreign_intact &= foreign[i] == 0x5A;
    CHECK(foreign_intact);
    free(foreign);

    /* Errors. */
    errno = 0;
    CHECK(map(0) == MAP_FAILED && errno == EINVAL);
    errno = 0;
    CHECK(mmap(NULL, page, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0) == MAP_FAILED && errno == EINVAL);
    errno = 0;
    CHECK(mmap(NULL, page, PROT_READ, MAP_PRIVATE, 3, 0) == MAP_FAILED && errno == ENOTSUP);
    errno = 0;
    CHECK(mmap(NULL, page, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED &&
          errno == ENOTSUP);
    unsigned char *one = map(page);
    errno = 0;
    CHECK(munmap(one + 1, page) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(munmap(foreign, page) == -1 && errno == EINVAL);
    CHECK(munmap(one, page) == 0);

    s = stats();
    printf("stats: page_size=%llu pages_in_use=%llu pages_owned=%llu bytes_memset=%llu "
           "bytes_avoided=%llu largest_free_run_bytes=%llu\n",
           (unsigned long long)s.page_size, (unsigned long long)s.pages_in_use,
           (unsigned long long)s.pages_owned, (unsigned long long)s.bytes_memset,
           (unsigned long long)s.bytes_avoided, (unsigned long long)s.largest_free_run_bytes);
    printf("pages_test: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
