//! Resource limits: what a guest may take from its host. A store's
//! [`ResourceLimiter`] (installed with [`Store::limiter`](crate::Store::limiter))
//! is asked before every memory or table grows, from Wasm (`memory.grow`,
//! `table.grow`) or from the host, and when an instance, memory or table is
//! created; [`StoreLimits`] is a ready-made one. This is wasmtime's API shape.
//!
//! A refused growth makes `memory.grow` / `table.grow` return -1 (or traps,
//! when the limiter returns an error, as [`StoreLimitsBuilder::trap_on_grow_failure`]
//! makes `StoreLimits` do); a refused creation fails instantiation with an
//! error naming the limit.
//!
//! # Example
//!
//! ```
//! use weft::{Engine, Instance, Module, Store, StoreLimits, StoreLimitsBuilder};
//!
//! let engine = Engine::default();
//! let module = Module::new(&engine, r#"(module (memory 1)
//!     (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#)?;
//! let mut store = Store::new(&engine, StoreLimitsBuilder::new().memory_size(2 << 16).build());
//! store.limiter(|limits| limits);
//! let instance = Instance::new(&mut store, &module, &[])?;
//! let grow = instance.get_typed_func::<i32, i32>(&mut store, "grow")?;
//! assert_eq!(grow.call(&mut store, 1)?, 1); // 2 pages: allowed
//! assert_eq!(grow.call(&mut store, 1)?, -1); // 3 pages: refused
//! # Ok::<(), weft::Error>(())
//! ```

/// The default limit on instances, memories and tables of a store.
pub const DEFAULT_INSTANCE_LIMIT: usize = 10_000;
/// See [`DEFAULT_INSTANCE_LIMIT`].
pub const DEFAULT_TABLE_LIMIT: usize = 10_000;
/// See [`DEFAULT_INSTANCE_LIMIT`].
pub const DEFAULT_MEMORY_LIMIT: usize = 10_000;

/// Decides how much a store's guests may take. Sizes are in bytes for
/// memories and in elements for tables.
pub trait ResourceLimiter {
    /// Whether a memory may grow from `current` to `desired` bytes
    /// (`maximum` is the memory type's, if any). Called with `current` 0
    /// when a memory is created with its initial size.
    ///
    /// # Errors
    /// An error traps the guest (or fails the host's call or the
    /// instantiation) with that error.
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> anyhow::Result<bool>;

    /// Called when a growth the limiter allowed failed anyway (past the
    /// maximum, or out of address space). An error traps the guest instead
    /// of `memory.grow` returning -1.
    ///
    /// # Errors
    /// As the implementation decides; by default none.
    fn memory_grow_failed(&mut self, error: anyhow::Error) -> anyhow::Result<()> {
        log::debug!("ignoring memory growth failure: {error:?}");
        Ok(())
    }

    /// Whether a table may grow from `current` to `desired` elements.
    ///
    /// # Errors
    /// As for [`Self::memory_growing`].
    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> anyhow::Result<bool>;

    /// As [`Self::memory_grow_failed`], for tables.
    ///
    /// # Errors
    /// As the implementation decides; by default none.
    fn table_grow_failed(&mut self, error: anyhow::Error) -> anyhow::Result<()> {
        log::debug!("ignoring table growth failure: {error:?}");
        Ok(())
    }

    /// The most instances the store may hold.
    fn instances(&self) -> usize {
        DEFAULT_INSTANCE_LIMIT
    }
    /// The most tables the store may hold.
    fn tables(&self) -> usize {
        DEFAULT_TABLE_LIMIT
    }
    /// The most memories the store may hold.
    fn memories(&self) -> usize {
        DEFAULT_MEMORY_LIMIT
    }
}

/// A [`ResourceLimiter`] with fixed limits: the size of each memory and of
/// each table, and the counts of instances, memories and tables. Build one
/// with [`StoreLimitsBuilder`].
#[derive(Debug, Clone)]
pub struct StoreLimits {
    memory_size: Option<usize>,
    table_elements: Option<usize>,
    instances: usize,
    tables: usize,
    memories: usize,
    trap_on_grow_failure: bool,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            memory_size: None,
            table_elements: None,
            instances: DEFAULT_INSTANCE_LIMIT,
            tables: DEFAULT_TABLE_LIMIT,
            memories: DEFAULT_MEMORY_LIMIT,
            trap_on_grow_failure: false,
        }
    }
}

