//! Tables: growable arrays of 8-byte references (funcref pointers or externref
//! handles, 0 = null) that compiled code reads through a [`VMTableDefinition`].

use crate::types::TableType;
use crate::vmctx::VMTableDefinition;

/// Tables never grow beyond this many elements, whatever their declared maximum.
const MAX_TABLE_ELEMENTS: u64 = 10_000_000;

pub struct TableData {
    /// Read by compiled code; boxed so its address is stable.
    pub def: Box<VMTableDefinition>,
    elements: Vec<u64>,
    pub ty: TableType,
    /// The engine whose table pool the elements came from, if pooled.
    pool: Option<crate::Engine>,
    /// The vmctx of the instance whose functions lazy elements name (see
    /// [`LAZY_FUNCREF_TAG`](crate::vmctx::LAZY_FUNCREF_TAG)); null if none.
    pub lazy_owner: *mut u8,
}

// SAFETY: `def.base` points into `elements`, owned by this table.
unsafe impl Send for TableData {}

impl TableData {
    /// A table of `ty.minimum` elements set to `init`, with its buffer from the
    /// engine's table pool if it has one.
    pub fn new(ty: TableType, init: u64, engine: Option<&crate::Engine>) -> anyhow::Result<Self> {
        if ty.minimum > MAX_TABLE_ELEMENTS {
            anyhow::bail!("table minimum size of {} elements is too large", ty.minimum);
        }
        let pool = engine.filter(|e| e.inner.table_pool.is_some()).cloned();
        let elements = match &pool {
            Some(e) => e.inner.table_pool.as_ref().unwrap().take(ty.minimum as usize, init)?,
            None => vec![init; ty.minimum as usize],
        };
        let mut t = TableData {
            def: Box::new(VMTableDefinition { base: std::ptr::null_mut(), current_elements: 0 }),
            elements,
            ty,
            pool,
            lazy_owner: std::ptr::null_mut(),
        };
        t.sync();
        Ok(t)
    }

    fn sync(&mut self) {
        self.def.base = self.elements.as_mut_ptr();
        self.def.current_elements = self.elements.len() as u64;
    }

    pub fn size(&self) -> u64 {
        self.elements.len() as u64
    }

    pub fn elements(&self) -> &[u64] {
        &self.elements
    }

    pub fn elements_mut(&mut self) -> &mut [u64] {
        &mut self.elements
    }

    /// Grows by `delta` elements set to `init`; returns the old size, or `None`.
    pub fn grow(&mut self, delta: u64, init: u64) -> Option<u64> {
        let old = self.size();
        let new = old.checked_add(delta)?;
        let pool_limit = self.pool.as_ref().map_or(u64::MAX, |e| e.inner.table_pool.as_ref().unwrap().max_elements);
        if new > self.ty.maximum.unwrap_or(u64::MAX) || new > MAX_TABLE_ELEMENTS || new > pool_limit {
            return None;
        }
        self.elements.resize(new as usize, init);
        self.sync();
        Some(old)
    }
}

impl TableData {
    /// Resets every element to `init` at size `len` (for instance reset).
    pub fn reset(&mut self, len: usize, init: u64) {
        self.elements.clear();
        self.elements.resize(len, init);
        self.sync();
    }
}

impl Drop for TableData {
    fn drop(&mut self) {
        if let Some(engine) = &self.pool {
            engine.inner.table_pool.as_ref().unwrap().give_back(std::mem::take(&mut self.elements));
        }
    }
}
