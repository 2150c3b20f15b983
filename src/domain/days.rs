//! Local calendar days as UTC instants, exact in any IANA time zone: offsets
//! that are not whole hours (Asia/Kolkata +05:30, Asia/Kathmandu +05:45,
//! America/St_Johns −03:30), days of 23 or 25 hours across daylight-saving
//! changes, and days whose midnight does not exist because the clocks jump
//! over it (America/Santiago, America/Havana).

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// The years a day or an instant typed in a URL may have: the four-digit
/// years a date input sends.
///
/// Invariant: every day of these years, its start in any time zone, the
/// day before and the day after are representable by chrono and by both
/// databases (PostgreSQL stops at 4713 BC), so date arithmetic on a parsed
/// day never panics and a query never fails on it.
pub const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// A `YYYY-MM-DD` day of [`YEARS`]; anything else is `None`.
pub fn parse_day(raw: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .filter(|day| YEARS.contains(&day.year()))
}

/// Whether `at` falls in [`YEARS`] (a position in a URL, say).
pub fn in_years(at: DateTime<Utc>) -> bool {
    YEARS.contains(&at.year())
}

/// The first instant of local day `day` in `tz`.
///
/// Invariant: consecutive days' starts partition time, so counting by
/// `[day_start(d), day_start(d + 1))` puts every instant in exactly one day.
/// A midnight that happens twice (clocks set back over it) starts the day at
/// its first occurrence; a midnight that does not happen starts the day when
/// the clocks jump, which is midnight at the offset in force before the jump.
pub fn day_start(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = day.and_time(NaiveTime::MIN);
    match tz.from_local_datetime(&midnight).earliest() {
        Some(start) => start.with_timezone(&Utc),
        None => {
            // A day before is before the jump (transitions are months apart
            // and offsets under a day).
            let before = tz
                .offset_from_utc_datetime(&(midnight - TimeDelta::days(1)))
                .fix();
            (midnight - TimeDelta::seconds(i64::from(before.local_minus_utc()))).and_utc()
        }
    }
}

/// The starts of local days `from` through `to` and the end of `to`: `n + 1`
/// instants bounding `n` consecutive days.
pub fn day_bounds(from: NaiveDate, to: NaiveDate, tz: Tz) -> Vec<DateTime<Utc>> {
    from.iter_days()
        .take_while(|d| *d <= to)
        .chain(to.succ_opt())
        .map(|d| day_start(d, tz))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn days_start_at_local_midnight_for_offsets_that_are_not_whole_hours() {
        use chrono_tz::{America, Asia};
        assert_eq!(
            day_start(day("2026-03-10"), Asia::Kolkata),
            utc("2026-03-09T18:30:00Z")
        );
        assert_eq!(
            day_start(day("2026-03-10"), Asia::Kathmandu),
            utc("2026-03-09T18:15:00Z")
        );
        // Newfoundland: −03:30 in winter, −02:30 in summer.
        assert_eq!(
            day_start(day("2026-01-15"), America::St_Johns),
            utc("2026-01-15T03:30:00Z")
        );
        assert_eq!(
            day_start(day("2026-07-15"), America::St_Johns),
            utc("2026-07-15T02:30:00Z")
        );
    }

    #[test]
    fn days_across_a_daylight_saving_change_last_23_or_25_hours() {
        use chrono_tz::America::St_Johns;
        // Clocks go forward at 02:00 on 8 March 2026 and back on 1 November.
        let spring = day_bounds(day("2026-03-08"), day("2026-03-08"), St_Johns);
        assert_eq!(spring[1] - spring[0], TimeDelta::hours(23));
        let autumn = day_bounds(day("2026-11-01"), day("2026-11-01"), St_Johns);
        assert_eq!(autumn[1] - autumn[0], TimeDelta::hours(25));
    }

    #[test]
    fn a_day_whose_midnight_is_skipped_starts_when_the_clocks_jump() {
        use chrono_tz::America::Santiago;
        // Chile moves from −04:00 to −03:00 at 00:00 on 6 September 2026:
        // that day starts at 01:00 local, 04:00 UTC, and lasts 23 hours.
        let bounds = day_bounds(day("2026-09-05"), day("2026-09-06"), Santiago);
        assert_eq!(
            bounds,
            vec![
                utc("2026-09-05T04:00:00Z"),
                utc("2026-09-06T04:00:00Z"),
                utc("2026-09-07T03:00:00Z"),
            ]
        );
    }

    #[test]
    fn only_days_of_four_digit_years_parse() {
        assert_eq!(parse_day("2026-11-26"), Some(day("2026-11-26")));
        assert_eq!(parse_day("0001-01-01"), Some(day("0001-01-01")));
        assert_eq!(parse_day("9999-12-31"), Some(day("9999-12-31")));
        for bad in [
            "0000-12-31",
            "10000-01-01",
            "-5000-01-01",
            "+262142-12-31",
            "-262143-01-01",
            "2026-02-30",
            "",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn bounds_are_one_more_than_the_days_and_strictly_increasing() {
        let bounds = day_bounds(
            day("2025-01-01"),
            day("2026-12-31"),
            chrono_tz::Asia::Kathmandu,
        );
        assert_eq!(bounds.len(), 730 + 1);
        assert!(bounds.windows(2).all(|w| w[0] < w[1]));
    }
}
