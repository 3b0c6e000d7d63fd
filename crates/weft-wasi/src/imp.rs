//! The implementation of every WASI function, shared by preview1
//! (`wasi_snapshot_preview1`) and preview0 (`wasi_unstable`): each takes the
//! context, the guest's linear memory and the raw arguments, and returns an
//! errno (or a trap). [`Abi`] selects the few layouts that differ.

use std::io::{self, Read, SeekFrom, Write};
use std::net::Shutdown;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cap_fs_ext::{DirExt, FileTypeExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt, OsMetadataExt};
use cap_std::fs::{Dir, Metadata, OpenOptions};
use system_interface::fs::{Advice, FileIoExt};

use crate::ctx::{Desc, DirDesc, FileDesc, FsPerms, StdioKind, WasiCtx};
use crate::types::{clock, eventtype, fdflags, filetype, fstflags, oflags, rights, Errno, LOOKUP_SYMLINK_FOLLOW};

/// Which ABI a call comes from: the layouts of `filestat` and `subscription`,
/// and the encoding of `whence`, differ between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Abi {
    Preview1,
    Preview0,
}

/// Why a WASI call failed: an errno returned to the guest, or a trap.
pub(crate) enum Error {
    Errno(Errno),
    Trap(anyhow::Error),
}

impl From<Errno> for Error {
    fn from(e: Errno) -> Self {
        Error::Errno(e)
    }
}
impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Errno(e.into())
    }
}

pub(crate) type R<T> = Result<T, Error>;

/// The guest's linear memory; out-of-bounds accesses fail with `EFAULT`.
pub(crate) struct Mem<'a>(pub &'a mut [u8]);

impl Mem<'_> {
    fn range(&self, ptr: u32, len: u32) -> R<std::ops::Range<usize>> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize).ok_or(Errno::FAULT)?;
        if end > self.0.len() {
            return Err(Errno::FAULT.into());
        }
        Ok(start..end)
    }
    fn bytes(&self, ptr: u32, len: u32) -> R<&[u8]> {
        let r = self.range(ptr, len)?;
        Ok(&self.0[r])
    }
    fn bytes_mut(&mut self, ptr: u32, len: u32) -> R<&mut [u8]> {
        let r = self.range(ptr, len)?;
        Ok(&mut self.0[r])
    }
    fn read<const N: usize>(&self, ptr: u32) -> R<[u8; N]> {
        Ok(self.bytes(ptr, N as u32)?.try_into().expect("length checked"))
    }
    fn u8(&self, ptr: u32) -> R<u8> {
        Ok(self.read::<1>(ptr)?[0])
    }
    fn u16(&self, ptr: u32) -> R<u16> {
        Ok(u16::from_le_bytes(self.read(ptr)?))
    }
    fn u32(&self, ptr: u32) -> R<u32> {
        Ok(u32::from_le_bytes(self.read(ptr)?))
    }
    fn u64(&self, ptr: u32) -> R<u64> {
        Ok(u64::from_le_bytes(self.read(ptr)?))
    }
    fn put(&mut self, ptr: u32, b: &[u8]) -> R<()> {
        self.bytes_mut(ptr, b.len() as u32)?.copy_from_slice(b);
        Ok(())
    }
    fn put_u32(&mut self, ptr: u32, v: u32) -> R<()> {
        self.put(ptr, &v.to_le_bytes())
    }
    fn put_u64(&mut self, ptr: u32, v: u64) -> R<()> {
        self.put(ptr, &v.to_le_bytes())
    }
    fn str(&self, ptr: u32, len: u32) -> R<&str> {
        std::str::from_utf8(self.bytes(ptr, len)?).map_err(|_| Errno::ILSEQ.into())
    }
    /// Reads an array of `(buf, len)` pairs (iovec / ciovec), checking each buffer.
    fn iovecs(&self, ptr: u32, n: u32) -> R<Vec<(u32, u32)>> {
        let total = n.checked_mul(8).ok_or(Errno::FAULT)?;
        self.range(ptr, total)?;
        let mut v = Vec::with_capacity(n as usize);
        for i in 0..n {
            let (b, l) = (self.u32(ptr + i * 8)?, self.u32(ptr + i * 8 + 4)?);
            self.range(b, l)?;
            v.push((b, l));
        }
        Ok(v)
    }
    /// The first non-empty buffer of an iovec array (reads fill only that one,
    /// as the reference adapter does; a short read is always allowed).
    fn first_iov(&self, ptr: u32, n: u32) -> R<Option<(u32, u32)>> {
        Ok(self.iovecs(ptr, n)?.into_iter().find(|&(_, l)| l > 0))
    }
    /// Gathers every buffer of a ciovec array.
    fn gather(&self, ptr: u32, n: u32) -> R<Vec<u8>> {
        let mut out = Vec::new();
        for (b, l) in self.iovecs(ptr, n)? {
            out.extend_from_slice(self.bytes(b, l)?);
        }
        Ok(out)
    }
}

fn filetype_of(ft: cap_std::fs::FileType) -> u8 {
    if ft.is_dir() {
        filetype::DIRECTORY
    } else if ft.is_symlink() {
        filetype::SYMBOLIC_LINK
    } else if ft.is_file() {
        filetype::REGULAR_FILE
    } else if ft.is_block_device() {
        filetype::BLOCK_DEVICE
    } else if ft.is_char_device() {
        filetype::CHARACTER_DEVICE
    } else if ft.is_socket() {
        filetype::SOCKET_STREAM
    } else {
        filetype::UNKNOWN
    }
}

