//! The WASI preview1 ABI constants (errno values, rights, flags, file types,
//! clock ids) and the mapping from host I/O errors to errnos.

#![allow(missing_docs)]

use std::io;

/// A WASI errno value (`wasi_snapshot_preview1::errno`, identical in preview0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub u16);

macro_rules! errnos {
    ($($name:ident = $v:expr),* $(,)?) => {
        impl Errno { $(pub const $name: Errno = Errno($v);)* }
    };
}
errnos! {
    SUCCESS = 0, TOOBIG = 1, ACCES = 2, ADDRINUSE = 3, ADDRNOTAVAIL = 4, AFNOSUPPORT = 5,
    AGAIN = 6, ALREADY = 7, BADF = 8, BADMSG = 9, BUSY = 10, CANCELED = 11, CHILD = 12,
    CONNABORTED = 13, CONNREFUSED = 14, CONNRESET = 15, DEADLK = 16, DESTADDRREQ = 17,
    DOM = 18, DQUOT = 19, EXIST = 20, FAULT = 21, FBIG = 22, HOSTUNREACH = 23, IDRM = 24,
    ILSEQ = 25, INPROGRESS = 26, INTR = 27, INVAL = 28, IO = 29, ISCONN = 30, ISDIR = 31,
    LOOP = 32, MFILE = 33, MLINK = 34, MSGSIZE = 35, MULTIHOP = 36, NAMETOOLONG = 37,
    NETDOWN = 38, NETRESET = 39, NETUNREACH = 40, NFILE = 41, NOBUFS = 42, NODEV = 43,
    NOENT = 44, NOEXEC = 45, NOLCK = 46, NOLINK = 47, NOMEM = 48, NOMSG = 49,
    NOPROTOOPT = 50, NOSPC = 51, NOSYS = 52, NOTCONN = 53, NOTDIR = 54, NOTEMPTY = 55,
    NOTRECOVERABLE = 56, NOTSOCK = 57, NOTSUP = 58, NOTTY = 59, NXIO = 60, OVERFLOW = 61,
    OWNERDEAD = 62, PERM = 63, PIPE = 64, PROTO = 65, PROTONOSUPPORT = 66, PROTOTYPE = 67,
    RANGE = 68, ROFS = 69, SPIPE = 70, SRCH = 71, STALE = 72, TIMEDOUT = 73, TXTBSY = 74,
    XDEV = 75, NOTCAPABLE = 76,
}

impl From<io::Error> for Errno {
    fn from(e: io::Error) -> Errno {
        if let Some(code) = e.raw_os_error() {
            return Errno::from_raw_os(code);
        }
        match e.kind() {
            io::ErrorKind::NotFound => Errno::NOENT,
            // cap-std reports sandbox escapes (`..` past the root, absolute
            // paths, symlinks leading out) as PermissionDenied.
            io::ErrorKind::PermissionDenied => Errno::PERM,
            io::ErrorKind::AlreadyExists => Errno::EXIST,
            io::ErrorKind::InvalidInput => Errno::INVAL,
            io::ErrorKind::InvalidData => Errno::ILSEQ,
            io::ErrorKind::WouldBlock => Errno::AGAIN,
            io::ErrorKind::Interrupted => Errno::INTR,
            io::ErrorKind::BrokenPipe => Errno::PIPE,
            io::ErrorKind::Unsupported => Errno::NOTSUP,
            io::ErrorKind::OutOfMemory => Errno::NOMEM,
            io::ErrorKind::TimedOut => Errno::TIMEDOUT,
            io::ErrorKind::NotADirectory => Errno::NOTDIR,
            io::ErrorKind::IsADirectory => Errno::ISDIR,
            io::ErrorKind::DirectoryNotEmpty => Errno::NOTEMPTY,
            io::ErrorKind::ReadOnlyFilesystem => Errno::ROFS,
            io::ErrorKind::InvalidFilename => Errno::NAMETOOLONG,
            io::ErrorKind::ConnectionRefused => Errno::CONNREFUSED,
            io::ErrorKind::ConnectionReset => Errno::CONNRESET,
            io::ErrorKind::ConnectionAborted => Errno::CONNABORTED,
            io::ErrorKind::NotConnected => Errno::NOTCONN,
            io::ErrorKind::AddrInUse => Errno::ADDRINUSE,
            io::ErrorKind::AddrNotAvailable => Errno::ADDRNOTAVAIL,
            _ => Errno::IO,
        }
    }
}

