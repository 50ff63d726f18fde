//! The driver: options, mutations, the run loop and its report.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use warden::fuzzing::{TARGETS, Target, scratch_dir};

/// Inputs per target when `--iterations` is not given: a quick run (the test command's).
const DEFAULT_ITERATIONS: u64 = 10_000;
/// At most this many inputs are kept per target, seeds included, so that a parser with many
/// distinct error messages cannot make the corpus grow without end.
const MAX_CORPUS: usize = 4_096;
/// Inputs are never grown beyond this many bytes (or twice the largest seed, if larger).
const MIN_MAX_LEN: usize = 4_096;

/// The driver's settings, from the command line.
struct Options {
    iterations: u64,
    seconds: Option<f64>,
    seed: u64,
    jobs: usize,
    corpus: PathBuf,
    crashes: PathBuf,
    targets: Vec<String>,
    replay: Option<(String, Vec<PathBuf>)>,
    list: bool,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: warden-fuzz [--iterations N] [--seconds S] [--seed N] [--jobs N] [--corpus DIR] \
         [--crashes DIR] [TARGET...]\n       warden-fuzz --replay TARGET FILE...\n       \
         warden-fuzz --list"
    );
    ExitCode::from(64)
}

fn parse_options() -> Result<Options, String> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut options = Options {
        iterations: DEFAULT_ITERATIONS,
        seconds: None,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        jobs: 1,
        corpus: here.join("corpus"),
        crashes: here.join("../../target/fuzz-crashes"),
        targets: Vec::new(),
        replay: None,
        list: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{what} needs a value"));
        let number = |text: String, what: &str| {
            text.replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{what}: {text:?} is not a whole number"))
        };
        match arg.as_str() {
            "--iterations" => options.iterations = number(value(&arg)?, &arg)?,
            "--seed" => options.seed = number(value(&arg)?, &arg)?,
            "--jobs" => options.jobs = number(value(&arg)?, &arg)?.max(1) as usize,
            "--seconds" => {
                let text = value(&arg)?;
                options.seconds = Some(
                    text.parse()
                        .map_err(|_| format!("--seconds: {text:?} is not a number"))?,
                );
            }
            "--corpus" => options.corpus = value(&arg)?.into(),
            "--crashes" => options.crashes = value(&arg)?.into(),
            "--list" => options.list = true,
            "--replay" => {
                let target = value(&arg)?;
                let files = args.by_ref().map(PathBuf::from).collect();
                options.replay = Some((target, files));
            }
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ => options.targets.push(arg),
        }
    }
    Ok(options)
}

/// splitmix64: small, fast and good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Bytes that mean something to the parsers: separators, signs, quotes, escapes, UTF-8 lead
/// bytes and the extremes.
const INTERESTING_BYTES: &[u8] = b"\0\x01\x7f\x80\xc3\xff\n\r\t :=,./-+_#{}[]()<>\"'\\`|*?e0189";

/// Tokens every target gets in its dictionary: boundary numbers, float spellings, and YAML,
/// JSON and exposition-format syntax.
const INTERESTING_TOKENS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "255",
    "256",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "-2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
    "0x",
    "0xffffffff",
    "ffffffffffffffff",
    "1e308",
    "1e309",
    "-1e-320",
    "NaN",
    "nan",
    "+Inf",
    "-Inf",
    "inf",
    "0.5",
    ".",
    "",
    "\n",
    "\n\n",
    " ",
    "\t",
    ":",
    ": ",
    "=",
    "\"",
    "\\",
    "\\n",
    "\\\"",
    "#",
    "# HELP ",
    "# TYPE ",
    " counter",
    " gauge",
    " histogram",
    " summary",
    "_bucket",
    "_sum",
    "_count",
    "le=\"+Inf\"",
    "quantile=\"0.5\"",
    "{",
    "}",
    "[",
    "]",
    "{}",
    "[]",
    "null",
    "true",
    "false",
    "- ",
    "&a ",
    "*a",
    "!!str ",
    "!!binary ",
    "<<: ",
    "${X}",
    "${X:-y}",
    "$$",
    "---\n",
    "...\n",
    "|\n  ",
    ">-\n  ",
    "'",
    "1s",
    "0s",
    "1h",
    "-1s",
    "999999999999h",
    "* * * * *",
    "../",
    "/",
    "..",
    "ç",
    "\u{feff}",
    "\u{2028}",
    "\u{10ffff}",
];

