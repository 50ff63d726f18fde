//! The metric model every collector produces: owned snapshots of metric families.
//!
//! Collectors read their source and return [`Family`] values; the scrape merges them and
//! [`encode`] writes the result in OpenMetrics or text format 0.0.4, byte for byte as
//! prometheus-client 0.26 would (a test compares the two), straight into one buffer, with
//! whole numbers printed without dtoa and the model's `Cow` label values taken as they are. Keeping
//! the snapshot as plain data means a collector never touches the encoder and a slow source can
//! be timed out without leaving half-written output behind.

use std::borrow::Cow;

/// A label name: usually a static string, owned when it comes from user configuration.
pub type LabelName = Cow<'static, str>;

/// A label value: static when it is one of a fixed set (a CPU mode, a collector's name, a
/// queue), owned when it is read from the source.
pub type LabelValue = Cow<'static, str>;

/// The type of a metric family, as declared in the exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A monotonically increasing value. Its name ends in `_total`.
    Counter,
    /// A value that can go up and down.
    Gauge,
    /// A counter whose compatible name lacks `_total` (postgres_exporter's, for one). It is
    /// declared `unknown`/`untyped` so that both exposition formats keep the name unchanged,
    /// which OpenMetrics would not allow for a counter.
    Untyped,
    /// A distribution: its samples are in [`Family::histograms`].
    Histogram,
}

/// One histogram series: its labels, buckets, sum and count.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSample {
    /// Label pairs in output order.
    pub labels: Vec<(LabelName, String)>,
    /// (upper bound, observations in this bucket alone), ascending, ending with `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    /// The sum of the observations.
    pub sum: f64,
    /// The number of observations.
    pub count: u64,
}

/// A sample's label pairs in output order. Two pairs are kept inline, which covers nearly every
/// host series: a labelled sample costs no allocation beyond its values' strings.
pub type Labels = smallvec::SmallVec<[(LabelName, LabelValue); 2]>;

/// One sample: its label pairs and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label pairs in output order.
    pub labels: Labels,
    /// The sample value.
    pub value: f64,
}

/// A metric family: name, help, type and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The full sample name, including `_total` for counters.
    pub name: Cow<'static, str>,
    /// The help text.
    pub help: Cow<'static, str>,
    /// The declared type.
    pub kind: Kind,
    /// The samples, in output order.
    pub samples: Vec<Sample>,
    /// A histogram family's series (empty for the other kinds).
    pub histograms: Vec<HistogramSample>,
}

impl Family {
    /// A family of the given kind with no samples yet.
    ///
    /// A counter whose name does not end in `_total` is declared untyped instead, so the sample
    /// name is the same in both exposition formats.
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        help: impl Into<Cow<'static, str>>,
        kind: Kind,
    ) -> Self {
        let name = name.into();
        let kind = if kind == Kind::Counter && !name.ends_with("_total") {
            Kind::Untyped
        } else {
            kind
        };
        Family {
            name,
            help: help.into(),
            kind,
            samples: Vec::new(),
            histograms: Vec::new(),
        }
    }

    /// A gauge family.
    pub fn gauge(name: impl Into<Cow<'static, str>>, help: impl Into<Cow<'static, str>>) -> Self {
        Self::new(name, help, Kind::Gauge)
    }

    /// The same family with room for `samples` samples, for a caller that knows how many.
    #[must_use]
    pub fn with_capacity(mut self, samples: usize) -> Self {
        self.samples.reserve_exact(samples);
        self
    }

    /// A counter family; `name` should end in `_total`.
    pub fn counter(name: impl Into<Cow<'static, str>>, help: impl Into<Cow<'static, str>>) -> Self {
        Self::new(name, help, Kind::Counter)
    }

    /// A gauge family holding one unlabelled sample.
    pub fn single_gauge(
        name: impl Into<Cow<'static, str>>,
        help: impl Into<Cow<'static, str>>,
        value: f64,
    ) -> Self {
        let mut family = Self::gauge(name, help);
        family.push_unlabelled(value);
        family
    }

    /// Appends a sample with the given static-named labels.
    pub fn push<const N: usize, V: Into<LabelValue>>(
        &mut self,
        labels: [(&'static str, V); N],
        value: f64,
    ) {
        self.samples.push(Sample {
            labels: labels
                .into_iter()
                .map(|(name, value)| (Cow::Borrowed(name), value.into()))
                .collect(),
            value,
        });
    }

    /// Appends a sample with labels whose names may be owned (user-configured).
    pub fn push_labels<V: Into<LabelValue>>(&mut self, labels: Vec<(LabelName, V)>, value: f64) {
        self.samples.push(Sample {
            labels: labels
                .into_iter()
                .map(|(name, value)| (name, value.into()))
                .collect(),
            value,
        });
    }

    /// Appends a sample without labels.
    pub fn push_unlabelled(&mut self, value: f64) {
        self.samples.push(Sample {
            labels: Labels::new(),
            value,
        });
    }

    /// A histogram family.
    pub fn histogram(
        name: impl Into<Cow<'static, str>>,
        help: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(name, help, Kind::Histogram)
    }

    /// The value of the first sample whose labels include every given pair.
    pub fn value(&self, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|sample| {
                labels
                    .iter()
                    .all(|(name, value)| sample.labels.iter().any(|(n, v)| n == name && v == value))
            })
            .map(|sample| sample.value)
    }

    /// The declared name: a counter's without its `_total` (OpenMetrics declares that one;
    /// its samples, and text 0.0.4's declaration, append `_total` again).
    fn registered_name(&self) -> &str {
        match self.kind {
            Kind::Counter => self.name.strip_suffix("_total").unwrap_or(&self.name),
            Kind::Gauge | Kind::Untyped | Kind::Histogram => &self.name,
        }
    }
}