impl Errno {
    /// Maps a host (Linux/POSIX) errno value to its WASI equivalent.
    pub fn from_raw_os(code: i32) -> Errno {
        use libc::*;
        match code {
            0 => Errno::SUCCESS,
            E2BIG => Errno::TOOBIG,
            EACCES => Errno::ACCES,
            EADDRINUSE => Errno::ADDRINUSE,
            EADDRNOTAVAIL => Errno::ADDRNOTAVAIL,
            EAFNOSUPPORT => Errno::AFNOSUPPORT,
            EAGAIN => Errno::AGAIN,
            EALREADY => Errno::ALREADY,
            EBADF => Errno::BADF,
            EBADMSG => Errno::BADMSG,
            EBUSY => Errno::BUSY,
            ECANCELED => Errno::CANCELED,
            ECHILD => Errno::CHILD,
            ECONNABORTED => Errno::CONNABORTED,
            ECONNREFUSED => Errno::CONNREFUSED,
            ECONNRESET => Errno::CONNRESET,
            EDEADLK => Errno::DEADLK,
            EDESTADDRREQ => Errno::DESTADDRREQ,
            EDOM => Errno::DOM,
            EDQUOT => Errno::DQUOT,
            EEXIST => Errno::EXIST,
            EFAULT => Errno::FAULT,
            EFBIG => Errno::FBIG,
            EHOSTUNREACH => Errno::HOSTUNREACH,
            EIDRM => Errno::IDRM,
            EILSEQ => Errno::ILSEQ,
            EINPROGRESS => Errno::INPROGRESS,
            EINTR => Errno::INTR,
            EINVAL => Errno::INVAL,
            EIO => Errno::IO,
            EISCONN => Errno::ISCONN,
            EISDIR => Errno::ISDIR,
            ELOOP => Errno::LOOP,
            EMFILE => Errno::MFILE,
            EMLINK => Errno::MLINK,
            EMSGSIZE => Errno::MSGSIZE,
            EMULTIHOP => Errno::MULTIHOP,
            ENAMETOOLONG => Errno::NAMETOOLONG,
            ENETDOWN => Errno::NETDOWN,
            ENETRESET => Errno::NETRESET,
            ENETUNREACH => Errno::NETUNREACH,
            ENFILE => Errno::NFILE,
            ENOBUFS => Errno::NOBUFS,
            ENODEV => Errno::NODEV,
            ENOENT => Errno::NOENT,
            ENOEXEC => Errno::NOEXEC,
            ENOLCK => Errno::NOLCK,
            ENOLINK => Errno::NOLINK,
            ENOMEM => Errno::NOMEM,
            ENOMSG => Errno::NOMSG,
            ENOPROTOOPT => Errno::NOPROTOOPT,
            ENOSPC => Errno::NOSPC,
            ENOSYS => Errno::NOSYS,
            ENOTCONN => Errno::NOTCONN,
            ENOTDIR => Errno::NOTDIR,
            ENOTEMPTY => Errno::NOTEMPTY,
            ENOTRECOVERABLE => Errno::NOTRECOVERABLE,
            ENOTSOCK => Errno::NOTSOCK,
            ENOTSUP => Errno::NOTSUP,
            ENOTTY => Errno::NOTTY,
            ENXIO => Errno::NXIO,
            EOVERFLOW => Errno::OVERFLOW,
            EOWNERDEAD => Errno::OWNERDEAD,
            EPERM => Errno::PERM,
            EPIPE => Errno::PIPE,
            EPROTO => Errno::PROTO,
            EPROTONOSUPPORT => Errno::PROTONOSUPPORT,
            EPROTOTYPE => Errno::PROTOTYPE,
            ERANGE => Errno::RANGE,
            EROFS => Errno::ROFS,
            ESPIPE => Errno::SPIPE,
            ESRCH => Errno::SRCH,
            ESTALE => Errno::STALE,
            ETIMEDOUT => Errno::TIMEDOUT,
            ETXTBSY => Errno::TXTBSY,
            EXDEV => Errno::XDEV,
            _ => Errno::IO,
        }
    }
}

