//! The sandbox guest and its directory, shared by the sandbox tests and the
//! `wasi_sandbox` fuzz target: a Wasm module that makes WASI path calls with
//! paths the host writes into its memory, a scratch directory beside an
//! `outside` directory that must stay unreachable, and [`run_sequence`],
//! which drives the calls from a byte stream and checks after each one that
//! nothing outside was read, written, created or removed.
#![allow(dead_code)]

use std::path::Path;

use weft::{Engine, Linker, Memory, Module, Store};
use weft_wasi::{Errno, WasiCtx};

const GUEST: &str = r#"(module
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_get" (func $stat (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_create_directory" (func $mkdir (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_unlink_file" (func $unlink (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_rename" (func $rename (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink" (func $symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_link" (func $link (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; Reads up to 64 bytes of `fd` to 4096: the count, or -errno.
  (func (export "read") (param $fd i32) (result i32) (local $e i32)
    (i32.store (i32.const 3072) (i32.const 4096))
    (i32.store (i32.const 3076) (i32.const 64))
    (local.set $e (call $fd_read (local.get $fd) (i32.const 3072) (i32.const 1) (i32.const 3080)))
    (if (result i32) (local.get $e) (then (i32.sub (i32.const 0) (local.get $e))) (else (i32.load (i32.const 3080)))))
  (func (export "open") (param $fd i32) (param $p i32) (param $n i32) (param $follow i32) (result i32)
    (call $path_open (local.get $fd) (local.get $follow) (local.get $p) (local.get $n)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 1024)))
  (func (export "create") (param $fd i32) (param $p i32) (param $n i32) (result i32)
    (call $path_open (local.get $fd) (i32.const 0) (local.get $p) (local.get $n)
      (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 1024)))
  (func (export "opened") (result i32) (i32.load (i32.const 1024)))
  (func (export "stat") (param $fd i32) (param $p i32) (param $n i32) (param $follow i32) (result i32)
    (call $stat (local.get $fd) (local.get $follow) (local.get $p) (local.get $n) (i32.const 2048)))
  (func (export "mkdir") (param i32 i32 i32) (result i32) (call $mkdir (local.get 0) (local.get 1) (local.get 2)))
  (func (export "unlink") (param i32 i32 i32) (result i32) (call $unlink (local.get 0) (local.get 1) (local.get 2)))
  (func (export "rename") (param i32 i32 i32 i32 i32 i32) (result i32)
    (call $rename (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4) (local.get 5)))
  (func (export "symlink") (param i32 i32 i32 i32 i32) (result i32)
    (call $symlink (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4)))
  (func (export "link") (param i32 i32 i32 i32 i32 i32) (result i32)
    (call $link (local.get 0) (i32.const 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4) (local.get 5)))
)"#;

pub const ROOT: i32 = 3;

pub struct Guest {
    store: Store<WasiCtx>,
    instance: weft::Instance,
    memory: Memory,
}

impl Guest {
    pub fn new(sandbox: &Path) -> Guest {
        Guest::with_perms(sandbox, weft_wasi::FsPerms::ReadWrite)
    }
    pub fn with_perms(sandbox: &Path, perms: weft_wasi::FsPerms) -> Guest {
        let engine = Engine::default();
        let module = Module::new(&engine, GUEST).unwrap();
        let mut linker = Linker::new(&engine);
        weft_wasi::add_to_linker(&mut linker, |c: &mut WasiCtx| c).unwrap();
        let ctx = WasiCtx::builder().preopened_dir(sandbox, "/sandbox", perms).unwrap().build();
        let mut store = Store::new(&engine, ctx);
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        Guest { store, instance, memory }
    }
    /// Writes `s` at `at` and returns (ptr, len).
    pub fn put(&mut self, at: i32, s: &str) -> (i32, i32) {
        self.memory.write(&mut self.store, at as usize, s.as_bytes()).unwrap();
        (at, s.len() as i32)
    }
    pub fn errno(r: i32) -> Errno {
        Errno(r as u16)
    }
    pub fn open_from(&mut self, fd: i32, path: &str, follow: bool) -> Errno {
        let (p, n) = self.put(0, path);
        let f = self.instance.get_typed_func::<(i32, i32, i32, i32), i32>(&mut self.store, "open").unwrap();
        Self::errno(f.call(&mut self.store, (fd, p, n, follow as i32)).unwrap())
    }
    pub fn open(&mut self, path: &str, follow: bool) -> Errno {
        self.open_from(ROOT, path, follow)
    }
    pub fn opened(&mut self) -> i32 {
        let f = self.instance.get_typed_func::<(), i32>(&mut self.store, "opened").unwrap();
        f.call(&mut self.store, ()).unwrap()
    }
    pub fn create(&mut self, path: &str) -> Errno {
        self.create_from(ROOT, path)
    }
    pub fn create_from(&mut self, fd: i32, path: &str) -> Errno {
        let (p, n) = self.put(0, path);
        let f = self.instance.get_typed_func::<(i32, i32, i32), i32>(&mut self.store, "create").unwrap();
        Self::errno(f.call(&mut self.store, (fd, p, n)).unwrap())
    }
    pub fn stat(&mut self, path: &str, follow: bool) -> Errno {
        let (p, n) = self.put(0, path);
        let f = self.instance.get_typed_func::<(i32, i32, i32, i32), i32>(&mut self.store, "stat").unwrap();
        Self::errno(f.call(&mut self.store, (ROOT, p, n, follow as i32)).unwrap())
    }
    pub fn path_op(&mut self, name: &str, path: &str) -> Errno {
        let (p, n) = self.put(0, path);
        let f = self.instance.get_typed_func::<(i32, i32, i32), i32>(&mut self.store, name).unwrap();
        Self::errno(f.call(&mut self.store, (ROOT, p, n)).unwrap())
    }
    pub fn two_path_op(&mut self, name: &str, a: &str, b: &str) -> Errno {
        let (p, n) = self.put(0, a);
        let (p2, n2) = self.put(512, b);
        let f = self.instance.get_typed_func::<(i32, i32, i32, i32, i32, i32), i32>(&mut self.store, name).unwrap();
        Self::errno(f.call(&mut self.store, (ROOT, p, n, ROOT, p2, n2)).unwrap())
    }
    pub fn symlink(&mut self, target: &str, link: &str) -> Errno {
        let (p, n) = self.put(0, target);
        let (p2, n2) = self.put(512, link);
        let f = self.instance.get_typed_func::<(i32, i32, i32, i32, i32), i32>(&mut self.store, "symlink").unwrap();
        Self::errno(f.call(&mut self.store, (p, n, ROOT, p2, n2)).unwrap())
    }
    pub fn link(&mut self, from: &str, to: &str) -> Errno {
        let (p, n) = self.put(0, from);
        let (p2, n2) = self.put(512, to);
        let f = self.instance.get_typed_func::<(i32, i32, i32, i32, i32, i32), i32>(&mut self.store, "link").unwrap();
        Self::errno(f.call(&mut self.store, (ROOT, p, n, ROOT, p2, n2)).unwrap())
    }
}

/// `<tmp>/sandbox` (preopened) with a file, a subdirectory and symlinks, and
/// `<tmp>/outside/secret` that must stay unreachable.
pub fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = tmp.path().join("sandbox");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(sandbox.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(sandbox.join("file"), "inside").unwrap();
    std::fs::write(outside.join("secret"), "secret").unwrap();
    let secret_abs = outside.join("secret");
    std::os::unix::fs::symlink("../outside/secret", sandbox.join("link_out")).unwrap();
    std::os::unix::fs::symlink(&secret_abs, sandbox.join("abs_link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", sandbox.join("etc_link")).unwrap();
    std::os::unix::fs::symlink("../../outside/secret", sandbox.join("sub/dotdot_link")).unwrap();
    std::os::unix::fs::symlink("../file", sandbox.join("sub/ok_link")).unwrap();
    std::os::unix::fs::symlink("..", sandbox.join("up")).unwrap();
    (tmp, sandbox)
}

/// Every path beneath `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out.sort();
    out
}

impl Guest {
    /// What `fd` reads (up to 64 bytes), or the errno.
    pub fn read(&mut self, fd: i32) -> Result<Vec<u8>, Errno> {
        let f = self.instance.get_typed_func::<i32, i32>(&mut self.store, "read").unwrap();
        let n = f.call(&mut self.store, fd).unwrap();
        if n < 0 {
            return Err(Errno((-n) as u16));
        }
        let mut buf = vec![0; n as usize];
        self.memory.read(&self.store, 4096, &mut buf).unwrap();
        Ok(buf)
    }
}

/// Path components the sequences combine: names inside, `..` and `.`, the
/// symlinks of [`setup`], absolute paths, and the way out.
const COMPONENTS: &[&str] = &[
    "file",
    "sub",
    "new",
    "x",
    "y",
    "..",
    ".",
    "link_out",
    "abs_link",
    "etc_link",
    "up",
    "ok_link",
    "dotdot_link",
    "new_link",
    "outside",
    "secret",
    "/",
    "/etc",
    "/tmp",
    "",
];

/// A byte stream that runs dry as zeros.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn next(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        self.0 = rest;
        first
    }
    fn pick<'b>(&mut self, from: &[&'b str]) -> &'b str {
        from[self.next() as usize % from.len()]
    }
    fn path(&mut self) -> String {
        let n = 1 + self.next() % 3;
        let mut parts: Vec<&str> = (0..n).map(|_| self.pick(COMPONENTS)).collect();
        if self.next().is_multiple_of(8) {
            parts.push("");
        }
        parts.join("/")
    }
}