/// A target's seeds and a dictionary of the tokens found in them.
struct Seeds {
    inputs: Vec<Vec<u8>>,
    dictionary: Vec<Vec<u8>>,
}

fn load_seeds(dir: &Path) -> Result<Seeds, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|err| format!("cannot read the seeds in {}: {err}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    let mut inputs = Vec::new();
    for file in &files {
        inputs.push(std::fs::read(file).map_err(|err| format!("{}: {err}", file.display()))?);
    }
    if inputs.is_empty() {
        return Err(format!("no seeds in {}", dir.display()));
    }
    let mut tokens: HashSet<Vec<u8>> = INTERESTING_TOKENS
        .iter()
        .map(|t| t.as_bytes().to_vec())
        .collect();
    for input in &inputs {
        for token in input.split(|b| b.is_ascii_whitespace() || *b == b',' || *b == 0) {
            if (1..=32).contains(&token.len()) && tokens.len() < 2_000 {
                tokens.insert(token.to_vec());
            }
        }
    }
    let mut dictionary: Vec<Vec<u8>> = tokens.into_iter().collect();
    dictionary.sort();
    Ok(Seeds { inputs, dictionary })
}

/// Where the lines of `input` start (and its end).
fn line_starts(input: &[u8]) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(
        input
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1),
    );
    if *starts.last().unwrap_or(&0) != input.len() {
        starts.push(input.len());
    }
    starts
}

/// A random line of `input` as a range (with its newline).
fn random_line(rng: &mut Rng, input: &[u8]) -> Option<std::ops::Range<usize>> {
    let starts = line_starts(input);
    if starts.len() < 2 {
        return None;
    }
    let at = rng.below(starts.len() - 1);
    Some(starts[at]..starts[at + 1])
}

/// Changes `input` by one to eight stacked mutations.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>], dictionary: &[Vec<u8>]) {
    let rounds = 1 << rng.below(4);
    for _ in 0..rounds {
        let len = input.len();
        let pos = rng.below(len + 1);
        match rng.below(15) {
            0 if len > 0 => input[pos.min(len - 1)] ^= 1 << rng.below(8),
            1 if len > 0 => input[pos.min(len - 1)] = rng.next() as u8,
            2 if len > 0 => {
                input[pos.min(len - 1)] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())]
            }
            3 => {
                let bytes: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.next() as u8).collect();
                input.splice(pos..pos, bytes);
            }
            4 if len > 0 => {
                let end = (pos + 1 + rng.below(32)).min(len);
                input.drain(pos.min(len - 1)..end);
            }
            5 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64)).min(len);
                let chunk = input[start..end].to_vec();
                input.splice(pos..pos, chunk);
            }
            6 => {
                let token = dictionary[rng.below(dictionary.len())].clone();
                input.splice(pos..pos, token);
            }
            7 => {
                // Swap a run of digits (or hex digits) for a boundary number.
                let Some(start) = (pos..len)
                    .chain(0..pos)
                    .find(|&i| input[i].is_ascii_digit())
                else {
                    continue;
                };
                let end = (start..len)
                    .find(|&i| !input[i].is_ascii_hexdigit())
                    .unwrap_or(len);
                let token = INTERESTING_TOKENS[rng.below(20)].as_bytes().to_vec();
                input.splice(start..end, token);
            }
            8 => {
                let other = &corpus[rng.below(corpus.len())];
                if other.is_empty() {
                    continue;
                }
                let start = rng.below(other.len());
                let end = (start + 1 + rng.below(256)).min(other.len());
                let chunk = other[start..end].to_vec();
                if rng.chance(2) {
                    input.splice(pos..pos, chunk);
                } else {
                    let end = (pos + chunk.len()).min(len);
                    input.splice(pos..end, chunk);
                }
            }
            9 => {
                let Some(line) = random_line(rng, input) else {
                    continue;
                };
                match rng.below(3) {
                    0 => {
                        input.drain(line);
                    }
                    1 => {
                        let copy = input[line.clone()].to_vec();
                        input.splice(line.start..line.start, copy);
                    }
                    _ => {
                        let Some(other) = random_line(rng, input) else {
                            continue;
                        };
                        let (a, b) = if line.start < other.start {
                            (line, other)
                        } else {
                            (other, line)
                        };
                        if a.end <= b.start {
                            let mut swapped = input[..a.start].to_vec();
                            swapped.extend_from_slice(&input[b.clone()]);
                            swapped.extend_from_slice(&input[a.end..b.start]);
                            swapped.extend_from_slice(&input[a.clone()]);
                            swapped.extend_from_slice(&input[b.end..]);
                            *input = swapped;
                        }
                    }
                }
            }
            10 if len > 0 => input.truncate(rng.below(len)),
            11 if len >= 8 => {
                // A boundary integer in binary, for the netlink, TZif and archive headers.
                let value: u64 = match rng.below(6) {
                    0 => 0,
                    1 => u64::MAX,
                    2 => 1 << rng.below(64),
                    3 => (1 << rng.below(64)) - 1,
                    4 => rng.below(len * 2) as u64,
                    _ => rng.next(),
                };
                let width = [1, 2, 4, 8][rng.below(4)];
                let at = rng.below(len - width + 1);
                let bytes = if rng.chance(2) {
                    value.to_le_bytes()
                } else {
                    value.to_be_bytes()
                };
                input[at..at + width].copy_from_slice(&bytes[..width]);
            }
            12 => {
                // Replace a whitespace-separated token with a dictionary token.
                let Some(start) = (pos..len).find(|&i| !input[i].is_ascii_whitespace()) else {
                    continue;
                };
                let end = (start..len)
                    .find(|&i| input[i].is_ascii_whitespace())
                    .unwrap_or(len);
                let token = dictionary[rng.below(dictionary.len())].clone();
                input.splice(start..end, token);
            }
            13 => {
                let byte = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
                let longest = if rng.chance(8) { 4096 } else { 16 };
                let run = vec![byte; 1 + rng.below(longest)];
                input.splice(pos..pos, run);
            }
            _ => {
                // A whole other input, or a fresh copy of a seed-derived one.
                *input = corpus[rng.below(corpus.len())].clone();
            }
        }
    }
}

