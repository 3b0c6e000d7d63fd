//! Registers the WASI functions with a [`weft::Linker`]: argument decoding,
//! access to the caller's exported `memory`, and errno/trap results.

use weft::{Caller, Extern, Linker};

use crate::ctx::WasiCtx;
use crate::imp::{Abi, Error, Mem, R};
use crate::I32Exit;

fn with_ctx<T>(caller: &mut Caller<'_, T>, get: impl Fn(&mut T) -> &mut WasiCtx, f: impl FnOnce(&mut WasiCtx, &mut Mem) -> R<()>) -> anyhow::Result<i32> {
    let memory = caller.get_export("memory").and_then(Extern::into_memory).ok_or_else(|| anyhow::anyhow!("missing required memory export"))?;
    let (mem, data) = memory.data_and_store_mut(caller);
    let ctx = get(data);
    match f(ctx, &mut Mem(mem)) {
        Ok(()) => Ok(0),
        Err(Error::Errno(e)) => Ok(e.0 as i32),
        Err(Error::Trap(e)) => Err(e),
    }
}

macro_rules! reg {
    ($l:ident, $m:ident, $get:ident, $name:literal, ($($a:ident: $t:ty),*) => |$c:ident, $mem:ident| $body:expr) => {
        $l.func_wrap($m, $name, move |mut caller: Caller<'_, T>, $($a: $t),*| -> anyhow::Result<i32> {
            #[allow(unused_variables)]
            let r = with_ctx(&mut caller, $get, |$c, $mem| $body);
            r
        })?;
    };
}

/// Defines every function of `wasi_snapshot_preview1` and `wasi_unstable` in
/// `linker`; `get` finds the [`WasiCtx`] in the store's data.
///
/// # Errors
/// Fails if one of the names is already defined.
pub fn add_to_linker<T: 'static>(linker: &mut Linker<T>, get: impl Fn(&mut T) -> &mut WasiCtx + Copy + Send + Sync + 'static) -> anyhow::Result<()> {
    add_to_linker_preview1(linker, get)?;
    add_to_linker_preview0(linker, get)
}

/// Defines the `wasi_snapshot_preview1` functions only.
///
/// # Errors
/// Fails if one of the names is already defined.
pub fn add_to_linker_preview1<T: 'static>(linker: &mut Linker<T>, get: impl Fn(&mut T) -> &mut WasiCtx + Copy + Send + Sync + 'static) -> anyhow::Result<()> {
    add_module(linker, "wasi_snapshot_preview1", Abi::Preview1, get)
}

/// Defines the legacy `wasi_unstable` (preview0) functions only.
///
/// # Errors
/// Fails if one of the names is already defined.
pub fn add_to_linker_preview0<T: 'static>(linker: &mut Linker<T>, get: impl Fn(&mut T) -> &mut WasiCtx + Copy + Send + Sync + 'static) -> anyhow::Result<()> {
    add_module(linker, "wasi_unstable", Abi::Preview0, get)
}

