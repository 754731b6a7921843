//! Acquire loads for hot paths: a relaxed load followed by an acquire fence.
//!
//! Why: on POWER an acquire load compiles to load, compare, branch, `isync`,
//! and QEMU's TCG ends its translation block at every `isync` (a trip through
//! its main loop); five of them made the hcall fast path several times slower
//! under emulation. An acquire fence after the load (`lwsync`) gives the same
//! ordering - a relaxed load that reads a release store, followed by an acquire
//! fence, synchronises with that store - and is cheap on hardware and in TCG.

use core::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};

pub trait LoadAcquire {
    type Value;
    /// `load(Acquire)`, written as a relaxed load and an acquire fence.
    fn load_acquire(&self) -> Self::Value;
}

macro_rules! load_acquire {
    ($($atomic:ty => $value:ty),* $(,)?) => {$(
        impl LoadAcquire for $atomic {
            type Value = $value;
            #[inline(always)]
            fn load_acquire(&self) -> $value {
                let v = self.load(Ordering::Relaxed);
                fence(Ordering::Acquire);
                v
            }
        }
    )*};
}

load_acquire!(AtomicBool => bool, AtomicU8 => u8, AtomicU32 => u32, AtomicU64 => u64);

impl<T> LoadAcquire for AtomicPtr<T> {
    type Value = *mut T;
    #[inline(always)]
    fn load_acquire(&self) -> *mut T {
        let v = self.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn publishes_like_an_acquire_load() {
        // Message passing: the data written before the release store is seen
        // once the flag is seen.
        for _ in 0..200 {
            let data = Arc::new(AtomicU64::new(0));
            let flag = Arc::new(AtomicBool::new(false));
            let (d, f) = (data.clone(), flag.clone());
            let t = std::thread::spawn(move || {
                d.store(42, Ordering::Relaxed);
                f.store(true, Ordering::Release);
            });
            while !flag.load_acquire() {
                core::hint::spin_loop();
            }
            assert_eq!(data.load(Ordering::Relaxed), 42);
            t.join().unwrap();
        }
        let p = AtomicPtr::new(core::ptr::null_mut::<u8>());
        assert!(p.load_acquire().is_null());
        assert_eq!(AtomicU8::new(7).load_acquire(), 7);
        assert_eq!(AtomicU32::new(8).load_acquire(), 8);
    }
}
