//! Fuel at run time: the store's fuel (what compiled code counts down in the
//! store context, plus a reserve not yet handed to it), and what happens
//! when it runs out: refuel from the reserve and go on, yield a resumable
//! call, ask the embedder's callback, or trap.

use crate::runtime::signals::{self, TrapCause};
use crate::store::StoreOpaque;
use crate::trap::Trap;

/// What the out-of-fuel callback decides (see
/// [`Store::out_of_fuel_callback`](crate::Store::out_of_fuel_callback)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateFuel {
    /// Add this much fuel and keep running.
    Continue(u64),
    /// Add this much fuel and suspend the guest (only in a resumable call,
    /// see [`TypedFunc::call_resumable`](crate::TypedFunc::call_resumable);
    /// elsewhere it keeps running).
    Yield(u64),
    /// Stop the guest with [`Trap::OutOfFuel`].
    Trap,
}

/// The fuel state a store keeps besides the counter compiled code uses.
#[derive(Default)]
pub(crate) struct FuelState {
    /// Fuel not handed to compiled code yet.
    pub reserve: u64,
    /// Hand out at most this much at a time, and yield a resumable call
    /// whenever it is used up.
    pub yield_interval: Option<u64>,
}

impl StoreOpaque {
    fn check_fuel_enabled(&self) -> anyhow::Result<()> {
        if !self.engine.config().tunables.consume_fuel {
            anyhow::bail!("fuel is not configured in this store's engine (Config::consume_fuel)");
        }
        Ok(())
    }

    /// The fuel left: what compiled code may still use, plus the reserve.
    pub(crate) fn get_fuel(&self) -> anyhow::Result<u64> {
        self.check_fuel_enabled()?;
        let consumed = self.vm.fuel_consumed;
        Ok(if consumed < 0 { self.fuel.reserve.saturating_add(consumed.unsigned_abs()) } else { self.fuel.reserve.saturating_sub(consumed as u64) })
    }

    /// Sets the fuel left to `fuel`.
    pub(crate) fn set_fuel(&mut self, fuel: u64) -> anyhow::Result<()> {
        self.check_fuel_enabled()?;
        self.fuel.reserve = fuel;
        self.vm.fuel_consumed = 0;
        self.hand_out_fuel();
        Ok(())
    }

    /// Moves fuel from the reserve to the counter, at most an interval's
    /// worth, paying any overrun first. Returns whether any was handed out.
    fn hand_out_fuel(&mut self) -> bool {
        let consumed = self.vm.fuel_consumed;
        let available = self.fuel.reserve.saturating_sub(consumed.max(0) as u64);
        if available == 0 {
            // Nothing to hand out: the overrun stays in the counter, to be
            // paid from whatever fuel comes next.
            return false;
        }
        let chunk = available.min(self.fuel.yield_interval.unwrap_or(u64::MAX)).min(i64::MAX as u64);
        self.fuel.reserve = available - chunk;
        self.vm.fuel_consumed = -(chunk as i64);
        chunk > 0
    }
}