impl ResourceLimiter for StoreLimits {
    fn memory_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> anyhow::Result<bool> {
        let allowed = self.memory_size.is_none_or(|limit| desired <= limit) && maximum.is_none_or(|max| desired <= max);
        if !allowed && self.trap_on_grow_failure {
            anyhow::bail!("forcing trap when growing memory to {desired} bytes (the store's limit is {:?} bytes)", self.memory_size);
        }
        Ok(allowed)
    }
    fn memory_grow_failed(&mut self, error: anyhow::Error) -> anyhow::Result<()> {
        if self.trap_on_grow_failure {
            Err(error.context("forcing a memory growth failure to be a trap"))
        } else {
            Ok(())
        }
    }
    fn table_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> anyhow::Result<bool> {
        let allowed = self.table_elements.is_none_or(|limit| desired <= limit) && maximum.is_none_or(|max| desired <= max);
        if !allowed && self.trap_on_grow_failure {
            anyhow::bail!("forcing trap when growing table to {desired} elements (the store's limit is {:?} elements)", self.table_elements);
        }
        Ok(allowed)
    }
    fn table_grow_failed(&mut self, error: anyhow::Error) -> anyhow::Result<()> {
        if self.trap_on_grow_failure {
            Err(error.context("forcing a table growth failure to be a trap"))
        } else {
            Ok(())
        }
    }
    fn instances(&self) -> usize {
        self.instances
    }
    fn tables(&self) -> usize {
        self.tables
    }
    fn memories(&self) -> usize {
        self.memories
    }
}

/// Builds a [`StoreLimits`]; every limit not set is unlimited (sizes) or
/// 10,000 (counts).
#[derive(Debug, Clone, Default)]
pub struct StoreLimitsBuilder(StoreLimits);

impl StoreLimitsBuilder {
    /// No limits but the default counts.
    pub fn new() -> Self {
        Self::default()
    }
    /// The most bytes any one memory may have.
    pub fn memory_size(mut self, limit: usize) -> Self {
        self.0.memory_size = Some(limit);
        self
    }
    /// The most elements any one table may have.
    pub fn table_elements(mut self, limit: usize) -> Self {
        self.0.table_elements = Some(limit);
        self
    }
    /// The most instances the store may hold.
    pub fn instances(mut self, limit: usize) -> Self {
        self.0.instances = limit;
        self
    }
    /// The most tables the store may hold.
    pub fn tables(mut self, limit: usize) -> Self {
        self.0.tables = limit;
        self
    }
    /// The most memories the store may hold.
    pub fn memories(mut self, limit: usize) -> Self {
        self.0.memories = limit;
        self
    }
    /// Whether a refused or failed growth traps instead of returning -1.
    pub fn trap_on_grow_failure(mut self, trap: bool) -> Self {
        self.0.trap_on_grow_failure = trap;
        self
    }
    /// The limits.
    pub fn build(self) -> StoreLimits {
        self.0
    }
}

/// A store's limiter, erased from its `T`: given the store (its
/// `StoreInner<T>`), the limiter inside its data.
pub(crate) type ErasedLimiter = Box<dyn (FnMut(*mut u8) -> *mut dyn ResourceLimiter) + Send>;

/// What a growth request came to.
pub(crate) enum Growth {
    /// Go ahead.
    Allowed,
    /// Refused: -1 to the guest, an error to the host.
    Refused,
    /// The limiter's error: a trap for the guest.
    Error(anyhow::Error),
}

impl crate::store::StoreOpaque {
    /// Asks the limiter whether a memory may grow from `current` to `desired` bytes.
    pub(crate) fn memory_growing(&mut self, current: u64, desired: u64, maximum: Option<u64>) -> Growth {
        let Some(limiter) = self.limiter() else { return Growth::Allowed };
        match limiter.memory_growing(current as usize, desired as usize, maximum.map(|m| m as usize)) {
            Ok(true) => Growth::Allowed,
            Ok(false) => Growth::Refused,
            Err(e) => Growth::Error(e),
        }
    }

    /// Tells the limiter that an allowed memory growth failed; `Some` error to trap with.
    pub(crate) fn memory_grow_failed(&mut self, error: anyhow::Error) -> Option<anyhow::Error> {
        self.limiter().and_then(|l| l.memory_grow_failed(error).err())
    }

    /// Asks the limiter whether a table may grow from `current` to `desired` elements.
    pub(crate) fn table_growing(&mut self, current: u64, desired: u64, maximum: Option<u64>) -> Growth {
        let Some(limiter) = self.limiter() else { return Growth::Allowed };
        match limiter.table_growing(current as usize, desired as usize, maximum.map(|m| m as usize)) {
            Ok(true) => Growth::Allowed,
            Ok(false) => Growth::Refused,
            Err(e) => Growth::Error(e),
        }
    }

