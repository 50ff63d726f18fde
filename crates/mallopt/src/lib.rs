//! A safe `mallopt(M_ARENA_MAX, n)`: caps the number of glibc malloc arenas.
//!
//! glibc gives each thread that allocates while the existing arenas are busy an arena of its
//! own, up to eight per CPU, and an arena's touched pages stay resident. warden's threads (the
//! runtime's workers, the collectors' kept thread, the blocking pool) allocate little, so one
//! arena serves them all; each further arena cost about 0.1–0.3 MiB of resident memory. The
//! price is the arena's lock when two threads allocate at once: host-only scrapes never did,
//! while a PostgreSQL source's scrape on a worker overlaps the host collectors' thread and made
//! about 50 more `futex` calls per scrape, with no CPU difference measurable on a noisy machine
//! (BENCHMARKS.md, "Host parity"). warden forbids unsafe code; this crate holds the one call.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

/// Caps glibc's malloc arenas at `count`, unless the operator set `MALLOC_ARENA_MAX` (glibc
/// reads it at start-up, and it wins). Call it before any thread starts. Returns whether the
/// cap was set: `false` on other C libraries, where there is nothing to set, when the
/// environment variable is present, or when glibc refused the value.
pub fn limit_arenas(count: u16) -> bool {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return false;
    }
    set(count)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set(count: u16) -> bool {
    // SAFETY: mallopt takes two integers and only changes the allocator's tunables; glibc
    // serializes it against concurrent allocation, and `M_ARENA_MAX` takes any positive value.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, i32::from(count)) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set(_count: u16) -> bool {
    false
}
