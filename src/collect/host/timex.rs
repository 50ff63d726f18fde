//! `timex`: the kernel clock's discipline state from `adjtimex(2)` (read-only, no privilege),
//! named and scaled as node_exporter 1.5's `timex.go`: `node_timex_offset_seconds` and
//! `node_timex_pps_jitter_seconds` in nanoseconds or microseconds as `STA_NANO` says,
//! frequencies in ppm with a 16-bit fraction (`node_timex_frequency_adjustment_ratio` is
//! `1 + freq / 65536e6`), errors and the tick in microseconds, `node_timex_sync_status` 0 when
//! the call returns `TIME_ERROR`. The PPS counts are counters.
//!
//! The one unsafe call is in the `adjtimex` workspace crate; [`families`] is pure.

use std::time::Duration;

use adjtimex::{STA_NANO, TIME_ERROR, Timex};

use crate::collect::{BlockingCollector, Error, Family};

/// ppm with a 16-bit fraction, per unit ratio (adjtimex(2), NOTES).
const PPM16FRAC: f64 = 1_000_000.0 * 65536.0;

/// The `timex` collector.
pub(super) struct TimexCollector {
    timeout: Duration,
}

impl TimexCollector {
    /// A `timex` collector.
    pub(super) fn new(timeout: Duration) -> Self {
        TimexCollector { timeout }
    }
}

impl BlockingCollector for TimexCollector {
    fn name(&self) -> &str {
        "timex"
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn collect(&self) -> Result<Vec<Family>, Error> {
        match adjtimex::read() {
            Ok(timex) => Ok(families(&timex)),
            // node_exporter reports no data when denied (a seccomp filter, say).
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                tracing::debug!(%err, "adjtimex denied: no timex metrics");
                Ok(Vec::new())
            }
            Err(source) => Err(Error::Read {
                path: "adjtimex(2)".to_owned(),
                source,
            }),
        }
    }
}