/// A `filestat`, independent of its in-memory layout.
#[derive(Default)]
struct Filestat {
    dev: u64,
    ino: u64,
    filetype: u8,
    nlink: u64,
    size: u64,
    atim: u64,
    mtim: u64,
    ctim: u64,
}

fn ts(secs: i64, nsec: i64) -> u64 {
    (secs as i128 * 1_000_000_000 + nsec as i128).clamp(0, u64::MAX as i128) as u64
}

impl Filestat {
    fn from_meta(m: &Metadata) -> Filestat {
        Filestat {
            dev: m.dev(),
            ino: m.ino(),
            filetype: filetype_of(m.file_type()),
            nlink: m.nlink(),
            size: m.len(),
            atim: ts(m.atime(), m.atime_nsec()),
            mtim: ts(m.mtime(), m.mtime_nsec()),
            ctim: ts(m.ctime(), m.ctime_nsec()),
        }
    }
    fn write(&self, mem: &mut Mem, ptr: u32, abi: Abi) -> R<()> {
        let mut b = [0u8; 64];
        b[0..8].copy_from_slice(&self.dev.to_le_bytes());
        b[8..16].copy_from_slice(&self.ino.to_le_bytes());
        b[16] = self.filetype;
        match abi {
            Abi::Preview1 => {
                b[24..32].copy_from_slice(&self.nlink.to_le_bytes());
                b[32..40].copy_from_slice(&self.size.to_le_bytes());
                b[40..48].copy_from_slice(&self.atim.to_le_bytes());
                b[48..56].copy_from_slice(&self.mtim.to_le_bytes());
                b[56..64].copy_from_slice(&self.ctim.to_le_bytes());
                mem.put(ptr, &b)
            }
            Abi::Preview0 => {
                // nlink is a u32 in preview0, so everything after it moves up.
                b[20..24].copy_from_slice(&(self.nlink.min(u32::MAX as u64) as u32).to_le_bytes());
                b[24..32].copy_from_slice(&self.size.to_le_bytes());
                b[32..40].copy_from_slice(&self.atim.to_le_bytes());
                b[40..48].copy_from_slice(&self.mtim.to_le_bytes());
                b[48..56].copy_from_slice(&self.ctim.to_le_bytes());
                mem.put(ptr, &b[..56])
            }
        }
    }
}

fn systime(t: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(t)
}

/// Validates `fstflags` and turns them into (atime, mtime) changes.
fn time_specs(atim: u64, mtim: u64, fst: u32) -> R<(Option<fs_set_times::SystemTimeSpec>, Option<fs_set_times::SystemTimeSpec>)> {
    let fst = u16::try_from(fst).map_err(|_| Errno::INVAL)?;
    if fst & !fstflags::ALL != 0 || (fst & fstflags::ATIM != 0 && fst & fstflags::ATIM_NOW != 0) || (fst & fstflags::MTIM != 0 && fst & fstflags::MTIM_NOW != 0)
    {
        return Err(Errno::INVAL.into());
    }
    let pick = |set: u16, now: u16, t: u64| {
        if fst & now != 0 {
            Some(fs_set_times::SystemTimeSpec::SymbolicNow)
        } else if fst & set != 0 {
            Some(fs_set_times::SystemTimeSpec::Absolute(systime(t)))
        } else {
            None
        }
    };
    Ok((pick(fstflags::ATIM, fstflags::ATIM_NOW, atim), pick(fstflags::MTIM, fstflags::MTIM_NOW, mtim)))
}

fn cap_spec(s: Option<fs_set_times::SystemTimeSpec>) -> Option<cap_fs_ext::SystemTimeSpec> {
    s.map(|s| match s {
        fs_set_times::SystemTimeSpec::SymbolicNow => cap_fs_ext::SystemTimeSpec::SymbolicNow,
        fs_set_times::SystemTimeSpec::Absolute(t) => cap_fs_ext::SystemTimeSpec::Absolute(cap_std::time::SystemTime::from_std(t)),
    })
}

fn bad_flags<T: Into<u64>>(v: T, all: u64) -> R<()> {
    if v.into() & !all != 0 {
        Err(Errno::INVAL.into())
    } else {
        Ok(())
    }
}

/// Rights the reference adapter reports for a descriptor of this kind.
fn dir_rights() -> u64 {
    rights::ALL & !(rights::FD_SEEK | rights::FD_FILESTAT_SET_SIZE | rights::PATH_FILESTAT_SET_SIZE | rights::FD_WRITE)
}

fn now_ns(id: u32) -> R<u64> {
    let c = match id {
        clock::REALTIME => rustix::time::ClockId::Realtime,
        clock::MONOTONIC => rustix::time::ClockId::Monotonic,
        clock::PROCESS_CPUTIME | clock::THREAD_CPUTIME => return Err(Errno::BADF.into()),
        _ => return Err(Errno::INVAL.into()),
    };
    let t = rustix::time::clock_gettime(c);
    Ok(ts(t.tv_sec, t.tv_nsec as i64))
}

impl WasiCtx {
    fn dir(&mut self, fd: u32) -> R<&Dir> {
        match self.get(fd)? {
            Desc::Dir(d) => Ok(&d.dir),
            Desc::File(_) => Err(Errno::NOTDIR.into()),
            _ => Err(Errno::NOTDIR.into()),
        }
    }

    /// The directory at `fd`, for an operation that changes what lies
    /// beneath it: refused with `PERM` under a read-only preopen.
    fn writable_dir(&mut self, fd: u32) -> R<&Dir> {
        match self.get(fd)? {
            Desc::Dir(d) if d.perms == FsPerms::ReadOnly => Err(Errno::PERM.into()),
            Desc::Dir(d) => Ok(&d.dir),
            _ => Err(Errno::NOTDIR.into()),
        }
    }