/// Runs the WASI path calls `choices` describes (up to `max_ops`) in a fresh
/// sandbox and checks, after each, that the directory beside it and its
/// secret are untouched and that no descriptor the guest opened reads the
/// secret. Returns how many calls succeeded, or what went wrong.
pub fn run_sequence(choices: &[u8], max_ops: usize) -> Result<usize, String> {
    let (tmp, sandbox) = setup();
    let outside = tmp.path().join("outside");
    let secret = outside.join("secret");
    let outside_before = listing(&outside);
    let top_before = std::fs::read_dir(tmp.path()).unwrap().count();
    let mut g = Guest::new(&sandbox);
    let mut c = Choices(choices);
    let mut succeeded = 0;
    for i in 0..max_ops {
        if c.0.is_empty() {
            break;
        }
        let op = c.next() % 9;
        let (a, b) = (c.path(), c.path());
        let (errno, what) = match op {
            0 | 1 => {
                let follow = op == 1;
                let errno = g.open(&a, follow);
                if errno == Errno::SUCCESS {
                    let fd = g.opened();
                    if let Ok(bytes) = g.read(fd) {
                        if bytes.starts_with(b"secret") {
                            return Err(format!("op {i}: open({a:?}, follow {follow}) read the secret outside"));
                        }
                    }
                }
                (errno, format!("open {a:?}"))
            }
            2 => (g.create(&a), format!("create {a:?}")),
            3 => {
                let follow = c.next().is_multiple_of(2);
                (g.stat(&a, follow), format!("stat {a:?}"))
            }
            4 => (g.path_op("mkdir", &a), format!("mkdir {a:?}")),
            5 => (g.path_op("unlink", &a), format!("unlink {a:?}")),
            6 => (g.two_path_op("rename", &a, &b), format!("rename {a:?} {b:?}")),
            7 => (g.symlink(&a, &b), format!("symlink {a:?} -> {b:?}")),
            _ => (g.link(&a, &b), format!("link {a:?} {b:?}")),
        };
        succeeded += usize::from(errno == Errno::SUCCESS);
        if listing(&outside) != outside_before {
            return Err(format!("op {i} ({what}) changed the directory outside: {:?}", listing(&outside)));
        }
        if std::fs::read_to_string(&secret).ok().as_deref() != Some("secret") {
            return Err(format!("op {i} ({what}) changed the secret"));
        }
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata(&secret).map(|m| m.nlink()).unwrap_or(0) != 1 {
            return Err(format!("op {i} ({what}) made a hard link to the secret"));
        }
        if std::fs::read_dir(tmp.path()).unwrap().count() != top_before {
            return Err(format!("op {i} ({what}) created something beside the sandbox"));
        }
    }
    Ok(succeeded)
}