/// A set of families ready to encode; merges families that share a name.
#[derive(Debug, Default)]
pub struct Snapshot {
    families: Vec<Family>,
    /// Family name → position in `families`.
    /// Positions in `families`, found by the name's hash and compared by name there: no copy
    /// of an owned name (a hundred host families build theirs) is made for the index.
    index: hashbrown::HashTable<usize>,
}

impl Snapshot {
    /// An empty snapshot with room for `families` families.
    pub fn with_capacity(families: usize) -> Self {
        Snapshot {
            families: Vec::with_capacity(families),
            index: hashbrown::HashTable::with_capacity(families),
        }
    }

    /// Adds families, appending samples to an existing family of the same name. A family whose
    /// type differs from the existing one's is dropped (the first collector's wins, as
    /// client_golang's registry keeps the first): merged, it would make the exposition invalid.
    pub fn extend(&mut self, families: impl IntoIterator<Item = Family>) {
        for family in families {
            let hash = fnv1a(&family.name);
            let families = &self.families;
            match self
                .index
                .find(hash, |&at| families[at].name == family.name)
            {
                Some(&at) if self.families[at].kind != family.kind => {}
                Some(&at) => {
                    self.families[at].samples.extend(family.samples);
                    self.families[at].histograms.extend(family.histograms);
                }
                None => {
                    let at = self.families.len();
                    let families = &self.families;
                    self.index
                        .insert_unique(hash, at, |&at| fnv1a(&families[at].name));
                    self.families.push(family);
                }
            }
        }
    }

    /// The families collected so far.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// The number of samples across all families.
    pub fn sample_count(&self) -> usize {
        self.families.iter().map(|f| f.samples.len()).sum()
    }
}

/// The most names and help texts [`intern`] keeps; past it, text is returned owned. A host's
/// procfs fields number a few hundred.
const MAX_INTERNED: usize = 4096;

/// `text` as a static string, built once per process: for the family names and help texts that
/// collectors derive from a source's field names (`node_memory_<field>`, `node_netstat_<field>`),
/// which are the same on every scrape. Each distinct text is allocated once and kept for the
/// life of the process, up to [`MAX_INTERNED`] of them; beyond that (a source inventing new
/// fields without end) the text is returned owned, as before.
pub fn intern(text: &str) -> Cow<'static, str> {
    static INTERNED: std::sync::Mutex<Option<hashbrown::HashTable<&'static str>>> =
        std::sync::Mutex::new(None);
    let hash = fnv1a(text);
    let mut interned = INTERNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let table = interned.get_or_insert_with(hashbrown::HashTable::new);
    if let Some(&known) = table.find(hash, |known| *known == text) {
        return Cow::Borrowed(known);
    }
    if table.len() >= MAX_INTERNED {
        return Cow::Owned(text.to_owned());
    }
    let kept: &'static str = Box::leak(text.to_owned().into_boxed_str());
    table.insert_unique(hash, kept, |known| fnv1a(known));
    Cow::Borrowed(kept)
}