/// `rights` bits.
pub mod rights {
    pub const FD_DATASYNC: u64 = 1 << 0;
    pub const FD_READ: u64 = 1 << 1;
    pub const FD_SEEK: u64 = 1 << 2;
    pub const FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
    pub const FD_SYNC: u64 = 1 << 4;
    pub const FD_TELL: u64 = 1 << 5;
    pub const FD_WRITE: u64 = 1 << 6;
    pub const FD_ADVISE: u64 = 1 << 7;
    pub const FD_ALLOCATE: u64 = 1 << 8;
    pub const PATH_CREATE_DIRECTORY: u64 = 1 << 9;
    pub const PATH_CREATE_FILE: u64 = 1 << 10;
    pub const PATH_LINK_SOURCE: u64 = 1 << 11;
    pub const PATH_LINK_TARGET: u64 = 1 << 12;
    pub const PATH_OPEN: u64 = 1 << 13;
    pub const FD_READDIR: u64 = 1 << 14;
    pub const PATH_READLINK: u64 = 1 << 15;
    pub const PATH_RENAME_SOURCE: u64 = 1 << 16;
    pub const PATH_RENAME_TARGET: u64 = 1 << 17;
    pub const PATH_FILESTAT_GET: u64 = 1 << 18;
    pub const PATH_FILESTAT_SET_SIZE: u64 = 1 << 19;
    pub const PATH_FILESTAT_SET_TIMES: u64 = 1 << 20;
    pub const FD_FILESTAT_GET: u64 = 1 << 21;
    pub const FD_FILESTAT_SET_SIZE: u64 = 1 << 22;
    pub const FD_FILESTAT_SET_TIMES: u64 = 1 << 23;
    pub const PATH_SYMLINK: u64 = 1 << 24;
    pub const PATH_REMOVE_DIRECTORY: u64 = 1 << 25;
    pub const PATH_UNLINK_FILE: u64 = 1 << 26;
    pub const POLL_FD_READWRITE: u64 = 1 << 27;
    pub const SOCK_SHUTDOWN: u64 = 1 << 28;
    pub const SOCK_ACCEPT: u64 = 1 << 29;
    /// Every defined right.
    pub const ALL: u64 = (1 << 30) - 1;
}

/// `filetype` values.
pub mod filetype {
    pub const UNKNOWN: u8 = 0;
    pub const BLOCK_DEVICE: u8 = 1;
    pub const CHARACTER_DEVICE: u8 = 2;
    pub const DIRECTORY: u8 = 3;
    pub const REGULAR_FILE: u8 = 4;
    pub const SOCKET_DGRAM: u8 = 5;
    pub const SOCKET_STREAM: u8 = 6;
    pub const SYMBOLIC_LINK: u8 = 7;
}

/// `fdflags` bits.
pub mod fdflags {
    pub const APPEND: u16 = 1;
    pub const DSYNC: u16 = 2;
    pub const NONBLOCK: u16 = 4;
    pub const RSYNC: u16 = 8;
    pub const SYNC: u16 = 16;
    pub const ALL: u16 = 31;
}

/// `oflags` bits.
pub mod oflags {
    pub const CREAT: u16 = 1;
    pub const DIRECTORY: u16 = 2;
    pub const EXCL: u16 = 4;
    pub const TRUNC: u16 = 8;
    pub const ALL: u16 = 15;
}

/// `fstflags` bits.
pub mod fstflags {
    pub const ATIM: u16 = 1;
    pub const ATIM_NOW: u16 = 2;
    pub const MTIM: u16 = 4;
    pub const MTIM_NOW: u16 = 8;
    pub const ALL: u16 = 15;
}

/// `lookupflags` bits.
pub const LOOKUP_SYMLINK_FOLLOW: u32 = 1;

/// `clockid` values.
pub mod clock {
    pub const REALTIME: u32 = 0;
    pub const MONOTONIC: u32 = 1;
    pub const PROCESS_CPUTIME: u32 = 2;
    pub const THREAD_CPUTIME: u32 = 3;
}

/// `eventtype` values.
pub mod eventtype {
    pub const CLOCK: u8 = 0;
    pub const FD_READ: u8 = 1;
    pub const FD_WRITE: u8 = 2;
}
