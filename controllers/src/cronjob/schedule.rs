//! Cron schedules as Kubernetes reads them (robfig/cron's standard parser): five fields,
//! minute hour day-of-month month day-of-week, with `*`, `?`, lists, ranges, steps and
//! names (`JAN`, `MON`), and the `@yearly` ... `@hourly` shorthands. When both day fields are
//! restricted, a day matches either (as in Vixie cron).
//!
//! Times are computed on the civil clock of the schedule's time zone, so `0 2 * * *` in
//! `Europe/Berlin` is 02:00 there, summer and winter.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// Why a schedule does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule {schedule:?}: {reason}")]
pub struct ScheduleError {
    schedule: String,
    reason: String,
}

/// A parsed five-field cron schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// Whether a day field was `*` or `?` (then only the other one restricts days).
    any_day_of_month: bool,
    any_day_of_week: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

struct Field {
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The first name's value (JAN is 1, SUN is 0).
    names_start: u32,
}

const MINUTE: Field = Field {
    min: 0,
    max: 59,
    names: &[],
    names_start: 0,
};
const HOUR: Field = Field {
    min: 0,
    max: 23,
    names: &[],
    names_start: 0,
};
const DAY_OF_MONTH: Field = Field {
    min: 1,
    max: 31,
    names: &[],
    names_start: 0,
};
const MONTH: Field = Field {
    min: 1,
    max: 12,
    names: &MONTHS,
    names_start: 1,
};
// 7 is Sunday too, as in most crons.
const DAY_OF_WEEK: Field = Field {
    min: 0,
    max: 7,
    names: &DAYS,
    names_start: 0,
};

impl Schedule {
    /// Parses a schedule; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let error = |reason: String| ScheduleError {
            schedule: text.to_owned(),
            reason,
        };
        let trimmed = text.trim();
        let expanded = match trimmed {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(error(format!("unknown descriptor {other}")));
            }
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(error(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        };
        let mut days_of_week = parse_field(dow, &DAY_OF_WEEK).map_err(&error)?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week & !(1 << 7)) | 1;
        }
        Ok(Schedule {
            minutes: parse_field(minute, &MINUTE).map_err(&error)?,
            hours: parse_field(hour, &HOUR).map_err(&error)?,
            days_of_month: parse_field(dom, &DAY_OF_MONTH).map_err(&error)?,
            months: parse_field(month, &MONTH).map_err(&error)?,
            days_of_week,
            any_day_of_month: matches!(dom, "*" | "?"),
            any_day_of_week: matches!(dow, "*" | "?"),
        })
    }

    fn day_matches(&self, t: DateTime) -> bool {
        let dom = bit(self.days_of_month, u32::try_from(t.day()).unwrap_or(0));
        let dow = bit(
            self.days_of_week,
            u32::from(t.weekday().to_sunday_zero_offset().unsigned_abs()),
        );
        match (self.any_day_of_month, self.any_day_of_week) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    /// The first scheduled time strictly after `after`, in `tz`; None if there is none in
    /// the next five years (a February 30th).
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let zoned = after.to_zoned(tz.clone());
        let start = zoned.datetime();
        let mut t = start
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let last_year = start.year().saturating_add(5);
        loop {
            if t.year() > last_year {
                return None;
            }
            if !bit(self.months, u32::try_from(t.month()).unwrap_or(0)) {
                t = t
                    .first_of_month()
                    .checked_add(1.month())
                    .ok()?
                    .start_of_day();
                continue;
            }
            if !self.day_matches(t) {
                t = t.start_of_day().checked_add(1.day()).ok()?;
                continue;
            }
            if !bit(self.hours, u32::try_from(t.hour()).unwrap_or(0)) {
                t = t
                    .with()
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if !bit(self.minutes, u32::try_from(t.minute()).unwrap_or(0)) {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            // A civil time in a DST gap moves forward, one in an overlap takes the first.
            let candidate = tz.to_ambiguous_zoned(t).compatible().ok()?;
            if candidate.timestamp() > after {
                return Some(candidate.timestamp());
            }
            t = t.checked_add(1.minute()).ok()?;
        }
    }

    /// The scheduled times in `(after, until]`: the most recent one and how many there were
    /// (counting stops at `limit`, as upstream stops at 100).
    pub fn missed(
        &self,
        after: Timestamp,
        until: Timestamp,
        tz: &TimeZone,
        limit: usize,
    ) -> (Option<Timestamp>, usize) {
        let mut count = 0;
        let mut latest = None;
        let mut t = after;
        while let Some(next) = self.next_after(t, tz) {
            if next > until {
                break;
            }
            count += 1;
            latest = Some(next);
            t = next;
            if count >= limit {
                // Too many to walk one by one: look back from `until` in doubling windows
                // for the last one. The count only says "more than the limit" then.
                let mut window = 60i64;
                loop {
                    let from = until
                        .checked_sub(window.seconds())
                        .map_or(t, |from| from.max(t));
                    let mut probe = from;
                    let mut found = None;
                    while let Some(next) = self.next_after(probe, tz) {
                        if next > until {
                            break;
                        }
                        found = Some(next);
                        probe = next;
                    }
                    if found.is_some() || from == t {
                        latest = found.or(latest);
                        break;
                    }
                    window = window.saturating_mul(2);
                }
                count += 1;
                break;
            }
        }
        (latest, count)
    }
}

fn bit(set: u64, value: u32) -> bool {
    value < 64 && set & (1u64 << value) != 0
}

fn parse_field(text: &str, field: &Field) -> Result<u64, String> {
    let mut set = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .map_err(|_| format!("bad step {step:?} in {part:?}"))?;
                if step == 0 {
                    return Err(format!("step of zero in {part:?}"));
                }
                (range, step)
            }
            None => (part, 1),
        };
        let (first, last) = if range == "*" || range == "?" {
            (field.min, field.max)
        } else if let Some((first, last)) = range.split_once('-') {
            (value(first, field)?, value(last, field)?)
        } else {
            let first = value(range, field)?;
            // `5/15` means from 5 to the end, every 15.
            (first, if step > 1 { field.max } else { first })
        };
        if first > last {
            return Err(format!("range {range:?} runs backwards"));
        }
        let mut v = first;
        while v <= last {
            set |= 1 << v;
            v += step;
        }
    }
    Ok(set)
}