    fn file(&mut self, fd: u32) -> R<&mut FileDesc> {
        match self.get(fd)? {
            Desc::File(f) => Ok(f),
            Desc::Dir(_) => Err(Errno::BADF.into()),
            Desc::Stdio(_) | Desc::Stream(_) | Desc::Listener(_) => Err(Errno::SPIPE.into()),
        }
    }

    fn write_strings(mem: &mut Mem, list: &[Vec<u8>], ptrs: u32, buf: u32) -> R<()> {
        let mut off = buf;
        for (i, s) in list.iter().enumerate() {
            mem.put_u32(ptrs + 4 * i as u32, off)?;
            mem.put(off, s)?;
            mem.put(off + s.len() as u32, &[0])?;
            off += s.len() as u32 + 1;
        }
        Ok(())
    }

    pub(crate) fn args_get(&mut self, mem: &mut Mem, argv: u32, buf: u32) -> R<()> {
        Self::write_strings(mem, &self.args, argv, buf)
    }
    pub(crate) fn args_sizes_get(&mut self, mem: &mut Mem, argc: u32, size: u32) -> R<()> {
        mem.put_u32(argc, self.args.len() as u32)?;
        mem.put_u32(size, self.args.iter().map(|a| a.len() as u32 + 1).sum())
    }
    pub(crate) fn environ_get(&mut self, mem: &mut Mem, env: u32, buf: u32) -> R<()> {
        Self::write_strings(mem, &self.env, env, buf)
    }
    pub(crate) fn environ_sizes_get(&mut self, mem: &mut Mem, count: u32, size: u32) -> R<()> {
        mem.put_u32(count, self.env.len() as u32)?;
        mem.put_u32(size, self.env.iter().map(|a| a.len() as u32 + 1).sum())
    }

    pub(crate) fn clock_res_get(&mut self, mem: &mut Mem, id: u32, out: u32) -> R<()> {
        let c = match id {
            clock::REALTIME => rustix::time::ClockId::Realtime,
            clock::MONOTONIC => rustix::time::ClockId::Monotonic,
            clock::PROCESS_CPUTIME | clock::THREAD_CPUTIME => return Err(Errno::BADF.into()),
            _ => return Err(Errno::INVAL.into()),
        };
        let t = rustix::time::clock_getres(c);
        mem.put_u64(out, ts(t.tv_sec, t.tv_nsec as i64).max(1))
    }
    pub(crate) fn clock_time_get(&mut self, mem: &mut Mem, id: u32, _precision: u64, out: u32) -> R<()> {
        let t = now_ns(id)?;
        mem.put_u64(out, t)
    }

    pub(crate) fn fd_advise(&mut self, fd: u32, offset: u64, len: u64, advice: u32) -> R<()> {
        let advice = match advice {
            0 => Advice::Normal,
            1 => Advice::Sequential,
            2 => Advice::Random,
            3 => Advice::WillNeed,
            4 => Advice::DontNeed,
            5 => Advice::NoReuse,
            _ => return Err(Errno::INVAL.into()),
        };
        let f = self.file(fd)?;
        f.file.advise(offset, len, advice)?;
        Ok(())
    }

    pub(crate) fn fd_allocate(&mut self, fd: u32, _offset: u64, _len: u64) -> R<()> {
        // As in the reference adapter: the descriptor must be a file, and the
        // operation itself is not supported.
        self.file(fd)?;
        Err(Errno::NOTSUP.into())
    }

    pub(crate) fn fd_close(&mut self, fd: u32) -> R<()> {
        self.fds.remove(&fd).ok_or(Errno::BADF)?;
        Ok(())
    }

    pub(crate) fn fd_datasync(&mut self, fd: u32) -> R<()> {
        match self.get(fd)? {
            Desc::File(f) => f.file.sync_data()?,
            Desc::Dir(d) => rustix::fs::fdatasync(&d.dir).map_err(io::Error::from)?,
            _ => return Err(Errno::BADF.into()),
        }
        Ok(())
    }
    pub(crate) fn fd_sync(&mut self, fd: u32) -> R<()> {
        match self.get(fd)? {
            Desc::File(f) => f.file.sync_all()?,
            Desc::Dir(d) => rustix::fs::fsync(&d.dir).map_err(io::Error::from)?,
            _ => return Err(Errno::BADF.into()),
        }
        Ok(())
    }

