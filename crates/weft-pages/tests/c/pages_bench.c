/*
 * Benchmark of anonymous mmap/munmap inside WebAssembly, built for
 * wasm32-wasi by build-wasm.sh in three variants from this one source:
 *
 *   pages_bench_weft.wasm      -DBENCH_WEFT_PAGES, linked with libweft_pages.a
 *   pages_bench_emulated.wasm  -D_WASI_EMULATED_MMAN -lwasi-emulated-mman
 *                              (wasi-libc's malloc + memset emulation)
 *   pages_bench_firstfit.wasm  -DBENCH_LINEAR_FIRST_FIT: a reference
 *                              zero-aware first-fit page allocator that scans
 *                              its page array linearly (fragmentation baseline)
 *
 *   pages_bench_X.wasm TRACE [first|all]
 *
 * TRACE is one of
 *   fresh       64 zeroed 1 MiB maps on fresh memory, then unmapping them all;
 *   gc          GC-like cycles: regions of 256 KiB to 4 MiB until ~96 MiB are
 *               live, then free whole regions, tails and middles (partial
 *               munmap), 12 cycles, so freed memory is reused;
 *   fragmented  ~1500 live mappings of 1 to 8 pages churned by 30,000 random
 *               maps and unmaps.
 * The traces are the ones of benches/trace.rs (same generator and seeds),
 * except that every map is zeroed (POSIX anonymous mmap always is).
 *
 * After each map the program writes the first word of the mapping ("first",
 * the default, as benches/trace.rs does) or fills the whole mapping ("all":
 * a program that uses all the memory it maps, so fresh pages are committed by
 * the program instead of by the allocator's memset). Only the replay of the
 * trace is timed, with clock_gettime(CLOCK_MONOTONIC), in one process that
 * starts from fresh memory; run it several times for a median
 * (bench-wasm.sh does). Prints one line:
 *
 *   pages_bench: allocator=A trace=T touch=first time_us=... bytes_mapped=...
 *       bytes_memset=... peak_extent_bytes=... memory_grown_bytes=...
 *
 * bytes_memset counts the bytes the allocator cleared (wasi-libc's emulation
 * clears every mapped byte; weft-pages and first-fit only reused dirty
 * pages). peak_extent_bytes is the highest address ever handed out + 1,
 * minus memory.size before the replay (so the program's own static data,
 * which differs between the variants, does not count), and
 * memory_grown_bytes how much linear memory the replay grew (weft-pages grows
 * in 1 MiB chunks, so this rounds up). Fragmentation: lower is better.
 * Exits 1 if a mapping was not zeroed or a call failed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(BENCH_WEFT_PAGES)
#include "weft_pages.h"
#define ALLOCATOR "weft-pages"
/* Partial munmap frees the pages at once. */
#define PARTIAL_MUNMAP 1
#elif defined(_WASI_EMULATED_MMAN)
#include <sys/mman.h>
#define ALLOCATOR "emulated-mman"
/* wasi-libc's munmap only takes a whole mapping (EINVAL otherwise): keep a
 * region until all of it is unmapped, as benches/trace.rs models it. */
#define PARTIAL_MUNMAP 0
#elif defined(BENCH_LINEAR_FIRST_FIT)
#define ALLOCATOR "linear-first-fit"
#define PARTIAL_MUNMAP 1
#else
#error "define BENCH_WEFT_PAGES, _WASI_EMULATED_MMAN or BENCH_LINEAR_FIRST_FIT"
#endif

#define PAGE 65536u
#define MIB (1024u * 1024u)

/* ---- the allocator under test -------------------------------------------- */

#if defined(BENCH_LINEAR_FIRST_FIT)
/* Zero-aware first-fit with a linear scan: page states over the whole 4 GiB
 * space; memory.grow when nothing fits (only the pages missing after a free
 * tail). Pages below the first grow belong to the program. */
enum { FOREIGN = 0, FREE_ZEROED, FREE_DIRTY, ALLOCATED };
#define MAX_PAGES 65536u
static unsigned char states[MAX_PAGES];
static uint64_t ff_memset;

