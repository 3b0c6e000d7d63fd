//! The engine: compilation settings, the target ISA, the canonical type registry
//! and the trampoline cache, shared by every module and store created from it.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use cranelift_codegen::isa::OwnedTargetIsa;

use crate::compile::{self, Trampolines};
use crate::config::{Config, InstanceAllocationStrategy};
use crate::runtime::interrupt::{InterruptShared, PagePool};
use crate::runtime::memory::GUARDED_RESERVATION;
use crate::runtime::pool::{MemoryPool, TablePool};
use crate::runtime::signals;
use crate::types::{FuncType, TypeId, TypeRegistry};

pub(crate) struct EngineInner {
    config: Config,
    pub isa: OwnedTargetIsa,
    pub types: TypeRegistry,
    trampolines: Mutex<HashMap<TypeId, Arc<Trampolines>>>,
    epoch: AtomicU64,
    pub memory_pool: Option<Arc<MemoryPool>>,
    pub table_pool: Option<TablePool>,
    /// Interrupt state of every live store in MMU modes, for engine-wide interruption.
    pub interruptible: Mutex<Vec<std::sync::Weak<InterruptShared>>>,
    /// Interrupt pages for new stores in MMU modes.
    pub interrupt_pages: Arc<PagePool>,
    /// Stacks for continuations, reused by every store.
    pub stacks: Arc<crate::runtime::stacks::StackPool>,
}

/// A compilation environment: configuration, code generator and type registry.
///
/// Cheap to clone (reference-counted); share one engine between all modules and
/// stores that should interoperate.
///
/// # Example
///
/// ```
/// use weft::{Config, Engine, Module};
///
/// let mut config = Config::new();
/// config.epoch_interruption(true);
/// let engine = Engine::new(&config)?;
/// let module = Module::new(&engine, "(module)")?;
/// assert!(Engine::same(module.engine(), &engine));
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(&Config::default()).expect("the default configuration is supported on this host")
    }
}

impl Engine {
    /// Creates an engine with `config`.
    ///
    /// # Errors
    /// Fails if the host CPU is not supported by the code generator, or if
    /// `config` turns on a WebAssembly proposal Weft does not implement, or
    /// one without the proposals it requires.
    pub fn new(config: &Config) -> anyhow::Result<Engine> {
        config.proposals.check()?;
        signals::install_handlers();
        let mut config = config.clone();
        // Segment probes only exist in page mode, and only where the
        // segment base can be set without a system call.
        let tunables = &mut config.tunables;
        tunables.mmu_segment_probes &= tunables.interruption == crate::config::Interruption::MmuPage && crate::runtime::sys::fsgsbase_available();
        tunables.mmu_memory_probes &= tunables.interruption == crate::config::Interruption::MmuPage;
        let config = &config;
        let isa = compile::build_isa(config)?;
        let (memory_pool, table_pool) = match &config.allocation {
            InstanceAllocationStrategy::OnDemand => (None, None),
            InstanceAllocationStrategy::Pooling(p) => {
                let slot = if config.tunables.guarded_memory32 { GUARDED_RESERVATION } else { p.max_memory_size };
                (Some(MemoryPool::new(p, slot)?), Some(TablePool::new(p)))
            }
        };
        Ok(Engine {
            inner: Arc::new(EngineInner {
                config: config.clone(),
                isa,
                types: TypeRegistry::default(),
                trampolines: Mutex::new(HashMap::new()),
                epoch: AtomicU64::new(0),
                memory_pool,
                table_pool,
                interruptible: Mutex::new(Vec::new()),
                interrupt_pages: Arc::default(),
                stacks: Arc::new(crate::runtime::stacks::StackPool::new(config.stack_switching_stack_size, 1024)),
            }),
        })
    }

    /// The configuration this engine was created with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn epoch_counter(&self) -> &AtomicU64 {
        &self.inner.epoch
    }

    /// Advances the epoch by one. Stores whose deadline is reached stop at their
    /// next interruption point. Async-signal-safe; callable from any thread.
    pub fn increment_epoch(&self) {
        self.inner.epoch.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Interrupts every store of this engine at once (MMU interruption; with
    /// epochs, [`increment_epoch`](Self::increment_epoch) is the engine-wide
    /// mechanism). Callable from any thread, but not from a signal handler (it
    /// takes a lock); per-store handles are signal-safe.
    pub fn interrupt_all(&self) {
        let mut stores = self.inner.interruptible.lock().unwrap();
        stores.retain(|w| match w.upgrade() {
            Some(shared) => {
                crate::runtime::interrupt::InterruptHandle { shared }.interrupt();
                true
            }
            None => false,
        });
    }

    pub(crate) fn register_interruptible(&self, shared: &Arc<InterruptShared>) {
        let mut stores = self.inner.interruptible.lock().unwrap();
        if stores.len() > 64 && stores.len().is_power_of_two() {
            stores.retain(|w| w.strong_count() > 0);
        }
        stores.push(Arc::downgrade(shared));
    }

    /// Whether two handles refer to the same engine.
    pub fn same(a: &Engine, b: &Engine) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }

    pub(crate) fn func_type(&self, id: TypeId) -> Arc<FuncType> {
        self.inner.types.get(id)
    }

    pub(crate) fn register_type(&self, ty: &FuncType) -> TypeId {
        self.inner.types.register_host(ty)
    }

    /// The trampolines for function type `id`, compiled on first use.
    pub(crate) fn trampolines(&self, id: TypeId) -> anyhow::Result<Arc<Trampolines>> {
        if let Some(t) = self.inner.trampolines.lock().unwrap().get(&id) {
            return Ok(t.clone());
        }
        let ty = self.func_type(id);
        let t = Arc::new(compile::compile_trampolines(&self.inner.isa, &ty, self.inner.config.tunables.consume_fuel)?);
        Ok(self.inner.trampolines.lock().unwrap().entry(id).or_insert(t).clone())
    }
}