    /// Tells the limiter that an allowed table growth failed; `Some` error to trap with.
    pub(crate) fn table_grow_failed(&mut self, error: anyhow::Error) -> Option<anyhow::Error> {
        self.limiter().and_then(|l| l.table_grow_failed(error).err())
    }

    /// Checks that `instances`, `memories` and `tables` more fit the
    /// limiter's counts.
    ///
    /// # Errors
    /// Names the limit that would be exceeded.
    pub(crate) fn check_counts(&mut self, instances: usize, memories: usize, tables: usize) -> anyhow::Result<()> {
        let (have_i, have_m, have_t) = (self.instances.len(), self.memories.len(), self.tables.len());
        let Some(limiter) = self.limiter() else { return Ok(()) };
        for (what, have, more, limit) in [
            ("instances", have_i, instances, limiter.instances()),
            ("memories", have_m, memories, limiter.memories()),
            ("tables", have_t, tables, limiter.tables()),
        ] {
            if have + more > limit {
                anyhow::bail!("resource limit exceeded: {what} count too high at {} (the store's limit is {limit})", have + more);
            }
        }
        Ok(())
    }
}

impl crate::store::StoreOpaque {
    /// Grows memory `index` of the store by `delta` pages, as the limiter
    /// allows: the previous size in pages, or `None` if refused or failed.
    ///
    /// # Errors
    /// The limiter's error (the guest traps with it).
    pub(crate) fn grow_memory(&mut self, index: usize, delta: u64) -> anyhow::Result<Option<u64>> {
        let entry = &self.memories[index];
        let current = entry.mem.byte_size();
        if delta > 0 {
            let maximum = entry.ty.maximum.and_then(|p| p.checked_mul(crate::runtime::memory::WASM_PAGE_SIZE));
            let Some(desired) = delta.checked_mul(crate::runtime::memory::WASM_PAGE_SIZE).and_then(|d| current.checked_add(d)) else { return Ok(None) };
            match self.memory_growing(current, desired, maximum) {
                Growth::Allowed => {}
                Growth::Refused => return Ok(None),
                Growth::Error(e) => return Err(e),
            }
        }
        match self.memories[index].mem.grow(delta) {
            Some(old) => Ok(Some(old)),
            None => match self.memory_grow_failed(anyhow::anyhow!("failed to grow memory by {delta} pages")) {
                Some(e) => Err(e),
                None => Ok(None),
            },
        }
    }

    /// Grows table `index` of the store by `delta` elements of `init`, as
    /// the limiter allows: the previous size, or `None` if refused or failed.
    ///
    /// # Errors
    /// The limiter's error (the guest traps with it).
    pub(crate) fn grow_table(&mut self, index: usize, delta: u64, init: u64) -> anyhow::Result<Option<u64>> {
        let table = &self.tables[index];
        let current = table.size();
        if delta > 0 {
            let Some(desired) = current.checked_add(delta) else { return Ok(None) };
            match self.table_growing(current, desired, table.ty.maximum) {
                Growth::Allowed => {}
                Growth::Refused => return Ok(None),
                Growth::Error(e) => return Err(e),
            }
        }
        match self.tables[index].grow(delta, init) {
            Some(old) => Ok(Some(old)),
            None => match self.table_grow_failed(anyhow::anyhow!("failed to grow table by {delta} elements")) {
                Some(e) => Err(e),
                None => Ok(None),
            },
        }
    }

    /// Asks the limiter about a new memory of `minimum` pages (and `maximum`).
    ///
    /// # Errors
    /// If the limiter refuses it (naming the size), or its error.
    pub(crate) fn check_new_memory(&mut self, minimum: u64, maximum: Option<u64>) -> anyhow::Result<()> {
        let page = crate::runtime::memory::WASM_PAGE_SIZE;
        let desired = minimum.saturating_mul(page);
        match self.memory_growing(0, desired, maximum.map(|m| m.saturating_mul(page))) {
            Growth::Allowed => Ok(()),
            Growth::Refused => anyhow::bail!("resource limit exceeded: a memory of {desired} bytes is larger than the store allows"),
            Growth::Error(e) => Err(e),
        }
    }

    /// Asks the limiter about a new table of `minimum` elements (and `maximum`).
    ///
    /// # Errors
    /// If the limiter refuses it (naming the size), or its error.
    pub(crate) fn check_new_table(&mut self, minimum: u64, maximum: Option<u64>) -> anyhow::Result<()> {
        match self.table_growing(0, minimum, maximum) {
            Growth::Allowed => Ok(()),
            Growth::Refused => anyhow::bail!("resource limit exceeded: a table of {minimum} elements is larger than the store allows"),
            Growth::Error(e) => Err(e),
        }
    }
}