/// FNV-1a of a family name: names are short, trusted strings hashed once per family per
/// scrape, where SipHash's DoS resistance buys nothing and costs a measurable share of a scrape.
fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The exposition formats `/metrics` can answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 text, ending in `# EOF`.
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Text004,
}

impl Format {
    /// The `Content-Type` header for this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text004 => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Encodes a snapshot in the given format.
pub fn encode(snapshot: Snapshot, format: Format) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let openmetrics = format == Format::OpenMetrics;
    for family in &snapshot.families {
        if family.samples.is_empty() && family.histograms.is_empty() {
            continue;
        }
        encode_family(&mut out, family, openmetrics);
    }
    if openmetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// One family: its `# HELP` and `# TYPE` lines, then its samples.
fn encode_family(out: &mut String, family: &Family, openmetrics: bool) {
    let name = family.registered_name();
    // A counter's samples end in `_total`; text 0.0.4 declares that name too, OpenMetrics
    // declares the name without it.
    let suffix = if family.kind == Kind::Counter {
        "_total"
    } else {
        ""
    };
    let declared_suffix = if openmetrics { "" } else { suffix };
    out.push_str("# HELP ");
    out.push_str(name);
    out.push_str(declared_suffix);
    out.push(' ');
    if openmetrics {
        escape(out, &family.help, true);
    } else {
        escape(out, &family.help, false);
    }
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push_str(declared_suffix);
    out.push_str(match (family.kind, openmetrics) {
        (Kind::Counter, _) => " counter\n",
        (Kind::Gauge, _) => " gauge\n",
        (Kind::Histogram, _) => " histogram\n",
        (Kind::Untyped, true) => " unknown\n",
        (Kind::Untyped, false) => " untyped\n",
    });
    for sample in &family.samples {
        out.push_str(name);
        out.push_str(suffix);
        labels(out, pairs(&sample.labels));
        out.push(' ');
        float(out, sample.value, openmetrics);
        out.push('\n');
    }
    for histogram in &family.histograms {
        if openmetrics {
            openmetrics_histogram(out, name, histogram);
        } else {
            text_histogram(out, name, histogram);
        }
    }
}

/// A histogram series in text 0.0.4: cumulative buckets (`le` after the series' labels, in
/// Go's float notation, `+Inf` added when missing), then `_sum` and `_count`.
fn text_histogram(out: &mut String, name: &str, histogram: &HistogramSample) {
    let mut cumulative = 0u64;
    let mut inf_seen = false;
    let mut bound = String::new();
    for &(upper_bound, count) in &histogram.buckets {
        cumulative += count;
        inf_seen |= upper_bound == f64::INFINITY;
        bound.clear();
        go_float(&mut bound, upper_bound);
        let le = std::iter::once(("le", bound.as_str()));
        series_line(
            out,
            name,
            "_bucket",
            pairs(&histogram.labels).chain(le),
            cumulative,
        );
    }
    if !inf_seen {
        let le = std::iter::once(("le", "+Inf"));
        series_line(
            out,
            name,
            "_bucket",
            pairs(&histogram.labels).chain(le),
            histogram.count,
        );
    }
    sum_and_count(out, name, histogram, false);
}

/// A histogram series in OpenMetrics: `_sum`, `_count`, then the cumulative buckets, with
/// `le` before the series' labels (as prometheus-client writes them).
fn openmetrics_histogram(out: &mut String, name: &str, histogram: &HistogramSample) {
    sum_and_count(out, name, histogram, true);
    let mut cumulative = 0u64;
    let mut buffer = dtoa::Buffer::new();
    for &(upper_bound, count) in &histogram.buckets {
        cumulative += count;
        let bound = if upper_bound == f64::INFINITY {
            "+Inf"
        } else {
            buffer.format(upper_bound)
        };
        let le = std::iter::once(("le", bound));
        series_line(
            out,
            name,
            "_bucket",
            le.chain(pairs(&histogram.labels)),
            cumulative,
        );
    }
}

/// A histogram series' `_sum` and `_count` lines.
fn sum_and_count(out: &mut String, name: &str, histogram: &HistogramSample, openmetrics: bool) {
    out.push_str(name);
    out.push_str("_sum");
    labels(out, pairs(&histogram.labels));
    out.push(' ');
    float(out, histogram.sum, openmetrics);
    out.push('\n');
    series_line(
        out,
        name,
        "_count",
        pairs(&histogram.labels),
        histogram.count,
    );
}

/// `name` + `suffix`, the labels, and an integer value.
fn series_line<'a>(
    out: &mut String,
    name: &str,
    suffix: &str,
    labelled: impl Iterator<Item = (&'a str, &'a str)>,
    value: u64,
) {
    out.push_str(name);
    out.push_str(suffix);
    labels(out, labelled);
    out.push(' ');
    out.push_str(itoa::Buffer::new().format(value));
    out.push('\n');
}