static void *bench_map(size_t len) {
    size_t pages = (len + PAGE - 1) / PAGE;
    size_t size = __builtin_wasm_memory_size(0);
    size_t run = 0, start = 0;
    int found = 0;
    for (size_t p = 0; p < size; p++) {
        run = (states[p] == FREE_ZEROED || states[p] == FREE_DIRTY) ? run + 1 : 0;
        if (run == pages) {
            start = p + 1 - pages;
            found = 1;
            break;
        }
    }
    if (!found) {
        /* `run` is the free tail that ends at memory.size. */
        size_t missing = pages - run;
        size_t old = __builtin_wasm_memory_grow(0, missing);
        if (old == (size_t)-1) return NULL;
        if (old != size) return NULL; /* someone else grew memory: not in this benchmark */
        for (size_t p = old; p < old + missing; p++) states[p] = FREE_ZEROED;
        start = old + missing - pages;
    }
    for (size_t p = start; p < start + pages; p++) {
        if (states[p] == FREE_DIRTY) {
            memset((void *)(p * PAGE), 0, PAGE);
            ff_memset += PAGE;
        }
        states[p] = ALLOCATED;
    }
    return (void *)(start * PAGE);
}

static int bench_unmap(void *addr, size_t len) {
    for (size_t p = (uintptr_t)addr / PAGE; p < ((uintptr_t)addr + len) / PAGE; p++) {
        if (states[p] != ALLOCATED) return -1;
        states[p] = FREE_DIRTY;
    }
    return 0;
}

static uint64_t bench_bytes_memset(void) { return ff_memset; }
#else
#if defined(_WASI_EMULATED_MMAN)
static uint64_t emulated_memset; /* wasi-libc's mmap clears every mapped byte */
#endif

static void *bench_map(size_t len) {
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#if defined(_WASI_EMULATED_MMAN)
    emulated_memset += len;
#endif
    return p;
}

static int bench_unmap(void *addr, size_t len) { return munmap(addr, len); }

static uint64_t bench_bytes_memset(void) {
#if defined(BENCH_WEFT_PAGES)
    struct weft_pages_stats s;
    weft_pages_stats(&s);
    return s.bytes_memset;
#else
    return emulated_memset;
#endif
}
#endif

/* ---- traces (benches/trace.rs) ------------------------------------------- */

struct event {
    int map;       /* 1 = map, 0 = unmap */
    uint32_t id;   /* region */
    uint32_t offset; /* unmap: offset inside the region */
    uint32_t len;  /* bytes */
};

#define MAX_EVENTS 65536
#define MAX_IDS 32768
static struct event events[MAX_EVENTS];
static size_t n_events;

static void push(int map, uint32_t id, uint32_t offset, uint32_t len) {
    if (n_events == MAX_EVENTS) {
        fprintf(stderr, "pages_bench: too many events\n");
        exit(2);
    }
    events[n_events++] = (struct event){map, id, offset, len};
}

static uint64_t rng;

static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint32_t below(uint32_t bound) { return (uint32_t)(next() % bound); }

static void fresh_trace(void) {
    for (uint32_t id = 0; id < 64; id++) push(1, id, 0, MIB);
    for (uint32_t id = 0; id < 64; id++) push(0, id, 0, MIB);
}

struct piece {
    uint32_t id, offset, len;
};
static struct piece live[MAX_IDS], survivors[MAX_IDS];

static void gc_trace(void) {
    rng = 0x2545F4914F6CDD1Dull;
    size_t n_live = 0;
    uint64_t live_bytes = 0;
    uint32_t next_id = 0;
    for (int cycle = 0; cycle < 12; cycle++) {
        while (live_bytes < 96u * MIB) {
            uint32_t len = (4 + below(61)) * PAGE; /* 256 KiB .. 4 MiB */
            push(1, next_id, 0, len);
            live[n_live++] = (struct piece){next_id, 0, len};
            live_bytes += len;
            next_id++;
        }
        size_t n_surv = 0;
        for (size_t i = 0; i < n_live; i++) {
            struct piece p = live[i];
            uint32_t pages = p.len / PAGE;
            uint32_t r = below(10);
            if (r <= 3) {
                push(0, p.id, p.offset, p.len);
                live_bytes -= p.len;
            } else if (r <= 6 && pages >= 2) {
                uint32_t keep = pages / 2 * PAGE;
                push(0, p.id, p.offset + keep, p.len - keep);
                live_bytes -= p.len - keep;
                survivors[n_surv++] = (struct piece){p.id, p.offset, keep};
            } else if (r >= 7 && r <= 8 && pages >= 4) {
                uint32_t head = pages / 4 * PAGE, hole = pages / 2 * PAGE;
                push(0, p.id, p.offset + head, hole);
                live_bytes -= hole;
                survivors[n_surv++] = (struct piece){p.id, p.offset, head};
                survivors[n_surv++] = (struct piece){p.id, p.offset + head + hole, p.len - head - hole};
            } else {
                survivors[n_surv++] = p;
            }
        }
        memcpy(live, survivors, n_surv * sizeof live[0]);
        n_live = n_surv;
    }
    for (size_t i = 0; i < n_live; i++) push(0, live[i].id, live[i].offset, live[i].len);
}

