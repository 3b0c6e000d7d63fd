//! Sandbox tests: a guest reaches only what lies beneath its preopened
//! directories. `..` past a directory descriptor, absolute paths, symlinks
//! pointing out (absolute or through `..`) are rejected with the errno the
//! reference implementation gives (`EPERM` for an escape, `ELOOP` for opening
//! a symlink without following it), and nothing outside is touched.

use weft_wasi::Errno;

#[path = "support/sandbox.rs"]
mod support;
use support::{listing, setup, Guest};

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

/// Random sequences of path calls (1,000 sequences of up to 24 calls, from a
/// fixed seed) never reach outside the sandbox: see
/// [`support::run_sequence`]. `cargo fuzz run wasi_sandbox` explores further.
#[test]
fn random_call_sequences_stay_inside() {
    let mut state = 0x5eed_u64;
    let mut succeeded = 0;
    for n in 0..1000 {
        let choices: Vec<u8> = (0..128)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 33) as u8
            })
            .collect();
        match support::run_sequence(&choices, 24) {
            Ok(k) => succeeded += k,
            Err(e) => panic!("sequence {n} ({choices:?}): {e}"),
        }
    }
    // Many calls succeed too: the sequences do real work inside.
    assert!(succeeded > 1000, "only {succeeded} calls succeeded");
}
