//! Benchmark: weft-pages against wasi-libc's emulated mmap and a linear-scan
//! first-fit page allocator, on two traces:
//!
//! * `fresh`: 64 zeroed 1 MiB maps on fresh memory, then unmapping them.
//! * `gc`: a GC-like pattern of large regions (256 KiB to 4 MiB), collection
//!   cycles that free whole regions, tails and middles (partial unmaps), and
//!   reuse of the freed memory.
//! * `fragmented`: ~1500 live small mappings churned by 30,000 random maps
//!   and unmaps without zeroing, to isolate the cost of finding free runs.
//!
//! Maps are zeroed (anonymous `mmap` is, per POSIX) except in `fragmented`,
//! and the "program" writes the first word of each mapping. Before timing, each trace is run
//! once per allocator to print bytes memset and the peak address extent
//! (fragmentation: lower is better).
//!
//! `cargo bench -p weft-pages --bench trace -- --warm-up-time 1 --measurement-time 3`

use std::alloc::{alloc, dealloc, Layout};
use std::collections::HashMap;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use weft_pages::{Config, LinearMemory, PageManager, WASM_PAGE_SIZE};

const PAGE: usize = WASM_PAGE_SIZE;
/// Simulated linear memory: reserved (lazily zeroed by the OS), 1 GiB.
const MEMORY_BYTES: usize = 1 << 30;
const MEMORY_PAGES: usize = MEMORY_BYTES / PAGE;

#[derive(Debug, Clone, Copy)]
enum Event {
    /// Map region `id` of `len` bytes (a multiple of the page size); zeroed
    /// unless `zeroed` is false (weft-pages' Rust API can skip clearing; the
    /// emulated mmap always clears).
    Map { id: usize, len: usize, zeroed: bool },
    /// Unmap `len` bytes at `offset` inside region `id`.
    Unmap { id: usize, offset: usize, len: usize },
}

/// 64 fresh 1 MiB maps, then unmap them all.
fn fresh_trace() -> Vec<Event> {
    let mut events: Vec<Event> = (0..64).map(|id| Event::Map { id, len: 1 << 20, zeroed: true }).collect();
    events.extend((0..64).map(|id| Event::Unmap { id, offset: 0, len: 1 << 20 }));
    events
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// GC-like: allocate regions until ~96 MiB are live, then collect: free whole
/// regions, their tails or their middles; repeat for 12 cycles.
fn gc_trace() -> Vec<Event> {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut events = Vec::new();
    // Live pieces: (region id, offset, len).
    let mut live: Vec<(usize, usize, usize)> = Vec::new();
    let mut live_bytes = 0;
    let mut next_id = 0;
    for _cycle in 0..12 {
        while live_bytes < 96 << 20 {
            let len = (4 + rng.below(61)) * PAGE; // 256 KiB .. 4 MiB
            events.push(Event::Map { id: next_id, len, zeroed: true });
            live.push((next_id, 0, len));
            live_bytes += len;
            next_id += 1;
        }
        let mut survivors = Vec::new();
        for (id, offset, len) in live.drain(..) {
            let pages = len / PAGE;
            match rng.below(10) {
                0..=3 => {
                    events.push(Event::Unmap { id, offset, len });
                    live_bytes -= len;
                }
                4..=6 if pages >= 2 => {
                    let keep = pages / 2 * PAGE;
                    events.push(Event::Unmap { id, offset: offset + keep, len: len - keep });
                    live_bytes -= len - keep;
                    survivors.push((id, offset, keep));
                }
                7..=8 if pages >= 4 => {
                    let head = pages / 4 * PAGE;
                    let hole = pages / 2 * PAGE;
                    events.push(Event::Unmap { id, offset: offset + head, len: hole });
                    live_bytes -= hole;
                    survivors.push((id, offset, head));
                    survivors.push((id, offset + head + hole, len - head - hole));
                }
                _ => survivors.push((id, offset, len)),
            }
        }
        live = survivors;
    }
    for (id, offset, len) in live {
        events.push(Event::Unmap { id, offset, len });
    }
    events
}

/// Heap fragmentation: ~1500 live small mappings (1 to 8 pages), 30,000
/// random maps and unmaps, unzeroed, so the cost is the free-run search.
fn fragmented_trace() -> Vec<Event> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut events = Vec::new();
    let mut live: Vec<(usize, usize)> = Vec::new();
    for id in 0..30_000 {
        if live.len() < 1500 || rng.below(100) < 45 {
            let len = (1 + rng.below(8)) * PAGE;
            events.push(Event::Map { id, len, zeroed: false });
            live.push((id, len));
        } else {
            let (victim, len) = live.swap_remove(rng.below(live.len()));
            events.push(Event::Unmap { id: victim, offset: 0, len });
        }
    }
    for (id, len) in live {
        events.push(Event::Unmap { id, offset: 0, len });
    }
    events
}

