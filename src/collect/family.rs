//! The metric model every collector produces: owned snapshots of metric families.
//!
//! Collectors read their source and return [`Family`] values; the scrape merges them and
//! encodes the result through prometheus-client, in OpenMetrics or text format 0.0.4. Keeping
//! the snapshot as plain data means a collector never touches the encoder and a slow source can
//! be timed out without leaving half-written output behind.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// A label name: usually a static string, owned when it comes from user configuration.
pub type LabelName = Cow<'static, str>;

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

/// One sample: its label pairs and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label pairs in output order.
    pub labels: Vec<(LabelName, String)>,
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
    pub fn push<const N: usize>(&mut self, labels: [(&'static str, String); N], value: f64) {
        self.samples.push(Sample {
            labels: labels
                .into_iter()
                .map(|(name, value)| (Cow::Borrowed(name), value))
                .collect(),
            value,
        });
    }

    /// Appends a sample with labels whose names may be owned (user-configured).
    pub fn push_labels(&mut self, labels: Vec<(LabelName, String)>, value: f64) {
        self.samples.push(Sample { labels, value });
    }

    /// Appends a sample without labels.
    pub fn push_unlabelled(&mut self, value: f64) {
        self.samples.push(Sample {
            labels: Vec::new(),
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

    /// The name prometheus-client registers: counters without their `_total`, which the
    /// encoder appends again.
    fn registered_name(&self) -> &str {
        match self.kind {
            Kind::Counter => self.name.strip_suffix("_total").unwrap_or(&self.name),
            Kind::Gauge | Kind::Untyped | Kind::Histogram => &self.name,
        }
    }

    fn metric_type(&self) -> MetricType {
        match self.kind {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
            Kind::Untyped => MetricType::Unknown,
            Kind::Histogram => MetricType::Histogram,
        }
    }
}

/// A set of families ready to encode; merges families that share a name.
#[derive(Debug, Default)]
pub struct Snapshot {
    families: Vec<Family>,
    /// Family name → position in `families`.
    index: HashMap<Cow<'static, str>, usize, BuildHasherDefault<Fnv1a>>,
}

impl Snapshot {
    /// An empty snapshot with room for `families` families.
    pub fn with_capacity(families: usize) -> Self {
        Snapshot {
            families: Vec::with_capacity(families),
            index: HashMap::with_capacity_and_hasher(families, BuildHasherDefault::default()),
        }
    }

    /// Adds families, appending samples to an existing family of the same name. A family whose
    /// type differs from the existing one's is dropped (the first collector's wins, as
    /// client_golang's registry keeps the first): merged, it would make the exposition invalid.
    pub fn extend(&mut self, families: impl IntoIterator<Item = Family>) {
        for family in families {
            match self.index.get(&family.name) {
                Some(&at) if self.families[at].kind != family.kind => {}
                Some(&at) => {
                    self.families[at].samples.extend(family.samples);
                    self.families[at].histograms.extend(family.histograms);
                }
                None => {
                    self.index.insert(family.name.clone(), self.families.len());
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

impl prometheus_client::collector::Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.families {
            if family.samples.is_empty() && family.histograms.is_empty() {
                continue;
            }
            let mut metric = encoder.encode_descriptor(
                family.registered_name(),
                &family.help,
                None,
                family.metric_type(),
            )?;
            for sample in &family.samples {
                let labels = sample.labels.as_slice();
                let sample_encoder = metric.encode_family(&labels)?;
                match family.kind {
                    Kind::Counter => ConstCounter::new(sample.value).encode(sample_encoder)?,
                    Kind::Gauge | Kind::Untyped | Kind::Histogram => {
                        ConstGauge::new(sample.value).encode(sample_encoder)?
                    }
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

/// FNV-1a: family names are short, trusted strings hashed once per family per scrape, where
/// SipHash's DoS resistance buys nothing and costs a measurable share of a scrape.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
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
pub fn encode(mut snapshot: Snapshot, format: Format) -> String {
    if format == Format::OpenMetrics {
        // prometheus-client escapes help texts in text 0.0.4 only; OpenMetrics needs a
        // backslash, newline or double quote escaped too (textfiles' help texts may hold them).
        for family in &mut snapshot.families {
            if family.help.contains(['\\', '\n', '"']) {
                let escaped = family
                    .help
                    .replace('\\', "\\\\")
                    .replace('\n', "\\n")
                    .replace('"', "\\\"");
                family.help = escaped.into();
            }
        }
    }
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut out = String::with_capacity(64 * 1024);
    // Writing into a String cannot fail, and every family above encodes infallibly.
    let result = match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
        Format::Text004 => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
    };
    debug_assert!(result.is_ok(), "encoding into a String failed");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_snapshot() -> Snapshot {
        let mut snapshot = Snapshot::default();
        let mut cpu = Family::counter(
            "node_cpu_seconds_total",
            "Seconds the CPUs spent in each mode.",
        );
        cpu.push([("cpu", "0".into()), ("mode", "idle".into())], 12.5);
        let mem = Family::single_gauge(
            "node_memory_MemTotal_bytes",
            "Memory information field MemTotal_bytes.",
            1024.0,
        );
        let mut commits =
            Family::counter("pg_stat_database_xact_commit", "Transactions committed.");
        commits.push([("datname", "app".into())], 7.0);
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
        a.push([("collector", "host".into())], 1.0);
        let mut b = Family::gauge("warden_collector_success", "ok");
        b.push([("collector", "process".into())], 0.0);
        snapshot.extend([a, b]);
        assert_eq!(snapshot.families().len(), 1);
        assert_eq!(snapshot.sample_count(), 2);
        let out = encode(snapshot, Format::Text004);
        assert_eq!(out.matches("# TYPE warden_collector_success").count(), 1);
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
        f.push([("v", "a\"b\\c\nd".into())], 1.0);
        snapshot.extend([f]);
        let out = encode(snapshot, Format::Text004);
        assert!(out.contains(r#"x_info{v="a\"b\\c\nd"} 1"#), "{out}");
    }
}
