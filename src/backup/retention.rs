//! Which backups a retention policy keeps.
//!
//! This module owns the pure decision of which finished backups survive an
//! expiry run; it never touches storage, so the caller can log, dry-run or
//! apply a plan. The rules are modelled on restic `forget` and pgBackRest
//! expire:
//!
//! - Backups are ordered by their `finished` time only, newest first (ties:
//!   id descending), never by id or file name, so renamed or oddly named
//!   backups cannot change what is kept.
//! - Only verified backups count toward any rule. An unverified backup (its
//!   last verification failed) is deleted ([`Reason::NotVerified`]) once a
//!   verified backup finished after it; until then it is kept
//!   ([`Reason::UnverifiedKept`]), so that a verification that wrongly fails
//!   every backup (a tool missing, a disk hiccup) can never empty the
//!   destination, and the operator can still inspect the newest copy.
//! - A backup finished more than five minutes after `now` is future-dated: it
//!   is kept ([`Reason::FutureDated`]) for a person to look at, but counts
//!   toward no rule, so a planted or clock-skewed backup cannot push real ones
//!   out of `keep_last` or the calendar buckets.
//! - The newest verified, non-future backup is always kept
//!   ([`Reason::NewestVerified`]) whatever the policy says, and it also counts
//!   toward the rules as usual. A policy can therefore never leave a host
//!   without a restorable backup.
//! - The newest counted backup whose last restore drill passed is kept too
//!   ([`Reason::NewestDrilled`]): a newer backup that failed its drill (or was
//!   never drilled) cannot push out the last one shown to restore.
//! - An empty policy (no rule set) keeps every verified backup
//!   ([`Reason::NoPolicy`]).
//! - `keep_last N` keeps the N newest. `keep_within D` keeps those finished at
//!   or after `now - D`. `keep_daily`, `keep_weekly` and `keep_monthly N`
//!   walk the backups newest first and keep the newest one of each distinct
//!   UTC calendar day, ISO week (ISO year and week number) or month until N
//!   periods have been kept; periods without backups do not count, as in
//!   restic. A rule set to 0 keeps nothing by itself but still makes the
//!   policy non-empty.
//! - A backup kept by several rules lists every reason. A verified backup no
//!   rule keeps is deleted with [`Reason::OutsidePolicy`].

use std::time::Duration;

use chrono::{DateTime, Datelike, TimeDelta, Utc};

/// How far past `now` a backup may have finished before it is future-dated.
const FUTURE_TOLERANCE: TimeDelta = TimeDelta::minutes(5);

/// A retention policy; every rule that is set keeps backups on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Keep this many of the newest backups.
    pub keep_last: Option<u32>,
    /// Keep every backup finished within this long before now.
    pub keep_within: Option<Duration>,
    /// Keep the newest backup of each of this many most recent days with backups.
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of this many most recent ISO weeks with backups.
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of this many most recent months with backups.
    pub keep_monthly: Option<u32>,
}

impl Policy {
    /// True when no rule is set, which means keep every verified backup.
    pub fn is_empty(&self) -> bool {
        self.keep_last.is_none()
            && self.keep_within.is_none()
            && self.keep_daily.is_none()
            && self.keep_weekly.is_none()
            && self.keep_monthly.is_none()
    }
}

/// A finished backup considered for retention.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The backup's id, used in decisions and to break ties.
    pub id: String,
    /// When the backup finished; the only ordering key.
    pub finished: DateTime<Utc>,
    /// Whether the backup passed verification.
    pub verified: bool,
    /// Whether its last restore drill passed.
    pub drilled: bool,
}

/// Why a backup is kept or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Kept: the policy is empty.
    NoPolicy,
    /// Kept: the newest verified backup, kept whatever the policy.
    NewestVerified,
    /// Kept: the newest verified backup whose last restore drill passed, kept whatever the
    /// policy.
    NewestDrilled,
    /// Kept by `keep_last`.
    Last,
    /// Kept by `keep_within`.
    Within,
    /// Kept by `keep_daily`.
    Daily,
    /// Kept by `keep_weekly`.
    Weekly,
    /// Kept by `keep_monthly`.
    Monthly,
    /// Kept but not counted: finished more than five minutes in the future.
    FutureDated,
    /// Deleted: the backup failed verification.
    NotVerified,
    /// Not verified, but no verified backup finished after it, so it is kept.
    UnverifiedKept,
    /// Deleted: no rule keeps it.
    OutsidePolicy,
    /// Kept: a kept incremental backup is restored through it.
    Needed,
}

