//! `warden-fuzz`: mutation fuzzing of warden's parsers of outside input on stable Rust.
//!
//! Each target (`warden::fuzzing::TARGETS`) starts from the committed seeds in
//! `crates/fuzz/corpus/<target>/` (real files: the procfs fixtures, example configurations,
//! Alertmanager payloads, manifests and archives) and runs mutated inputs through its parser.
//! Mutations are byte- and text-aware (bit flips, interesting bytes and integers, numbers
//! swapped for boundary values, tokens from a dictionary built from the seeds, lines deleted,
//! duplicated or swapped, splices of two inputs). Stable Rust has no coverage instrumentation,
//! so the feedback is the parser's outcome: an input whose outcome signature (which families,
//! or which error message with its numbers and quotes removed) was not seen before joins the
//! corpus, and later mutations start from it.
//!
//! A panic is a bug: the input is written to the crashes directory, and the run exits 1 at the
//! end. Runs are reproducible: the seed is printed and can be given back with `--seed`.
//!
//! ```text
//! warden-fuzz [--iterations N] [--seconds S] [--seed N] [--jobs N] [--corpus DIR]
//!             [--crashes DIR] [TARGET...]
//! warden-fuzz --replay TARGET FILE...   run saved inputs (a crash) through one target
//! warden-fuzz --list
//! ```

#[cfg(target_os = "linux")]
mod driver;

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    driver::main()
}

/// The parsers under test read Linux's procfs; elsewhere there is nothing to fuzz.
#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("warden-fuzz runs on Linux only");
}
