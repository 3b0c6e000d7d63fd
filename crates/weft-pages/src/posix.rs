//! POSIX `mmap`/`munmap` argument checking, independent of the target.
//!
//! The constants are wasi-libc's (musl's) values. The C symbols themselves
//! exist only on wasm32 with feature `c-abi`, but the rules for which requests
//! are supported live here so that native tests cover them.

use crate::manager::Error;

/// Pages may not be accessed.
pub const PROT_NONE: i32 = 0;
/// Pages may be read.
pub const PROT_READ: i32 = 1;
/// Pages may be written.
pub const PROT_WRITE: i32 = 2;
/// Pages may be executed (impossible in Wasm: rejected).
pub const PROT_EXEC: i32 = 4;

/// Shared mapping (rejected).
pub const MAP_SHARED: i32 = 0x01;
/// Private mapping (required).
pub const MAP_PRIVATE: i32 = 0x02;
/// Mapping type mask (`MAP_SHARED`, `MAP_PRIVATE`, `MAP_SHARED_VALIDATE`).
pub const MAP_TYPE: i32 = 0x0f;
/// Place the mapping exactly at the hint (rejected).
pub const MAP_FIXED: i32 = 0x10;
/// Not backed by a file (required).
pub const MAP_ANONYMOUS: i32 = 0x20;
/// Don't reserve swap: meaningless here, accepted.
pub const MAP_NORESERVE: i32 = 0x4000;
/// Prefault pages: meaningless here, accepted.
pub const MAP_POPULATE: i32 = 0x8000;
/// Mapping is used as a stack: accepted.
pub const MAP_STACK: i32 = 0x20000;

/// Flags that change nothing for anonymous private memory in Wasm.
const HARMLESS_FLAGS: i32 = MAP_NORESERVE | MAP_POPULATE | MAP_STACK;

/// The `errno` values this API reports, with their wasi-libc numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errno {
    /// Invalid argument (`EINVAL`).
    Inval,
    /// Out of memory (`ENOMEM`).
    NoMem,
    /// Not supported (`ENOTSUP`): e.g. executable or file-backed mappings.
    NotSup,
}

impl Errno {
    /// The numeric value in wasi-libc (`__WASI_ERRNO_*`).
    pub fn wasi_value(self) -> i32 {
        match self {
            Errno::Inval => 28,
            Errno::NoMem => 48,
            Errno::NotSup => 58,
        }
    }
}

impl From<Error> for Errno {
    fn from(error: Error) -> Errno {
        match error {
            Error::OutOfMemory => Errno::NoMem,
            Error::ZeroLength | Error::BadAlignment | Error::UnalignedAddress | Error::NotOwned => Errno::Inval,
        }
    }
}

/// Checks an `mmap` request; only anonymous private mappings are supported.
///
/// The address hint is ignored (as POSIX allows without `MAP_FIXED`) and so is
/// `fd` for anonymous mappings, like Linux does.
///
/// # Errors
///
/// `Inval` for a zero length, a non-zero offset, a mapping type other than
/// `MAP_PRIVATE`, `MAP_FIXED` or unknown flags; `NotSup` for `PROT_EXEC` or
/// a file-backed mapping.
///
/// # Example
///
/// ```
/// use weft_pages::posix::*;
///
/// assert_eq!(check_mmap_request(4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), Ok(()));
/// assert_eq!(check_mmap_request(4096, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0), Err(Errno::Inval));
/// ```
pub fn check_mmap_request(len: usize, prot: i32, flags: i32, _fd: i32, offset: i64) -> Result<(), Errno> {
    if len == 0 || offset != 0 {
        return Err(Errno::Inval);
    }
    if flags & MAP_TYPE != MAP_PRIVATE || flags & MAP_FIXED != 0 {
        return Err(Errno::Inval);
    }
    if flags & !(MAP_TYPE | MAP_ANONYMOUS | HARMLESS_FLAGS) != 0 {
        return Err(Errno::Inval);
    }
    if flags & MAP_ANONYMOUS == 0 || prot & PROT_EXEC != 0 {
        return Err(Errno::NotSup);
    }
    if prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
        return Err(Errno::Inval);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RW: i32 = PROT_READ | PROT_WRITE;
    const ANON: i32 = MAP_PRIVATE | MAP_ANONYMOUS;

    #[test]
    fn accepts_anonymous_private_mappings() {
        assert_eq!(check_mmap_request(1, RW, ANON, -1, 0), Ok(()));
        assert_eq!(check_mmap_request(1, PROT_NONE, ANON | MAP_NORESERVE, 0, 0), Ok(()));
    }

    #[test]
    fn rejects_everything_else() {
        assert_eq!(check_mmap_request(0, RW, ANON, -1, 0), Err(Errno::Inval));
        assert_eq!(check_mmap_request(1, RW, ANON, -1, 4096), Err(Errno::Inval));
        assert_eq!(check_mmap_request(1, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0), Err(Errno::Inval));
        assert_eq!(check_mmap_request(1, RW, ANON | MAP_SHARED, -1, 0), Err(Errno::Inval));
        assert_eq!(check_mmap_request(1, RW, ANON | MAP_FIXED, -1, 0), Err(Errno::Inval));
        assert_eq!(check_mmap_request(1, RW, ANON | 0x100000, -1, 0), Err(Errno::Inval));
        assert_eq!(check_mmap_request(1, RW, MAP_PRIVATE, 3, 0), Err(Errno::NotSup));
        assert_eq!(check_mmap_request(1, RW | PROT_EXEC, ANON, -1, 0), Err(Errno::NotSup));
    }

    #[test]
    fn errors_map_to_errno() {
        assert_eq!(Errno::from(Error::OutOfMemory).wasi_value(), 48);
        assert_eq!(Errno::from(Error::NotOwned).wasi_value(), 28);
        assert_eq!(Errno::NotSup.wasi_value(), 58);
    }
}