impl Reason {
    /// Short human-readable label for logs and API output.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoPolicy => "no policy",
            Reason::NewestVerified => "newest verified",
            Reason::NewestDrilled => "newest drilled",
            Reason::Last => "last N",
            Reason::Within => "within",
            Reason::Daily => "daily",
            Reason::Weekly => "weekly",
            Reason::Monthly => "monthly",
            Reason::FutureDated => "future-dated",
            Reason::NotVerified => "not verified",
            Reason::UnverifiedKept => "kept: no newer verified backup",
            Reason::OutsidePolicy => "outside policy",
            Reason::Needed => "needed by a kept incremental",
        }
    }
}

/// What happens to one candidate.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The candidate's id.
    pub id: String,
    /// The candidate's finish time.
    pub finished: DateTime<Utc>,
    /// Whether the backup is kept.
    pub keep: bool,
    /// Every reason that applies, in rule order; never empty.
    pub reasons: Vec<Reason>,
}

/// Keeps every parent of a kept backup, whatever decided otherwise: an incremental backup is
/// only restorable with its whole chain. `parent_of` gives a backup's parent id, if it has one.
pub fn keep_parents(decisions: &mut [Decision], parent_of: impl Fn(&str) -> Option<String>) {
    let kept: Vec<String> = decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.id.clone())
        .collect();
    for id in kept {
        let mut next = parent_of(&id);
        // Bounded by the number of decisions, so a loop of parents ends.
        for _ in 0..decisions.len() {
            let Some(parent) = next else { break };
            let Some(decision) = decisions.iter_mut().find(|d| d.id == parent) else {
                break;
            };
            if !decision.reasons.contains(&Reason::Needed) {
                if !decision.keep {
                    decision.reasons.clear();
                }
                decision.keep = true;
                decision.reasons.push(Reason::Needed);
            }
            next = parent_of(&parent);
        }
    }
}

/// Decides, for every candidate, whether `policy` keeps it at `now`.
///
/// Returns one decision per candidate, newest first (see the module doc for
/// the rules).
pub fn plan(candidates: &[Candidate], policy: &Policy, now: DateTime<Utc>) -> Vec<Decision> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| b.finished.cmp(&a.finished).then_with(|| b.id.cmp(&a.id)));

    let future_after = now.checked_add_signed(FUTURE_TOLERANCE);
    let mut decisions: Vec<Decision> = sorted
        .iter()
        .map(|c| Decision {
            id: c.id.clone(),
            finished: c.finished,
            keep: false,
            reasons: Vec::new(),
        })
        .collect();

    // Indices (into `sorted`) of the candidates the rules count, newest first.
    let mut counted = Vec::new();
    for (i, candidate) in sorted.iter().enumerate() {
        if !candidate.verified {
            decisions[i].reasons.push(Reason::NotVerified);
        } else if future_after.is_some_and(|limit| candidate.finished > limit) {
            decisions[i].keep = true;
            decisions[i].reasons.push(Reason::FutureDated);
        } else {
            counted.push(i);
        }
    }

    let mut keep = |i: usize, reason: Reason| {
        decisions[i].keep = true;
        decisions[i].reasons.push(reason);
    };
    // An unverified backup goes only once a verified one is newer (earlier in `sorted`).
    for (i, candidate) in sorted.iter().enumerate() {
        if !candidate.verified && counted.first().is_none_or(|&newest| newest > i) {
            keep(i, Reason::UnverifiedKept);
        }
    }
    if let Some(&newest) = counted.first() {
        keep(newest, Reason::NewestVerified);
    }
    if let Some(&drilled) = counted.iter().find(|&&i| sorted[i].drilled) {
        keep(drilled, Reason::NewestDrilled);
    }
    if policy.is_empty() {
        for &i in &counted {
            keep(i, Reason::NoPolicy);
        }
    } else {
        if let Some(n) = policy.keep_last {
            for &i in counted.iter().take(to_count(n)) {
                keep(i, Reason::Last);
            }
        }
        if let Some(within) = policy.keep_within {
            // A window too large to represent reaches back to the beginning of time.
            let since = TimeDelta::from_std(within)
                .ok()
                .and_then(|window| now.checked_sub_signed(window));
            for &i in &counted {
                if since.is_none_or(|since| sorted[i].finished >= since) {
                    keep(i, Reason::Within);
                }
            }
        }
        let buckets = [
            (policy.keep_daily, Reason::Daily, Period::Day),
            (policy.keep_weekly, Reason::Weekly, Period::IsoWeek),
            (policy.keep_monthly, Reason::Monthly, Period::Month),
        ];
        for (limit, reason, period) in buckets {
            let Some(limit) = limit else { continue };
            let mut kept = 0;
            let mut last_period = None;
            for &i in &counted {
                if kept >= to_count(limit) {
                    break;
                }
                let this = period.of(&sorted[i].finished);
                // Sorted newest first, so each period's backups are adjacent
                // and the first one seen is the newest.
                if last_period != Some(this) {
                    last_period = Some(this);
                    keep(i, reason);
                    kept += 1;
                }
            }
        }
    }

    for decision in &mut decisions {
        if decision.reasons.is_empty() {
            decision.reasons.push(Reason::OutsidePolicy);
        }
    }
    decisions
}

