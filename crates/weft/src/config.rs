//! Engine configuration: [`Config`] and the [`Tunables`] that compiled code bakes in.

use crate::features::{Proposal, Proposals};

/// How hard Cranelift optimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptLevel {
    /// No optimisation: fastest compilation.
    None,
    /// Optimise for speed (the default).
    Speed,
    /// Optimise for speed and code size.
    SpeedAndSize,
}

/// How compiled code checks whether the embedder wants to interrupt it.
///
/// Checks sit where they bound the time between two of them: on every cycle of
/// a function's control flow (on a loop's back edge, unless the path from its
/// header already passed a check; a loop whose body calls checks at its header
/// instead) and before a call on any path that has not passed a check since
/// the function's entry or the last loop header, which bounds recursion. In
/// [`Interruption::MmuPage`] mode the prologue of every function that calls is
/// that check, at no cost. Code between two checks runs no loop and makes no
/// call that is not itself checked, so an interrupt takes effect within a
/// bounded number of instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interruption {
    /// No checks: a guest runs until it returns or traps.
    #[default]
    None,
    /// Load the engine's epoch and compare it with the store's deadline; when it
    /// is reached, a load from a forbidden page sends the thread through the
    /// signal handler to the store's callback (the check makes no call, which
    /// would cost registers across every loop).
    Epoch,
    /// One dead load at each point from a probe page: a read-only view of the
    /// store's interrupt page just below each instance's vmctx, or a
    /// read-only page just below each memory's base. At the entry of
    /// functions that call, the prologue's stack-limit load (`[vmctx -
    /// 4096]`); on loops a load through memory 0's base in functions that
    /// access it (`[base - 1 - k]`, see [`Config::mmu_memory_probes`]), else
    /// through the vmctx (`[vmctx - 4096 + k]`; or, as an
    /// option, in functions with a loop that calls, `cmp qword ptr gs:[0],
    /// 0` with the GS base pointed at a probe page of the store: see
    /// [`Config::mmu_segment_probes`]). Interrupting revokes those pages
    /// (`mprotect`, one per instance and memory of the store), and the fault
    /// becomes a call to the store's hook.
    MmuPage,
    /// Load the interrupt-page pointer from the store context, then a dead load
    /// through it; interrupting swaps the pointer to a forbidden page (a plain
    /// store, no system call).
    MmuPointer,
}

/// Settings that compiled code depends on. Modules compiled with one set of
/// tunables can only run in an engine with the same set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunables {
    /// Whether 32-bit memories sit in a reservation that covers every possible
    /// address (4 GiB plus a 4 GiB guard), so accesses need no bounds checks.
    pub guarded_memory32: bool,
    /// Maximum bytes of native stack that Wasm code may use per call from the host.
    pub max_wasm_stack: usize,
    /// The interruption checks compiled code makes.
    pub interruption: Interruption,
    /// In [`Interruption::MmuPage`] mode, whether functions with a loop that
    /// calls probe through the GS segment base, which Weft then points at a
    /// probe page on every entry into Wasm, instead of through the vmctx
    /// register (see [`Config::mmu_segment_probes`]).
    pub mmu_segment_probes: bool,
    /// In [`Interruption::MmuPage`] mode, whether functions that access
    /// memory 0 probe through its base instead of the vmctx (see
    /// [`Config::mmu_memory_probes`]).
    pub mmu_memory_probes: bool,
    /// Whether compiled code counts fuel (see [`Config::consume_fuel`]).
    pub consume_fuel: bool,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            guarded_memory32: true,
            max_wasm_stack: 512 * 1024,
            interruption: Interruption::None,
            mmu_segment_probes: false,
            mmu_memory_probes: true,
            consume_fuel: false,
        }
    }
}

/// How instances' memories and tables are allocated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum InstanceAllocationStrategy {
    /// Each memory reserves its own address space when created (the default).
    #[default]
    OnDemand,
    /// Memories come from slots reserved at engine creation and reused warm.
    Pooling(crate::runtime::pool::PoolingConfig),
}