    pub(crate) fn fd_fdstat_get(&mut self, mem: &mut Mem, fd: u32, out: u32) -> R<()> {
        let (ft, flags, base, inheriting): (u8, u16, u64, u64) = match self.get(fd)? {
            Desc::Stdio(s) => {
                let ft = if s.isatty() { filetype::CHARACTER_DEVICE } else { filetype::UNKNOWN };
                let r = if s.kind == StdioKind::Stdin { rights::FD_READ } else { rights::FD_WRITE };
                (ft, 0, r | rights::POLL_FD_READWRITE, 0)
            }
            Desc::File(f) => {
                let ft = filetype_of(f.file.metadata()?.file_type());
                let fl = rustix::fs::fcntl_getfl(&f.file).map_err(io::Error::from)?;
                let mut flags = 0;
                if fl.contains(rustix::fs::OFlags::APPEND) {
                    flags |= fdflags::APPEND;
                }
                if fl.contains(rustix::fs::OFlags::NONBLOCK) {
                    flags |= fdflags::NONBLOCK;
                }
                if fl.contains(rustix::fs::OFlags::SYNC) {
                    flags |= fdflags::SYNC;
                } else if fl.contains(rustix::fs::OFlags::DSYNC) {
                    flags |= fdflags::DSYNC;
                }
                let mut r = rights::ALL;
                if !f.read {
                    r &= !(rights::FD_READ | rights::FD_READDIR);
                }
                if !f.write {
                    r &= !rights::FD_WRITE;
                }
                (ft, flags, r, r)
            }
            Desc::Dir(_) => (filetype::DIRECTORY, 0, dir_rights(), rights::ALL),
            Desc::Listener(_) | Desc::Stream(_) => {
                let r = rights::FD_READ
                    | rights::FD_WRITE
                    | rights::POLL_FD_READWRITE
                    | rights::SOCK_SHUTDOWN
                    | rights::SOCK_ACCEPT
                    | rights::FD_FDSTAT_SET_FLAGS
                    | rights::FD_FILESTAT_GET;
                (filetype::SOCKET_STREAM, 0, r, r)
            }
        };
        let mut b = [0u8; 24];
        b[0] = ft;
        b[2..4].copy_from_slice(&flags.to_le_bytes());
        b[8..16].copy_from_slice(&base.to_le_bytes());
        b[16..24].copy_from_slice(&inheriting.to_le_bytes());
        mem.put(out, &b)
    }

    pub(crate) fn fd_fdstat_set_flags(&mut self, fd: u32, flags: u32) -> R<()> {
        bad_flags(flags, fdflags::ALL as u64)?;
        let flags = flags as u16;
        match self.get(fd)? {
            Desc::File(f) => {
                if flags & (fdflags::DSYNC | fdflags::RSYNC | fdflags::SYNC) != 0 {
                    return Err(Errno::INVAL.into());
                }
                let mut fl = rustix::fs::fcntl_getfl(&f.file).map_err(io::Error::from)?;
                fl.set(rustix::fs::OFlags::APPEND, flags & fdflags::APPEND != 0);
                fl.set(rustix::fs::OFlags::NONBLOCK, flags & fdflags::NONBLOCK != 0);
                rustix::fs::fcntl_setfl(&f.file, fl).map_err(io::Error::from)?;
                Ok(())
            }
            Desc::Stream(s) => {
                s.set_nonblocking(flags & fdflags::NONBLOCK != 0)?;
                Ok(())
            }
            Desc::Listener(s) => {
                s.set_nonblocking(flags & fdflags::NONBLOCK != 0)?;
                Ok(())
            }
            Desc::Dir(_) => Err(Errno::BADF.into()),
            Desc::Stdio(_) => Ok(()),
        }
    }

    pub(crate) fn fd_fdstat_set_rights(&mut self, fd: u32, base: u64, inheriting: u64) -> R<()> {
        bad_flags(base, rights::ALL)?;
        bad_flags(inheriting, rights::ALL)?;
        // As in the reference adapter, rights cannot be changed: check the fd,
        // then report that the operation is not supported.
        self.get(fd)?;
        Err(Errno::NOTSUP.into())
    }

    pub(crate) fn fd_filestat_get(&mut self, mem: &mut Mem, fd: u32, out: u32, abi: Abi) -> R<()> {
        let st = match self.get(fd)? {
            Desc::File(f) => Filestat::from_meta(&f.file.metadata()?),
            Desc::Dir(d) => Filestat::from_meta(&d.dir.dir_metadata()?),
            Desc::Stdio(s) => Filestat { filetype: if s.isatty() { filetype::CHARACTER_DEVICE } else { filetype::UNKNOWN }, ..Default::default() },
            Desc::Listener(_) | Desc::Stream(_) => Filestat { filetype: filetype::SOCKET_STREAM, ..Default::default() },
        };
        st.write(mem, out, abi)
    }

    pub(crate) fn fd_filestat_set_size(&mut self, fd: u32, size: u64) -> R<()> {
        let f = self.file(fd)?;
        f.file.set_len(size)?;
        Ok(())
    }

    pub(crate) fn fd_filestat_set_times(&mut self, fd: u32, atim: u64, mtim: u64, fst: u32) -> R<()> {
        let (a, m) = time_specs(atim, mtim, fst)?;
        use fs_set_times::SetTimes;
        match self.get(fd)? {
            Desc::File(f) => f.file.set_times(a, m)?,
            Desc::Dir(d) if d.perms == FsPerms::ReadOnly => return Err(Errno::PERM.into()),
            Desc::Dir(d) => SetTimes::set_times(&d.dir, a, m)?,
            _ => return Err(Errno::BADF.into()),
        }
        Ok(())
    }

    pub(crate) fn fd_pread(&mut self, mem: &mut Mem, fd: u32, iovs: u32, n: u32, offset: u64, out: u32) -> R<()> {
        let iov = mem.first_iov(iovs, n)?;
        let f = self.file(fd)?;
        let got = match iov {
            _ if !f.read => return Err(Errno::BADF.into()),
            Some((b, l)) => f.file.read_at(mem.bytes_mut(b, l)?, offset)?,
            None => 0,
        };
        mem.put_u32(out, got as u32)
    }

    pub(crate) fn fd_pwrite(&mut self, mem: &mut Mem, fd: u32, iovs: u32, n: u32, offset: u64, out: u32) -> R<()> {
        let data = mem.gather(iovs, n)?;
        let f = self.file(fd)?;
        if !f.write {
            return Err(Errno::BADF.into());
        }
        let done = f.file.write_at(&data, offset)?;
        mem.put_u32(out, done as u32)
    }