fn value(text: &str, field: &Field) -> Result<u32, String> {
    let upper = text.to_ascii_uppercase();
    if let Some(index) = field.names.iter().position(|n| *n == upper) {
        return Ok(u32::try_from(index).unwrap_or(0) + field.names_start);
    }
    let v: u32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number or name"))?;
    if v < field.min || v > field.max {
        return Err(format!("{v} is out of range {}-{}", field.min, field.max));
    }
    Ok(v)
}

/// The zone a CronJob's schedule is read in: its `timeZone`, else this host's.
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, String> {
    match name {
        None | Some("") => Ok(TimeZone::system()),
        Some(name) => TimeZone::get(name).map_err(|e| format!("unknown time zone {name:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    fn next(schedule: &str, after: &str) -> String {
        Schedule::parse(schedule)
            .expect("parses")
            .next_after(utc(after), &TimeZone::UTC)
            .expect("a next time")
            .to_string()
    }

    #[test]
    fn standard_schedules() {
        assert_eq!(
            next("* * * * *", "2026-03-01T10:00:30Z"),
            "2026-03-01T10:01:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2026-03-01T10:01:00Z"),
            "2026-03-01T10:15:00Z"
        );
        assert_eq!(
            next("0 2 * * *", "2026-03-01T02:00:00Z"),
            "2026-03-02T02:00:00Z"
        );
        assert_eq!(
            next("30 9 * * MON-FRI", "2026-03-06T10:00:00Z"),
            "2026-03-09T09:30:00Z"
        );
        assert_eq!(
            next("0 0 1 JAN *", "2026-03-01T00:00:00Z"),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            next("@hourly", "2026-03-01T10:59:59Z"),
            "2026-03-01T11:00:00Z"
        );
        assert_eq!(
            next("@weekly", "2026-03-01T00:00:00Z"),
            "2026-03-08T00:00:00Z"
        );
        assert_eq!(
            next("5/20 * * * *", "2026-03-01T10:26:00Z"),
            "2026-03-01T10:45:00Z"
        );
        assert_eq!(
            next("0 0 * * 7", "2026-03-02T00:00:00Z"),
            "2026-03-08T00:00:00Z"
        );
        // Both day fields restricted: either matches (the 13th, or a Friday).
        assert_eq!(
            next("0 0 13 * FRI", "2026-03-01T00:00:00Z"),
            "2026-03-06T00:00:00Z"
        );
        assert_eq!(
            next("0 12 31 * *", "2026-04-01T00:00:00Z"),
            "2026-05-31T12:00:00Z"
        );
    }

    #[test]
    fn impossible_dates_have_no_next_time() {
        let schedule = Schedule::parse("0 0 30 2 *").expect("parses");
        assert_eq!(
            schedule.next_after(utc("2026-01-01T00:00:00Z"), &TimeZone::UTC),
            None
        );
    }

    #[test]
    fn bad_schedules_say_why() {
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "* * * * MOO",
            "*/0 * * * *",
            "5-1 * * * *",
            "@fortnightly",
        ] {
            let error = Schedule::parse(bad).expect_err(bad);
            assert!(error.to_string().contains("invalid schedule"), "{error}");
        }
    }

    #[test]
    fn time_zones_keep_the_civil_time() {
        let berlin = time_zone(Some("Europe/Berlin")).expect("tzdb on this machine");
        let schedule = Schedule::parse("0 2 * * *").expect("parses");
        // 02:00 in Berlin is 01:00 UTC in winter and 00:00 UTC in summer.
        assert_eq!(
            schedule
                .next_after(utc("2026-01-10T12:00:00Z"), &berlin)
                .map(|t| t.to_string()),
            Some("2026-01-11T01:00:00Z".to_owned())
        );
        assert_eq!(
            schedule
                .next_after(utc("2026-07-10T12:00:00Z"), &berlin)
                .map(|t| t.to_string()),
            Some("2026-07-11T00:00:00Z".to_owned())
        );
        assert!(time_zone(Some("Mars/Olympus")).is_err());
    }

    #[test]
    fn missed_times_report_the_latest_and_how_many() {
        let schedule = Schedule::parse("*/10 * * * *").expect("parses");
        let (latest, count) = schedule.missed(
            utc("2026-03-01T10:00:00Z"),
            utc("2026-03-01T10:35:00Z"),
            &TimeZone::UTC,
            100,
        );
        assert_eq!(latest, Some(utc("2026-03-01T10:30:00Z")));
        assert_eq!(count, 3);
        // Far behind: counting stops, the latest is still exact.
        let (latest, count) = schedule.missed(
            utc("2026-01-01T00:00:00Z"),
            utc("2026-03-01T10:35:00Z"),
            &TimeZone::UTC,
            100,
        );
        assert_eq!(latest, Some(utc("2026-03-01T10:30:00Z")));
        assert!(count > 100);
        let (latest, count) = schedule.missed(
            utc("2026-03-01T10:31:00Z"),
            utc("2026-03-01T10:35:00Z"),
            &TimeZone::UTC,
            100,
        );
        assert_eq!((latest, count), (None, 0));
    }
}