/// Global configuration for an [`Engine`](crate::Engine).
///
/// # Example
///
/// ```
/// let mut config = weft::Config::new();
/// config.max_wasm_stack(256 * 1024).parallel_compilation(false);
/// let engine = weft::Engine::new(&config).unwrap();
/// # let _ = engine;
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) tunables: Tunables,
    pub(crate) allocation: InstanceAllocationStrategy,
    pub(crate) memory_images: bool,
    pub(crate) parallel_compilation: bool,
    pub(crate) opt_level: OptLevel,
    pub(crate) perf_map: bool,
    pub(crate) proposals: Proposals,
    pub(crate) nan_canonicalization: bool,
    pub(crate) stack_switching_stack_size: usize,
    pub(crate) max_continuations: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tunables: Tunables::default(),
            allocation: InstanceAllocationStrategy::OnDemand,
            memory_images: true,
            parallel_compilation: true,
            opt_level: OptLevel::Speed,
            perf_map: false,
            proposals: Proposals::default(),
            nan_canonicalization: false,
            stack_switching_stack_size: 256 * 1024,
            max_continuations: 1 << 20,
        }
    }
}

impl Config {
    /// The default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the maximum native stack, in bytes, that Wasm may use in one call from
    /// the host (default 512 KiB). Deeper recursion traps with
    /// [`Trap::StackOverflow`](crate::Trap::StackOverflow).
    ///
    /// The host thread's own stack must be larger than this, with room to spare
    /// for host functions called from Wasm.
    pub fn max_wasm_stack(&mut self, bytes: usize) -> &mut Self {
        self.tunables.max_wasm_stack = bytes;
        self
    }

    /// Sets the stack, in bytes, that Wasm code may use in each continuation
    /// (stack switching; default 256 KiB). Deeper recursion inside a
    /// continuation traps with [`Trap::StackOverflow`](crate::Trap::StackOverflow).
    ///
    /// Each continuation's stack also has a guard page and 64 KiB for the
    /// runtime below that. Stacks are reserved, not committed: a
    /// continuation costs only the pages it touches, usually one or two.
    /// Host functions called from a continuation run on the stack the host
    /// called Wasm on, so they are not bound by this size.
    pub fn stack_switching_stack_size(&mut self, bytes: usize) -> &mut Self {
        self.stack_switching_stack_size = bytes;
        self
    }

    /// Sets how many continuations a store may have at a time (created and
    /// not yet returned; default 2^20). `cont.new` beyond that traps with
    /// [`Trap::ContinuationsExhausted`](crate::Trap::ContinuationsExhausted),
    /// as it does when no stack can be mapped.
    pub fn max_continuations(&mut self, count: usize) -> &mut Self {
        self.max_continuations = count;
        self
    }

    /// Whether 32-bit memories use guard regions instead of explicit bounds checks
    /// (default true). With guards, each memory reserves 8 GiB of address space;
    /// without them every access is checked against the memory's current size.
    /// 64-bit memories always use explicit checks.
    pub fn memory_guard(&mut self, enable: bool) -> &mut Self {
        self.tunables.guarded_memory32 = enable;
        self
    }

    /// How memories and tables are allocated (default: on demand).
    ///
    /// With [`InstanceAllocationStrategy::Pooling`], the engine reserves all
    /// memory slots up front and instantiation reuses them: re-instantiating a
    /// module in a slot it used before costs one `madvise`.
    pub fn allocation_strategy(&mut self, strategy: InstanceAllocationStrategy) -> &mut Self {
        self.allocation = strategy;
        self
    }

    /// Whether data segments become copy-on-write memory images at compile time
    /// (default true). Without images, instantiation copies every segment.
    pub fn memory_images(&mut self, enable: bool) -> &mut Self {
        self.memory_images = enable;
        self
    }