/// What one target's run found.
struct Report {
    name: &'static str,
    inputs: u64,
    elapsed: Duration,
    seeds: usize,
    corpus: usize,
    panics: Vec<(PathBuf, String)>,
}

/// The message of the last panic, recorded by the panic hook (the default hook's output is
/// suppressed while fuzzing).
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

fn run_once(target: &Target, input: &[u8]) -> Result<u64, String> {
    catch_unwind(AssertUnwindSafe(|| (target.run)(input)))
        .map_err(|_| LAST_PANIC.lock().map(|m| m.clone()).unwrap_or_default())
}

fn save_crash(dir: &Path, target: &str, input: &[u8]) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    input.hash(&mut hasher);
    let path = dir.join(format!("{target}-{:016x}", hasher.finish()));
    if let Err(err) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, input)) {
        eprintln!("warden-fuzz: cannot save {}: {err}", path.display());
    }
    path
}

fn fuzz_target(target: &'static Target, options: &Options, seed: u64) -> Result<Report, String> {
    let seeds = load_seeds(&options.corpus.join(target.name))?;
    let mut rng = Rng(seed);
    let max_len = seeds
        .inputs
        .iter()
        .map(|s| s.len() * 2)
        .max()
        .unwrap_or(0)
        .max(MIN_MAX_LEN);
    let mut corpus = seeds.inputs.clone();
    let mut seen = HashSet::new();
    let mut panics = Vec::new();
    let started = Instant::now();
    let deadline = options
        .seconds
        .map(|s| started + Duration::from_secs_f64(s));
    for seed in &seeds.inputs {
        match run_once(target, seed) {
            Ok(signature) => {
                seen.insert(signature);
            }
            Err(message) => {
                panics.push((save_crash(&options.crashes, target.name, seed), message));
            }
        }
    }
    let mut inputs = seeds.inputs.len() as u64;
    let mut input = Vec::new();
    while inputs < options.iterations {
        if inputs.is_multiple_of(16) && deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        input.clone_from(&corpus[rng.below(corpus.len())]);
        mutate(&mut rng, &mut input, &corpus, &seeds.dictionary);
        input.truncate(max_len);
        inputs += 1;
        match run_once(target, &input) {
            Ok(signature) => {
                if seen.insert(signature) && corpus.len() < MAX_CORPUS {
                    corpus.push(input.clone());
                }
            }
            Err(message) => {
                let path = save_crash(&options.crashes, target.name, &input);
                eprintln!(
                    "warden-fuzz: {}: PANIC {message}; input saved as {}",
                    target.name,
                    path.display()
                );
                panics.push((path, message));
                if panics.len() >= 10 {
                    break;
                }
            }
        }
    }
    Ok(Report {
        name: target.name,
        inputs,
        elapsed: started.elapsed(),
        seeds: seeds.inputs.len(),
        corpus: corpus.len(),
        panics,
    })
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = format!("{payload}{location}");
        }
    }));
}

