//! Page-aligned I/O buffers for O_DIRECT reads and writes.
//!
//! O_DIRECT needs the buffer address, the file offset and the length aligned
//! to the device's DIO alignment; 4096 covers every device we target
//! (`../shared/RUNTIME.md` §6.2). No runtime ships such a buffer, so this is
//! the one place that allocates one.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::mem::MaybeUninit;
use std::ptr::NonNull;

/// Alignment of every buffer handed to O_DIRECT I/O.
pub const ALIGN: usize = 4096;

/// Rounds `n` up to the next multiple of [`ALIGN`].
pub const fn align_up(n: u64) -> u64 {
    (n + ALIGN as u64 - 1) & !(ALIGN as u64 - 1)
}

/// Rounds `n` down to a multiple of [`ALIGN`].
pub const fn align_down(n: u64) -> u64 {
    n & !(ALIGN as u64 - 1)
}

/// A zero-initialised, 4096-aligned heap buffer with a fixed capacity and a
/// length, usable as a compio I/O buffer.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    cap: usize,
    len: usize,
}

// SAFETY: the buffer exclusively owns its allocation (like a Vec<u8>), so
// moving it to another thread is sound.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    /// Allocates a zeroed buffer of at least `cap` bytes (rounded up to ALIGN).
    pub fn new(cap: usize) -> Self {
        let cap = align_up(cap.max(ALIGN) as u64) as usize;
        let layout = Layout::from_size_align(cap, ALIGN).expect("buffer layout");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else { std::alloc::handle_alloc_error(layout) };
        Self { ptr, cap, len: 0 }
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the length; bytes up to `cap` are always initialised (zeroed at
    /// allocation), so any length up to the capacity is valid.
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.cap, "length {len} beyond capacity {}", self.cap);
        self.len = len;
    }

    /// The whole capacity as a slice, regardless of the length.
    pub fn full_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr is valid for cap bytes, all initialised, and uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap) }
    }

    /// The whole capacity as a slice, regardless of the length.
    pub fn full(&self) -> &[u8] {
        // SAFETY: ptr is valid for cap bytes, all initialised.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.cap) }
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for len <= cap initialised bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Zeroes `[from, to)` (used to clear padding before a buffer is reused).
    pub fn zero(&mut self, from: usize, to: usize) {
        self.full_mut()[from..to].fill(0);
    }
}

/// Capacity of the buffers kept in the per-thread pool: one full data
/// record plus one block of slack for an unaligned start when reading.
pub const POOLED_BYTES: usize = (1 << 20) + 2 * ALIGN;
/// Pooled buffers kept per thread.
const POOL_BUFFERS_MAX: usize = 32;

thread_local! {
    static POOL: std::cell::RefCell<Vec<AlignedBuf>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl AlignedBuf {
    /// A `POOLED_BYTES` buffer from this thread's pool, or a new one.
    /// Allocating and zeroing a megabyte per request costs page faults and
    /// memset on the hot path; pooled buffers are reused as they are (their
    /// users write every byte they later read or send).
    pub fn pooled() -> Self {
        POOL.with(|p| p.borrow_mut().pop()).unwrap_or_else(|| AlignedBuf::new(POOLED_BYTES))
    }

    /// Returns a buffer to this thread's pool (other sizes are dropped).
    pub fn recycle(mut self) {
        if self.cap != POOLED_BYTES {
            return;
        }
        self.len = 0;
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOL_BUFFERS_MAX {
                p.push(self);
            }
        });
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.cap, ALIGN).expect("buffer layout");
        // SAFETY: allocated in `new` with exactly this layout.
        unsafe { dealloc(self.ptr.as_ptr(), layout) }
    }
}

impl compio::buf::IoBuf for AlignedBuf {
    fn as_init(&self) -> &[u8] {
        self.as_slice()
    }
}

impl compio::buf::SetLen for AlignedBuf {
    unsafe fn set_len(&mut self, len: usize) {
        AlignedBuf::set_len(self, len);
    }
}

impl compio::buf::IoBufMut for AlignedBuf {
    fn as_uninit(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: every byte up to cap is initialised; MaybeUninit<u8> has u8's layout.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast(), self.cap) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        let mut b = AlignedBuf::new(5000);
        assert_eq!(b.capacity(), 8192);
        assert_eq!(b.full_mut().as_ptr() as usize % ALIGN, 0);
        assert!(b.full_mut().iter().all(|&x| x == 0));
        b.set_len(10);
        b.as_mut_slice().copy_from_slice(b"0123456789");
        assert_eq!(b.as_slice(), b"0123456789");
    }

    #[test]
    fn rounding() {
        assert_eq!(align_up(0), 0);
        assert_eq!(align_up(1), 4096);
        assert_eq!(align_up(4096), 4096);
        assert_eq!(align_down(8191), 4096);
    }
}