    /// Enables epoch interruption (default off): at the points [`Interruption`]
    /// describes, compiled code compares the engine's epoch
    /// ([`Engine::increment_epoch`](crate::Engine::increment_epoch)) with the
    /// store's deadline ([`Store::set_epoch_deadline`](crate::Store::set_epoch_deadline)).
    /// Measured over the sightglass suite: 3.5-4.2% over no checks, against
    /// 13-14% for wasmtime 48's epochs (BENCHMARKS-LOG.md). Reaching a deadline
    /// costs a fault and a trip through the signal handler (2 µs here), so
    /// deadlines meant to fire every few microseconds are better served by
    /// larger ones.
    pub fn epoch_interruption(&mut self, enable: bool) -> &mut Self {
        self.tunables.interruption = if enable { Interruption::Epoch } else { Interruption::None };
        self
    }

    /// Makes guests consume fuel (default off): every Wasm operator costs
    /// one unit (`nop`, `drop`, `block`, `loop`, `end`, `else`,
    /// `unreachable` and `return` cost none, as in wasmtime), charged in the
    /// order the guest runs them and counted by the translator, so the same
    /// calls consume the same fuel whatever the optimisation level. A store
    /// starts with none: [`Store::set_fuel`](crate::Store::set_fuel) gives
    /// it some. When it runs out (checked at loop headers and at the entry
    /// of functions that call, so a guest may overrun by a stretch
    /// of code without loops or calls) the
    /// guest traps with [`Trap::OutOfFuel`](crate::Trap::OutOfFuel), unless
    /// [`Store::fuel_async_yield_interval`](crate::Store::fuel_async_yield_interval)
    /// or [`Store::out_of_fuel_callback`](crate::Store::out_of_fuel_callback)
    /// says otherwise. After a trap, the store's fuel counts what ran up to
    /// the trapping function's last call, refuel or entry, so a trap may
    /// leave uncounted the straight lines and loop rounds since then; host
    /// functions see the count up to their call
    /// ([`Caller::get_fuel`](crate::Caller::get_fuel)).
    pub fn consume_fuel(&mut self, enable: bool) -> &mut Self {
        self.tunables.consume_fuel = enable;
        self
    }

    /// Enables MMU interruption (default off): at the points [`Interruption`]
    /// describes, compiled code makes a dead load from a page the store can
    /// revoke, and
    /// [`InterruptHandle::interrupt`](crate::InterruptHandle::interrupt) makes
    /// the next such load fault into the store's interrupt hook.
    ///
    /// This selects [`Interruption::MmuPage`], whose checks cost -0.3% to
    /// 0.7% over no checks on the sightglass suite, 0.2% on average over the
    /// sixth session's runs (0.9% over 18 runs before loops probed through
    /// the memory base, see [`Config::mmu_memory_probes`]; BENCHMARKS-LOG.md),
    /// against 3.5-4.2% for epochs and 13-14% for wasmtime's epochs. Requests are cheaper with the
    /// pointer flip ([`Interruption::MmuPointer`], a plain store, whose checks
    /// cost more: two dependent loads per point), since revoking pages takes an
    /// `mprotect` per page and, with other threads of the process running, a
    /// TLB shootdown. The page is the default because its checks are cheapest
    /// and resuming from it needs no register repair; choose the pointer flip
    /// with [`Config::interruption`] for very frequent interrupts.
    pub fn mmu_interruption(&mut self, enable: bool) -> &mut Self {
        self.tunables.interruption = if enable { Interruption::MmuPage } else { Interruption::None };
        self
    }