/// A sample's label pairs as string slices.
fn pairs<V: AsRef<str>>(labels: &[(LabelName, V)]) -> impl Iterator<Item = (&str, &str)> {
    labels
        .iter()
        .map(|(key, value)| (key.as_ref(), value.as_ref()))
}

/// `{a="x",b="y"}`, values escaped; nothing when there are no labels.
fn labels<'a>(out: &mut String, labelled: impl Iterator<Item = (&'a str, &'a str)>) {
    let mut open = false;
    for (key, value) in labelled {
        out.push(if open { ',' } else { '{' });
        open = true;
        out.push_str(key);
        out.push_str("=\"");
        escape(out, value, true);
        out.push('"');
    }
    if open {
        out.push('}');
    }
}

/// Appends `text` with backslashes and newlines escaped, and double quotes too when `quote`.
fn escape(out: &mut String, text: &str, quote: bool) {
    let special = |b: u8| b == b'\\' || b == b'\n' || (quote && b == b'"');
    if !text.bytes().any(special) {
        out.push_str(text);
        return;
    }
    let mut rest = text;
    while let Some(at) = rest.bytes().position(special) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            _ => "\\\"",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

/// A sample value: the shortest round-tripping decimal (`1.0`, `0.25`, `1e-7`); non-finite
/// values as `NaN`, `+Inf`, `-Inf` in text 0.0.4 and `NaN`, `inf`, `-inf` in OpenMetrics
/// (prometheus-client's spellings, which Prometheus parses in both).
fn float(out: &mut String, value: f64, openmetrics: bool) {
    // Most values are whole numbers (counters, bytes): these print as dtoa prints them, the
    // integer and `.0`, at a fraction of the cost. Below 2^53 the conversion is exact; -0.0
    // keeps its sign through dtoa.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if value.fract() == 0.0 && value.abs() < EXACT && (value != 0.0 || value.is_sign_positive()) {
        out.push_str(itoa::Buffer::new().format(value as i64));
        out.push_str(".0");
    } else if value.is_finite() {
        out.push_str(dtoa::Buffer::new().format_finite(value));
    } else if openmetrics {
        out.push_str(dtoa::Buffer::new().format(value));
    } else if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_sign_positive() {
        out.push_str("+Inf");
    } else {
        out.push_str("-Inf");
    }
}

