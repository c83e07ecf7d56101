//! How the process asks glibc's allocator to handle a full load's large buffers.
//!
//! A full load allocates and frees a few buffers of several megabytes per page (the gzip body,
//! the inflated JSON, Arrow arrays, Parquet pages). With glibc's defaults the heap top is
//! trimmed back to the kernel whenever more than a few megabytes are free there, and the next
//! page faults the same memory in again, tens of thousands of page faults per million rows.
//! [`tune`] keeps freed memory in the heap
//! instead: blocks under 16 MiB come from the heap, and the heap top is trimmed only beyond
//! 64 MiB free. Peak RSS does not change (the freed memory is reused by the next page); what
//! changes is that a long-running process (`serve`) keeps its high-water mark between passes
//! unless [`release`] gives it back, which the service does after every pass.
//!
//! Both are no-ops where the allocator is not glibc's.
//!
//! `unsafe` is allowed here alone in this crate: `mallopt` and `malloc_trim` are glibc functions
//! with no safe wrapper in any maintained crate (`libc` only declares them), and the alternative,
//! replacing the allocator, is a far larger change than two documented calls.
#![allow(unsafe_code)]

/// Blocks this size and larger are mapped on their own (and unmapped when freed).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 16 << 20;
/// Free memory at the heap top beyond this is returned to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 64 << 20;

/// Sets the allocator's thresholds for large, short-lived buffers. Call once, early in `main`.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before other threads exist
    // and with documented parameter numbers and values in range.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Returns free heap memory to the kernel (after a pass, in a process that lives on).
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it takes the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tuning_and_releasing_leave_the_allocator_working() {
        super::tune();
        let buffers: Vec<Vec<u8>> = (0..4).map(|i| vec![i; 8 << 20]).collect();
        assert!(buffers.iter().enumerate().all(|(i, b)| b.len() == 8 << 20 && b[(8 << 20) - 1] == i as u8));
        drop(buffers);
        super::release();
        assert_eq!(vec![7u8; 1 << 20].iter().map(|&b| u64::from(b)).sum::<u64>(), 7 << 20);
    }
}
