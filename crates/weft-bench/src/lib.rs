//! Side-by-side benchmarks: Weft, and with the `wasmtime` feature the `wasmtime`
//! crate (48.0.8, which shares Cranelift 0.135 with Weft), measured in the same
//! process and run, interleaved, and reported as ratios (absolute times drift on
//! small shared machines; ratios hold).
//!
//! Two kinds of measurement:
//! - [`sightglass`]: the field's standard benchmark programs (WASI commands
//!   that mark their measured work with `bench.start`/`bench.end`), with
//!   compile, instantiate and execute reported separately, optionally under
//!   epoch or MMU interruption;
//! - [`compare_instantiate`]: instantiation alone (`instantiate` + drop of a
//!   fresh store, the per-request cost of a serverless or plugin host), on
//!   demand or pooled, on one or more threads. Imports are satisfied with host
//!   functions that trap if called, in both runtimes, so only instantiation
//!   itself is measured.

use std::time::Instant;

pub mod sightglass;

/// Timing summary of one measurement.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub median_ns: u64,
    /// The mean: with bimodal samples (contended and uncontended phases of a
    /// multi-threaded run) steadier than the median.
    pub mean_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    pub iters: usize,
}

impl Stats {
    fn from(mut samples: Vec<u64>) -> Stats {
        samples.sort_unstable();
        Stats {
            median_ns: samples[samples.len() / 2],
            mean_ns: (samples.iter().map(|s| *s as u128).sum::<u128>() / samples.len().max(1) as u128) as u64,
            min_ns: samples[0],
            max_ns: *samples.last().unwrap(),
            iters: samples.len(),
        }
    }
}

/// How to instantiate.
#[derive(Debug, Clone, Copy)]
pub struct InstantiateOptions {
    pub pooled: bool,
    /// Pooled memories cleaned together in batches of this many.
    pub decommit_batch: usize,
    /// Interruption compiled in (stores are created with it enabled); wasmtime,
    /// which has no MMU mode, uses epochs for `mmu`.
    pub interrupt: sightglass::Interrupt,
    pub threads: usize,
    pub iters: usize,
    /// Each tenant writes one byte of its exported memory `memory` before it
    /// is dropped, through the host API: a tenant that ran, whose slot needs
    /// restoring. Without it the tenants never run, and Weft, which knows
    /// that, restores nothing.
    pub write_memory: bool,
    /// Weft's [`weft::PoolingConfig::rewrite_written_pages`] (0: off).
    pub rewrite_written_pages: u64,
}

/// Runs `body(thread, iteration)` `iters` times on each of `threads` threads and
/// returns the per-iteration times.
///
/// The threads start together (a barrier): otherwise, with iterations of a
/// microsecond or two, one thread can finish before the other is even
/// scheduled, and the median flips between the contended and the uncontended
/// cost from run to run.
fn timed(threads: usize, iters: usize, body: &(dyn Fn() -> anyhow::Result<()> + Sync)) -> anyhow::Result<Vec<u64>> {
    let start = std::sync::Barrier::new(threads);
    let samples = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> anyhow::Result<Vec<u64>> {
                    let mut out = Vec::with_capacity(iters);
                    start.wait();
                    for _ in 0..iters {
                        let t = Instant::now();
                        body()?;
                        out.push(t.elapsed().as_nanos() as u64);
                    }
                    Ok(out)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().expect("benchmark thread panicked")?);
        }
        Ok::<_, anyhow::Error>(all)
    })?;
    Ok(samples)
}

/// One instantiate + drop, ready to be timed.
type Instantiator = Box<dyn Fn() -> anyhow::Result<()> + Sync>;

/// Instantiate + drop with Weft, imports resolved beforehand and warmed up.
fn weft_instantiator(wasm: &[u8], opts: InstantiateOptions) -> anyhow::Result<Instantiator> {
    let mut config = weft::Config::new();
    opts.interrupt.configure_weft(&mut config);
    if opts.pooled {
        let slots = (opts.threads as u32 * 2).max(8) + opts.decommit_batch as u32;
        config.allocation_strategy(weft::InstanceAllocationStrategy::Pooling(weft::PoolingConfig {
            total_memories: slots,
            total_tables: slots,
            total_core_instances: slots,
            decommit_batch_size: opts.decommit_batch,
            rewrite_written_pages: opts.rewrite_written_pages,
            ..Default::default()
        }));
    }
    let engine = weft::Engine::new(&config)?;
    let module = weft::Module::new(&engine, wasm)?;
    let mut linker = weft::Linker::<()>::new(&engine);
    linker.define_unknown_imports_as_traps(&module)?;
    // Imports resolved once, as wasmtime's side does with `instantiate_pre`.
    let pre = linker.instantiate_pre(&module)?;
    // Warm up: compile trampolines, fill pool slots with the image.
    for _ in 0..3 {
        let mut store = weft::Store::new(&engine, ());
        pre.instantiate(&mut store)?;
    }
    Ok(Box::new(move || {
        let mut store = weft::Store::new(&engine, ());
        let instance = pre.instantiate(&mut store)?;
        if opts.write_memory {
            let memory = instance.get_memory(&mut store, "memory").ok_or_else(|| anyhow::anyhow!("no exported memory"))?;
            memory.data_mut(&mut store)[0] = 1;
        }
        Ok(())
    }))
}