/// A bucket bound as Go's `strconv.FormatFloat(v, 'g', -1, 64)` prints it, which text 0.0.4
/// exporters use for `le`: whole numbers below 1e6 as integers, exponents as `e+06`.
fn go_float(out: &mut String, value: f64) {
    use std::fmt::Write;
    if !value.is_finite() {
        float(out, value, false);
    } else if value.fract() == 0.0 && value.abs() < 1e6 {
        out.push_str(itoa::Buffer::new().format(value as i64));
    } else if (1e-4..1e6).contains(&value.abs()) {
        // Writing into a String cannot fail.
        let _ = write!(out, "{value}");
    } else {
        let scientific = format!("{value:e}");
        let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let _ = write!(out, "{mantissa}e{exponent:+03}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
    use prometheus_client::metrics::MetricType;
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;

    /// A snapshot as prometheus-client 0.26 encodes it: the reference [`encode`] must match
    /// byte for byte (it replaced this code).
    struct Reference(Snapshot);

    impl std::fmt::Debug for Reference {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Reference")
        }
    }

    impl prometheus_client::collector::Collector for Reference {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            for family in &self.0.families {
                if family.samples.is_empty() && family.histograms.is_empty() {
                    continue;
                }
                let metric_type = match family.kind {
                    Kind::Counter => MetricType::Counter,
                    Kind::Gauge => MetricType::Gauge,
                    Kind::Untyped => MetricType::Unknown,
                    Kind::Histogram => MetricType::Histogram,
                };
                let mut metric = encoder.encode_descriptor(
                    family.registered_name(),
                    &family.help,
                    None,
                    metric_type,
                )?;
                for sample in &family.samples {
                    let labels = sample.labels.as_slice();
                    let sample_encoder = metric.encode_family(&labels)?;
                    match family.kind {
                        Kind::Counter => ConstCounter::new(sample.value).encode(sample_encoder)?,
                        _ => ConstGauge::new(sample.value).encode(sample_encoder)?,
                    }
                }
                for histogram in &family.histograms {
                    let labels = histogram.labels.as_slice();
                    let mut sample_encoder = metric.encode_family(&labels)?;
                    sample_encoder.encode_histogram::<NoLabelSet>(
                        histogram.sum,
                        histogram.count,
                        &histogram.buckets,
                        None,
                    )?;
                }
            }
            Ok(())
        }
    }

    /// What prometheus-client writes for `snapshot` (with help texts escaped for OpenMetrics
    /// first, which it leaves to the caller).
    fn reference(mut snapshot: Snapshot, format: Format) -> String {
        if format == Format::OpenMetrics {
            for family in &mut snapshot.families {
                let escaped = family
                    .help
                    .replace('\\', "\\\\")
                    .replace('\n', "\\n")
                    .replace('"', "\\\"");
                family.help = escaped.into();
            }
        }
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Reference(snapshot)));
        let mut out = String::new();
        match format {
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
            Format::Text004 => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            }
        }
        .expect("encodes into a String");
        out
    }

    /// A small deterministic generator (xorshift), so a failure is reproducible.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
        fn value(&mut self) -> f64 {
            const SPECIAL: [f64; 16] = [
                0.0,
                -0.0,
                1.0,
                -1.0,
                12.5,
                1e6,
                999_999.0,
                1e-4,
                9.9e-5,
                1e21,
                1.5e-7,
                123_456_789_012.0,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::MAX,
            ];
            match self.below(3) {
                0 => SPECIAL[self.below(SPECIAL.len())],
                1 => (self.next() % 10_000_000) as f64,
                _ => f64::from_bits(self.next()),
            }
        }
    }

    fn random_snapshot(rng: &mut Rng) -> Snapshot {
        const TEXT: [&str; 7] = [
            "",
            "eth0",
            "a b",
            "q\"uote",
            "back\\slash",
            "new\nline",
            "é✓",
        ];
        const KEYS: [&str; 4] = ["device", "mode", "le_x", "collector"];
        let mut snapshot = Snapshot::default();
        for index in 0..(1 + rng.below(12)) {
            let help = rng.pick(&TEXT).to_owned() + " help";
            let mut family = match rng.below(4) {
                0 => Family::counter(format!("f{index}_total"), help),
                1 => Family::gauge(format!("f{index}"), help),
                2 => Family::new(format!("f{index}"), help, Kind::Untyped),
                _ => Family::histogram(format!("f{index}_seconds"), help),
            };
            for _ in 0..rng.below(4) {
                let labels: Vec<(LabelName, String)> = (0..rng.below(3))
                    .map(|k| (Cow::Borrowed(KEYS[k]), rng.pick(&TEXT).to_owned()))
                    .collect();
                if family.kind == Kind::Histogram {
                    let mut buckets: Vec<(f64, u64)> = [0.005, 0.25, 1.0, 10.0, 2.5e6, 1e-5]
                        .into_iter()
                        .take(rng.below(6))
                        .map(|bound| (bound, rng.next() % 100))
                        .collect();
                    if rng.below(2) == 0 {
                        buckets.push((f64::INFINITY, rng.next() % 100));
                    }
                    let count = buckets.iter().map(|b| b.1).sum();
                    family.histograms.push(HistogramSample {
                        labels,
                        buckets,
                        sum: rng.value(),
                        count,
                    });
                } else {
                    let value = rng.value();
                    family.push_labels(labels, value);
                }
            }
            snapshot.extend([family]);
        }
        snapshot
    }

    fn clone_snapshot(snapshot: &Snapshot) -> Snapshot {
        let mut copy = Snapshot::default();
        copy.extend(snapshot.families().iter().cloned());
        copy
    }

    #[test]
    fn whole_numbers_print_as_dtoa_prints_them() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut values: Vec<f64> = vec![0.0, -0.0, 1.0, -1.0, 1e15, -1e15, 9_007_199_254_740_991.0];
        values.extend((0..64).map(|shift| (1u64 << shift) as f64));
        values.extend((0..64).map(|shift| -((1u64 << shift) as f64) + 1.0));
        values.extend((0..100_000).map(|_| (rng.next() >> (rng.next() % 64)) as f64));
        values.extend((0..100_000).map(|_| -((rng.next() >> (rng.next() % 64)) as f64)));
        for value in values {
            let mut ours = String::new();
            float(&mut ours, value, false);
            assert_eq!(ours, dtoa::Buffer::new().format(value), "{value:e}");
        }
    }

    #[test]
    fn encodes_as_prometheus_client_does_byte_for_byte() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..2_000 {
            let snapshot = random_snapshot(&mut rng);
            for format in [Format::Text004, Format::OpenMetrics] {
                let ours = encode(clone_snapshot(&snapshot), format);
                let theirs = reference(clone_snapshot(&snapshot), format);
                assert_eq!(ours, theirs, "round {round}, {format:?}");
            }
        }
    }

    fn sample_snapshot() -> Snapshot {
        let mut snapshot = Snapshot::default();
        let mut cpu = Family::counter(
            "node_cpu_seconds_total",
            "Seconds the CPUs spent in each mode.",
        );
        cpu.push([("cpu", "0"), ("mode", "idle")], 12.5);
        let mem = Family::single_gauge(
            "node_memory_MemTotal_bytes",
            "Memory information field MemTotal_bytes.",
            1024.0,
        );
        let mut commits =
            Family::counter("pg_stat_database_xact_commit", "Transactions committed.");
        commits.push([("datname", "app")], 7.0);
        snapshot.extend([cpu, mem, commits]);
        snapshot
    }

    #[test]
    fn text_004_keeps_compatible_names() {
        let out = encode(sample_snapshot(), Format::Text004);
        assert!(
            out.contains("# TYPE node_cpu_seconds_total counter\n"),
            "{out}"
        );
        assert!(
            out.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12.5\n"),
            "{out}"
        );
        assert!(out.contains("node_memory_MemTotal_bytes 1024"), "{out}");
        assert!(
            out.contains("# TYPE pg_stat_database_xact_commit untyped\n"),
            "{out}"
        );
        assert!(
            out.contains("pg_stat_database_xact_commit{datname=\"app\"} 7"),
            "{out}"
        );
        assert!(!out.contains("# EOF"));
    }

    #[test]
    fn openmetrics_has_the_same_sample_names() {
        let out = encode(sample_snapshot(), Format::OpenMetrics);
        assert!(out.contains("# TYPE node_cpu_seconds counter\n"), "{out}");
        assert!(
            out.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12.5\n"),
            "{out}"
        );
        assert!(
            out.contains("# TYPE pg_stat_database_xact_commit unknown\n"),
            "{out}"
        );
        assert!(
            out.contains("pg_stat_database_xact_commit{datname=\"app\"} 7"),
            "{out}"
        );
        assert!(out.ends_with("# EOF\n"), "{out}");
    }

    #[test]
    fn families_with_one_name_merge() {
        let mut snapshot = Snapshot::default();
        let mut a = Family::gauge("warden_collector_success", "ok");
        a.push([("collector", "host")], 1.0);
        let mut b = Family::gauge("warden_collector_success", "ok");
        b.push([("collector", "process")], 0.0);
        snapshot.extend([a, b]);
        assert_eq!(snapshot.families().len(), 1);
        assert_eq!(snapshot.sample_count(), 2);
        let out = encode(snapshot, Format::Text004);
        assert_eq!(out.matches("# TYPE warden_collector_success").count(), 1);
    }

    #[test]
    fn many_owned_names_merge_by_name_only() {
        let mut snapshot = Snapshot::with_capacity(4);
        for round in 0..3 {
            snapshot.extend((0..1_000).map(|i| {
                let mut family = Family::gauge(format!("node_memory_F{i}_bytes"), "x");
                family.push([("round", round.to_string())], f64::from(i));
                family
            }));
        }
        assert_eq!(snapshot.families().len(), 1_000);
        assert!(snapshot.families().iter().all(|f| f.samples.len() == 3));
        let names: std::collections::HashSet<&str> = snapshot
            .families()
            .iter()
            .map(|f| f.name.as_ref())
            .collect();
        assert_eq!(names.len(), 1_000);
    }

    #[test]
    fn interned_text_is_kept_once() {
        let first = intern("node_memory_Interned_test_bytes");
        let second = intern(&format!("node_memory_{}_bytes", "Interned_test"));
        assert_eq!(first, "node_memory_Interned_test_bytes");
        match (&first, &second) {
            (Cow::Borrowed(a), Cow::Borrowed(b)) => assert!(std::ptr::eq(*a, *b)),
            other => panic!("not kept: {other:?}"),
        }
    }

    #[test]
    fn a_family_of_another_type_does_not_merge() {
        let mut snapshot = Snapshot::default();
        snapshot.extend([Family::single_gauge("x", "x", 1.0)]);
        let mut other = Family::histogram("x", "x");
        other.histograms.push(HistogramSample {
            labels: Vec::new(),
            buckets: vec![(f64::INFINITY, 1)],
            sum: 1.0,
            count: 1,
        });
        snapshot.extend([other]);
        assert_eq!(snapshot.families().len(), 1);
        assert_eq!(snapshot.families()[0].kind, Kind::Gauge);
        assert!(snapshot.families()[0].histograms.is_empty());
    }

    #[test]
    fn histograms_encode_cumulative_buckets() {
        let mut snapshot = Snapshot::default();
        let mut h = Family::histogram("x_duration_seconds", "x");
        h.histograms.push(HistogramSample {
            labels: vec![(Cow::Borrowed("action"), "a".into())],
            buckets: vec![(1.0, 2), (10.0, 1), (f64::INFINITY, 1)],
            sum: 20.5,
            count: 4,
        });
        snapshot.extend([h]);
        let out = encode(snapshot, Format::Text004);
        assert!(out.contains("# TYPE x_duration_seconds histogram"), "{out}");
        assert!(
            out.contains(r#"x_duration_seconds_bucket{action="a",le="10"} 3"#),
            "{out}"
        );
        assert!(
            out.contains(r#"x_duration_seconds_bucket{action="a",le="+Inf"} 4"#),
            "{out}"
        );
        assert!(
            out.contains(r#"x_duration_seconds_count{action="a"} 4"#),
            "{out}"
        );
    }

    #[test]
    fn help_texts_are_escaped_in_both_formats() {
        let snapshot = || {
            let mut snapshot = Snapshot::default();
            snapshot.extend([Family::single_gauge("x", "a\\b\nc\"d", 1.0)]);
            snapshot
        };
        let out = encode(snapshot(), Format::OpenMetrics);
        assert!(out.contains("# HELP x a\\\\b\\nc\\\"d\n"), "{out}");
        let out = encode(snapshot(), Format::Text004);
        assert!(out.contains("# HELP x a\\\\b\\nc\"d\n"), "{out}");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut snapshot = Snapshot::default();
        let mut f = Family::gauge("x_info", "x");
        f.push([("v", "a\"b\\c\nd")], 1.0);
        snapshot.extend([f]);
        let out = encode(snapshot, Format::Text004);
        assert!(out.contains(r#"x_info{v="a\"b\\c\nd"} 1"#), "{out}");
    }
}