/// Calendar periods of the bucket rules, all in UTC.
#[derive(Clone, Copy)]
enum Period {
    Day,
    IsoWeek,
    Month,
}

impl Period {
    /// A key equal for two times exactly when they fall in the same period.
    fn of(self, t: &DateTime<Utc>) -> (i32, u32) {
        match self {
            Period::Day => (t.year(), t.ordinal()),
            Period::IsoWeek => {
                let week = t.iso_week();
                (week.year(), week.week())
            }
            Period::Month => (t.year(), t.month()),
        }
    }
}

fn to_count(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn ok(id: &str, finished: DateTime<Utc>) -> Candidate {
        Candidate {
            id: id.to_owned(),
            finished,
            verified: true,
            drilled: false,
        }
    }

    fn drilled(id: &str, finished: DateTime<Utc>) -> Candidate {
        Candidate {
            drilled: true,
            ..ok(id, finished)
        }
    }

    /// A newer backup that failed its drill does not push out the one that passed, whatever
    /// `keep_last` says; that one counts toward the rules as usual.
    #[test]
    fn the_newest_backup_that_passed_a_drill_is_kept() {
        let now = at(2026, 5, 10, 12);
        let candidates = [
            drilled("a", at(2026, 5, 1, 0)),
            drilled("b", at(2026, 5, 2, 0)),
            ok("c", at(2026, 5, 3, 0)),
        ];
        let policy = Policy {
            keep_last: Some(1),
            ..Policy::default()
        };
        assert_eq!(
            summary(&plan(&candidates, &policy, now)),
            [
                ("c", true, vec![NewestVerified, Last]),
                ("b", true, vec![NewestDrilled]),
                ("a", false, vec![OutsidePolicy]),
            ]
        );
    }

    fn failed(id: &str, finished: DateTime<Utc>) -> Candidate {
        Candidate {
            verified: false,
            ..ok(id, finished)
        }
    }

    /// (id, keep, reasons) per decision, for compact assertions.
    fn summary(decisions: &[Decision]) -> Vec<(&str, bool, Vec<Reason>)> {
        decisions
            .iter()
            .map(|d| (d.id.as_str(), d.keep, d.reasons.clone()))
            .collect()
    }

    fn kept(decisions: &[Decision]) -> Vec<&str> {
        decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.id.as_str())
            .collect()
    }

    use Reason::*;

    #[test]
    fn every_parent_of_a_kept_backup_is_kept() {
        // f1 <- i1 <- i2, f2 <- i3; the policy kept i2 and f2 only.
        let parents = [("i1", "f1"), ("i2", "i1"), ("i3", "f2")];
        let decision = |id: &str, keep| Decision {
            id: id.to_owned(),
            finished: at(2026, 1, 1, 0),
            keep,
            reasons: vec![if keep { Last } else { OutsidePolicy }],
        };
        let mut decisions = vec![
            decision("i3", false),
            decision("f2", true),
            decision("i2", true),
            decision("i1", false),
            decision("f1", false),
        ];
        keep_parents(&mut decisions, |id| {
            parents
                .iter()
                .find(|(child, _)| *child == id)
                .map(|(_, parent)| (*parent).to_owned())
        });
        assert_eq!(
            summary(&decisions),
            vec![
                ("i3", false, vec![OutsidePolicy]),
                ("f2", true, vec![Last]),
                ("i2", true, vec![Last]),
                ("i1", true, vec![Needed]),
                ("f1", true, vec![Needed]),
            ]
        );
        // A loop of parents ends.
        let mut looped = vec![decision("a", true), decision("b", false)];
        keep_parents(&mut looped, |id| {
            Some(if id == "a" { "b" } else { "a" }.to_owned())
        });
        assert!(looped.iter().all(|d| d.keep));
    }

    #[test]
    fn empty_policy_keeps_every_verified_backup() {
        let now = at(2026, 5, 10, 12);
        let candidates = [
            ok("a", at(2026, 5, 1, 0)),
            failed("b", at(2026, 5, 2, 0)),
            ok("c", at(2026, 5, 3, 0)),
        ];
        let policy = Policy::default();
        assert!(policy.is_empty());
        assert_eq!(
            summary(&plan(&candidates, &policy, now)),
            [
                ("c", true, vec![NewestVerified, NoPolicy]),
                ("b", false, vec![NotVerified]),
                ("a", true, vec![NoPolicy]),
            ]
        );
        assert!(plan(&[], &policy, now).is_empty());
    }

    #[test]
    fn keep_last_keeps_the_newest_by_finish_time_not_id() {
        let now = at(2026, 5, 10, 12);
        let candidates = [
            ok("z-oldest", at(2026, 5, 1, 0)),
            ok("a-newest", at(2026, 5, 4, 0)),
            ok("m-middle", at(2026, 5, 3, 0)),
            ok("b-old", at(2026, 5, 2, 0)),
        ];
        let policy = Policy {
            keep_last: Some(2),
            ..Policy::default()
        };
        assert!(!policy.is_empty());
        assert_eq!(
            summary(&plan(&candidates, &policy, now)),
            [
                ("a-newest", true, vec![NewestVerified, Last]),
                ("m-middle", true, vec![Last]),
                ("b-old", false, vec![OutsidePolicy]),
                ("z-oldest", false, vec![OutsidePolicy]),
            ]
        );
    }

    #[test]
    fn ties_on_finish_time_break_by_id_descending() {
        let now = at(2026, 5, 10, 12);
        let t = at(2026, 5, 9, 0);
        let candidates = [ok("a", t), ok("c", t), ok("b", t)];
        let policy = Policy {
            keep_last: Some(2),
            ..Policy::default()
        };
        assert_eq!(
            summary(&plan(&candidates, &policy, now)),
            [
                ("c", true, vec![NewestVerified, Last]),
                ("b", true, vec![Last]),
                ("a", false, vec![OutsidePolicy]),
            ]
        );
    }

    #[test]
    fn keep_within_is_inclusive_of_the_boundary() {
        let now = at(2026, 5, 10, 12);
        let candidates = [
            ok("edge", now - TimeDelta::days(2)),
            ok("just-out", now - TimeDelta::days(2) - TimeDelta::seconds(1)),
            ok("recent", now - TimeDelta::hours(1)),
        ];
        let policy = Policy {
            keep_within: Some(Duration::from_secs(2 * 86_400)),
            ..Policy::default()
        };
        assert_eq!(
            summary(&plan(&candidates, &policy, now)),
            [
                ("recent", true, vec![NewestVerified, Within]),
                ("edge", true, vec![Within]),
                ("just-out", false, vec![OutsidePolicy]),
            ]
        );
        let huge = Policy {
            keep_within: Some(Duration::from_secs(u64::MAX)),
            ..Policy::default()
        };
        assert_eq!(kept(&plan(&candidates, &huge, now)).len(), 3);
    }

    #[test]
    fn keep_daily_keeps_newest_per_day_and_skips_empty_days() {
        let now = at(2026, 5, 10, 23);
        let candidates = [
            ok("d10-late", at(2026, 5, 10, 20)),
            ok("d10-early", at(2026, 5, 10, 1)),
            ok("d8-late", at(2026, 5, 8, 22)),
            ok("d8-early", at(2026, 5, 8, 2)),
            // 2026-05-07 and earlier days are empty until the 5th.
            ok("d5", at(2026, 5, 5, 12)),
            ok("d4", at(2026, 5, 4, 12)),
        ];
        let policy = Policy {
            keep_daily: Some(3),
            ..Policy::default()
        };
        assert_eq!(
            kept(&plan(&candidates, &policy, now)),
            ["d10-late", "d8-late", "d5"]
        );
    }

    #[test]
    fn days_are_utc_calendar_days() {
        let now = at(2026, 5, 11, 12);
        let candidates = [
            ok(
                "after-midnight",
                Utc.with_ymd_and_hms(2026, 5, 11, 0, 0, 1).unwrap(),
            ),
            ok(
                "before-midnight",
                Utc.with_ymd_and_hms(2026, 5, 10, 23, 59, 59).unwrap(),
            ),
        ];
        let policy = Policy {
            keep_daily: Some(2),
            ..Policy::default()
        };
        assert_eq!(
            kept(&plan(&candidates, &policy, now)),
            ["after-midnight", "before-midnight"]
        );
    }

    #[test]
    fn keep_weekly_uses_iso_weeks_across_the_year_boundary() {
        // 2026 starts on a Thursday, so it has an ISO week 53 running from
        // Monday 2026-12-28 to Sunday 2027-01-03.
        assert_eq!(at(2026, 12, 31, 0).iso_week(), at(2027, 1, 1, 0).iso_week());
        assert_eq!(at(2027, 1, 1, 0).iso_week().year(), 2026);
        assert_eq!(at(2027, 1, 1, 0).iso_week().week(), 53);
        assert_eq!(at(2027, 1, 4, 0).iso_week().week(), 1);
        let now = at(2027, 1, 5, 0);
        let candidates = [
            ok("w01", at(2027, 1, 4, 6)),
            ok("w53-fri", at(2027, 1, 1, 6)),
            ok("w53-thu", at(2026, 12, 31, 6)),
            ok("w53-mon", at(2026, 12, 28, 6)),
            ok("w52", at(2026, 12, 27, 6)),
            ok("w51", at(2026, 12, 15, 6)),
        ];
        let policy = Policy {
            keep_weekly: Some(3),
            ..Policy::default()
        };
        assert_eq!(
            kept(&plan(&candidates, &policy, now)),
            ["w01", "w53-fri", "w52"]
        );
    }

    #[test]
    fn keep_monthly_across_the_year_boundary() {
        let now = at(2027, 2, 1, 0);
        let candidates = [
            ok("jan-10", at(2027, 1, 10, 0)),
            ok("dec-15", at(2026, 12, 15, 0)),
            ok("dec-01", at(2026, 12, 1, 0)),
            ok("nov-30", at(2026, 11, 30, 0)),
            ok("jan-last-year", at(2026, 1, 20, 0)),
        ];
        let policy = Policy {
            keep_monthly: Some(2),
            ..Policy::default()
        };
        assert_eq!(
            summary(&plan(&candidates, &policy, now)),
            [
                ("jan-10", true, vec![NewestVerified, Monthly]),
                ("dec-15", true, vec![Monthly]),
                ("dec-01", false, vec![OutsidePolicy]),
                ("nov-30", false, vec![OutsidePolicy]),
                ("jan-last-year", false, vec![OutsidePolicy]),
            ]
        );
        // The same month number in another year is another month.
        let policy = Policy {
            keep_monthly: Some(12),
            ..Policy::default()
        };
        assert_eq!(
            kept(&plan(&candidates, &policy, now)),
            ["jan-10", "dec-15", "nov-30", "jan-last-year"]
        );
    }

    #[test]
    fn rules_combine_and_list_every_reason() {
        let now = at(2026, 5, 10, 12);
        let candidates = [
            ok("today", at(2026, 5, 10, 6)),
            ok("today-early", at(2026, 5, 10, 1)),
            ok("yesterday", at(2026, 5, 9, 6)),
            ok("last-month", at(2026, 4, 20, 6)),
            ok("old", at(2026, 3, 1, 6)),
        ];
        let policy = Policy {
            keep_last: Some(2),
            keep_within: Some(Duration::from_secs(86_400)),
            keep_daily: Some(2),
            keep_weekly: Some(1),
            keep_monthly: Some(2),
        };
        assert_eq!(
            summary(&plan(&candidates, &policy, now)),
            [
                (
                    "today",
                    true,
                    vec![NewestVerified, Last, Within, Daily, Weekly, Monthly]
                ),
                ("today-early", true, vec![Last, Within]),
                ("yesterday", true, vec![Daily]),
                ("last-month", true, vec![Monthly]),
                ("old", false, vec![OutsidePolicy]),
            ]
        );
    }

    #[test]
    fn unverified_backups_are_deleted_and_never_counted() {
        let now = at(2026, 5, 10, 12);
        let candidates = [
            failed("newest-broken", at(2026, 5, 10, 11)),
            ok("good", at(2026, 5, 9, 0)),
            failed("broken", at(2026, 5, 8, 0)),
            ok("older", at(2026, 5, 7, 0)),
        ];
        let policy = Policy {
            keep_last: Some(2),
            ..Policy::default()
        };
        assert_eq!(
            summary(&plan(&candidates, &policy, now)),
            [
                ("newest-broken", true, vec![NotVerified, UnverifiedKept]),
                ("good", true, vec![NewestVerified, Last]),
                ("broken", false, vec![NotVerified]),
                ("older", true, vec![Last]),
            ]
        );
    }

    #[test]
    fn future_dated_backups_are_kept_but_do_not_count() {
        let now = at(2026, 5, 10, 12);
        let candidates = [
            ok("planted", now + TimeDelta::days(365)),
            ok("skew-6min", now + TimeDelta::minutes(6)),
            ok("skew-4min", now + TimeDelta::minutes(4)),
            ok("real", now - TimeDelta::hours(1)),
            failed("planted-broken", now + TimeDelta::days(30)),
        ];
        let policy = Policy {
            keep_last: Some(1),
            keep_daily: Some(1),
            ..Policy::default()
        };
        assert_eq!(
            summary(&plan(&candidates, &policy, now)),
            [
                ("planted", true, vec![FutureDated]),
                ("planted-broken", true, vec![NotVerified, UnverifiedKept]),
                ("skew-6min", true, vec![FutureDated]),
                ("skew-4min", true, vec![NewestVerified, Last, Daily]),
                ("real", false, vec![OutsidePolicy]),
            ]
        );
    }

    #[test]
    fn the_newest_verified_backup_survives_any_policy() {
        let now = at(2026, 5, 10, 12);
        let candidates = [
            ok("a", at(2025, 1, 1, 0)),
            ok("b", at(2025, 2, 1, 0)),
            ok("c", at(2025, 3, 1, 0)),
        ];
        for policy in [
            Policy {
                keep_within: Some(Duration::from_secs(1)),
                ..Policy::default()
            },
            Policy {
                keep_last: Some(0),
                keep_daily: Some(0),
                keep_weekly: Some(0),
                keep_monthly: Some(0),
                keep_within: Some(Duration::ZERO),
            },
        ] {
            assert_eq!(
                summary(&plan(&candidates, &policy, now)),
                [
                    ("c", true, vec![NewestVerified]),
                    ("b", false, vec![OutsidePolicy]),
                    ("a", false, vec![OutsidePolicy]),
                ]
            );
        }
    }

    #[test]
    fn reason_labels() {
        let all = [
            (NoPolicy, "no policy"),
            (NewestVerified, "newest verified"),
            (Last, "last N"),
            (Within, "within"),
            (Daily, "daily"),
            (Weekly, "weekly"),
            (Monthly, "monthly"),
            (FutureDated, "future-dated"),
            (NotVerified, "not verified"),
            (UnverifiedKept, "kept: no newer verified backup"),
            (OutsidePolicy, "outside policy"),
        ];
        for (reason, label) in all {
            assert_eq!(reason.as_str(), label);
        }
    }

    fn candidates() -> impl Strategy<Value = Vec<Candidate>> {
        // Offsets in minutes around a fixed now: up to ~400 days back, a few
        // days forward (so some are future-dated); few distinct values so
        // that ties happen.
        proptest::collection::vec(
            (
                prop_oneof![-576_000i64..30, Just(0i64), Just(-1440i64), 0i64..5_000],
                any::<bool>(),
                0u8..20,
            ),
            0..40,
        )
        .prop_map(|raw| {
            raw.into_iter()
                .enumerate()
                .map(|(i, (offset, verified, tag))| Candidate {
                    id: format!("{tag:02}-{i}"),
                    finished: now() + TimeDelta::minutes(offset),
                    verified,
                    drilled: verified && tag % 3 == 0,
                })
                .collect()
        })
    }

    fn now() -> DateTime<Utc> {
        at(2026, 12, 31, 18)
    }

    fn policies() -> impl Strategy<Value = Policy> {
        (
            proptest::option::of(0u32..10),
            proptest::option::of((0u64..90 * 86_400).prop_map(Duration::from_secs)),
            proptest::option::of(0u32..10),
            proptest::option::of(0u32..10),
            proptest::option::of(0u32..10),
        )
            .prop_map(
                |(keep_last, keep_within, keep_daily, keep_weekly, keep_monthly)| Policy {
                    keep_last,
                    keep_within,
                    keep_daily,
                    keep_weekly,
                    keep_monthly,
                },
            )
    }

    fn is_future(c: &Candidate) -> bool {
        c.finished > now() + FUTURE_TOLERANCE
    }

    proptest! {
        #[test]
        fn plan_invariants(candidates in candidates(), policy in policies()) {
            let decisions = plan(&candidates, &policy, now());

            // (d) one decision per candidate, newest first (ties by id descending).
            prop_assert_eq!(decisions.len(), candidates.len());
            let mut ids: Vec<_> = decisions.iter().map(|d| d.id.clone()).collect();
            ids.sort();
            let mut expected: Vec<_> = candidates.iter().map(|c| c.id.clone()).collect();
            expected.sort();
            prop_assert_eq!(ids, expected);
            for pair in decisions.windows(2) {
                prop_assert!(
                    (pair[0].finished, &pair[0].id) > (pair[1].finished, &pair[1].id),
                    "{:?} before {:?}", pair[0], pair[1]
                );
            }
            for d in &decisions {
                prop_assert!(!d.reasons.is_empty());
                let deleting = d.reasons.contains(&OutsidePolicy)
                    || (d.reasons.contains(&NotVerified) && !d.reasons.contains(&UnverifiedKept));
                prop_assert_eq!(d.keep, !deleting, "{:?}", d);
            }

            // (a) the newest verified non-future candidate is kept.
            let newest = candidates
                .iter()
                .filter(|c| c.verified && !is_future(c))
                .max_by(|a, b| a.finished.cmp(&b.finished).then_with(|| a.id.cmp(&b.id)));
            if let Some(newest) = newest {
                let d = decisions.iter().find(|d| d.id == newest.id).unwrap();
                prop_assert!(d.keep);
                prop_assert!(d.reasons.contains(&NewestVerified));
            }
            prop_assert!(decisions.iter().filter(|d| d.reasons.contains(&NewestVerified)).count() <= 1);

            // (e) so is the newest counted candidate whose drill passed.
            let drilled = candidates
                .iter()
                .filter(|c| c.verified && c.drilled && !is_future(c))
                .max_by(|a, b| a.finished.cmp(&b.finished).then_with(|| a.id.cmp(&b.id)));
            if let Some(drilled) = drilled {
                let d = decisions.iter().find(|d| d.id == drilled.id).unwrap();
                prop_assert!(d.keep && d.reasons.contains(&NewestDrilled), "{:?}", d);
            }
            prop_assert!(decisions.iter().filter(|d| d.reasons.contains(&NewestDrilled)).count() <= 1);

            // (b) an unverified candidate is kept exactly when no counted (verified,
            // non-future) candidate is newer.
            for c in candidates.iter().filter(|c| !c.verified) {
                let d = decisions.iter().find(|d| d.id == c.id).unwrap();
                let newer_verified = candidates.iter().any(|o| {
                    o.verified && !is_future(o) && (o.finished, &o.id) > (c.finished, &c.id)
                });
                prop_assert_eq!(d.keep, !newer_verified, "{:?}", d);
                let expected = if newer_verified { vec![NotVerified] } else { vec![NotVerified, UnverifiedKept] };
                prop_assert_eq!(&d.reasons, &expected);
            }

            // (c) keep_last alone keeps min(N, verified) plus the future-dated
            // (and at least the newest verified when N is 0).
            let n = policy.keep_last.unwrap_or(0);
            let last_only = Policy { keep_last: Some(n), ..Policy::default() };
            let undrilled: Vec<Candidate> = candidates
                .iter()
                .map(|c| Candidate { drilled: false, ..c.clone() })
                .collect();
            let decisions = plan(&undrilled, &last_only, now());
            let counted = candidates.iter().filter(|c| c.verified && !is_future(c)).count();
            let future = candidates.iter().filter(|c| c.verified && is_future(c)).count();
            let kept = decisions.iter().filter(|d| d.keep).count();
            let unverified_kept = decisions
                .iter()
                .filter(|d| d.reasons.contains(&UnverifiedKept))
                .count();
            prop_assert_eq!(
                kept,
                (n as usize).min(counted).max(counted.min(1)) + future + unverified_kept
            );
        }
    }
}
