//! A campaign's weekly schedule: whether an instant falls within its hours.
//!
//! Hours are wall-clock times in the campaign's time zone, per weekday
//! (0 = Monday). A day whose closing time is earlier than its opening time
//! crosses midnight (a Friday 22:00–02:00 window covers Saturday 01:00); a
//! day whose closing time equals its opening time is open for 24 hours from
//! then (`00:00`–`00:00` is the whole day); a weekday without an entry is
//! closed. Pure: the instant is a parameter.

use chrono::{DateTime, Datelike, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;

/// One weekday's hours: (weekday 0 = Monday … 6 = Sunday, opens, closes).
pub type DayHours = (u32, NaiveTime, NaiveTime);

/// Parses a stored `HH:MM` time.
pub fn parse_hhmm(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M").ok()
}

/// Whether `at` falls within the schedule `days`, read in time zone `tz`.
///
/// Invariant: comparisons are made on local wall-clock times, so a window
/// keeps its hours on both sides of a daylight-saving change.
pub fn within_schedule(days: &[DayHours], tz: Tz, at: DateTime<Utc>) -> bool {
    let local = at.with_timezone(&tz).naive_local();
    let today = local.date();
    // A window that opened yesterday may still be running after midnight.
    [Some(today), today.pred_opt()]
        .into_iter()
        .flatten()
        .any(|day| {
            let weekday = day.weekday().num_days_from_monday();
            days.iter()
                .filter(|(d, _, _)| *d == weekday)
                .any(|&(_, opens, closes)| {
                    let mut length = closes - opens;
                    if length <= TimeDelta::zero() {
                        length += TimeDelta::days(1);
                    }
                    let start = day.and_time(opens);
                    local >= start && local < start + length
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(spec: &[(u32, &str, &str)]) -> Vec<DayHours> {
        spec.iter()
            .map(|&(d, o, c)| (d, parse_hhmm(o).unwrap(), parse_hhmm(c).unwrap()))
            .collect()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    const MEXICO: Tz = chrono_tz::America::Mexico_City;
    const MADRID: Tz = chrono_tz::Europe::Madrid;

    // long: a table of test cases; one row per case reads better than split tables.
    #[test]
    fn the_schedule_rule_holds_for_every_case_in_the_table() {
        let office = hours(&[
            (0, "08:00", "20:00"),
            (1, "08:00", "20:00"),
            (2, "08:00", "20:00"),
            (3, "08:00", "20:00"),
            (4, "08:00", "20:00"),
            (5, "09:00", "14:00"),
        ]);
        let friday_night = hours(&[(4, "22:00", "02:00")]);
        let all_day = hours(&(0..7).map(|d| (d, "00:00", "00:00")).collect::<Vec<_>>());
        let early = hours(&(0..7).map(|d| (d, "08:00", "09:00")).collect::<Vec<_>>());
        // (case, schedule, zone, instant, expected)
        let cases: &[(&str, &[DayHours], Tz, &str, bool)] = &[
            // Mexico City is UTC-6 all year.
            (
                "monday 08:00 opens",
                &office,
                MEXICO,
                "2026-11-23T14:00:00Z",
                true,
            ),
            (
                "monday 07:59 is before opening",
                &office,
                MEXICO,
                "2026-11-23T13:59:00Z",
                false,
            ),
            (
                "monday 19:59 is open",
                &office,
                MEXICO,
                "2026-11-24T01:59:00Z",
                true,
            ),
            (
                "monday 20:00 has closed",
                &office,
                MEXICO,
                "2026-11-24T02:00:00Z",
                false,
            ),
            (
                "saturday 13:00 is open",
                &office,
                MEXICO,
                "2026-11-28T19:00:00Z",
                true,
            ),
            (
                "saturday 15:00 has closed",
                &office,
                MEXICO,
                "2026-11-28T21:00:00Z",
                false,
            ),
            (
                "sunday has no hours",
                &office,
                MEXICO,
                "2026-11-29T18:00:00Z",
                false,
            ),
            // The same instant, read in another zone.
            (
                "12:00 in Madrid is 05:00 in Mexico",
                &office,
                MEXICO,
                "2026-11-23T11:00:00Z",
                false,
            ),
            (
                "12:00 in Madrid is within Madrid's hours",
                &office,
                MADRID,
                "2026-11-23T11:00:00Z",
                true,
            ),
            // Crossing midnight.
            (
                "friday 21:59 is before the night window",
                &friday_night,
                MEXICO,
                "2026-11-28T03:59:00Z",
                false,
            ),
            (
                "friday 22:00 opens the night window",
                &friday_night,
                MEXICO,
                "2026-11-28T04:00:00Z",
                true,
            ),
            (
                "saturday 01:00 is still friday's window",
                &friday_night,
                MEXICO,
                "2026-11-28T07:00:00Z",
                true,
            ),
            (
                "saturday 02:00 has closed",
                &friday_night,
                MEXICO,
                "2026-11-28T08:00:00Z",
                false,
            ),
            (
                "saturday 23:00 has no window",
                &friday_night,
                MEXICO,
                "2026-11-29T05:00:00Z",
                false,
            ),
            (
                "thursday 01:00 is not friday's",
                &friday_night,
                MEXICO,
                "2026-11-26T07:00:00Z",
                false,
            ),
            // Equal times mean the whole day.
            (
                "00:00-00:00 is open at midnight",
                &all_day,
                MEXICO,
                "2026-11-23T06:00:00Z",
                true,
            ),
            (
                "00:00-00:00 is open at 23:59",
                &all_day,
                MEXICO,
                "2026-11-24T05:59:00Z",
                true,
            ),
            // Daylight saving: Madrid leaves CEST (UTC+2) on 2026-10-25.
            (
                "08:30 CEST the day before the change",
                &early,
                MADRID,
                "2026-10-24T06:30:00Z",
                true,
            ),
            (
                "the same UTC time is 07:30 CET after it",
                &early,
                MADRID,
                "2026-10-25T06:30:00Z",
                false,
            ),
            (
                "08:30 CET after the change",
                &early,
                MADRID,
                "2026-10-25T07:30:00Z",
                true,
            ),
            // Nothing configured: always closed.
            (
                "no schedule at all",
                &[],
                MEXICO,
                "2026-11-23T18:00:00Z",
                false,
            ),
        ];
        for &(case, days, tz, at, expected) in cases {
            assert_eq!(within_schedule(days, tz, utc(at)), expected, "{case}");
        }
    }

    #[test]
    fn stored_times_parse_as_hours_and_minutes() {
        assert_eq!(parse_hhmm("08:30"), NaiveTime::from_hms_opt(8, 30, 0));
        assert_eq!(parse_hhmm("24:00"), None);
        assert_eq!(parse_hhmm("8"), None);
    }
}
