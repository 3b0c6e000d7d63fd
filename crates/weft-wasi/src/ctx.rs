//! The WASI context: what a guest may see (arguments, environment, preopened
//! directories and sockets, standard streams, clocks and randomness) and its
//! descriptor table. Built with [`WasiCtxBuilder`].

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use cap_rand::{Rng, RngCore, SeedableRng};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, File};

use crate::types::Errno;

/// Shared in-memory output: what a guest wrote to a piped stdout/stderr.
#[derive(Clone, Default, Debug)]
pub struct OutputPipe(Arc<Mutex<Vec<u8>>>);

impl OutputPipe {
    /// An empty pipe.
    pub fn new() -> Self {
        Self::default()
    }
    /// Everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn write(&self, buf: &[u8]) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
    }
}

/// Where a guest's standard input comes from.
pub enum StdinSource {
    /// The host process's stdin.
    Inherit,
    /// Fixed bytes, then end of file.
    Bytes(io::Cursor<Vec<u8>>),
    /// Any reader (never reported as a tty).
    Reader(Box<dyn Read + Send + Sync>),
    /// Immediately at end of file.
    Null,
}

/// Where a guest's standard output or error goes.
pub enum OutputSink {
    /// The host process's stdout (for fd 1) or stderr (for fd 2).
    Inherit,
    /// An in-memory pipe the embedder reads afterwards.
    Pipe(OutputPipe),
    /// Any writer.
    Writer(Box<dyn Write + Send + Sync>),
    /// Discarded.
    Null,
}

/// Which of the three standard streams a stdio descriptor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StdioKind {
    Stdin,
    Stdout,
    Stderr,
}

pub(crate) enum StdioStream {
    In(StdinSource),
    Out(OutputSink, StdioKind),
}

pub(crate) struct Stdio {
    pub kind: StdioKind,
    pub stream: StdioStream,
}

impl Stdio {
    pub fn isatty(&self) -> bool {
        match &self.stream {
            StdioStream::In(StdinSource::Inherit) => rustix::termios::isatty(std::io::stdin()),
            StdioStream::Out(OutputSink::Inherit, StdioKind::Stderr) => rustix::termios::isatty(std::io::stderr()),
            StdioStream::Out(OutputSink::Inherit, _) => rustix::termios::isatty(std::io::stdout()),
            _ => false,
        }
    }
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.stream {
            StdioStream::In(StdinSource::Inherit) => std::io::stdin().read(buf),
            StdioStream::In(StdinSource::Bytes(c)) => c.read(buf),
            StdioStream::In(StdinSource::Reader(r)) => r.read(buf),
            StdioStream::In(StdinSource::Null) => Ok(0),
            StdioStream::Out(..) => Err(io::Error::from_raw_os_error(libc::EBADF)),
        }
    }
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.stream {
            StdioStream::In(_) => Err(io::Error::from_raw_os_error(libc::EBADF)),
            StdioStream::Out(OutputSink::Inherit, StdioKind::Stderr) => {
                let mut e = std::io::stderr().lock();
                e.write_all(buf)?;
                e.flush()?;
                Ok(buf.len())
            }
            StdioStream::Out(OutputSink::Inherit, _) => {
                let mut o = std::io::stdout().lock();
                o.write_all(buf)?;
                o.flush()?;
                Ok(buf.len())
            }
            StdioStream::Out(OutputSink::Pipe(p), _) => {
                p.write(buf);
                Ok(buf.len())
            }
            StdioStream::Out(OutputSink::Writer(w), _) => {
                w.write_all(buf)?;
                w.flush()?;
                Ok(buf.len())
            }
            StdioStream::Out(OutputSink::Null, _) => Ok(buf.len()),
        }
    }
    /// Bytes known to be readable without blocking (for `poll_oneoff`), or
    /// `None` if that can only be learnt by polling the host's stdin.
    pub fn ready_bytes(&self) -> Option<u64> {
        match &self.stream {
            StdioStream::In(StdinSource::Inherit) => None,
            StdioStream::In(StdinSource::Bytes(c)) => Some((c.get_ref().len() as u64).saturating_sub(c.position())),
            _ => Some(0),
        }
    }
}

/// An open regular file (or other non-directory node).
pub(crate) struct FileDesc {
    pub file: File,
    pub read: bool,
    pub write: bool,
}