    /// Whether, in [`Interruption::MmuPage`] mode, functions with a loop
    /// that calls probe the interrupt page through the GS segment base
    /// instead of the vmctx (default false; used only where the CPU and
    /// kernel let user code set the base: FSGSBASE, Linux 5.9 and later).
    ///
    /// A loop probe through the vmctx needs the vmctx in a register at the
    /// loop's back edge, which in a loop that calls costs a callee-saved
    /// register or a reload: richards, whose scheduler loop makes an
    /// indirect call, runs 20-39% slower with MMU checks for it. A segment
    /// probe, `cmp qword ptr gs:[0], 0`, names no register: Weft points the
    /// thread's GS base at a probe page of the store whenever it enters Wasm
    /// (and back at the outer store's when a nested call returns). With them
    /// richards costs 5-8%. But the probe is ten bytes long, which costs more
    /// than the register in tight loops, so only functions with a loop that
    /// calls get them (in all their loops: one vmctx probe would keep the
    /// vmctx live across the others); the others keep vmctx probes, and
    /// function entries are checked by the prologue's stack-limit load either
    /// way. Over the whole sightglass suite this measured no better: 1.4%
    /// over no checks against 1.1% for vmctx probes everywhere, in three runs
    /// that measured both (BENCHMARKS-LOG.md), which is why it is not the
    /// default.
    ///
    /// Entering Wasm costs about 3 ns more (a thread-local check, and
    /// `wrgsbase` when the thread last ran another store). Weft then owns
    /// the GS base of the threads that run Wasm: do not enable this if the
    /// embedder uses GS itself.
    pub fn mmu_segment_probes(&mut self, enable: bool) -> &mut Self {
        self.tunables.mmu_segment_probes = enable;
        self
    }

    /// Whether, in [`Interruption::MmuPage`] mode, loops in functions that
    /// access memory 0 probe the page below the memory's base instead of the
    /// page below the vmctx (default true).
    ///
    /// Every linear memory is preceded by a probe page, which in page mode
    /// the store makes readable and revokes with its other probe pages.
    /// A probe through the vmctx needs the vmctx in a register in the loop,
    /// which compiled code otherwise rarely needs there: the memory's base,
    /// which a loop that accesses memory keeps in a register anyway, serves
    /// as well, and its probes take an 8-bit displacement (the page's bytes
    /// are read from its end down). Functions that never access memory 0
    /// keep vmctx probes, and segment probes ([`Config::mmu_segment_probes`])
    /// take precedence where they apply.
    ///
    /// Over the sightglass suite, in four runs that measured both, MMU checks
    /// cost 0.25% on average with memory probes against 0.69% without
    /// (regex 2% faster than with no checks against 4% slower, hashset 0%
    /// against 4%), though gcc-loops loses 5-6% (BENCHMARKS-LOG.md).
    pub fn mmu_memory_probes(&mut self, enable: bool) -> &mut Self {
        self.tunables.mmu_memory_probes = enable;
        self
    }

    /// Whether loop probes go through the GS segment base: on a [`Config`]
    /// being built, whether they are requested; on an engine's
    /// ([`Engine::config`](crate::Engine::config)), whether they are in use,
    /// which also needs page mode and a host that allows them.
    pub fn segment_probes(&self) -> bool {
        self.tunables.mmu_segment_probes
    }

    /// Chooses the interruption mechanism directly (see [`Interruption`]).
    pub fn interruption(&mut self, mode: Interruption) -> &mut Self {
        self.tunables.interruption = mode;
        self
    }

    /// The interruption mechanism compiled code uses.
    pub fn interruption_mode(&self) -> Interruption {
        self.tunables.interruption
    }

    /// Whether functions are compiled on several threads (default true).
    pub fn parallel_compilation(&mut self, enable: bool) -> &mut Self {
        self.parallel_compilation = enable;
        self
    }

    /// Cranelift's optimisation level (default [`OptLevel::Speed`]).
    pub fn cranelift_opt_level(&mut self, level: OptLevel) -> &mut Self {
        self.opt_level = level;
        self
    }

    /// Whether every float result that is a NaN (scalar or in a vector lane)
    /// is made the canonical NaN (default off).
    ///
    /// Wasm lets NaN payloads and signs differ between hosts; with this on,
    /// compiled code gives the same bits on every host, for hosts that need
    /// deterministic execution (replay, consensus), at the cost of a compare
    /// and select after each float operation.
    pub fn cranelift_nan_canonicalization(&mut self, enable: bool) -> &mut Self {
        self.nan_canonicalization = enable;
        self
    }