std::arch::global_asm!(
    ".text",
    // Compiled code calls this with Cranelift's `preserve_all` convention
    // (rdi = vmctx): it saves every register the System V convention lets
    // `out_of_fuel` clobber, and passes it the calling Wasm frame (frame
    // pointer, return address), from which it may trap.
    ".globl weft_out_of_fuel",
    ".type weft_out_of_fuel,@function",
    "weft_out_of_fuel:",
    "push rbp",
    "mov rbp, rsp",
    "push rax",
    "push rcx",
    "push rdx",
    "push rsi",
    "push rdi",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    // 16 vector registers, and 8 bytes to align the stack for the call.
    "sub rsp, 264",
    "movdqu [rsp], xmm0",
    "movdqu [rsp + 16], xmm1",
    "movdqu [rsp + 32], xmm2",
    "movdqu [rsp + 48], xmm3",
    "movdqu [rsp + 64], xmm4",
    "movdqu [rsp + 80], xmm5",
    "movdqu [rsp + 96], xmm6",
    "movdqu [rsp + 112], xmm7",
    "movdqu [rsp + 128], xmm8",
    "movdqu [rsp + 144], xmm9",
    "movdqu [rsp + 160], xmm10",
    "movdqu [rsp + 176], xmm11",
    "movdqu [rsp + 192], xmm12",
    "movdqu [rsp + 208], xmm13",
    "movdqu [rsp + 224], xmm14",
    "movdqu [rsp + 240], xmm15",
    "mov rsi, [rbp]",
    "mov rdx, [rbp + 8]",
    "call {out_of_fuel}",
    "movdqu xmm0, [rsp]",
    "movdqu xmm1, [rsp + 16]",
    "movdqu xmm2, [rsp + 32]",
    "movdqu xmm3, [rsp + 48]",
    "movdqu xmm4, [rsp + 64]",
    "movdqu xmm5, [rsp + 80]",
    "movdqu xmm6, [rsp + 96]",
    "movdqu xmm7, [rsp + 112]",
    "movdqu xmm8, [rsp + 128]",
    "movdqu xmm9, [rsp + 144]",
    "movdqu xmm10, [rsp + 160]",
    "movdqu xmm11, [rsp + 176]",
    "movdqu xmm12, [rsp + 192]",
    "movdqu xmm13, [rsp + 208]",
    "movdqu xmm14, [rsp + 224]",
    "movdqu xmm15, [rsp + 240]",
    "add rsp, 264",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rdi",
    "pop rsi",
    "pop rdx",
    "pop rcx",
    "pop rax",
    "pop rbp",
    "ret",
    ".size weft_out_of_fuel, .-weft_out_of_fuel",
    out_of_fuel = sym out_of_fuel,
);

extern "C" {
    /// The `OutOfFuel` builtin's entry point.
    pub(crate) fn weft_out_of_fuel();
}

unsafe extern "C" fn out_of_fuel(vmctx: *mut u8, fp: usize, pc: usize) {
    // SAFETY: called by compiled code (through `weft_out_of_fuel`) with its own vmctx.
    let (_, store) = unsafe { crate::runtime::instance::instance_of(vmctx) };
    let failure = refuel(store).err();
    if let Some((cause, error)) = failure {
        // SAFETY: called from compiled code through `weft_out_of_fuel`,
        // whose frame is `fp`; nothing here needs dropping.
        unsafe { signals::raise_at(cause, error, None, pc - 1, fp) }
    }
}

/// Refuels the store whose guest ran out, yielding or asking the callback
/// as configured; `Err` with the trap to raise.
fn refuel(store: &mut StoreOpaque) -> Result<(), (TrapCause, Option<anyhow::Error>)> {
    loop {
        if store.hand_out_fuel() {
            if store.fuel.yield_interval.is_some() {
                // Outside a resumable call there is nothing to yield to: go on.
                let _ = crate::runtime::fiber::yield_now();
            }
            return Ok(());
        }
        let Some(mut callback) = store.out_of_fuel_callback.take() else { return Err((TrapCause::Wasm(Trap::OutOfFuel), None)) };
        let store_ptr = store as *mut StoreOpaque as *mut u8;
        let decision = crate::runtime::continuation::run_callback(store, || callback(store_ptr));
        store.out_of_fuel_callback = Some(callback);
        match decision {
            Ok(UpdateFuel::Continue(more)) => store.fuel.reserve = store.fuel.reserve.saturating_add(more),
            Ok(UpdateFuel::Yield(more)) => {
                store.fuel.reserve = store.fuel.reserve.saturating_add(more);
                store.hand_out_fuel();
                let _ = crate::runtime::fiber::yield_now();
                return Ok(());
            }
            Ok(UpdateFuel::Trap) => return Err((TrapCause::Wasm(Trap::OutOfFuel), None)),
            Err(e) => return Err((TrapCause::Host, Some(e))),
        }
    }
}