/// An open directory; `preopen` holds the guest-visible name of preopens.
pub(crate) struct DirDesc {
    pub dir: Dir,
    pub preopen: Option<String>,
    /// What the guest may do beneath it: its preopen's permissions, which
    /// directories opened through it inherit.
    pub perms: FsPerms,
}

/// What a guest may do beneath a preopened directory (see
/// [`WasiCtxBuilder::preopened_dir`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsPerms {
    /// Read files and list directories; every change (opening a file for
    /// writing, creating, truncating, removing, renaming, linking, setting
    /// times) fails with `EPERM`.
    ReadOnly,
    /// Read and change everything beneath the directory.
    ReadWrite,
}

/// One entry of the descriptor table.
pub(crate) enum Desc {
    Stdio(Stdio),
    File(FileDesc),
    Dir(DirDesc),
    Listener(std::net::TcpListener),
    Stream(std::net::TcpStream),
}

/// The state of one WASI guest: its descriptor table, arguments, environment,
/// clocks and random source.
pub struct WasiCtx {
    pub(crate) args: Vec<Vec<u8>>,
    pub(crate) env: Vec<Vec<u8>>,
    pub(crate) fds: BTreeMap<u32, Desc>,
    pub(crate) rng: Box<dyn RngCore + Send + Sync>,
}

impl WasiCtx {
    /// A builder with no arguments, environment, preopens, and null stdio.
    pub fn builder() -> WasiCtxBuilder {
        WasiCtxBuilder::new()
    }

    pub(crate) fn get(&mut self, fd: u32) -> Result<&mut Desc, Errno> {
        self.fds.get_mut(&fd).ok_or(Errno::BADF)
    }

    /// Inserts at the lowest free descriptor number.
    pub(crate) fn push(&mut self, d: Desc) -> Result<u32, Errno> {
        let mut n = 0u32;
        for &k in self.fds.keys() {
            if k != n {
                break;
            }
            n = n.checked_add(1).ok_or(Errno::MFILE)?;
        }
        self.fds.insert(n, d);
        Ok(n)
    }
}

/// Builds a [`WasiCtx`]. Its methods take and return `&mut Self`, as
/// wasmtime's do, so that calls chain on a temporary or on a variable.
///
/// # Example
///
/// ```
/// let out = weft_wasi::OutputPipe::new();
/// let ctx = weft_wasi::WasiCtxBuilder::new()
///     .arg("prog")
///     .env("KEY", "value")
///     .stdout(weft_wasi::OutputSink::Pipe(out.clone()))
///     .build();
/// # drop(ctx);
/// ```
pub struct WasiCtxBuilder {
    args: Vec<Vec<u8>>,
    env: Vec<Vec<u8>>,
    stdin: StdinSource,
    stdout: OutputSink,
    stderr: OutputSink,
    preopens: Vec<(Desc, Option<String>)>,
    rng: Option<Box<dyn RngCore + Send + Sync>>,
    built: bool,
}

