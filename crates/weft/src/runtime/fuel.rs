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

/// A fuel check in compiled code found the counter `counter` (the thread's
/// r15, saved by the interrupt stub, which restores it) at or past zero:
/// refuels it, or raises the trap.
///
/// # Safety
/// Called from `weft_interrupt_hook` for the fuel check at `pc` in the
/// compiled frame `fp`; nothing here needs dropping.
pub(crate) unsafe fn out_of_fuel_at_check(store: &mut StoreOpaque, counter: &mut i64, pc: usize, fp: usize) {
    store.vm.fuel_consumed = *counter;
    match refuel(store) {
        Ok(()) => *counter = store.vm.fuel_consumed,
        // SAFETY: as the caller guarantees.
        Err((cause, error)) => unsafe { signals::raise_at(cause, error, None, pc, fp) },
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