/// The families for one reading, in node_exporter's order.
pub(super) fn families(timex: &Timex) -> Vec<Family> {
    let divisor = if timex.status & STA_NANO != 0 {
        1e9
    } else {
        1e6
    };
    let gauge = |name: &'static str, help: &'static str, value: f64| {
        Family::single_gauge(name, help, value)
    };
    let counter = |name: &'static str, help: &'static str, value: i64| {
        let mut family = Family::counter(name, help);
        family.push_unlabelled(value as f64);
        family
    };
    vec![
        gauge(
            "node_timex_sync_status",
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
            if timex.state == TIME_ERROR { 0.0 } else { 1.0 },
        ),
        gauge(
            "node_timex_offset_seconds",
            "Time offset in between local system and reference clock.",
            timex.offset as f64 / divisor,
        ),
        gauge(
            "node_timex_frequency_adjustment_ratio",
            "Local clock frequency adjustment.",
            1.0 + timex.freq as f64 / PPM16FRAC,
        ),
        gauge(
            "node_timex_maxerror_seconds",
            "Maximum error in seconds.",
            timex.maxerror as f64 / 1e6,
        ),
        gauge(
            "node_timex_estimated_error_seconds",
            "Estimated error in seconds.",
            timex.esterror as f64 / 1e6,
        ),
        gauge(
            "node_timex_status",
            "Value of the status array bits.",
            timex.status as f64,
        ),
        gauge(
            "node_timex_loop_time_constant",
            "Phase-locked loop time constant.",
            timex.constant as f64,
        ),
        gauge(
            "node_timex_tick_seconds",
            "Seconds between clock ticks.",
            timex.tick as f64 / 1e6,
        ),
        gauge(
            "node_timex_pps_frequency_hertz",
            "Pulse per second frequency.",
            timex.ppsfreq as f64 / PPM16FRAC,
        ),
        gauge(
            "node_timex_pps_jitter_seconds",
            "Pulse per second jitter.",
            timex.jitter as f64 / divisor,
        ),
        gauge(
            "node_timex_pps_shift_seconds",
            "Pulse per second interval duration.",
            timex.shift as f64,
        ),
        gauge(
            "node_timex_pps_stability_hertz",
            "Pulse per second stability, average of recent frequency changes.",
            timex.stabil as f64 / PPM16FRAC,
        ),
        counter(
            "node_timex_pps_jitter_total",
            "Pulse per second count of jitter limit exceeded events.",
            timex.jitcnt,
        ),
        counter(
            "node_timex_pps_calibration_total",
            "Pulse per second count of calibration intervals.",
            timex.calcnt,
        ),
        counter(
            "node_timex_pps_error_total",
            "Pulse per second count of calibration errors.",
            timex.errcnt,
        ),
        counter(
            "node_timex_pps_stability_exceeded_total",
            "Pulse per second count of stability limit exceeded events.",
            timex.stbcnt,
        ),
        gauge(
            "node_timex_tai_offset_seconds",
            "International Atomic Time (TAI) offset.",
            timex.tai as f64,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::family::Kind;

    fn value(families: &[Family], name: &str) -> f64 {
        let family = families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        family.value(&[]).unwrap_or_else(|| panic!("{name} empty"))
    }

    /// An NTP-synchronized clock (chrony's usual reading) in microsecond mode.
    fn synchronized() -> Timex {
        Timex {
            state: 0,
            offset: -1234,
            freq: -1_310_720, // -20 ppm
            maxerror: 16_500,
            esterror: 250,
            status: 0x2001, // STA_PLL | STA_NANO, overridden per test
            constant: 7,
            precision: 1,
            tolerance: 32_768_000,
            tick: 10_000,
            ppsfreq: 65_536,
            jitter: 2_000,
            shift: 2,
            stabil: 131_072,
            jitcnt: 3,
            calcnt: 4,
            errcnt: 5,
            stbcnt: 6,
            tai: 37,
        }
    }

    #[test]
    fn converts_a_microsecond_mode_reading() {
        let timex = Timex {
            status: 0x0001,
            ..synchronized()
        };
        let families = families(&timex);
        assert_eq!(families.len(), 17);
        assert_eq!(value(&families, "node_timex_sync_status"), 1.0);
        assert_eq!(value(&families, "node_timex_offset_seconds"), -0.001234);
        assert_eq!(
            value(&families, "node_timex_frequency_adjustment_ratio"),
            1.0 - 20e-6
        );
        assert_eq!(value(&families, "node_timex_maxerror_seconds"), 0.0165);
        assert_eq!(
            value(&families, "node_timex_estimated_error_seconds"),
            0.00025
        );
        assert_eq!(value(&families, "node_timex_status"), 1.0);
        assert_eq!(value(&families, "node_timex_loop_time_constant"), 7.0);
        assert_eq!(value(&families, "node_timex_tick_seconds"), 0.01);
        assert_eq!(value(&families, "node_timex_pps_frequency_hertz"), 1e-6);
        assert_eq!(value(&families, "node_timex_pps_jitter_seconds"), 0.002);
        assert_eq!(value(&families, "node_timex_pps_shift_seconds"), 2.0);
        assert_eq!(value(&families, "node_timex_pps_stability_hertz"), 2e-6);
        assert_eq!(value(&families, "node_timex_pps_jitter_total"), 3.0);
        assert_eq!(value(&families, "node_timex_pps_calibration_total"), 4.0);
        assert_eq!(value(&families, "node_timex_pps_error_total"), 5.0);
        assert_eq!(
            value(&families, "node_timex_pps_stability_exceeded_total"),
            6.0
        );
        assert_eq!(value(&families, "node_timex_tai_offset_seconds"), 37.0);
        for family in &families {
            let counter = family.name.ends_with("_total");
            assert_eq!(family.kind == Kind::Counter, counter, "{}", family.name);
            assert!(counter || family.kind == Kind::Gauge, "{}", family.name);
        }
    }

    #[test]
    fn nanosecond_mode_scales_offset_and_jitter_only() {
        let families = families(&synchronized());
        assert_eq!(value(&families, "node_timex_status"), 8193.0);
        assert_eq!(value(&families, "node_timex_offset_seconds"), -1.234e-6);
        assert_eq!(value(&families, "node_timex_pps_jitter_seconds"), 2e-6);
        // The errors and the tick are microseconds in both modes.
        assert_eq!(value(&families, "node_timex_maxerror_seconds"), 0.0165);
        assert_eq!(value(&families, "node_timex_tick_seconds"), 0.01);
    }

    #[test]
    fn an_unsynchronized_clock_has_sync_status_zero() {
        for (state, synced) in [(0, 1.0), (1, 1.0), (4, 1.0), (TIME_ERROR, 0.0)] {
            let timex = Timex {
                state,
                ..Timex::default()
            };
            let families = families(&timex);
            assert_eq!(value(&families, "node_timex_sync_status"), synced);
            // All-zero fields: frequency ratio exactly 1.
            assert_eq!(
                value(&families, "node_timex_frequency_adjustment_ratio"),
                1.0
            );
        }
    }

    #[test]
    fn extreme_values_do_not_panic() {
        let timex = Timex {
            state: i32::MIN,
            offset: i64::MIN,
            freq: i64::MAX,
            status: -1,
            ..Timex::default()
        };
        assert_eq!(families(&timex).len(), 17);
    }

    #[test]
    fn reads_this_machine() {
        let families = TimexCollector::new(Duration::from_secs(1))
            .collect()
            .expect("adjtimex reads");
        assert_eq!(families.len(), 17);
        assert!(value(&families, "node_timex_tick_seconds") > 0.0);
    }
}