static void fragmented_trace(void) {
    rng = 0x9E3779B97F4A7C15ull;
    size_t n_live = 0;
    for (uint32_t id = 0; id < 30000; id++) {
        if (n_live < 1500 || below(100) < 45) {
            uint32_t len = (1 + below(8)) * PAGE;
            push(1, id, 0, len);
            live[n_live++] = (struct piece){id, 0, len};
        } else {
            /* Vec::swap_remove */
            size_t victim = below((uint32_t)n_live);
            push(0, live[victim].id, 0, live[victim].len);
            live[victim] = live[--n_live];
        }
    }
    for (size_t i = 0; i < n_live; i++) push(0, live[i].id, 0, live[i].len);
}

/* ---- replay --------------------------------------------------------------- */

static unsigned char *bases[MAX_IDS];
static uint32_t region_len[MAX_IDS], region_left[MAX_IDS];

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    /* wasi-libc's dlmalloc (linked with LLVM < 15) claims everything up to
     * memory.size on its first call: let it do so now, before any allocator
     * under test grows memory. */
    volatile unsigned char *warm = malloc(1);
    if (warm) *warm = 0;
    free((void *)warm);

    const char *trace = argc > 1 ? argv[1] : "fresh";
    const char *touch = argc > 2 ? argv[2] : "first";
    int fill_all = strcmp(touch, "all") == 0;
    if (strcmp(trace, "fresh") == 0) {
        fresh_trace();
    } else if (strcmp(trace, "gc") == 0) {
        gc_trace();
    } else if (strcmp(trace, "fragmented") == 0) {
        fragmented_trace();
    } else {
        fprintf(stderr, "usage: %s fresh|gc|fragmented [first|all]\n", argv[0]);
        return 2;
    }
    if (!fill_all && strcmp(touch, "first") != 0) {
        fprintf(stderr, "usage: %s fresh|gc|fragmented [first|all]\n", argv[0]);
        return 2;
    }

    uint64_t memset_before = bench_bytes_memset();
    size_t memory_before = __builtin_wasm_memory_size(0) * (size_t)PAGE;
    uint64_t mapped = 0;
    uintptr_t peak = 0;
    int errors = 0;

    uint64_t t0 = now_ns();
    for (size_t i = 0; i < n_events; i++) {
        struct event e = events[i];
        if (e.map) {
            unsigned char *p = bench_map(e.len);
            if (p == NULL) {
                errors++;
                break;
            }
            bases[e.id] = p;
            region_len[e.id] = e.len;
            region_left[e.id] = e.len;
            mapped += e.len;
            if ((uintptr_t)p + e.len > peak) peak = (uintptr_t)p + e.len;
            errors += *(volatile uint64_t *)p != 0;
            if (fill_all)
                memset(p, 0x5A, e.len);
            else
                *(volatile uint64_t *)p = 1;
        } else if (PARTIAL_MUNMAP) {
            errors += bench_unmap(bases[e.id] + e.offset, e.len) != 0;
        } else {
            region_left[e.id] -= e.len;
            if (region_left[e.id] == 0) errors += bench_unmap(bases[e.id], region_len[e.id]) != 0;
        }
    }
    uint64_t t1 = now_ns();

    size_t memory_after = __builtin_wasm_memory_size(0) * (size_t)PAGE;
    printf("pages_bench: allocator=%s trace=%s touch=%s time_us=%.1f bytes_mapped=%llu "
           "bytes_memset=%llu peak_extent_bytes=%llu memory_grown_bytes=%llu errors=%d\n",
           ALLOCATOR, trace, touch, (double)(t1 - t0) / 1000.0, (unsigned long long)mapped,
           (unsigned long long)(bench_bytes_memset() - memset_before),
           (unsigned long long)(peak > memory_before ? peak - memory_before : 0),
           (unsigned long long)(memory_after - memory_before), errors);
    return errors == 0 ? 0 : 1;
}