fn replay(name: &str, files: &[PathBuf]) -> ExitCode {
    let Some(target) = TARGETS.iter().find(|t| t.name == name) else {
        eprintln!("warden-fuzz: no target {name:?} (--list names them)");
        return ExitCode::from(64);
    };
    let mut failed = false;
    for file in files {
        match std::fs::read(file) {
            Err(err) => {
                eprintln!("{}: {err}", file.display());
                failed = true;
            }
            Ok(input) => match run_once(target, &input) {
                Ok(signature) => println!("{}: ok ({signature:016x})", file.display()),
                Err(message) => {
                    println!("{}: PANIC {message}", file.display());
                    failed = true;
                }
            },
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs the command line.
pub fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("warden-fuzz: {message}");
            return usage();
        }
    };
    if options.list {
        for target in TARGETS {
            println!("{}", target.name);
        }
        return ExitCode::SUCCESS;
    }
    install_panic_hook();
    if let Some((name, files)) = &options.replay {
        return replay(name, files);
    }
    let mut chosen: Vec<&'static Target> = Vec::new();
    for name in &options.targets {
        match TARGETS.iter().find(|t| t.name == name) {
            Some(target) => chosen.push(target),
            None => {
                eprintln!("warden-fuzz: no target {name:?} (--list names them)");
                return ExitCode::from(64);
            }
        }
    }
    if chosen.is_empty() {
        chosen = TARGETS.iter().collect();
    }
    println!(
        "warden-fuzz: {} targets, {} inputs each{}, seed {}, {} job(s)",
        chosen.len(),
        options.iterations,
        options
            .seconds
            .map(|s| format!(" (at most {s} s each)"))
            .unwrap_or_default(),
        options.seed,
        options.jobs
    );
    let started = Instant::now();
    let next = Mutex::new(0usize);
    let reports = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.min(chosen.len()) {
            scope.spawn(|| {
                loop {
                    let index = {
                        let Ok(mut next) = next.lock() else { return };
                        *next += 1;
                        *next - 1
                    };
                    let Some(target) = chosen.get(index) else {
                        return;
                    };
                    // Each target's own stream, so a target's run does not depend on the others.
                    let seed = options.seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9);
                    let report = fuzz_target(target, &options, seed);
                    match &report {
                        Ok(r) => println!(
                            "{:<13} {:>10} inputs in {:>7.1} s ({:>7.0}/s), corpus {:>4} from {:>2} seeds, {} panics",
                            r.name,
                            r.inputs,
                            r.elapsed.as_secs_f64(),
                            r.inputs as f64 / r.elapsed.as_secs_f64().max(1e-9),
                            r.corpus,
                            r.seeds,
                            r.panics.len()
                        ),
                        Err(message) => eprintln!("warden-fuzz: {}: {message}", target.name),
                    }
                    if let Ok(mut reports) = reports.lock() {
                        reports.push((target.name, report));
                    }
                }
            });
        }
    });
    let _ = std::fs::remove_dir_all(scratch_dir());
    let reports = reports.into_inner().unwrap_or_default();
    let mut failed = false;
    let mut total = 0;
    for (name, report) in &reports {
        match report {
            Err(_) => failed = true,
            Ok(report) => {
                total += report.inputs;
                for (path, message) in &report.panics {
                    failed = true;
                    println!("PANIC in {name}: {message}\n  input: {}", path.display());
                }
            }
        }
    }
    println!(
        "warden-fuzz: {total} inputs in {:.1} s, {}",
        started.elapsed().as_secs_f64(),
        if failed { "FAILED" } else { "no panics" }
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
