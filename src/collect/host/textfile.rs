//! `textfile`: metrics that other programs (cron jobs, the runbooks' scripts) write as `*.prom`
//! files into one directory, as node_exporter's `--collector.textfile.directory` reads them.
//!
//! Every `*.prom` file directly in the directory (not in subdirectories), in name order, is
//! parsed strictly as Prometheus text format 0.0.4, with the rules of the parser node_exporter
//! 1.5 uses (`expfmt.TextParser`): `# HELP`/`# TYPE` at most once per family and `TYPE` before
//! the family's samples; names, label names and escapes (`\\`, `\"`, `\n`) as the format
//! defines them; every line ends in a newline. A file with a sample timestamp is refused whole,
//! as node_exporter refuses it. Families from several files merge when their types agree and
//! their help texts do too (a file without `# HELP` agrees with any); a family without help in
//! every file gets node_exporter's `Metric read from FILES`. Within a family each series is
//! padded with the file's other label names (empty values), as node_exporter pads them.
//!
//! A file that cannot be read or parsed, has timestamps, clashes with an earlier file (type,
//! help, a series both define, or a sample name another family uses), uses warden's own names,
//! or is larger than [`MAX_FILE_BYTES`] or would take the scrape past [`MAX_SAMPLES`], is
//! skipped whole: `node_textfile_scrape_error` is 1 and its `node_textfile_mtime_seconds` is
//! absent, while the other files' metrics are still exported. node_exporter drops only the
//! clashing series of such a file (at gather time, so its error gauge stays 0); warden refuses
//! the file, so a clash is visible. Each new or changed problem is logged once.
//!
//! What the metric model cannot say exactly:
//! - a counter whose name lacks `_total` is declared `untyped` (same sample name and value),
//!   as warden does for every such counter;
//! - a summary is exported as the untyped families `NAME{quantile}`, `NAME_sum` and
//!   `NAME_count`: the samples node_exporter exposes, without the `summary` type (the encoder
//!   has no summaries);
//! - histogram bucket and `_count` values (and a summary's `_count`) must be non-negative
//!   integers and the buckets must not decrease, where node_exporter truncates and passes on
//!   whatever it reads; a histogram without a `+Inf` bucket gets one from `_count`, as
//!   node_exporter's output has.
//!
//! For a family another collector also exports, the first merged keeps its type: the scrape
//! drops a later family of another type ([`crate::collect::Snapshot::extend`]). The textfile
//! collector comes after the other host collectors and before the database ones.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use crate::collect::family::LabelName;
use crate::collect::{BlockingCollector, Error, Family, HistogramSample, Kind};

/// The largest `*.prom` file read; a larger one is skipped as failed.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Samples read from all files in one scrape at most; the file that would pass it is skipped.
/// A histogram series counts its buckets plus two, a summary series its quantiles plus two.
pub const MAX_SAMPLES: usize = 100_000;

const MTIME_NAME: &str = "node_textfile_mtime_seconds";
const ERROR_NAME: &str = "node_textfile_scrape_error";
const ERROR_HELP: &str = "1 if there was an error opening or reading a file, 0 otherwise";

/// The collector: the directory (none: only `node_textfile_scrape_error 0`, as node_exporter
/// without `--collector.textfile.directory`) and the problems last logged, by path.
pub(super) struct Textfile {
    directory: Option<PathBuf>,
    timeout: Duration,
    logged: Mutex<HashMap<PathBuf, String>>,
}

impl Textfile {
    pub(super) fn new(directory: Option<PathBuf>, timeout: Duration) -> Self {
        Textfile {
            directory,
            timeout,
            logged: Mutex::new(HashMap::new()),
        }
    }

