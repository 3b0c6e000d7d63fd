//! Sandbox tests: a guest reaches only what lies beneath its preopened
//! directories. `..` past a directory descriptor, absolute paths, symlinks
//! pointing out (absolute or through `..`) are rejected with the errno the
//! reference implementation gives (`EPERM` for an escape, `ELOOP` for opening
//! a symlink without following it), and nothing outside is touched.

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
  (memory (export "memory") 1)
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

const ROOT: i32 = 3;

struct Guest {
    store: Store<WasiCtx>,
    instance: weft::Instance,
    memory: Memory,
}

impl Guest {
    fn new(sandbox: &Path) -> Guest {
        Guest::with_perms(sandbox, weft_wasi::FsPerms::ReadWrite)
    }
    fn with_perms(sandbox: &Path, perms: weft_wasi::FsPerms) -> Guest {
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
    fn put(&mut self, at: i32, s: &str) -> (i32, i32) {
        self.memory.write(&mut self.store, at as usize, s.as_bytes()).unwrap();
        (at, s.len() as i32)
    }
    fn errno(r: i32) -> Errno {
        Errno(r as u16)
    }
    fn open_from(&mut self, fd: i32, path: &str, follow: bool) -> Errno {
        let (p, n) = self.put(0, path);
        let f = self.instance.get_typed_func::<(i32, i32, i32, i32), i32>(&mut self.store, "open").unwrap();
        Self::errno(f.call(&mut self.store, (fd, p, n, follow as i32)).unwrap())
    }
    fn open(&mut self, path: &str, follow: bool) -> Errno {
        self.open_from(ROOT, path, follow)
    }
    fn opened(&mut self) -> i32 {
        let f = self.instance.get_typed_func::<(), i32>(&mut self.store, "opened").unwrap();
        f.call(&mut self.store, ()).unwrap()
    }
    fn create(&mut self, path: &str) -> Errno {
        self.create_from(ROOT, path)
    }
    fn create_from(&mut self, fd: i32, path: &str) -> Errno {
        let (p, n) = self.put(0, path);
        let f = self.instance.get_typed_func::<(i32, i32, i32), i32>(&mut self.store, "create").unwrap();
        Self::errno(f.call(&mut self.store, (fd, p, n)).unwrap())
    }
    fn stat(&mut self, path: &str, follow: bool) -> Errno {
        let (p, n) = self.put(0, path);
        let f = self.instance.get_typed_func::<(i32, i32, i32, i32), i32>(&mut self.store, "stat").unwrap();
        Self::errno(f.call(&mut self.store, (ROOT, p, n, follow as i32)).unwrap())
    }
    fn path_op(&mut self, name: &str, path: &str) -> Errno {
        let (p, n) = self.put(0, path);
        let f = self.instance.get_typed_func::<(i32, i32, i32), i32>(&mut self.store, name).unwrap();
        Self::errno(f.call(&mut self.store, (ROOT, p, n)).unwrap())
    }
    fn two_path_op(&mut self, name: &str, a: &str, b: &str) -> Errno {
        let (p, n) = self.put(0, a);
        let (p2, n2) = self.put(512, b);
        let f = self.instance.get_typed_func::<(i32, i32, i32, i32, i32, i32), i32>(&mut self.store, name).unwrap();
        Self::errno(f.call(&mut self.store, (ROOT, p, n, ROOT, p2, n2)).unwrap())
    }
    fn symlink(&mut self, target: &str, link: &str) -> Errno {
        let (p, n) = self.put(0, target);
        let (p2, n2) = self.put(512, link);
        let f = self.instance.get_typed_func::<(i32, i32, i32, i32, i32), i32>(&mut self.store, "symlink").unwrap();
        Self::errno(f.call(&mut self.store, (p, n, ROOT, p2, n2)).unwrap())
    }
    fn link(&mut self, from: &str, to: &str) -> Errno {
        let (p, n) = self.put(0, from);
        let (p2, n2) = self.put(512, to);
        let f = self.instance.get_typed_func::<(i32, i32, i32, i32, i32, i32), i32>(&mut self.store, "link").unwrap();
        Self::errno(f.call(&mut self.store, (ROOT, p, n, ROOT, p2, n2)).unwrap())
    }
}

/// `<tmp>/sandbox` (preopened) with a file, a subdirectory and symlinks, and
/// `<tmp>/outside/secret` that must stay unreachable.
fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
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

#[test]
fn dotdot_and_absolute_paths_are_rejected() {
    let (tmp, sandbox) = setup();
    let mut g = Guest::new(&sandbox);
    assert_eq!(g.open("file", false), Errno::SUCCESS);
    assert_eq!(g.open("sub/../file", false), Errno::SUCCESS, "`..` that stays inside is fine");
    assert_eq!(g.open("../outside/secret", false), Errno::PERM);
    assert_eq!(g.open("sub/../../outside/secret", true), Errno::PERM);
    assert_eq!(g.open("..", false), Errno::PERM);
    assert_eq!(g.open("/etc/passwd", true), Errno::PERM);
    let abs = tmp.path().join("outside/secret").to_string_lossy().to_string();
    assert_eq!(g.open(&abs, true), Errno::PERM);
    assert_eq!(g.stat("../outside/secret", true), Errno::PERM);
    assert_eq!(g.stat("/", false), Errno::PERM);
    // A directory descriptor is a sandbox root of its own.
    assert_eq!(g.open("sub", false), Errno::SUCCESS);
    let sub = g.opened();
    assert_eq!(g.open_from(sub, "../file", false), Errno::PERM);
    assert_eq!(g.open_from(sub, "ok_link", true), Errno::PERM, "the target leaves the `sub` descriptor");
}

#[test]
fn symlinks_pointing_out_are_rejected() {
    let (_tmp, sandbox) = setup();
    let mut g = Guest::new(&sandbox);
    assert_eq!(g.open("sub/ok_link", true), Errno::SUCCESS, "a symlink that stays inside is followed");
    assert_eq!(g.open("link_out", true), Errno::PERM);
    assert_eq!(g.open("abs_link", true), Errno::PERM);
    assert_eq!(g.open("etc_link", true), Errno::PERM);
    assert_eq!(g.open("sub/dotdot_link", true), Errno::PERM, "`..` inside a symlink target");
    assert_eq!(g.open("up/outside/secret", true), Errno::PERM, "a symlink to `..` as a directory component");
    assert_eq!(g.open("link_out", false), Errno::LOOP, "opening a symlink without following it");
    assert_eq!(g.stat("link_out", true), Errno::PERM);
    assert_eq!(g.stat("link_out", false), Errno::SUCCESS, "lstat of the link itself is inside");
}

#[test]
fn mutations_cannot_reach_outside() {
    let (tmp, sandbox) = setup();
    let outside = tmp.path().join("outside");
    let mut g = Guest::new(&sandbox);
    assert_eq!(g.path_op("mkdir", "../outside/newdir"), Errno::PERM);
    assert!(!outside.join("newdir").exists());
    assert_eq!(g.path_op("unlink", "../outside/secret"), Errno::PERM);
    assert_eq!(g.path_op("unlink", "link_out/"), Errno::PERM, "a trailing slash follows the link, which points out");
    assert!(outside.join("secret").exists());
    assert_eq!(g.two_path_op("rename", "file", "../outside/moved"), Errno::PERM);
    assert!(!outside.join("moved").exists() && sandbox.join("file").exists());
    assert_eq!(g.two_path_op("rename", "../outside/secret", "stolen"), Errno::PERM);
    assert!(!sandbox.join("stolen").exists());
    assert_eq!(g.link("../outside/secret", "hard"), Errno::PERM);
    assert!(!sandbox.join("hard").exists());
    assert_eq!(g.create("link_out"), Errno::LOOP, "O_CREAT does not follow a symlink that points out");
    assert_eq!(std::fs::read_to_string(outside.join("secret")).unwrap(), "secret");
    assert_eq!(g.create("../outside/created"), Errno::PERM);
    assert!(!outside.join("created").exists());
    // A symlink may be created with any contents, but following it still fails.
    assert_eq!(g.symlink("../outside/secret", "new_link"), Errno::SUCCESS);
    assert_eq!(g.open("new_link", true), Errno::PERM);
    assert_eq!(g.symlink("target", "../outside/evil_link"), Errno::PERM);
    assert!(std::fs::symlink_metadata(outside.join("evil_link")).is_err());
}

/// A read-only preopen (`FsPerms::ReadOnly`): reading works; every change,
/// beneath it or beneath a directory opened through it, fails with `EPERM`
/// and leaves the directory as it was.
#[test]
fn a_read_only_preopen_refuses_every_change() {
    let (_tmp, sandbox) = setup();
    let before = listing(&sandbox);
    let mut g = Guest::with_perms(&sandbox, weft_wasi::FsPerms::ReadOnly);
    assert_eq!(g.open("file", false), Errno::SUCCESS);
    assert_eq!(g.stat("file", false), Errno::SUCCESS);
    assert_eq!(g.create("new"), Errno::PERM);
    assert_eq!(g.create("file"), Errno::PERM, "opening an existing file for writing");
    assert_eq!(g.path_op("mkdir", "newdir"), Errno::PERM);
    assert_eq!(g.path_op("unlink", "file"), Errno::PERM);
    assert_eq!(g.two_path_op("rename", "file", "moved"), Errno::PERM);
    assert_eq!(g.symlink("file", "new_link"), Errno::PERM);
    assert_eq!(g.link("file", "hard"), Errno::PERM);
    assert_eq!(g.open("sub", false), Errno::SUCCESS);
    let sub = g.opened();
    assert_eq!(g.create_from(sub, "deeper"), Errno::PERM, "a directory opened through it inherits its permissions");
    assert_eq!(listing(&sandbox), before);
    assert_eq!(std::fs::read_to_string(sandbox.join("file")).unwrap(), "inside");
    // The same operations succeed with read-write permissions.
    let mut g = Guest::new(&sandbox);
    assert_eq!(g.create("new"), Errno::SUCCESS);
    assert_eq!(g.path_op("mkdir", "newdir"), Errno::SUCCESS);
    assert!(sandbox.join("new").exists() && sandbox.join("newdir").is_dir());
}

/// Every path beneath `dir`, sorted.
fn listing(dir: &Path) -> Vec<std::path::PathBuf> {
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
