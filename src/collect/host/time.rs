//! `time`: `node_time_seconds` and `node_time_zone_offset_seconds{time_zone}`.
//!
//! node_exporter reports Go's `time.Now().Zone()`: the local zone's abbreviation and UTC
//! offset. Go loads the local zone once, from `$TZ` or `/etc/localtime`; this module does the
//! same on first use (in the blocking pool) and reads the zone's TZif data itself, since std
//! has no time zone support. The offset comes from the zone's transitions; past the last one
//! the TZif footer applies, and a footer with daylight-saving rules (only reached by "slim"
//! zone files, or by fat ones after 2037) is not evaluated: the offset family is then left out
//! rather than guessed.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::collect::{BlockingCollector, Error, Family};

/// Where zone names from `$TZ` are looked up (Go also tries this directory first).
#[cfg(unix)]
const ZONEINFO_DIR: &str = "/usr/share/zoneinfo";

/// The `time` collector.
pub(super) struct Time {
    timeout: Duration,
    zone: Arc<OnceLock<Option<Zone>>>,
}

impl Time {
    /// A `time` collector.
    pub(super) fn new(timeout: Duration) -> Self {
        Time {
            timeout,
            zone: Arc::new(OnceLock::new()),
        }
    }
}

impl BlockingCollector for Time {
    fn name(&self) -> &str {
        "time"
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn collect(&self) -> Result<Vec<Family>, Error> {
        {
            self.zone.get_or_init(load_local_zone);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let mut families = vec![Family::single_gauge(
                "node_time_seconds",
                "System time in seconds since epoch (1970).",
                now.as_secs_f64(),
            )];
            let local = self
                .zone
                .get()
                .and_then(Option::as_ref)
                .and_then(|zone| zone.at(i64::try_from(now.as_secs()).unwrap_or(i64::MAX)));
            if let Some(local) = local {
                let mut offset = Family::gauge(
                    "node_time_zone_offset_seconds",
                    "System time zone offset in seconds.",
                );
                offset.push(
                    [("time_zone", local.abbreviation.clone())],
                    f64::from(local.offset),
                );
                families.push(offset);
            }
            Ok(families)
        }
    }
}

/// The local zone as Go finds it: `$TZ` (empty means UTC; a name is looked up under
/// /usr/share/zoneinfo, an absolute path read directly), else `/etc/localtime`, else UTC.
fn load_local_zone() -> Option<Zone> {
    #[cfg(unix)]
    {
        let path = match std::env::var("TZ") {
            Ok(tz) if tz.is_empty() => return Some(Zone::utc()),
            Ok(tz) => {
                let tz = tz.strip_prefix(':').unwrap_or(&tz);
                if tz.starts_with('/') {
                    std::path::PathBuf::from(tz)
                } else {
                    std::path::Path::new(ZONEINFO_DIR).join(tz)
                }
            }
            Err(_) => std::path::PathBuf::from("/etc/localtime"),
        };
        match std::fs::read(&path) {
            Ok(data) => Zone::try_from_tzif(&data),
            Err(_) => Some(Zone::utc()),
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// A local time type: UTC offset in seconds and abbreviation.
#[derive(Debug, Clone, PartialEq)]
struct LocalTime {
    offset: i32,
    abbreviation: String,
}

/// The parts of a TZif file (RFC 8536) needed to find the offset at a given time.
#[derive(Debug, Clone, PartialEq)]
struct Zone {
    /// Transition times, ascending, in Unix seconds.
    transitions: Vec<i64>,
    /// For each transition, the index of the local time type that starts there.
    indices: Vec<u8>,
    types: Vec<LocalTime>,
    /// The footer's rule when it is a fixed offset; `None` when absent or with DST rules.
    footer: Option<LocalTime>,
    /// Whether the file has a footer at all.
    has_footer: bool,
}

impl Zone {
    fn utc() -> Zone {
        Zone {
            transitions: Vec::new(),
            indices: Vec::new(),
            types: vec![LocalTime {
                offset: 0,
                abbreviation: "UTC".to_owned(),
            }],
            footer: None,
            has_footer: false,
        }
    }

    /// The local time type at `now`, or `None` when only an unevaluated DST rule knows it.
    fn at(&self, now: i64) -> Option<&LocalTime> {
        let after_last = self.transitions.last().is_none_or(|&last| now >= last);
        if after_last && self.has_footer {
            return self.footer.as_ref();
        }
        let index = match self.transitions.partition_point(|&t| t <= now) {
            // Before the first transition, type 0 applies.
            0 => 0,
            n => usize::from(*self.indices.get(n - 1)?),
        };
        self.types.get(index)
    }

    /// Parses TZif version 1 to 4 data; `None` if it is not valid TZif.
    fn try_from_tzif(data: &[u8]) -> Option<Zone> {
        let first = Header::parse(data)?;
        if first.version == 0 {
            return first.zone(data.get(Header::LEN..)?, 4);
        }
        // Version 2+: skip the 32-bit block, use the 64-bit one and its footer.
        let second_start = Header::LEN + first.block_len(4);
        let second = Header::parse(data.get(second_start..)?)?;
        let body = data.get(second_start + Header::LEN..)?;
        let mut zone = second.zone(body, 8)?;
        let footer = body.get(second.block_len(8)..)?;
        let footer = footer.strip_prefix(b"\n")?;
        let end = footer.iter().position(|&b| b == b'\n')?;
        let rule = std::str::from_utf8(&footer[..end]).ok()?;
        zone.has_footer = !rule.is_empty();
        zone.footer = parse_fixed_rule(rule);
        Some(zone)
    }
}

/// A TZif header: version and the six counts.
struct Header {
    version: u8,
    isutcnt: usize,
    isstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

impl Header {
    const LEN: usize = 44;

    fn parse(data: &[u8]) -> Option<Header> {
        if data.len() < Self::LEN || &data[..4] != b"TZif" {
            return None;
        }
        let count = |i: usize| -> Option<usize> {
            let bytes: [u8; 4] = data.get(20 + 4 * i..24 + 4 * i)?.try_into().ok()?;
            usize::try_from(u32::from_be_bytes(bytes)).ok()
        };
        Some(Header {
            version: match data[4] {
                0 => 0,
                v => v.wrapping_sub(b'0'),
            },
            isutcnt: count(0)?,
            isstdcnt: count(1)?,
            leapcnt: count(2)?,
            timecnt: count(3)?,
            typecnt: count(4)?,
            charcnt: count(5)?,
        })
    }

    /// The length of the data block after this header, with `time_size`-byte times.
    fn block_len(&self, time_size: usize) -> usize {
        self.timecnt * time_size
            + self.timecnt
            + self.typecnt * 6
            + self.charcnt
            + self.leapcnt * (time_size + 4)
            + self.isstdcnt
            + self.isutcnt
    }

    fn zone(&self, body: &[u8], time_size: usize) -> Option<Zone> {
        let mut at = 0;
        let mut take = |len: usize| -> Option<&[u8]> {
            let slice = body.get(at..at + len)?;
            at += len;
            Some(slice)
        };
        let times = take(self.timecnt * time_size)?;
        let transitions = times
            .chunks_exact(time_size)
            .map(|chunk| match time_size {
                8 => chunk.try_into().map(i64::from_be_bytes).unwrap_or(0),
                _ => chunk
                    .try_into()
                    .map(|b| i64::from(i32::from_be_bytes(b)))
                    .unwrap_or(0),
            })
            .collect();
        let indices = take(self.timecnt)?.to_vec();
        let infos = take(self.typecnt * 6)?;
        let chars = take(self.charcnt)?;
        let types = infos
            .chunks_exact(6)
            .map(|info| {
                let offset = i32::from_be_bytes([info[0], info[1], info[2], info[3]]);
                let start = usize::from(info[5]);
                let rest = chars.get(start..).unwrap_or_default();
                let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
                LocalTime {
                    offset,
                    abbreviation: String::from_utf8_lossy(&rest[..end]).into_owned(),
                }
            })
            .collect::<Vec<_>>();
        if types.is_empty() || indices.iter().any(|&i| usize::from(i) >= types.len()) {
            return None;
        }
        Some(Zone {
            transitions,
            indices,
            types,
            footer: None,
            has_footer: false,
        })
    }
}

/// A POSIX TZ rule without daylight saving (`UTC0`, `<+0530>-5:30`, `IST-5:30`); `None` for
/// anything else.
fn parse_fixed_rule(rule: &str) -> Option<LocalTime> {
    let (name, rest) = if let Some(quoted) = rule.strip_prefix('<') {
        quoted.split_once('>')?
    } else {
        let end = rule
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rule.len());
        rule.split_at(end)
    };
    if name.len() < 3 {
        return None;
    }
    let (sign, digits) = match rest.as_bytes().first() {
        Some(b'-') => (1, &rest[1..]),
        Some(b'+') => (-1, &rest[1..]),
        _ => (-1, rest),
    };
    // Hours up to 167 (RFC 8536's extension of POSIX's 24), minutes and seconds below 60, so
    // the sum fits an `i32` whatever the file says.
    let mut seconds = 0i32;
    for (i, part) in digits.split(':').enumerate() {
        let value: i32 = part.parse().ok()?;
        let (limit, unit) = [(168, 3600), (60, 60), (60, 1)].get(i)?;
        if !(0..*limit).contains(&value) {
            return None;
        }
        seconds += value * unit;
    }
    // POSIX offsets count west of Greenwich: `IST-5:30` is UTC+5:30.
    Some(LocalTime {
        offset: sign * seconds,
        abbreviation: name.to_owned(),
    })
}

/// The fuzz driver's entry (`host::fuzzing`): the bytes as TZif data (and the local time now
/// and at the extremes), and as a POSIX TZ rule.
pub(super) fn fuzz(data: &[u8]) -> Result<Vec<Family>, String> {
    let rule = parse_fixed_rule(&String::from_utf8_lossy(data));
    let zone = Zone::try_from_tzif(data).ok_or("not TZif")?;
    for now in [i64::MIN, -1, 0, 1_700_000_000, i64::MAX] {
        let _ = zone.at(now);
    }
    Ok(rule.map(|_| Vec::new()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> Zone {
        let path = format!(
            "{}/src/collect/host/fixtures/zoneinfo/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let data = std::fs::read(path).expect("fixture");
        Zone::try_from_tzif(&data).expect("valid TZif")
    }

    fn local(zone: &Zone, now: i64) -> Option<(i32, &str)> {
        zone.at(now).map(|l| (l.offset, l.abbreviation.as_str()))
    }

    /// 2026-01-15T00:00:00Z and 2026-07-15T00:00:00Z.
    const WINTER: i64 = 1_768_435_200;
    const SUMMER: i64 = 1_784_073_600;

    #[test]
    fn berlin_switches_between_cet_and_cest() {
        let berlin = zone("Berlin");
        assert_eq!(local(&berlin, WINTER), Some((3600, "CET")));
        assert_eq!(local(&berlin, SUMMER), Some((7200, "CEST")));
        // Before standard time (1893) the first type, local mean time, applies.
        assert_eq!(local(&berlin, -3_000_000_000), Some((3208, "LMT")));
        // After the last fat transition (2037) only the DST rule knows: no guess.
        assert_eq!(local(&berlin, 2_500_000_000), None);
    }

    #[test]
    fn fixed_zones() {
        assert_eq!(local(&zone("Kolkata"), SUMMER), Some((19800, "IST")));
        assert_eq!(local(&zone("Kolkata"), 4_000_000_000), Some((19800, "IST")));
        assert_eq!(local(&zone("UTC"), SUMMER), Some((0, "UTC")));
        assert_eq!(local(&Zone::utc(), SUMMER), Some((0, "UTC")));
    }

    #[test]
    fn posix_rules() {
        let rule = |r: &str| parse_fixed_rule(r).map(|l| (l.offset, l.abbreviation));
        assert_eq!(rule("UTC0"), Some((0, "UTC".to_owned())));
        assert_eq!(rule("IST-5:30"), Some((19800, "IST".to_owned())));
        assert_eq!(rule("<-03>3"), Some((-10800, "-03".to_owned())));
        assert_eq!(rule("EST5EDT,M3.2.0,M11.1.0"), None);
        assert_eq!(rule("CET-1CEST,M3.5.0,M10.5.0/3"), None);
    }

    /// Found by fuzzing: an offset too large for `i32` seconds overflowed (a panic in debug
    /// builds, a wrong offset in release ones).
    #[test]
    fn out_of_range_offsets_are_not_rules() {
        let rule = |r: &str| parse_fixed_rule(r).map(|l| (l.offset, l.abbreviation));
        assert_eq!(rule("<+0530>--2147483648:30"), None);
        assert_eq!(rule("ABC-99999999"), None);
        assert_eq!(rule("ABC596524"), None);
        assert_eq!(rule("ABC1:-5"), None);
        assert_eq!(rule("ABC1:60"), None);
        // RFC 8536's extension allows hours up to 167.
        assert_eq!(rule("<+167>-167"), Some((167 * 3600, "+167".to_owned())));
        assert_eq!(rule("ABC168"), None);
    }

    #[test]
    fn garbage_is_not_a_zone() {
        assert_eq!(Zone::try_from_tzif(b"not a zone file"), None);
        let mut data = std::fs::read(format!(
            "{}/src/collect/host/fixtures/zoneinfo/Berlin",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture");
        data.truncate(500);
        assert_eq!(Zone::try_from_tzif(&data), None);
    }

    #[tokio::test]
    async fn reports_time_and_a_zone() {
        let time = Time::new(Duration::from_secs(1));
        let families = time.collect().expect("collects");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        assert_eq!(families[0].name, "node_time_seconds");
        assert!((families[0].samples[0].value - now).abs() < 5.0);
        // This machine's zone loads (fat zone files, or UTC).
        assert_eq!(families.len(), 2);
        assert_eq!(families[1].samples[0].labels[0].0, "time_zone");
    }
}