    /// Reads every `*.prom` file; the problems found, by path.
    fn read(&self) -> (Vec<Family>, Vec<(PathBuf, String)>) {
        let mut merged = Merged::default();
        let mut problems = Vec::new();
        let mut mtimes =
            Family::gauge(MTIME_NAME, "Unixtime mtime of textfiles successfully read.");
        let Some(directory) = &self.directory else {
            return (
                vec![Family::single_gauge(ERROR_NAME, ERROR_HELP, 0.0)],
                problems,
            );
        };
        match std::fs::read_dir(directory) {
            Err(err) => problems.push((
                directory.clone(),
                format!("cannot read the textfile directory: {err}"),
            )),
            Ok(entries) => {
                let mut names: Vec<_> = entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name())
                    .filter(|name| name.to_string_lossy().ends_with(".prom"))
                    .collect();
                names.sort();
                for name in names {
                    let path = directory.join(&name);
                    match read_file(&path, &mut merged) {
                        Ok(mtime) => mtimes.push([("file", path.display().to_string())], mtime),
                        Err(problem) => problems.push((path, problem)),
                    }
                }
            }
        }
        let mut families = merged.finish();
        families.push(mtimes);
        families.push(Family::single_gauge(
            ERROR_NAME,
            ERROR_HELP,
            if problems.is_empty() { 0.0 } else { 1.0 },
        ));
        (families, problems)
    }

    /// Logs each problem that is new or changed since the last scrape.
    fn log(&self, problems: Vec<(PathBuf, String)>) {
        let mut logged = self
            .logged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut now = HashMap::with_capacity(problems.len());
        for (path, problem) in problems {
            if logged.get(&path) != Some(&problem) {
                tracing::warn!(file = %path.display(), error = %problem, "Textfile skipped.");
            }
            now.insert(path, problem);
        }
        *logged = now;
    }
}

impl BlockingCollector for Textfile {
    fn name(&self) -> &str {
        "textfile"
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Never fails: unreadable files and directories show in `node_textfile_scrape_error`.
    fn collect(&self) -> Result<Vec<Family>, Error> {
        let (families, problems) = self.read();
        self.log(problems);
        Ok(families)
    }
}

/// Reads, parses and merges one file; its mtime in whole seconds.
fn read_file(path: &Path, merged: &mut Merged) -> Result<f64, String> {
    let mut file = File::open(path).map_err(|err| format!("cannot open: {err}"))?;
    let size = file
        .metadata()
        .map_err(|err| format!("cannot stat: {err}"))?
        .len();
    let too_large = || format!("larger than the limit of {MAX_FILE_BYTES} bytes");
    if size > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let mut text = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    (&mut file)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|err| format!("cannot read: {err}"))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let families = parse(&text).map_err(|err| err.to_string())?;
    drop(text);
    if families
        .iter()
        .any(|f| f.series.iter().any(|s| s.timestamp.is_some()))
    {
        return Err("contains unsupported client-side timestamps, skipping entire file".to_owned());
    }
    merged.add(&path.display().to_string(), families)?;
    // Stat'ed after the parse, as node_exporter does, so a file rewritten meanwhile shows its
    // newer time.
    let modified = file
        .metadata()
        .and_then(|m| m.modified())
        .map_err(|err| format!("cannot stat: {err}"))?;
    Ok(match modified.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs() as f64,
        Err(before) => -(before.duration().as_secs() as f64),
    })
}

// ---------------------------------------------------------------------------------------------
// Parsing.

/// A family's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TextKind {
    Counter,
    Gauge,
    Untyped,
    Summary,
    Histogram,
}

impl TextKind {
    fn as_str(self) -> &'static str {
        match self {
            TextKind::Counter => "counter",
            TextKind::Gauge => "gauge",
            TextKind::Untyped => "untyped",
            TextKind::Summary => "summary",
            TextKind::Histogram => "histogram",
        }
    }
}

/// A series' values as read.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Simple(f64),
    Summary {
        sum: f64,
        count: f64,
        /// (quantile, value) in file order.
        quantiles: Vec<(f64, f64)>,
    },
    Histogram {
        sum: f64,
        count: f64,
        /// (upper bound, cumulative count) in file order.
        buckets: Vec<(f64, f64)>,
    },
}

/// One series as read: labels in file order (without `le`/`quantile` of histograms and
/// summaries).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Series {
    pub(super) labels: Vec<(String, String)>,
    pub(super) value: Value,
    pub(super) timestamp: Option<i64>,
}

/// One family as read from one file.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TextFamily<K = TextKind> {
    pub(super) name: String,
    pub(super) help: Option<String>,
    pub(super) kind: K,
    pub(super) series: Vec<Series>,
}

/// Why a file is not valid text format, with node_exporter's wording.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ParseError {
    pub(super) line: usize,
    pub(super) message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "text format parsing error in line {}: {}",
            self.line, self.message
        )
    }
}

/// Which sample of a summary or histogram a name denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suffix {
    None,
    Count,
    Sum,
}