    pub(crate) fn fd_read(&mut self, mem: &mut Mem, fd: u32, iovs: u32, n: u32, out: u32) -> R<()> {
        let iov = mem.first_iov(iovs, n)?;
        let d = self.get(fd)?;
        let Some((b, l)) = iov else {
            if matches!(d, Desc::Dir(_)) {
                return Err(Errno::BADF.into());
            }
            return mem.put_u32(out, 0);
        };
        let buf = mem.bytes_mut(b, l)?;
        let got = match d {
            Desc::File(f) if !f.read => return Err(Errno::BADF.into()),
            Desc::File(f) => f.file.read(buf)?,
            Desc::Stdio(s) => s.read(buf)?,
            Desc::Stream(s) => s.read(buf)?,
            Desc::Dir(_) | Desc::Listener(_) => return Err(Errno::BADF.into()),
        };
        mem.put_u32(out, got as u32)
    }

    pub(crate) fn fd_write(&mut self, mem: &mut Mem, fd: u32, iovs: u32, n: u32, out: u32) -> R<()> {
        let d = self.get(fd)?;
        let done = match d {
            Desc::File(f) if !f.write => return Err(Errno::BADF.into()),
            Desc::File(f) => {
                let list = mem.iovecs(iovs, n)?;
                let slices: Vec<io::IoSlice> = list.iter().map(|&(b, l)| io::IoSlice::new(&mem.0[b as usize..(b + l) as usize])).collect();
                f.file.write_vectored(&slices)?
            }
            Desc::Stdio(s) => {
                let data = mem.gather(iovs, n)?;
                s.write(&data)?
            }
            Desc::Stream(s) => {
                let data = mem.gather(iovs, n)?;
                s.write(&data)?
            }
            Desc::Dir(_) | Desc::Listener(_) => return Err(Errno::BADF.into()),
        };
        mem.put_u32(out, done as u32)
    }

    pub(crate) fn fd_prestat_get(&mut self, mem: &mut Mem, fd: u32, out: u32) -> R<()> {
        match self.get(fd)? {
            Desc::Dir(DirDesc { preopen: Some(name), .. }) => {
                let len = name.len() as u32;
                mem.put(out, &[0, 0, 0, 0])?;
                mem.put_u32(out + 4, len)
            }
            _ => Err(Errno::BADF.into()),
        }
    }

    pub(crate) fn fd_prestat_dir_name(&mut self, mem: &mut Mem, fd: u32, path: u32, len: u32) -> R<()> {
        match self.get(fd)? {
            Desc::Dir(DirDesc { preopen: Some(name), .. }) => {
                if (len as usize) < name.len() {
                    return Err(Errno::NAMETOOLONG.into());
                }
                let name = name.clone();
                mem.put(path, name.as_bytes())
            }
            _ => Err(Errno::BADF.into()),
        }
    }