fn add_module<T: 'static, G: Fn(&mut T) -> &mut WasiCtx + Copy + Send + Sync + 'static>(l: &mut Linker<T>, m: &str, abi: Abi, g: G) -> anyhow::Result<()> {
    reg!(l, m, g, "args_get", (a: u32, b: u32) => |c, mem| c.args_get(mem, a, b));
    reg!(l, m, g, "args_sizes_get", (a: u32, b: u32) => |c, mem| c.args_sizes_get(mem, a, b));
    reg!(l, m, g, "environ_get", (a: u32, b: u32) => |c, mem| c.environ_get(mem, a, b));
    reg!(l, m, g, "environ_sizes_get", (a: u32, b: u32) => |c, mem| c.environ_sizes_get(mem, a, b));
    reg!(l, m, g, "clock_res_get", (id: u32, out: u32) => |c, mem| c.clock_res_get(mem, id, out));
    reg!(l, m, g, "clock_time_get", (id: u32, p: u64, out: u32) => |c, mem| c.clock_time_get(mem, id, p, out));
    reg!(l, m, g, "fd_advise", (fd: u32, o: u64, n: u64, a: u32) => |c, mem| c.fd_advise(fd, o, n, a));
    reg!(l, m, g, "fd_allocate", (fd: u32, o: u64, n: u64) => |c, mem| c.fd_allocate(fd, o, n));
    reg!(l, m, g, "fd_close", (fd: u32) => |c, mem| c.fd_close(fd));
    reg!(l, m, g, "fd_datasync", (fd: u32) => |c, mem| c.fd_datasync(fd));
    reg!(l, m, g, "fd_fdstat_get", (fd: u32, out: u32) => |c, mem| c.fd_fdstat_get(mem, fd, out));
    reg!(l, m, g, "fd_fdstat_set_flags", (fd: u32, f: u32) => |c, mem| c.fd_fdstat_set_flags(fd, f));
    reg!(l, m, g, "fd_fdstat_set_rights", (fd: u32, b: u64, i: u64) => |c, mem| c.fd_fdstat_set_rights(fd, b, i));
    reg!(l, m, g, "fd_filestat_get", (fd: u32, out: u32) => |c, mem| c.fd_filestat_get(mem, fd, out, abi));
    reg!(l, m, g, "fd_filestat_set_size", (fd: u32, s: u64) => |c, mem| c.fd_filestat_set_size(fd, s));
    reg!(l, m, g, "fd_filestat_set_times", (fd: u32, a: u64, b: u64, f: u32) => |c, mem| c.fd_filestat_set_times(fd, a, b, f));
    reg!(l, m, g, "fd_pread", (fd: u32, iov: u32, n: u32, o: u64, out: u32) => |c, mem| c.fd_pread(mem, fd, iov, n, o, out));
    reg!(l, m, g, "fd_prestat_get", (fd: u32, out: u32) => |c, mem| c.fd_prestat_get(mem, fd, out));
    reg!(l, m, g, "fd_prestat_dir_name", (fd: u32, p: u32, n: u32) => |c, mem| c.fd_prestat_dir_name(mem, fd, p, n));
    reg!(l, m, g, "fd_pwrite", (fd: u32, iov: u32, n: u32, o: u64, out: u32) => |c, mem| c.fd_pwrite(mem, fd, iov, n, o, out));
    reg!(l, m, g, "fd_read", (fd: u32, iov: u32, n: u32, out: u32) => |c, mem| c.fd_read(mem, fd, iov, n, out));
    reg!(l, m, g, "fd_readdir", (fd: u32, b: u32, n: u32, ck: u64, out: u32) => |c, mem| c.fd_readdir(mem, fd, b, n, ck, out));
    reg!(l, m, g, "fd_renumber", (a: u32, b: u32) => |c, mem| c.fd_renumber(a, b));
    reg!(l, m, g, "fd_seek", (fd: u32, o: i64, w: u32, out: u32) => |c, mem| c.fd_seek(mem, fd, o, w, out, abi));
    reg!(l, m, g, "fd_sync", (fd: u32) => |c, mem| c.fd_sync(fd));
    reg!(l, m, g, "fd_tell", (fd: u32, out: u32) => |c, mem| c.fd_tell(mem, fd, out));
    reg!(l, m, g, "fd_write", (fd: u32, iov: u32, n: u32, out: u32) => |c, mem| c.fd_write(mem, fd, iov, n, out));
    reg!(l, m, g, "path_create_directory", (fd: u32, p: u32, n: u32) => |c, mem| c.path_create_directory(mem, fd, p, n));
    reg!(l, m, g, "path_filestat_get", (fd: u32, f: u32, p: u32, n: u32, out: u32) => |c, mem| c.path_filestat_get(mem, fd, f, p, n, out, abi));
    reg!(l, m, g, "path_filestat_set_times", (fd: u32, f: u32, p: u32, n: u32, a: u64, b: u64, fl: u32) => |c, mem| c.path_filestat_set_times(mem, fd, f, p, n, a, b, fl));
    reg!(l, m, g, "path_link", (ofd: u32, of: u32, op: u32, on: u32, nfd: u32, np: u32, nn: u32) => |c, mem| c.path_link(mem, ofd, of, op, on, nfd, np, nn));
    reg!(l, m, g, "path_open", (fd: u32, df: u32, p: u32, n: u32, of: u32, rb: u64, ri: u64, ff: u32, out: u32) => |c, mem| c.path_open(mem, fd, df, p, n, of, rb, ri, ff, out));
    reg!(l, m, g, "path_readlink", (fd: u32, p: u32, n: u32, b: u32, bn: u32, out: u32) => |c, mem| c.path_readlink(mem, fd, p, n, b, bn, out));
    reg!(l, m, g, "path_remove_directory", (fd: u32, p: u32, n: u32) => |c, mem| c.path_remove_directory(mem, fd, p, n));
    reg!(l, m, g, "path_rename", (fd: u32, op: u32, on: u32, nfd: u32, np: u32, nn: u32) => |c, mem| c.path_rename(mem, fd, op, on, nfd, np, nn));
    reg!(l, m, g, "path_symlink", (op: u32, on: u32, fd: u32, np: u32, nn: u32) => |c, mem| c.path_symlink(mem, op, on, fd, np, nn));
    reg!(l, m, g, "path_unlink_file", (fd: u32, p: u32, n: u32) => |c, mem| c.path_unlink_file(mem, fd, p, n));
    reg!(l, m, g, "poll_oneoff", (i: u32, o: u32, n: u32, out: u32) => |c, mem| c.poll_oneoff(mem, i, o, n, out, abi));
    reg!(l, m, g, "random_get", (b: u32, n: u32) => |c, mem| c.random_get(mem, b, n));
    reg!(l, m, g, "sched_yield", () => |c, mem| {
        std::thread::yield_now();
        Ok(())
    });
    reg!(l, m, g, "proc_raise", (_sig: u32) => |c, mem| Err(Error::Trap(anyhow::anyhow!("proc_raise unsupported"))));
    if abi == Abi::Preview1 {
        reg!(l, m, g, "sock_accept", (fd: u32, f: u32, out: u32) => |c, mem| c.sock_accept(mem, fd, f, out));
    }
    reg!(l, m, g, "sock_recv", (fd: u32, iov: u32, n: u32, f: u32, ol: u32, of: u32) => |c, mem| c.sock_recv(mem, fd, iov, n, f, ol, of));
    reg!(l, m, g, "sock_send", (fd: u32, iov: u32, n: u32, f: u32, out: u32) => |c, mem| c.sock_send(mem, fd, iov, n, f, out));
    reg!(l, m, g, "sock_shutdown", (fd: u32, how: u32) => |c, mem| c.sock_shutdown(fd, how));
    l.func_wrap(m, "proc_exit", |code: i32| -> anyhow::Result<()> {
        // Exit codes outside [0, 126) are reserved by WASI (as in the reference).
        if (0..126).contains(&code) {
            Err(anyhow::Error::new(I32Exit(code)))
        } else {
            Err(anyhow::anyhow!("exit with invalid exit status outside of [0..126)"))
        }
    })?;
    Ok(())
}