#[derive(Default)]
struct Parser {
    /// Families as read so far; the type is unset until a TYPE line or a sample.
    families: Vec<TextFamily<Option<TextKind>>>,
    by_name: HashMap<String, usize>,
    /// (family, sorted labels) → series, for summaries and histograms whose lines group.
    grouped: HashMap<(usize, Vec<(String, String)>), usize>,
}

/// Parses text format 0.0.4 as node_exporter 1.5's parser does. Families come in the order
/// their names first appear; those without samples are left out.
pub(super) fn parse(text: &[u8]) -> Result<Vec<TextFamily>, ParseError> {
    let mut parser = Parser::default();
    let mut lines = text.split(|&b| b == b'\n').enumerate().peekable();
    while let Some((index, line)) = lines.next() {
        let last = lines.peek().is_none();
        if last {
            // After the final newline: only blanks may follow.
            if line.iter().all(|&b| is_blank(b)) {
                break;
            }
            return Err(ParseError {
                line: index + 1,
                message: "unexpected end of input stream".to_owned(),
            });
        }
        parser.line(line).map_err(|message| ParseError {
            line: index + 1,
            message,
        })?;
    }
    Ok(parser
        .families
        .into_iter()
        .filter(|family| !family.series.is_empty())
        .map(|family| TextFamily {
            name: family.name,
            help: family.help,
            kind: family.kind.unwrap_or(TextKind::Untyped),
            series: family.series,
        })
        .collect())
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn skip_blank(line: &[u8], mut at: usize) -> usize {
    while at < line.len() && is_blank(line[at]) {
        at += 1;
    }
    at
}

fn until_blank(line: &[u8], start: usize) -> (&[u8], usize) {
    let mut end = start;
    while end < line.len() && !is_blank(line[end]) {
        end += 1;
    }
    (&line[start..end], end)
}

fn is_label_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_label_continuation(b: u8) -> bool {
    is_label_start(b) || b.is_ascii_digit()
}

/// A token of characters valid in a name: `[a-zA-Z_:][a-zA-Z0-9_:]*` for metric names,
/// without `:` for label names. Empty when the first byte is not valid.
fn name_token(line: &[u8], start: usize, metric: bool) -> (&str, usize) {
    let colon = |b: u8| metric && b == b':';
    let mut end = start;
    if end < line.len() && (is_label_start(line[end]) || colon(line[end])) {
        end += 1;
        while end < line.len() && (is_label_continuation(line[end]) || colon(line[end])) {
            end += 1;
        }
    }
    // Only ASCII bytes were taken.
    (std::str::from_utf8(&line[start..end]).unwrap_or(""), end)
}

fn shown(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

fn utf8(bytes: Vec<u8>, what: &str) -> Result<String, String> {
    String::from_utf8(bytes)
        .map_err(|err| format!("{what} {} is not valid UTF-8", shown(err.as_bytes())))
}

/// A float as Go's `strconv.ParseFloat` reads it, less the forms expfmt refuses (hex, `_`).
pub(super) fn parse_float(token: &[u8]) -> Option<f64> {
    if token.is_empty() || token.iter().any(|b| matches!(b, b'p' | b'P' | b'_')) {
        return None;
    }
    let text = std::str::from_utf8(token).ok()?;
    let unsigned = text.strip_prefix(['+', '-']);
    if unsigned.is_some_and(|rest| rest.starts_with(['n', 'N'])) {
        return None; // Go has no signed NaN.
    }
    let value: f64 = text.parse().ok()?;
    // Go refuses a value out of range; Rust rounds it to infinity.
    if value.is_infinite() && !text.contains(['i', 'I']) {
        return None;
    }
    Some(value)
}

impl Parser {
    fn line(&mut self, line: &[u8]) -> Result<(), String> {
        let at = skip_blank(line, 0);
        match line.get(at) {
            None => Ok(()),
            Some(b'#') => self.comment(line, at + 1),
            Some(_) => self.sample(line, at),
        }
    }

    /// The family a name belongs to: its own, or a summary's or histogram's for `_sum`,
    /// `_count` (and `_bucket`) names; created when new.
    fn family_for(&mut self, name: &str) -> (usize, Suffix) {
        if let Some(&at) = self.by_name.get(name) {
            return (at, Suffix::None);
        }
        let summary_base = if name.len() > 6 && name.ends_with("_count") {
            Some((&name[..name.len() - 6], Suffix::Count))
        } else if name.len() > 4 && name.ends_with("_sum") {
            Some((&name[..name.len() - 4], Suffix::Sum))
        } else {
            None
        };
        let histogram_base = summary_base.or_else(|| {
            (name.len() > 7 && name.ends_with("_bucket"))
                .then(|| (&name[..name.len() - 7], Suffix::None))
        });
        for (base, kind) in [
            (summary_base, TextKind::Summary),
            (histogram_base, TextKind::Histogram),
        ] {
            if let Some((base, which)) = base
                && let Some(&at) = self.by_name.get(base)
                && self.families[at].kind == Some(kind)
            {
                return (at, which);
            }
        }
        let at = self.families.len();
        self.families.push(TextFamily {
            name: name.to_owned(),
            help: None,
            kind: None,
            series: Vec::new(),
        });
        self.by_name.insert(name.to_owned(), at);
        (at, Suffix::None)
    }

    fn comment(&mut self, line: &[u8], at: usize) -> Result<(), String> {
        let at = skip_blank(line, at);
        let (keyword, at) = until_blank(line, at);
        if at == line.len() || (keyword != b"HELP" && keyword != b"TYPE") {
            return Ok(()); // A plain comment.
        }
        let at = skip_blank(line, at);
        let (name, at) = name_token(line, at, true);
        if at == line.len() {
            return Ok(());
        }
        if !is_blank(line[at]) {
            return Err("invalid metric name in comment".to_owned());
        }
        let (family, _) = self.family_for(name);
        let at = skip_blank(line, at);
        if at == line.len() {
            return Ok(());
        }
        let rest = &line[at..];
        let TextFamily {
            name, help, kind, ..
        } = &mut self.families[family];
        if keyword == b"HELP" {
            if help.is_some() {
                return Err(format!("second HELP line for metric name {name:?}"));
            }
            *help = Some(unescape_help(rest)?);
        } else {
            if kind.is_some() {
                return Err(format!(
                    "second TYPE line for metric name {name:?}, or TYPE reported after samples"
                ));
            }
            let upper = String::from_utf8_lossy(rest).to_uppercase();
            *kind = Some(match upper.as_str() {
                "COUNTER" => TextKind::Counter,
                "GAUGE" => TextKind::Gauge,
                "UNTYPED" => TextKind::Untyped,
                "SUMMARY" => TextKind::Summary,
                "HISTOGRAM" => TextKind::Histogram,
                _ => return Err(format!("unknown metric type {}", shown(rest))),
            });
        }
        Ok(())
    }

    fn sample(&mut self, line: &[u8], at: usize) -> Result<(), String> {
        let (name, at) = name_token(line, at, true);
        if name.is_empty() {
            return Err("invalid metric name".to_owned());
        }
        let (family, suffix) = self.family_for(name);
        let kind = *self.families[family].kind.get_or_insert(TextKind::Untyped);
        let mut at = skip_blank(line, at);
        let mut labels: Vec<(String, String)> = Vec::new();
        // The `quantile` of a summary line or the `le` of a histogram line; NaN when absent.
        let mut bound = f64::NAN;
        if line.get(at) == Some(&b'{') {
            at = self.labels(line, at + 1, family, kind, &mut labels, &mut bound)?;
        }
        let (token, at) = until_blank(line, at);
        let value = parse_float(token)
            .ok_or_else(|| format!("expected float as value, got {}", shown(token)))?;
        let timestamp = if at < line.len() {
            let (token, end) = until_blank(line, skip_blank(line, at));
            let timestamp = std::str::from_utf8(token)
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or_else(|| format!("expected integer as timestamp, got {}", shown(token)))?;
            if end < line.len() {
                return Err(format!(
                    "spurious string after timestamp: {}",
                    shown(&line[end..])
                ));
            }
            Some(timestamp)
        } else {
            None
        };
        let series = &mut self.families[family].series;
        let grouped = match kind {
            TextKind::Summary | TextKind::Histogram => {
                let mut key = labels.clone();
                key.sort();
                let next = series.len();
                let at = *self.grouped.entry((family, key)).or_insert(next);
                if at == next {
                    series.push(Series {
                        labels,
                        value: if kind == TextKind::Summary {
                            Value::Summary {
                                sum: 0.0,
                                count: 0.0,
                                quantiles: Vec::new(),
                            }
                        } else {
                            Value::Histogram {
                                sum: 0.0,
                                count: 0.0,
                                buckets: Vec::new(),
                            }
                        },
                        timestamp: None,
                    });
                }
                &mut series[at]
            }
            _ => {
                series.push(Series {
                    labels,
                    value: Value::Simple(value),
                    timestamp: None,
                });
                series.last_mut().expect("just pushed")
            }
        };
        if timestamp.is_some() {
            grouped.timestamp = timestamp;
        }
        match &mut grouped.value {
            Value::Simple(_) => {}
            Value::Summary {
                sum,
                count,
                quantiles: points,
            }
            | Value::Histogram {
                sum,
                count,
                buckets: points,
            } => match suffix {
                Suffix::Count => *count = value,
                Suffix::Sum => *sum = value,
                Suffix::None if !bound.is_nan() => points.push((bound, value)),
                // A line with neither: node_exporter's parser keeps the series, not the value.
                Suffix::None => {}
            },
        }
        Ok(())
    }

    /// Reads a label set after its `{`; returns the position after the `}` and any blanks.
    fn labels(
        &self,
        line: &[u8],
        mut at: usize,
        family: usize,
        kind: TextKind,
        labels: &mut Vec<(String, String)>,
        bound: &mut f64,
    ) -> Result<usize, String> {
        let family_name = &self.families[family].name;
        loop {
            at = skip_blank(line, at);
            if line.get(at) == Some(&b'}') {
                return Ok(skip_blank(line, at + 1));
            }
            let (name, end) = name_token(line, at, false);
            if name.is_empty() {
                return Err(format!("invalid label name for metric {family_name:?}"));
            }
            if name == "__name__" {
                return Err("label name \"__name__\" is reserved".to_owned());
            }
            let special = (kind == TextKind::Summary && name == "quantile")
                || (kind == TextKind::Histogram && name == "le");
            at = skip_blank(line, end);
            match line.get(at) {
                Some(b'=') => {}
                found => {
                    return Err(format!(
                        "expected '=' after label name, found {}",
                        shown(found.map_or(b"\n".as_slice(), std::slice::from_ref))
                    ));
                }
            }
            if !special && labels.iter().any(|(n, _)| n == name) {
                return Err(format!("duplicate label names for metric {family_name:?}"));
            }
            at = skip_blank(line, at + 1);
            if line.get(at) != Some(&b'"') {
                return Err(format!(
                    "expected '\"' at start of label value, found {}",
                    shown(line.get(at).map_or(b"\n".as_slice(), std::slice::from_ref))
                ));
            }
            let (raw, end) = label_value(line, at + 1)?;
            let value = utf8(raw, "label value")?;
            if special {
                *bound = parse_float(value.as_bytes()).ok_or_else(|| {
                    format!("expected float as value for '{name}' label, got {value:?}")
                })?;
            } else {
                labels.push((name.to_owned(), value.clone()));
            }
            at = skip_blank(line, end);
            match line.get(at) {
                Some(b',') => at += 1,
                Some(b'}') => return Ok(skip_blank(line, at + 1)),
                _ => return Err(format!("unexpected end of label value {value:?}")),
            }
        }
    }
}

/// A quoted label value's bytes, unescaped; the position after its closing quote.
fn label_value(line: &[u8], start: usize) -> Result<(Vec<u8>, usize), String> {
    let mut value = Vec::new();
    let mut at = start;
    while at < line.len() {
        match line[at] {
            b'"' => return Ok((value, at + 1)),
            b'\\' => {
                match line.get(at + 1) {
                    Some(b'"') => value.push(b'"'),
                    Some(b'\\') => value.push(b'\\'),
                    Some(b'n') => value.push(b'\n'),
                    Some(&other) => {
                        return Err(format!(
                            "invalid escape sequence '\\{}'",
                            String::from_utf8_lossy(&[other])
                        ));
                    }
                    None => break,
                }
                at += 2;
            }
            byte => {
                value.push(byte);
                at += 1;
            }
        }
    }
    Err(format!(
        "label value {} contains unescaped new-line",
        shown(&value)
    ))
}

/// A `# HELP` text, unescaped (`\\` and `\n` only).
fn unescape_help(rest: &[u8]) -> Result<String, String> {
    let mut help = Vec::with_capacity(rest.len());
    let mut bytes = rest.iter();
    while let Some(&byte) = bytes.next() {
        if byte != b'\\' {
            help.push(byte);
            continue;
        }
        match bytes.next() {
            Some(b'\\') => help.push(b'\\'),
            Some(b'n') => help.push(b'\n'),
            Some(&other) => {
                return Err(format!(
                    "invalid escape sequence '\\{}'",
                    String::from_utf8_lossy(&[other])
                ));
            }
            None => return Err("invalid escape sequence '\\\n'".to_owned()),
        }
    }
    utf8(help, "help text")
}

// ---------------------------------------------------------------------------------------------
// Merging files into families.

/// What one exported family name is, across the files merged so far.
struct Entry {
    /// Position in [`Merged::families`].
    at: usize,
    /// The declared type of the text family it came from.
    kind: TextKind,
    /// The explicit help, when a file gave one.
    help: Option<String>,
    /// The files it was read from.
    files: Vec<String>,
    /// The series' labels, sorted, so no series is exported twice.
    series: HashSet<Vec<(LabelName, String)>>,
}

/// The families of the files merged so far.
#[derive(Default)]
struct Merged {
    families: Vec<Family>,
    entries: HashMap<String, Entry>,
    /// Sample name (and OpenMetrics family name) → the exported family using it.
    owners: HashMap<String, String>,
    samples: usize,
}

/// One exported family converted from one file, before it is merged.
struct Converted {
    family: Family,
    kind: TextKind,
    help: Option<String>,
    /// The sample names (and the OpenMetrics family name) it uses.
    names: Vec<String>,
    /// Each series' sorted labels.
    keys: Vec<Vec<(LabelName, String)>>,
}

impl Merged {
    /// Adds one file's families, or none of them when any clashes.
    fn add(&mut self, file: &str, families: Vec<TextFamily>) -> Result<(), String> {
        let mut converted = Vec::new();
        for family in families {
            convert(family, &mut converted)?;
        }
        let samples: usize = converted
            .iter()
            .map(|c| {
                c.family.samples.len()
                    + c.family
                        .histograms
                        .iter()
                        .map(|h| h.buckets.len() + 2)
                        .sum::<usize>()
            })
            .sum();
        if self.samples + samples > MAX_SAMPLES {
            return Err(format!(
                "its {samples} samples would take the scrape past the limit of {MAX_SAMPLES} samples from all files"
            ));
        }
        self.check(&converted)?;
        self.samples += samples;
        for c in converted {
            let name = c.family.name.to_string();
            for sample_name in c.names {
                self.owners.insert(sample_name, name.clone());
            }
            match self.entries.get_mut(&name) {
                Some(entry) => {
                    if entry.help.is_none() {
                        entry.help = c.help;
                    }
                    if entry.files.last().map(String::as_str) != Some(file) {
                        entry.files.push(file.to_owned());
                    }
                    entry.series.extend(c.keys);
                    let target = &mut self.families[entry.at];
                    target.samples.extend(c.family.samples);
                    target.histograms.extend(c.family.histograms);
                }
                None => {
                    self.entries.insert(
                        name,
                        Entry {
                            at: self.families.len(),
                            kind: c.kind,
                            help: c.help,
                            files: vec![file.to_owned()],
                            series: c.keys.into_iter().collect(),
                        },
                    );
                    self.families.push(c.family);
                }
            }
        }
        Ok(())
    }

    /// Whether one file's converted families fit with what is merged and with each other.
    fn check(&self, converted: &[Converted]) -> Result<(), String> {
        // This file's own additions, checked as the merged ones are.
        let mut kinds: HashMap<&str, (TextKind, Option<&str>)> = HashMap::new();
        let mut owners: HashMap<&str, &str> = HashMap::new();
        let mut series: HashSet<(&str, &[(LabelName, String)])> = HashSet::new();
        for c in converted {
            let name = c.family.name.as_ref();
            if name.starts_with("warden_") || name == MTIME_NAME || name == ERROR_NAME {
                return Err(format!("{name} is a name warden exports itself"));
            }
            let before = self
                .entries
                .get(name)
                .map(|e| (e.kind, e.help.as_deref()))
                .or_else(|| kinds.get(name).copied());
            if let Some((kind, help)) = before {
                if kind != c.kind {
                    return Err(format!(
                        "{name} is a {} here but a {} in an earlier file",
                        c.kind.as_str(),
                        kind.as_str()
                    ));
                }
                if let (Some(earlier), Some(here)) = (help, c.help.as_deref())
                    && earlier != here
                {
                    return Err(format!(
                        "{name} has the help {here:?} here but {earlier:?} in an earlier file"
                    ));
                }
            }
            let help = c.help.as_deref().or(before.and_then(|(_, h)| h));
            kinds.insert(name, (c.kind, help));
            for sample_name in &c.names {
                let owner = self
                    .owners
                    .get(sample_name)
                    .map(String::as_str)
                    .or_else(|| owners.get(sample_name.as_str()).copied());
                if let Some(owner) = owner
                    && owner != name
                {
                    return Err(format!(
                        "{name} uses the name {sample_name}, which is also {owner}'s"
                    ));
                }
                owners.insert(sample_name, name);
            }
            let merged = self.entries.get(name).map(|e| &e.series);
            for key in &c.keys {
                if merged.is_some_and(|s| s.contains(key)) || !series.insert((name, key)) {
                    return Err(format!("{name}{} is defined twice", show_labels(key)));
                }
            }
        }
        Ok(())
    }

    /// The merged families, each with its help (node_exporter's `Metric read from FILES` when
    /// no file gave one).
    fn finish(mut self) -> Vec<Family> {
        for entry in self.entries.into_values() {
            self.families[entry.at].help = entry
                .help
                .unwrap_or_else(|| format!("Metric read from {}", entry.files.join(", ")))
                .into();
        }
        self.families
    }
}

fn show_labels(labels: &[(LabelName, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", pairs.join(","))
}

/// Labels padded with the family's other label names (empty values) and sorted by name, as
/// node_exporter exports them.
fn padded(labels: Vec<(String, String)>, names: &[&str]) -> Vec<(LabelName, String)> {
    let mut out: Vec<(LabelName, String)> = labels
        .into_iter()
        .map(|(n, v)| (LabelName::Owned(n), v))
        .collect();
    for name in names {
        if !out.iter().any(|(n, _)| n == name) {
            out.push((LabelName::Owned((*name).to_owned()), String::new()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A count as node_exporter's `uint64`, refusing what it would truncate or wrap.
fn whole(value: f64, what: &str) -> Result<u64, String> {
    if value >= 0.0 && value.fract() == 0.0 && value < 18_446_744_073_709_551_616.0 {
        Ok(value as u64)
    } else {
        Err(format!("{what} {value} is not a non-negative integer"))
    }
}

/// A float as Go's `strconv.FormatFloat(v, 'g', -1, 64)` writes it (node_exporter's
/// `quantile` label values).
pub(super) fn go_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) || value == 0.0 {
        format!("{value}")
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

/// One text family as the families warden exports (a summary becomes three).
fn convert(family: TextFamily, out: &mut Vec<Converted>) -> Result<(), String> {
    let TextFamily {
        name,
        help,
        kind,
        series,
    } = family;
    let mut label_names: Vec<&str> = Vec::new();
    for s in &series {
        for (n, _) in &s.labels {
            if !label_names.contains(&n.as_str()) {
                label_names.push(n);
            }
        }
    }
    let label_names: Vec<String> = label_names.into_iter().map(str::to_owned).collect();
    let names: Vec<&str> = label_names.iter().map(String::as_str).collect();
    let placeholder = "";
    match kind {
        TextKind::Counter | TextKind::Gauge | TextKind::Untyped => {
            let warden_kind = match kind {
                TextKind::Counter => Kind::Counter,
                TextKind::Gauge => Kind::Gauge,
                _ => Kind::Untyped,
            };
            let mut family = Family::new(name.clone(), placeholder, warden_kind);
            let mut keys = Vec::with_capacity(series.len());
            for s in series {
                let labels = padded(s.labels, &names);
                keys.push(labels.clone());
                let Value::Simple(value) = s.value else {
                    continue;
                };
                family.push_labels(labels, value);
            }
            let mut sample_names = vec![name.clone()];
            if family.kind == Kind::Counter
                && let Some(base) = name.strip_suffix("_total")
            {
                sample_names.push(base.to_owned());
            }
            out.push(Converted {
                family,
                kind,
                help,
                names: sample_names,
                keys,
            });
        }
        TextKind::Histogram => {
            let mut family = Family::histogram(name.clone(), placeholder);
            let mut keys = Vec::with_capacity(series.len());
            for s in series {
                let labels = padded(s.labels, &names);
                let Value::Histogram {
                    sum,
                    count,
                    buckets,
                } = s.value
                else {
                    continue;
                };
                let what = || format!("{name}{}", show_labels(&labels));
                let count = whole(count, &format!("{}: _count", what()))?;
                let mut cumulative: Vec<(f64, u64)> = Vec::with_capacity(buckets.len() + 1);
                for (bound, value) in buckets {
                    let value =
                        whole(value, &format!("{}: bucket le={}", what(), go_float(bound)))?;
                    match cumulative.iter_mut().find(|(b, _)| *b == bound) {
                        Some(existing) => existing.1 = value, // The later line wins.
                        None => cumulative.push((bound, value)),
                    }
                }
                cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut buckets = Vec::with_capacity(cumulative.len() + 1);
                let mut previous = 0;
                for (bound, value) in cumulative {
                    let Some(own) = value.checked_sub(previous) else {
                        return Err(format!(
                            "{}: bucket le={} counts {value}, fewer than the bucket below ({previous})",
                            what(),
                            go_float(bound)
                        ));
                    };
                    buckets.push((bound, own));
                    previous = value;
                }
                if buckets.last().is_none_or(|(b, _)| *b != f64::INFINITY) {
                    let Some(own) = count.checked_sub(previous) else {
                        return Err(format!(
                            "{}: _count {count} is less than the highest bucket ({previous})",
                            what()
                        ));
                    };
                    buckets.push((f64::INFINITY, own));
                }
                keys.push(labels.clone());
                family.histograms.push(HistogramSample {
                    labels,
                    buckets,
                    sum,
                    count,
                });
            }
            out.push(Converted {
                family,
                kind,
                help,
                names: ["", "_bucket", "_sum", "_count"]
                    .iter()
                    .map(|s| format!("{name}{s}"))
                    .collect(),
                keys,
            });
        }
        TextKind::Summary => {
            let mut quantile_family = Family::new(name.clone(), placeholder, Kind::Untyped);
            let mut sum_family = Family::new(format!("{name}_sum"), placeholder, Kind::Untyped);
            let mut count_family = Family::new(format!("{name}_count"), placeholder, Kind::Untyped);
            let (mut quantile_keys, mut keys) = (Vec::new(), Vec::new());
            for s in series {
                let labels = padded(s.labels, &names);
                let Value::Summary {
                    sum,
                    count,
                    mut quantiles,
                } = s.value
                else {
                    continue;
                };
                let count = whole(count, &format!("{name}{}: _count", show_labels(&labels)))?;
                // Later lines win, then ascending, as node_exporter's map and output have them.
                let mut seen = HashSet::new();
                quantiles.reverse();
                quantiles.retain(|(q, _)| seen.insert(q.to_bits()));
                quantiles.sort_by(|a, b| a.0.total_cmp(&b.0));
                for (quantile, value) in quantiles {
                    let mut with = labels.clone();
                    with.push((LabelName::Borrowed("quantile"), go_float(quantile)));
                    quantile_keys.push(with.clone());
                    quantile_family.push_labels(with, value);
                }
                keys.push(labels.clone());
                sum_family.push_labels(labels.clone(), sum);
                count_family.push_labels(labels, count as f64);
            }
            for (family, keys) in [
                (quantile_family, quantile_keys),
                (sum_family, keys.clone()),
                (count_family, keys),
            ] {
                out.push(Converted {
                    names: vec![family.name.to_string()],
                    family,
                    kind,
                    help: help.clone(),
                    keys,
                });
            }
        }
    }
    Ok(())
}

/// The fuzz driver's entry (`host::fuzzing`): `data` split at form feeds (`\x0c`) into files,
/// each parsed and merged as the collector does, then the merged families.
pub(super) fn fuzz(data: &[u8]) -> Result<Vec<Family>, String> {
    let mut merged = Merged::default();
    let mut problem = None;
    for (index, text) in data.split(|&b| b == b'\x0c').enumerate() {
        let added = parse(text)
            .map_err(|err| err.to_string())
            .and_then(|families| merged.add(&format!("fuzz{index}.prom"), families));
        if let Err(err) = added {
            problem.get_or_insert(err);
        }
    }
    let families = merged.finish();
    match problem {
        Some(problem) if families.is_empty() => Err(problem),
        _ => Ok(families),
    }
}

#[cfg(test)]
mod tests;