    pub(crate) fn fd_readdir(&mut self, mem: &mut Mem, fd: u32, buf: u32, len: u32, cookie: u64, out: u32) -> R<()> {
        mem.range(buf, len)?;
        let dir = match self.get(fd)? {
            Desc::Dir(d) => &d.dir,
            Desc::File(_) => return Err(Errno::NOTDIR.into()),
            _ => return Err(Errno::BADF.into()),
        };
        let self_ino = dir.dir_metadata()?.ino();
        let mut bytes = Vec::new();
        let mut index: u64 = 0;
        let mut emit = |name: &[u8], ino: u64, ft: u8, bytes: &mut Vec<u8>| -> bool {
            index += 1;
            if index <= cookie {
                return true;
            }
            bytes.extend_from_slice(&index.to_le_bytes());
            bytes.extend_from_slice(&ino.to_le_bytes());
            bytes.extend_from_slice(&(name.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&[ft, 0, 0, 0]);
            bytes.extend_from_slice(name);
            bytes.len() < len as usize
        };
        let mut more = emit(b".", self_ino, filetype::DIRECTORY, &mut bytes) && emit(b"..", self_ino, filetype::DIRECTORY, &mut bytes);
        if more {
            use std::os::unix::ffi::OsStrExt;
            use std::os::unix::fs::DirEntryExt;
            for entry in dir.entries()? {
                let entry = entry?;
                let ft = entry.file_type().map(filetype_of).unwrap_or(filetype::UNKNOWN);
                let name = entry.file_name();
                more = emit(name.as_bytes(), entry.ino(), ft, &mut bytes);
                if !more {
                    break;
                }
            }
        }
        let used = bytes.len().min(len as usize);
        mem.put(buf, &bytes[..used])?;
        mem.put_u32(out, used as u32)
    }

    pub(crate) fn fd_renumber(&mut self, from: u32, to: u32) -> R<()> {
        if !self.fds.contains_key(&from) || !self.fds.contains_key(&to) {
            return Err(Errno::BADF.into());
        }
        if from != to {
            let d = self.fds.remove(&from).expect("checked");
            self.fds.insert(to, d);
        }
        Ok(())
    }

    pub(crate) fn fd_seek(&mut self, mem: &mut Mem, fd: u32, offset: i64, whence: u32, out: u32, abi: Abi) -> R<()> {
        // preview1: SET=0 CUR=1 END=2; preview0: CUR=0 END=1 SET=2.
        let w = match (abi, whence) {
            (Abi::Preview1, 0) | (Abi::Preview0, 2) => 0,
            (Abi::Preview1, 1) | (Abi::Preview0, 0) => 1,
            (Abi::Preview1, 2) | (Abi::Preview0, 1) => 2,
            _ => return Err(Errno::INVAL.into()),
        };
        let f = self.file(fd)?;
        let pos = match w {
            0 => SeekFrom::Start(u64::try_from(offset).map_err(|_| Errno::INVAL)?),
            1 => SeekFrom::Current(offset),
            _ => SeekFrom::End(offset),
        };
        let n = f.file.seek(pos)?;
        mem.put_u64(out, n)
    }

    pub(crate) fn fd_tell(&mut self, mem: &mut Mem, fd: u32, out: u32) -> R<()> {
        let f = self.file(fd)?;
        let n = f.file.stream_position()?;
        mem.put_u64(out, n)
    }

    pub(crate) fn path_create_directory(&mut self, mem: &mut Mem, fd: u32, path: u32, len: u32) -> R<()> {
        let p = mem.str(path, len)?;
        self.writable_dir(fd)?.create_dir(p)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // the WASI call's own parameters
    pub(crate) fn path_filestat_get(&mut self, mem: &mut Mem, fd: u32, flags: u32, path: u32, len: u32, out: u32, abi: Abi) -> R<()> {
        bad_flags(flags, LOOKUP_SYMLINK_FOLLOW as u64)?;
        let p = mem.str(path, len)?;
        let dir = self.dir(fd)?;
        let m = if flags & LOOKUP_SYMLINK_FOLLOW != 0 { dir.metadata(p)? } else { dir.symlink_metadata(p)? };
        Filestat::from_meta(&m).write(mem, out, abi)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn path_filestat_set_times(&mut self, mem: &mut Mem, fd: u32, flags: u32, path: u32, len: u32, atim: u64, mtim: u64, fst: u32) -> R<()> {
        bad_flags(flags, LOOKUP_SYMLINK_FOLLOW as u64)?;
        let (a, m) = time_specs(atim, mtim, fst)?;
        let p = mem.str(path, len)?;
        let dir = self.writable_dir(fd)?;
        if flags & LOOKUP_SYMLINK_FOLLOW != 0 {
            dir.set_times(p, cap_spec(a), cap_spec(m))?;
        } else {
            dir.set_symlink_times(p, cap_spec(a), cap_spec(m))?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn path_link(&mut self, mem: &mut Mem, old_fd: u32, old_flags: u32, old: u32, old_len: u32, new_fd: u32, new: u32, new_len: u32) -> R<()> {
        bad_flags(old_flags, LOOKUP_SYMLINK_FOLLOW as u64)?;
        let old = mem.str(old, old_len)?.to_string();
        let new = mem.str(new, new_len)?.to_string();
        let new_dir = self.writable_dir(new_fd)?.try_clone()?;
        let old_dir = self.dir(old_fd)?;
        if old_flags & LOOKUP_SYMLINK_FOLLOW != 0 {
            return Err(Errno::INVAL.into());
        }
        old_dir.hard_link(&old, &new_dir, &new)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn path_open(
        &mut self,
        mem: &mut Mem,
        fd: u32,
        dirflags: u32,
        path: u32,
        len: u32,
        of: u32,
        base: u64,
        inheriting: u64,
        fdf: u32,
        out: u32,
    ) -> R<()> {
        bad_flags(dirflags, LOOKUP_SYMLINK_FOLLOW as u64)?;
        bad_flags(of, oflags::ALL as u64)?;
        bad_flags(fdf, fdflags::ALL as u64)?;
        bad_flags(base, rights::ALL)?;
        bad_flags(inheriting, rights::ALL)?;
        let (of, fdf) = (of as u16, fdf as u16);
        let p = mem.str(path, len)?.to_string();
        let Desc::Dir(DirDesc { dir, perms, .. }) = self.get(fd)? else { return Err(Errno::NOTDIR.into()) };
        let perms = *perms;
        let want_dir = of & oflags::DIRECTORY != 0;
        if want_dir && of & (oflags::CREAT | oflags::EXCL | oflags::TRUNC) != 0 {
            return Err(Errno::INVAL.into());
        }
        // What the guest may do with the descriptor (reported by fdstat, checked
        // by read/write), as in the reference adapter: FD_READ and FD_WRITE.
        let read = base & rights::FD_READ != 0;
        let write = base & rights::FD_WRITE != 0;
        // How the host opens it: creating or truncating needs write access.
        let os_write = write || of & (oflags::CREAT | oflags::TRUNC) != 0;
        if os_write && perms == FsPerms::ReadOnly {
            return Err(Errno::PERM.into());
        }
        let os_read = read || !os_write;
        let mut opts = OpenOptions::new();
        opts.maybe_dir(true).read(os_read).write(os_write);
        if of & oflags::CREAT != 0 {
            if of & oflags::EXCL != 0 {
                opts.create_new(true);
            } else {
                opts.create(true);
            }
        }
        if of & oflags::TRUNC != 0 {
            opts.truncate(true);
        }
        let mut custom = 0;
        if fdf & fdflags::APPEND != 0 {
            // Not `append(true)`: std-style options reject append with truncate.
            custom |= libc::O_APPEND;
        }
        if fdf & fdflags::SYNC != 0 {
            custom |= libc::O_SYNC;
        }
        if fdf & fdflags::DSYNC != 0 {
            custom |= libc::O_DSYNC;
        }
        if fdf & fdflags::RSYNC != 0 {
            custom |= libc::O_RSYNC;
        }
        if fdf & fdflags::NONBLOCK != 0 {
            custom |= libc::O_NONBLOCK;
        }
        cap_std::fs::OpenOptionsExt::custom_flags(&mut opts, custom);
        opts.follow(if dirflags & LOOKUP_SYMLINK_FOLLOW != 0 { FollowSymlinks::Yes } else { FollowSymlinks::No });
        let f = dir.open_with(&p, &opts)?;
        let desc = if f.metadata()?.is_dir() {
            Desc::Dir(DirDesc { dir: Dir::from_std_file(f.into_std()), preopen: None, perms })
        } else if want_dir {
            return Err(Errno::NOTDIR.into());
        } else {
            Desc::File(FileDesc { file: f, read, write })
        };
        let n = self.push(desc)?;
        mem.put_u32(out, n)
    }

    #[allow(clippy::too_many_arguments)] // the WASI call's own parameters
    pub(crate) fn path_readlink(&mut self, mem: &mut Mem, fd: u32, path: u32, len: u32, buf: u32, buf_len: u32, out: u32) -> R<()> {
        let p = mem.str(path, len)?.to_string();
        let target = self.dir(fd)?.read_link_contents(&p)?;
        use std::os::unix::ffi::OsStrExt;
        let bytes = target.as_os_str().as_bytes();
        let n = bytes.len().min(buf_len as usize);
        mem.put(buf, &bytes[..n])?;
        mem.put_u32(out, n as u32)
    }

    pub(crate) fn path_remove_directory(&mut self, mem: &mut Mem, fd: u32, path: u32, len: u32) -> R<()> {
        let p = mem.str(path, len)?;
        self.writable_dir(fd)?.remove_dir(p)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn path_rename(&mut self, mem: &mut Mem, fd: u32, old: u32, old_len: u32, new_fd: u32, new: u32, new_len: u32) -> R<()> {
        let old = mem.str(old, old_len)?.to_string();
        let new = mem.str(new, new_len)?.to_string();
        let new_dir = self.writable_dir(new_fd)?.try_clone()?;
        self.writable_dir(fd)?.rename(&old, &new_dir, &new)?;
        Ok(())
    }

    pub(crate) fn path_symlink(&mut self, mem: &mut Mem, old: u32, old_len: u32, fd: u32, new: u32, new_len: u32) -> R<()> {
        let old = mem.str(old, old_len)?.to_string();
        let new = mem.str(new, new_len)?.to_string();
        self.writable_dir(fd)?.symlink(&old, &new)?;
        Ok(())
    }

    pub(crate) fn path_unlink_file(&mut self, mem: &mut Mem, fd: u32, path: u32, len: u32) -> R<()> {
        let p = mem.str(path, len)?;
        self.writable_dir(fd)?.remove_file_or_symlink(Path::new(p))?;
        Ok(())
    }

    pub(crate) fn random_get(&mut self, mem: &mut Mem, buf: u32, len: u32) -> R<()> {
        let b = mem.bytes_mut(buf, len)?;
        self.rng.fill_bytes(b);
        Ok(())
    }

    pub(crate) fn sock_accept(&mut self, mem: &mut Mem, fd: u32, flags: u32, out: u32) -> R<()> {
        bad_flags(flags, fdflags::ALL as u64)?;
        let stream = match self.get(fd)? {
            Desc::Listener(l) => l.accept()?.0,
            Desc::Stream(_) => return Err(Errno::INVAL.into()),
            _ => return Err(Errno::NOTSOCK.into()),
        };
        stream.set_nonblocking(flags as u16 & fdflags::NONBLOCK != 0)?;
        let n = self.push(Desc::Stream(stream))?;
        mem.put_u32(out, n)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sock_recv(&mut self, mem: &mut Mem, fd: u32, iovs: u32, n: u32, ri_flags: u32, out_len: u32, out_flags: u32) -> R<()> {
        bad_flags(ri_flags, 3)?;
        let iov = mem.first_iov(iovs, n)?;
        let s = match self.get(fd)? {
            Desc::Stream(s) => s,
            Desc::Listener(_) => return Err(Errno::NOTCONN.into()),
            _ => return Err(Errno::NOTSOCK.into()),
        };
        let got = match iov {
            Some((b, l)) => {
                let buf = mem.bytes_mut(b, l)?;
                if ri_flags & 1 != 0 {
                    s.peek(buf)?
                } else {
                    s.read(buf)?
                }
            }
            None => 0,
        };
        mem.put_u32(out_len, got as u32)?;
        mem.put(out_flags, &[0, 0])
    }

    pub(crate) fn sock_send(&mut self, mem: &mut Mem, fd: u32, iovs: u32, n: u32, _si_flags: u32, out: u32) -> R<()> {
        let data = mem.gather(iovs, n)?;
        let s = match self.get(fd)? {
            Desc::Stream(s) => s,
            Desc::Listener(_) => return Err(Errno::NOTCONN.into()),
            _ => return Err(Errno::NOTSOCK.into()),
        };
        let done = s.write(&data)?;
        mem.put_u32(out, done as u32)
    }

    pub(crate) fn sock_shutdown(&mut self, fd: u32, how: u32) -> R<()> {
        let s = match self.get(fd)? {
            Desc::Stream(s) => s,
            Desc::Listener(_) => return Err(Errno::NOTCONN.into()),
            _ => return Err(Errno::NOTSOCK.into()),
        };
        let how = match how {
            1 => Shutdown::Read,
            2 => Shutdown::Write,
            3 => Shutdown::Both,
            _ => return Err(Errno::INVAL.into()),
        };
        s.shutdown(how)?;
        Ok(())
    }

    pub(crate) fn poll_oneoff(&mut self, mem: &mut Mem, subs: u32, events: u32, n: u32, out: u32, abi: Abi) -> R<()> {
        if n == 0 {
            return Err(Errno::INVAL.into());
        }
        let sub_size: u32 = if abi == Abi::Preview1 { 48 } else { 56 };
        mem.range(subs, n.checked_mul(sub_size).ok_or(Errno::FAULT)?)?;
        mem.range(events, n.checked_mul(32).ok_or(Errno::FAULT)?)?;
        struct Ev {
            userdata: u64,
            error: u16,
            ty: u8,
            nbytes: u64,
            flags: u16,
        }
        let mut ready: Vec<Ev> = Vec::new();
        // (userdata, deadline on the monotonic clock in ns)
        let mut clocks: Vec<(u64, u64)> = Vec::new();
        let mut stdin_waiters: Vec<(u64, u8)> = Vec::new();
        let mono_now = now_ns(clock::MONOTONIC)?;
        for i in 0..n {
            let s = subs + i * sub_size;
            let userdata = mem.u64(s)?;
            let tag = mem.u8(s + 8)?;
            match tag {
                eventtype::CLOCK => {
                    let (id, timeout, flags) = match abi {
                        Abi::Preview1 => (mem.u32(s + 16)?, mem.u64(s + 24)?, mem.u16(s + 40)?),
                        Abi::Preview0 => (mem.u32(s + 24)?, mem.u64(s + 32)?, mem.u16(s + 48)?),
                    };
                    if flags & !1 != 0 {
                        return Err(Errno::INVAL.into());
                    }
                    let now = match now_ns(id) {
                        Ok(t) => t,
                        Err(Error::Errno(e)) => {
                            ready.push(Ev { userdata, error: e.0, ty: tag, nbytes: 0, flags: 0 });
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    let remaining = if flags & 1 != 0 { timeout.saturating_sub(now) } else { timeout };
                    clocks.push((userdata, mono_now.saturating_add(remaining)));
                }
                eventtype::FD_READ | eventtype::FD_WRITE => {
                    let fd = mem.u32(s + 16)?;
                    let mut ev = Ev { userdata, error: 0, ty: tag, nbytes: 0, flags: 0 };
                    match self.fds.get_mut(&fd) {
                        None => ev.error = Errno::BADF.0,
                        Some(Desc::File(f)) => {
                            if tag == eventtype::FD_READ {
                                let size = f.file.metadata().map(|m| m.len()).unwrap_or(0);
                                let pos = f.file.stream_position().unwrap_or(0);
                                ev.nbytes = size.saturating_sub(pos);
                            }
                        }
                        Some(Desc::Stdio(st)) => {
                            if tag == eventtype::FD_READ {
                                if st.kind != StdioKind::Stdin {
                                    ev.error = Errno::BADF.0;
                                } else {
                                    match st.ready_bytes() {
                                        Some(b) => ev.nbytes = b,
                                        None => {
                                            stdin_waiters.push((userdata, tag));
                                            continue;
                                        }
                                    }
                                }
                            } else if st.kind == StdioKind::Stdin {
                                ev.error = Errno::BADF.0;
                            }
                        }
                        Some(Desc::Stream(_)) | Some(Desc::Listener(_)) => {}
                        Some(Desc::Dir(_)) => ev.error = Errno::BADF.0,
                    }
                    ready.push(ev);
                }
                _ => return Err(Errno::INVAL.into()),
            }
        }
        if ready.is_empty() {
            let earliest = clocks.iter().map(|c| c.1).min();
            if !stdin_waiters.is_empty() {
                let timeout = earliest.map(|d| {
                    let ns = d.saturating_sub(mono_now);
                    rustix::time::Timespec { tv_sec: (ns / 1_000_000_000) as i64, tv_nsec: (ns % 1_000_000_000) as _ }
                });
                let stdin = std::io::stdin();
                let mut pfd = [rustix::event::PollFd::new(&stdin, rustix::event::PollFlags::IN)];
                let got = loop {
                    match rustix::event::poll(&mut pfd, timeout.as_ref()) {
                        Err(rustix::io::Errno::INTR) => continue,
                        r => break r.map_err(io::Error::from)?,
                    }
                };
                if got > 0 {
                    let hup = pfd[0].revents().contains(rustix::event::PollFlags::HUP);
                    for (userdata, ty) in &stdin_waiters {
                        ready.push(Ev { userdata: *userdata, error: 0, ty: *ty, nbytes: 1, flags: if hup { 1 } else { 0 } });
                    }
                }
            } else if let Some(deadline) = earliest {
                let start = Instant::now();
                let wait = Duration::from_nanos(deadline.saturating_sub(mono_now));
                while start.elapsed() < wait {
                    std::thread::sleep(wait - start.elapsed());
                }
            }
            if ready.is_empty() {
                let now = now_ns(clock::MONOTONIC)?;
                for (userdata, deadline) in &clocks {
                    if *deadline <= now {
                        ready.push(Ev { userdata: *userdata, error: 0, ty: eventtype::CLOCK, nbytes: 0, flags: 0 });
                    }
                }
            }
        }
        for (i, ev) in ready.iter().enumerate() {
            let mut b = [0u8; 32];
            b[0..8].copy_from_slice(&ev.userdata.to_le_bytes());
            b[8..10].copy_from_slice(&ev.error.to_le_bytes());
            b[10] = ev.ty;
            b[16..24].copy_from_slice(&ev.nbytes.to_le_bytes());
            b[24..26].copy_from_slice(&ev.flags.to_le_bytes());
            mem.put(events + 32 * i as u32, &b)?;
        }
        mem.put_u32(out, ready.len() as u32)
    }
}
