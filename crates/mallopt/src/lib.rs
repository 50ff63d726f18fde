//! A safe `mallopt(M_ARENA_MAX, n)`: caps the number of glibc malloc arenas.
//!
//! glibc gives each thread that allocates an arena of its own, up to eight per CPU, and an
//! arena's touched pages stay resident. warden's threads (the runtime's workers, the
//! collectors' kept thread, the blocking pool) allocate little, so one arena serves them all:
//! the three further arenas glibc made kept about 0.3 MiB resident host only (more, though
//! noisily, with PostgreSQL). The price is the arena's lock when two threads allocate at once: host-only
//! scrapes never did, while a PostgreSQL source's scrape on a worker overlaps the host
//! collectors' thread (9,051 `futex` calls in 30 s of the paced benchmark, against 773 without
//! the cap), with no CPU difference measurable on a noisy machine (BENCHMARKS.md, "Host
//! parity"). warden forbids unsafe code; this crate holds the one call.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

/// Caps glibc's malloc arenas at `count`, unless the operator set `MALLOC_ARENA_MAX` (glibc
/// reads it at start-up, and it wins). Call it before any thread starts. Does nothing on other
/// C libraries.
pub fn limit_arenas(count: u16) {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        set(count);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set(count: u16) {
    // SAFETY: mallopt takes two integers and only changes the allocator's tunables; glibc
    // serializes it against concurrent allocation. Its result is 1 for `M_ARENA_MAX` whatever
    // the value (a value below 1 is ignored), so there is nothing to check.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, i32::from(count));
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set(_count: u16) {}
