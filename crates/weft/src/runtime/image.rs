//! Copy-on-write memory images.
//!
//! When a module is compiled, the active data segments of each memory it defines
//! are laid out once into a sealed memfd: a page-aligned image of the memory's
//! initialised range. Instantiating then maps that image `MAP_PRIVATE` over the
//! start of the new memory: the kernel shares clean pages between all instances
//! and copies a page only when an instance writes it. Modules whose segments
//! cannot be imaged (offsets from imported globals, segments that do not fit the
//! initial size and so must trap in order, imported memories) are initialised
//! eagerly at instantiation instead, and a debug log line says why.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::frontend::{DataMode, ModuleInfo};
use crate::runtime::memory::WASM_PAGE_SIZE;

static NEXT_IMAGE_ID: AtomicU64 = AtomicU64::new(1);

/// Images larger than this are not built (the eager path is used instead).
const MAX_IMAGE_BYTES: u64 = 1 << 30;

/// The initial contents of one memory, in a sealed memfd.
#[derive(Debug)]
pub struct MemoryImage {
    fd: OwnedFd,
    /// Where the image starts in the memory (host-page aligned).
    pub offset: u64,
    /// Length of the image (host-page aligned).
    pub len: u64,
    /// Unique id, for slot affinity in the pooling allocator.
    pub id: u64,
    /// A read-only shared mapping of the image, so that restoring memory by
    /// copying (keep-resident) needs no system call.
    view: *const u8,
}

// SAFETY: the memfd is sealed and the view is read-only: immutable data.
unsafe impl Send for MemoryImage {}
// SAFETY: as above.
unsafe impl Sync for MemoryImage {}

impl MemoryImage {
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// The image's bytes.
    pub fn bytes(&self) -> &[u8] {
        if self.view.is_null() {
            return &[];
        }
        // SAFETY: `view` maps `len` readable bytes for the image's life.
        unsafe { std::slice::from_raw_parts(self.view, self.len as usize) }
    }
}

impl Drop for MemoryImage {
    fn drop(&mut self) {
        if !self.view.is_null() {
            // SAFETY: our own mapping, no longer referenced.
            unsafe { libc::munmap(self.view as *mut _, self.len as usize) };
        }
    }
}

/// Maps `len` bytes of `fd` read-only and shared.
fn map_view(fd: &OwnedFd, len: u64) -> Result<*const u8, String> {
    // SAFETY: a fresh read-only mapping of our own fd; the result is checked.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len as usize, libc::PROT_READ, libc::MAP_SHARED, fd.as_raw_fd(), 0) };
    if p == libc::MAP_FAILED {
        return Err(format!("mapping the image failed: {}", std::io::Error::last_os_error()));
    }
    Ok(p as *const u8)
}

/// Images for a module's defined memories.
#[derive(Debug, Default)]
pub struct ModuleImages {
    /// One entry per defined memory: its image, or `None` (no data, or eager).
    pub images: Vec<Option<Arc<MemoryImage>>>,
    /// Per data segment: whether its bytes are already in an image.
    pub segment_in_image: Vec<bool>,
}

fn host_page() -> u64 {
    crate::runtime::code::page_size() as u64
}

/// Builds the images of a module's defined memories from its data segments.
pub fn build(info: &ModuleInfo, bytes: &[u8]) -> ModuleImages {
    let mut out = ModuleImages { images: Vec::new(), segment_in_image: vec![false; info.data.len()] };
    for m in info.num_imported_memories..info.memories.len() as u32 {
        match build_one(info, bytes, m) {
            Ok(Some((image, segments))) => {
                for s in segments {
                    out.segment_in_image[s] = true;
                }
                out.images.push(Some(Arc::new(image)));
            }
            Ok(None) => out.images.push(None),
            Err(why) => {
                log::debug!("memory {m}: initialised eagerly at instantiation: {why}");
                out.images.push(None);
            }
        }
    }
    out
}

fn build_one(info: &ModuleInfo, bytes: &[u8], memory: u32) -> Result<Option<(MemoryImage, Vec<usize>)>, String> {
    let initial = info.memories[memory as usize].initial.saturating_mul(WASM_PAGE_SIZE);
    let mut segments = Vec::new();
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    for (i, seg) in info.data.iter().enumerate() {
        let DataMode::Active { memory: m, offset } = &seg.mode else { continue };
        if *m != memory {
            continue;
        }
        let off = offset.as_const_offset().ok_or("a segment offset is not a constant")?;
        let len = seg.range.len() as u64;
        let end = off.checked_add(len).filter(|e| *e <= initial).ok_or("a segment does not fit the initial size")?;
        if len > 0 {
            lo = lo.min(off);
            hi = hi.max(end);
        }
        segments.push((i, off));
    }
    if segments.is_empty() {
        return Ok(None);
    }
    if hi == 0 {
        // Only empty segments: nothing to map, but they are still "applied".
        return Ok(Some((empty_image()?, segments.into_iter().map(|(i, _)| i).collect())));
    }
    let page = host_page();
    let start = lo / page * page;
    let end = hi.div_ceil(page) * page;
    let len = end - start;
    if len > MAX_IMAGE_BYTES {
        return Err(format!("the image would be {len} bytes"));
    }
    let fd = crate::runtime::sys::memfd(c"weft-memory-image", true).map_err(|e| format!("memfd_create failed: {e}"))?;
    crate::runtime::sys::truncate(&fd, len).map_err(|e| format!("ftruncate failed: {e}"))?;
    // Later segments overwrite earlier ones, as instantiation would.
    for &(i, off) in &segments {
        let data = &bytes[info.data[i].range.clone()];
        let mut done = 0;
        while done < data.len() {
            // SAFETY: writing from a slice we own to our own fd.
            let n = unsafe { libc::pwrite(fd.as_raw_fd(), data[done..].as_ptr() as *const _, data.len() - done, (off - start + done as u64) as i64) };
            if n <= 0 {
                return Err(format!("pwrite failed: {}", std::io::Error::last_os_error()));
            }
            done += n as usize;
        }
    }
    seal(&fd);
    log::debug!("memory {memory}: copy-on-write image of {len} bytes at offset {start}");
    let view = map_view(&fd, len)?;
    let id = NEXT_IMAGE_ID.fetch_add(1, Ordering::Relaxed);
    Ok(Some((MemoryImage { fd, offset: start, len, id, view }, segments.into_iter().map(|(i, _)| i).collect())))
}

fn empty_image() -> Result<MemoryImage, String> {
    let fd = crate::runtime::sys::memfd(c"weft-memory-image", true).map_err(|e| format!("memfd_create failed: {e}"))?;
    seal(&fd);
    Ok(MemoryImage { fd, offset: 0, len: 0, id: NEXT_IMAGE_ID.fetch_add(1, Ordering::Relaxed), view: std::ptr::null() })
}

fn seal(fd: &OwnedFd) {
    // The image is immutable from here on; sealing lets the kernel (and
    // readers) rely on that. Failure only loses the guarantee, not correctness.
    // SAFETY: fcntl on our own fd.
    unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL);
    }
}
