//! One partition's [`Xive`] behind its lock, with every vCPU's NSR\[EO\] mirrored
//! in an atomic for the lock-free checks of the entry path.
//!
//! Every guest entry, H_CEDE's wait loop and the hcall fast path ask whether the
//! vCPU has an external interrupt to take. Taking the model's lock for that would
//! make every entry of every vCPU contend with every XIVE operation of the
//! partition, so [`SharedXive::pending`] reads a per-vCPU `AtomicBool` instead.
//!
//! # Invariant
//!
//! The model is reached only through [`SharedXive::with`] (changes) and
//! [`SharedXive::read`], and `with` copies every presenter's NSR\[EO\] into the
//! mirror before it releases the lock. So whenever the lock is free the mirror
//! equals the model, a flag is only ever written under the lock, and it is cleared
//! only when the model says nothing is pending.
//!
//! # Ordering (no lost interrupts)
//!
//! The flag is stored (`Release`) before `with` returns, and so before the caller
//! acts on a returned [`Kick`](super::Kick) (a doorbell to the vCPU's thread,
//! whose `msgsnd` is preceded by `sync`). A vCPU checks the flag (`Acquire`) after
//! its thread took the doorbell or before it sleeps in `stop`, which a pending
//! doorbell ends at once; either way it sees the flag the kicker set. A change
//! still in progress on another thread is not missed either: that thread kicks
//! the vCPU once it has published the flag.
//!
//! Publishing looks at every presenter (O(vCPUs), as the XICS refresh does): it
//! runs only with a XIVE operation, never on the entry path, and it cannot miss a
//! path that changed a presenter.
use crate::sync::LoadAcquire;
use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, Ordering};

use super::Xive;

/// A partition's XIVE model and the lock-free NSR\[EO\] mirror of its presenters.
pub struct SharedXive {
    model: spin::Mutex<Xive>,
    /// NSR\[EO\] of each vCPU's OS ring, as of the last [`SharedXive::with`].
    eo: Box<[AtomicBool]>,
}

impl SharedXive {
    pub fn new(x: Xive) -> SharedXive {
        let eo = (0..x.nr_vcpus())
            .map(|v| AtomicBool::new(x.pending(v)))
            .collect();
        SharedXive {
            model: spin::Mutex::new(x),
            eo,
        }
    }

    /// Runs `f` on the model under the lock, then publishes every presenter's
    /// NSR\[EO\] before releasing it. Kicks `f` returns must be acted on after
    /// this returns (the flags are set by then).
    pub fn with<R>(&self, f: impl FnOnce(&mut Xive) -> R) -> R {
        let x = self.model.lock();
        self.finish(x, f)
    }

    /// [`Self::with`] only if the lock is free now (`None` otherwise): for
    /// threads that must not wait on another partition's lock (console input
    /// routing).
    pub fn try_with<R>(&self, f: impl FnOnce(&mut Xive) -> R) -> Option<R> {
        let x = self.model.try_lock()?;
        Some(self.finish(x, f))
    }

    fn finish<R>(&self, mut x: spin::MutexGuard<'_, Xive>, f: impl FnOnce(&mut Xive) -> R) -> R {
        let r = f(&mut x);
        for (v, flag) in (0..).zip(self.eo.iter()) {
            let now = x.pending(v);
            // Only this lock's holder writes the flags: a relaxed look suffices to
            // skip the store (and the cache-line write) when nothing changed.
            if flag.load(Ordering::Relaxed) != now {
                flag.store(now, Ordering::Release);
            }
        }
        r
    }

    /// Runs `f` on the model under the lock, without changing it.
    pub fn read<R>(&self, f: impl FnOnce(&Xive) -> R) -> R {
        f(&self.model.lock())
    }

    /// Whether `vcpu` has an external interrupt to take (its NSR\[EO\]), without the
    /// lock. False for a vCPU the controller does not have.
    #[inline]
    pub fn pending(&self, vcpu: u32) -> bool {
        self.eo.get(vcpu as usize).is_some_and(|f| f.load_acquire())
    }

    /// `pending` with a relaxed load, for the hcall fast path, which orders its
    /// checks with one acquire fence after them all.
    #[inline(always)]
    pub fn pending_relaxed(&self, vcpu: u32) -> bool {
        self.eo
            .get(vcpu as usize)
            .is_some_and(|f| f.load(core::sync::atomic::Ordering::Relaxed))
    }
}
