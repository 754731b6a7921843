//! The hypervisor heap: one `linked_list_allocator` region carved from frames at boot.
use core::alloc::{GlobalAlloc, Layout};

use linked_list_allocator::Heap;

pub struct HypervisorHeap(spin::Mutex<Heap>);

#[global_allocator]
static HEAP: HypervisorHeap = HypervisorHeap(spin::Mutex::new(Heap::empty()));

/// Hands `[start, start+size)` (linear-map addresses) to the heap. Called once.
///
/// # Safety
/// The range must be unused RAM owned by nobody else, for the life of the hypervisor.
pub unsafe fn init(start: u64, size: usize) {
    // SAFETY: the caller gives us exclusive, permanent ownership of the range.
    unsafe { HEAP.0.lock().init(start as *mut u8, size) };
}

pub fn stats() -> (usize, usize) {
    let h = HEAP.0.lock();
    (h.used(), h.size())
}

// SAFETY: allocation is serialised by the lock; `Heap` returns properly aligned,
// non-overlapping blocks from memory it owns.
unsafe impl GlobalAlloc for HypervisorHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map(|p| p.as_ptr())
            .unwrap_or_default()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = core::ptr::NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc contract).
            unsafe { self.0.lock().deallocate(p, layout) };
        }
    }
}