/// An allocator under test.
trait Mapper {
    /// Anonymous map; returns the address.
    fn map(&mut self, len: usize, zeroed: bool) -> usize;
    /// Unmaps part of (or all of) a mapping made at `base`.
    fn unmap(&mut self, base: usize, offset: usize, len: usize);
    /// The program writes the first word of a new mapping.
    fn touch(&mut self, addr: usize);
    fn bytes_memset(&self) -> u64;
    /// Highest address ever handed out + 1 (fragmentation measure).
    fn peak_extent(&self) -> usize;
}

fn run(mapper: &mut impl Mapper, events: &[Event]) {
    let mut bases: HashMap<usize, usize> = HashMap::with_capacity(events.len());
    for event in events {
        match *event {
            Event::Map { id, len, zeroed } => {
                let addr = mapper.map(len, zeroed);
                mapper.touch(addr);
                bases.insert(id, addr);
            }
            Event::Unmap { id, offset, len } => mapper.unmap(bases[&id], offset, len),
        }
    }
}

/// A simulated linear memory that owns its (lazily zeroed) reservation.
struct OwnedMemory {
    buffer: Vec<u8>,
    wasm_pages: usize,
}

impl LinearMemory for OwnedMemory {
    fn size_in_wasm_pages(&self) -> usize {
        self.wasm_pages
    }
    fn grow_wasm_pages(&mut self, delta: usize) -> Option<usize> {
        let previous = self.wasm_pages;
        if (previous + delta) * WASM_PAGE_SIZE > self.buffer.len() {
            return None;
        }
        self.wasm_pages += delta;
        Some(previous)
    }
    unsafe fn fill_zero(&mut self, addr: usize, len: usize) {
        self.buffer[addr..addr + len].fill(0);
    }
}

/// weft-pages over a simulated linear memory (1 Wasm page used by the program).
struct Weft {
    pages: Box<PageManager<OwnedMemory>>,
    peak: usize,
}

impl Weft {
    fn new() -> Self {
        let memory = OwnedMemory { buffer: vec![0u8; MEMORY_BYTES], wasm_pages: 1 };
        Weft { pages: Box::new(PageManager::new(memory, Config::DEFAULT)), peak: 0 }
    }
}

impl Mapper for Weft {
    fn map(&mut self, len: usize, zeroed: bool) -> usize {
        let addr = self.pages.mmap(len, 1, zeroed).expect("weft mmap");
        self.peak = self.peak.max(addr + len);
        addr
    }
    fn unmap(&mut self, base: usize, offset: usize, len: usize) {
        self.pages.munmap(base + offset, len).expect("weft munmap");
    }
    fn touch(&mut self, addr: usize) {
        self.pages.memory_mut().buffer[addr..addr + 8].copy_from_slice(&1u64.to_le_bytes());
    }
    fn bytes_memset(&self) -> u64 {
        self.pages.stats().bytes_memset
    }
    fn peak_extent(&self) -> usize {
        self.peak
    }
}

/// wasi-libc's libc-bottom-half/mman/mman.c: `malloc(sizeof(struct map) + len)`,
/// `memset` of the whole length on every map, `free` on munmap, and partial
/// munmap unsupported (the memory stays allocated until all of it is unmapped).
struct EmulatedMman {
    /// base address -> (layout, pages still mapped)
    maps: HashMap<usize, (Layout, usize)>,
    memset: u64,
}

/// `struct map { int prot; int flags; off_t offset; size_t length; }` on wasm32.
const EMULATED_HEADER: usize = 24;

impl Mapper for EmulatedMman {
    fn map(&mut self, len: usize, _zeroed: bool) -> usize {
        let layout = Layout::from_size_align(EMULATED_HEADER + len, 16).expect("layout");
        // SAFETY: the layout has a non-zero size.
        let block = unsafe { alloc(layout) };
        assert!(!block.is_null());
        // SAFETY: `block` is valid for `EMULATED_HEADER + len` bytes.
        let body = unsafe { block.add(EMULATED_HEADER) };
        // SAFETY: the body is inside the block.
        unsafe { std::ptr::write_bytes(body, 0, len) };
        self.memset += len as u64;
        self.maps.insert(body as usize, (layout, len / PAGE));
        body as usize
    }
    fn unmap(&mut self, base: usize, _offset: usize, len: usize) {
        let entry = self.maps.get_mut(&base).expect("unknown mapping");
        entry.1 -= len / PAGE;
        if entry.1 == 0 {
            let (layout, _) = self.maps.remove(&base).expect("present");
            // SAFETY: allocated by `map` with this layout, freed once.
            unsafe { dealloc((base - EMULATED_HEADER) as *mut u8, layout) };
        }
    }
    fn touch(&mut self, addr: usize) {
        // SAFETY: `addr` is the body of a live block of at least 8 bytes.
        unsafe { (addr as *mut u64).write_unaligned(1) };
    }
    fn bytes_memset(&self) -> u64 {
        self.memset
    }
    fn peak_extent(&self) -> usize {
        0 // not comparable: the native malloc's address space
    }
}