    /// Appends each compiled function to `/tmp/perf-<pid>.map` (default off),
    /// so that `perf report` names Wasm functions (`wasm[module]::name`)
    /// instead of showing bare addresses.
    pub fn perf_map(&mut self, enable: bool) -> &mut Self {
        self.perf_map = enable;
        self
    }

    /// Turns a WebAssembly proposal on or off. A module that uses a proposal
    /// that is off is refused by [`Module::new`](crate::Module::new) with a
    /// [`CompileError`](crate::CompileError) of kind
    /// [`Unsupported`](crate::CompileErrorKind::Unsupported) naming it.
    ///
    /// By default exactly the proposals Weft implements are on
    /// ([`Proposal::is_enabled_by_default`]). [`Engine::new`](crate::Engine::new)
    /// refuses a configuration that turns on a proposal Weft does not
    /// implement, or turns one on without those it builds on
    /// ([`Proposal::requires`]). Turning a proposal off also turns off the
    /// proposals that build on it (exceptions off: stack switching off too).
    pub fn wasm_proposal(&mut self, proposal: Proposal, enable: bool) -> &mut Self {
        self.proposals = if enable { self.proposals.with(proposal, true) } else { self.proposals.without_dependents(proposal) };
        self
    }

    /// Whether `proposal` is on.
    pub fn proposal_enabled(&self, proposal: Proposal) -> bool {
        self.proposals.contains(proposal)
    }
}

/// One `Config::wasm_*` switch per proposal, named as in other runtimes.
macro_rules! proposal_switches {
    ($($(#[$doc:meta])* $method:ident => $proposal:ident,)*) => {
        impl Config {
            $(
                $(#[$doc])*
                ///
                /// See [`Config::wasm_proposal`].
                pub fn $method(&mut self, enable: bool) -> &mut Self {
                    self.wasm_proposal(Proposal::$proposal, enable)
                }
            )*
        }
    };
}

proposal_switches! {
    /// Reference types (default on).
    wasm_reference_types => ReferenceTypes,
    /// Multi-value (default on).
    wasm_multi_value => MultiValue,
    /// Bulk memory operations (default on).
    wasm_bulk_memory => BulkMemory,
    /// Tail calls (default on).
    wasm_tail_call => TailCall,
    /// Multiple memories (default on).
    wasm_multi_memory => MultiMemory,
    /// 64-bit memories and tables (default on).
    wasm_memory64 => Memory64,
    /// Extended constant expressions (default on).
    wasm_extended_const => ExtendedConst,
    /// Typed function references (default on).
    wasm_function_references => FunctionReferences,
    /// Garbage collection (default on: its types and constant expressions;
    /// struct and array types are refused as unsupported).
    wasm_gc => Gc,
    /// Exception handling (default on: tags; the instructions are refused as
    /// unsupported until they are implemented).
    wasm_exceptions => Exceptions,
    /// The legacy exception-handling encoding (`try`, `catch`, `catch_all`,
    /// `delegate`, `rethrow`), still emitted by many toolchains; lowered onto
    /// the same mechanism as the standard one (default on).
    wasm_legacy_exceptions => LegacyExceptions,
    /// 128-bit SIMD (default on). Turning it off needs relaxed SIMD off too.
    wasm_simd => Simd,
    /// Relaxed SIMD (default on), with one deterministic result per operator
    /// on every host (see the `translate::simd` module's documentation,
    /// summarised in the README).
    wasm_relaxed_simd => RelaxedSimd,
    /// Threads and atomics (default off: not implemented).
    wasm_threads => Threads,
    /// Stack switching: continuations, `resume`, `suspend`, `switch` (default on).
    wasm_stack_switching => StackSwitching,
    /// Wide arithmetic (default off: not implemented).
    wasm_wide_arithmetic => WideArithmetic,
    /// Custom page sizes (default off: not implemented).
    wasm_custom_page_sizes => CustomPageSizes,
}
