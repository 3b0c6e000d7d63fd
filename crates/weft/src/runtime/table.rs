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
}

// SAFETY: `def.base` points into `elements`, owned by this table.
unsafe impl Send for TableData {}

impl TableData {
    pub fn new(ty: TableType, init: u64) -> anyhow::Result<Self> {
        if ty.minimum > MAX_TABLE_ELEMENTS {
            anyhow::bail!("table minimum size of {} elements is too large", ty.minimum);
        }
        let mut t = TableData {
            def: Box::new(VMTableDefinition { base: std::ptr::null_mut(), current_elements: 0 }),
            elements: vec![init; ty.minimum as usize],
            ty,
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
        if new > self.ty.maximum.unwrap_or(u64::MAX) || new > MAX_TABLE_ELEMENTS {
            return None;
        }
        self.elements.resize(new as usize, init);
        self.sync();
        Some(old)
    }
}
