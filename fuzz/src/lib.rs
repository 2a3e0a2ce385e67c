//! Shared code of the fuzz targets: the invariant checks, which are the property tests' own
//! (`tests/props/check`, included by path so a fuzz crash and a failing property test are
//! the same assertion), and a counting allocator for the framing target's memory bound.

#[path = "../../tests/props/check/mod.rs"]
pub mod check;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the bytes live and their high-water mark. Install it with
/// `#[global_allocator]` in a target that checks memory.
pub struct Counting;

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are updated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        p
    }
}

/// The meter the framing check reads, backed by `Counting`.
pub const HEAP: check::framing::Heap = check::framing::Heap {
    live: || LIVE.load(Relaxed),
    reset_peak: || PEAK.store(LIVE.load(Relaxed), Relaxed),
    peak: || PEAK.load(Relaxed),
};