impl Drop for EmulatedMman {
    fn drop(&mut self) {
        for (base, (layout, _)) in self.maps.drain() {
            // SAFETY: allocated by `map` with this layout and not freed yet.
            unsafe { dealloc((base - EMULATED_HEADER) as *mut u8, layout) };
        }
    }
}

/// A zero-aware first-fit page allocator that scans the page array linearly.
struct LinearFirstFit {
    memory: Vec<u8>,
    /// 0 = free-zeroed, 1 = free-dirty, 2 = allocated. Page 0 is the program's.
    states: Vec<u8>,
    memset: u64,
    peak: usize,
}

impl LinearFirstFit {
    fn new() -> Self {
        let mut states = vec![0u8; MEMORY_PAGES];
        states[0] = 2;
        LinearFirstFit { memory: vec![0u8; MEMORY_BYTES], states, memset: 0, peak: 0 }
    }
}

impl Mapper for LinearFirstFit {
    fn map(&mut self, len: usize, zeroed: bool) -> usize {
        let pages = len.div_ceil(PAGE);
        let mut run = 0;
        let mut start = None;
        for (page, state) in self.states.iter().enumerate() {
            run = if *state < 2 { run + 1 } else { 0 };
            if run == pages {
                start = Some(page + 1 - pages);
                break;
            }
        }
        let start = start.expect("linear first-fit out of memory");
        for page in start..start + pages {
            if zeroed && self.states[page] == 1 {
                self.memory[page * PAGE..(page + 1) * PAGE].fill(0);
                self.memset += PAGE as u64;
            }
            self.states[page] = 2;
        }
        self.peak = self.peak.max((start + pages) * PAGE);
        start * PAGE
    }
    fn unmap(&mut self, base: usize, offset: usize, len: usize) {
        let first = (base + offset) / PAGE;
        for state in &mut self.states[first..first + len / PAGE] {
            *state = 1;
        }
    }
    fn touch(&mut self, addr: usize) {
        self.memory[addr..addr + 8].copy_from_slice(&1u64.to_le_bytes());
    }
    fn bytes_memset(&self) -> u64 {
        self.memset
    }
    fn peak_extent(&self) -> usize {
        self.peak
    }
}

fn report(name: &str, events: &[Event]) {
    let mut weft = Weft::new();
    run(&mut weft, events);
    let mut emulated = EmulatedMman { maps: HashMap::new(), memset: 0 };
    run(&mut emulated, events);
    let mut linear = LinearFirstFit::new();
    run(&mut linear, events);
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    println!(
        "[{name}] bytes memset: weft-pages {:.1} MiB, emulated-mman {:.1} MiB, linear-first-fit {:.1} MiB",
        mib(weft.bytes_memset()),
        mib(emulated.bytes_memset()),
        mib(linear.bytes_memset())
    );
    println!("[{name}] peak extent: weft-pages {:.1} MiB, linear-first-fit {:.1} MiB", mib(weft.peak_extent() as u64), mib(linear.peak_extent() as u64));
}

fn bench_trace(c: &mut Criterion, name: &str, events: &[Event]) {
    report(name, events);
    let mut group = c.benchmark_group(name);
    // Each iteration starts from fresh (lazily zeroed) memory; setup and
    // teardown (dropping the state) are not timed.
    group.bench_function("weft-pages", |b| {
        b.iter_batched(
            Weft::new,
            |mut weft| {
                run(&mut weft, events);
                weft
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("emulated-mman", |b| {
        b.iter_batched(
            || EmulatedMman { maps: HashMap::new(), memset: 0 },
            |mut emulated| {
                run(&mut emulated, events);
                emulated
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("linear-first-fit", |b| {
        b.iter_batched(
            LinearFirstFit::new,
            |mut linear| {
                run(&mut linear, events);
                linear
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, fresh, gc, fragmented);
criterion_main!(benches);

fn fresh(c: &mut Criterion) {
    bench_trace(c, "fresh", &fresh_trace());
}

fn gc(c: &mut Criterion) {
    bench_trace(c, "gc", &gc_trace());
}

fn fragmented(c: &mut Criterion) {
    bench_trace(c, "fragmented", &fragmented_trace());
}