/// wasmtime has its own error type; benchmarks report errors as anyhow's.
#[cfg(feature = "wasmtime")]
fn wt<T>(r: wasmtime::Result<T>) -> anyhow::Result<T> {
    r.map_err(|e| anyhow::anyhow!("wasmtime: {e:?}"))
}

/// Instantiate + drop with wasmtime, imports resolved beforehand and warmed up.
#[cfg(feature = "wasmtime")]
fn wasmtime_instantiator(wasm: &[u8], opts: InstantiateOptions) -> anyhow::Result<Instantiator> {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(opts.interrupt != sightglass::Interrupt::None);
    if opts.pooled {
        let slots = (opts.threads as u32 * 2).max(8) + opts.decommit_batch as u32;
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_memories(slots).total_tables(slots).total_core_instances(slots).decommit_batch_size(opts.decommit_batch);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    let engine = wt(wasmtime::Engine::new(&config))?;
    let module = wt(wasmtime::Module::new(&engine, wasm))?;
    let mut linker = wasmtime::Linker::<()>::new(&engine);
    wt(linker.define_unknown_imports_as_traps(&module))?;
    let pre = wt(linker.instantiate_pre(&module))?;
    for _ in 0..3 {
        let mut store = wasmtime::Store::new(&engine, ());
        wt(pre.instantiate(&mut store))?;
    }
    Ok(Box::new(move || {
        let mut store = wasmtime::Store::new(&engine, ());
        let instance = wt(pre.instantiate(&mut store))?;
        if opts.write_memory {
            let memory = instance.get_memory(&mut store, "memory").ok_or_else(|| anyhow::anyhow!("no exported memory"))?;
            memory.data_mut(&mut store)[0] = 1;
        }
        Ok(())
    }))
}

/// Whether this build can measure wasmtime.
pub const HAS_WASMTIME: bool = cfg!(feature = "wasmtime");

/// One result line.
#[derive(Debug, Clone)]
pub struct Row {
    pub benchmark: String,
    pub engine: &'static str,
    pub mode: &'static str,
    pub threads: usize,
    pub stats: Stats,
}

/// Measures instantiation of `wasm` with each engine in `engines` ("weft",
/// "wasmtime"), interleaved: the iterations run in rounds, each engine taking
/// its turn in every round, so that both see the same machine conditions
/// (with several threads on a small VM, whether the other vCPU is running
/// changes the cost of a TLB shootdown several times over).
pub fn compare_instantiate(name: &str, wasm: &[u8], engines: &[&str], opts: InstantiateOptions) -> anyhow::Result<Vec<Row>> {
    const ROUNDS: usize = 10;
    let mode = if opts.pooled { "pooled" } else { "on-demand" };
    let mut instantiators: Vec<(&'static str, Instantiator, Vec<u64>)> = Vec::new();
    for engine in engines {
        let (engine, instantiator): (&'static str, Instantiator) = match *engine {
            "weft" => ("weft", weft_instantiator(wasm, opts)?),
            #[cfg(feature = "wasmtime")]
            "wasmtime" => ("wasmtime", wasmtime_instantiator(wasm, opts)?),
            #[cfg(not(feature = "wasmtime"))]
            "wasmtime" => anyhow::bail!("this build has no wasmtime: rebuild with `--features wasmtime`"),
            other => anyhow::bail!("unknown engine `{other}`"),
        };
        instantiators.push((engine, instantiator, Vec::with_capacity(opts.iters * opts.threads)));
    }
    for round in 0..ROUNDS {
        let iters = opts.iters / ROUNDS + usize::from(round < opts.iters % ROUNDS);
        if iters == 0 {
            continue;
        }
        for (_, instantiate, samples) in &mut instantiators {
            samples.extend(timed(opts.threads, iters, &**instantiate)?);
        }
    }
    Ok(instantiators
        .into_iter()
        .map(|(engine, _, samples)| Row { benchmark: name.to_string(), engine, mode, threads: opts.threads, stats: Stats::from(samples) })
        .collect())
}