impl Default for WasiCtxBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl WasiCtxBuilder {
    /// An empty builder (null stdio).
    pub fn new() -> Self {
        WasiCtxBuilder {
            args: Vec::new(),
            env: Vec::new(),
            stdin: StdinSource::Null,
            stdout: OutputSink::Null,
            stderr: OutputSink::Null,
            preopens: Vec::new(),
            rng: None,
            built: false,
        }
    }
    /// Appends one argument (the first is conventionally the program name).
    pub fn arg(&mut self, a: impl AsRef<str>) -> &mut Self {
        self.args.push(a.as_ref().as_bytes().to_vec());
        self
    }
    /// Appends arguments.
    pub fn args<S: AsRef<str>>(&mut self, a: impl IntoIterator<Item = S>) -> &mut Self {
        for s in a {
            self.arg(s);
        }
        self
    }
    /// Appends the host process's own arguments.
    pub fn inherit_args(&mut self) -> &mut Self {
        for a in std::env::args_os() {
            use std::os::unix::ffi::OsStrExt;
            self.args.push(a.as_bytes().to_vec());
        }
        self
    }
    /// Adds `NAME=VALUE` to the environment.
    pub fn env(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> &mut Self {
        self.env.push(format!("{}={}", name.as_ref(), value.as_ref()).into_bytes());
        self
    }
    /// Adds every variable of the host process's environment.
    pub fn inherit_env(&mut self) -> &mut Self {
        for (k, v) in std::env::vars_os() {
            use std::os::unix::ffi::OsStrExt;
            self.env.push([k.as_bytes(), b"=", v.as_bytes()].concat());
        }
        self
    }
    /// Sets standard input.
    pub fn stdin(&mut self, s: StdinSource) -> &mut Self {
        self.stdin = s;
        self
    }
    /// Sets standard input to fixed bytes.
    pub fn stdin_bytes(&mut self, bytes: impl Into<Vec<u8>>) -> &mut Self {
        self.stdin(StdinSource::Bytes(io::Cursor::new(bytes.into())))
    }
    /// Sets standard output.
    pub fn stdout(&mut self, s: OutputSink) -> &mut Self {
        self.stdout = s;
        self
    }
    /// Sets standard error.
    pub fn stderr(&mut self, s: OutputSink) -> &mut Self {
        self.stderr = s;
        self
    }
    /// Uses the host process's stdin, stdout and stderr.
    pub fn inherit_stdio(&mut self) -> &mut Self {
        self.stdin(StdinSource::Inherit).stdout(OutputSink::Inherit).stderr(OutputSink::Inherit)
    }
    /// Preopens the host directory `host` under the guest name `guest`: the
    /// guest can reach only what lies beneath it, and with
    /// [`FsPerms::ReadOnly`] change nothing there.
    ///
    /// # Errors
    /// Fails if `host` cannot be opened as a directory.
    pub fn preopened_dir(&mut self, host: impl AsRef<Path>, guest: impl AsRef<str>, perms: FsPerms) -> io::Result<&mut Self> {
        let dir = Dir::open_ambient_dir(host.as_ref(), ambient_authority())?;
        Ok(self.preopened_cap_dir(dir, guest, perms))
    }
    /// Preopens an already open capability directory under the guest name `guest`.
    pub fn preopened_cap_dir(&mut self, dir: Dir, guest: impl AsRef<str>, perms: FsPerms) -> &mut Self {
        self.preopens.push((Desc::Dir(DirDesc { dir, preopen: None, perms }), Some(guest.as_ref().to_string())));
        self
    }
    /// Gives the guest a listening TCP socket as a descriptor (for `sock_accept`).
    pub fn preopened_listener(&mut self, listener: std::net::TcpListener) -> &mut Self {
        self.preopens.push((Desc::Listener(listener), None));
        self
    }
    /// Replaces the random source behind `random_get` (e.g. with a seeded one for tests).
    pub fn rng(&mut self, rng: Box<dyn RngCore + Send + Sync>) -> &mut Self {
        self.rng = Some(rng);
        self
    }
    /// Finishes the context for preview 1 (the same as [`build`](Self::build):
    /// Weft's [`WasiCtx`] is preview 1's context; the name is wasmtime's).
    ///
    /// # Panics
    /// If the builder was already built.
    pub fn build_p1(&mut self) -> crate::p1::WasiP1Ctx {
        self.build()
    }
    /// Finishes the context: fds 0-2 are stdio, preopens follow from fd 3 in
    /// order. The builder is left empty.
    ///
    /// # Panics
    /// If the builder was already built (as wasmtime's does).
    pub fn build(&mut self) -> WasiCtx {
        assert!(!self.built, "a WasiCtxBuilder can be built only once");
        let this = std::mem::take(self);
        self.built = true;
        let mut fds = BTreeMap::new();
        fds.insert(0, Desc::Stdio(Stdio { kind: StdioKind::Stdin, stream: StdioStream::In(this.stdin) }));
        fds.insert(1, Desc::Stdio(Stdio { kind: StdioKind::Stdout, stream: StdioStream::Out(this.stdout, StdioKind::Stdout) }));
        fds.insert(2, Desc::Stdio(Stdio { kind: StdioKind::Stderr, stream: StdioStream::Out(this.stderr, StdioKind::Stderr) }));
        for (n, (d, name)) in (3..).zip(this.preopens) {
            let d = match (d, name) {
                (Desc::Dir(DirDesc { dir, perms, .. }), Some(name)) => Desc::Dir(DirDesc { dir, preopen: Some(name), perms }),
                (d, _) => d,
            };
            fds.insert(n, d);
        }
        let rng = this.rng.unwrap_or_else(|| {
            let mut seed_rng = cap_rand::thread_rng(cap_rand::ambient_authority());
            Box::new(cap_rand::rngs::StdRng::from_seed(seed_rng.random()))
        });
        WasiCtx { args: this.args, env: this.env, fds, rng }
    }
}
