//! Turning the times that log lines write into UTC instants.
//!
//! Lines write time in several ways: with a full date and an offset (RFC
//! 5424), with a full date and no zone (OpenVPN's own log), without a year
//! (RFC 3164), or as epoch seconds. [`LineTime`] keeps what the line said;
//! [`TimeResolver`] fills in what it left out — the year and the zone — from
//! what the caller passes in, never from the clock, so tests can pin them.

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime,
    Offset, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use serde::Serialize;

/// The time a line wrote, before year and zone are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LineTime {
    /// A date, a time and an offset: nothing left to guess.
    Absolute { at: DateTime<FixedOffset> },
    /// A date and a time read in the source's zone.
    Local { at: NaiveDateTime },
    /// Month, day and time, as RFC 3164 writes them: year and zone unknown.
    YearLess {
        month: u32,
        day: u32,
        time: NaiveTime,
    },
    /// The line wrote no time at all (OpenVPN with `--suppress-timestamps`).
    Missing,
}

/// A flag set when a local time had to be read with a rule rather than as it
/// stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFlag {
    /// A local time inside the spring gap, which no clock showed: read with
    /// the offset in force before the gap.
    NonexistentLocalTime,
    /// A local time in the repeated autumn hour, read as its second pass
    /// because time went back within that hour.
    SecondPassOfRepeatedHour,
    /// The line had no time: the time it was received stands in for it.
    ReceivedTime,
}

/// Why a time could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("day {day} of month {month} does not exist in year {year}")]
    NoSuchDate { year: i32, month: u32, day: u32 },
}

/// How far ahead of the received date a year-less line may be dated: a
/// sender whose clock runs a little ahead on New Year's Eve.
const CLOCK_AHEAD_DAYS: u64 = 1;

/// How a line without a year gets one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YearRule {
    /// Live sources: the year that puts the line closest to when it was
    /// received without putting it more than a day after it (a `Dec 31`
    /// line received on Jan 1 is last year's, a `Mar 12` line received in
    /// December this year's).
    ClosestToReceived,
    /// A file read in one pass: `year` is the year of the latest line read,
    /// `latest` its month and day. The year rolls forward when the month
    /// goes back; a line dated up to [`LATE_DAYS`] before the latest one
    /// is a late line (central syslog writes senders' lines as they
    /// arrive), dated just before it, across New Year's Eve too, and
    /// moves nothing.
    Sequential {
        year: i32,
        latest: Option<(u32, u32)>,
    },
}

/// How many days before the latest line of a file a line without a year
/// is read as late, rather than as a year later: `Dec 31 23:59:59` read
/// after `Jan  1 00:00:01` is a second late, not a year ahead.
pub const LATE_DAYS: u64 = 7;

/// A resolved instant and how it was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    pub at: DateTime<Utc>,
    pub flag: Option<TimeFlag>,
}

/// Resolves [`LineTime`]s of one source, in the order the source wrote them.
///
/// It is stateful because two rules need the past: the year rolls when the
/// month goes back, and in the repeated autumn hour a time that goes back
/// means the second pass.
#[derive(Debug, Clone)]
pub struct TimeResolver {
    /// The zone lines without an offset are written in.
    zone: Tz,
    /// Where a line without a year takes it from.
    year: YearRule,
    /// The last instant resolved from a local time, to recognise the second
    /// pass of a repeated hour.
    previous_local: Option<DateTime<Utc>>,
    /// The last local hour read, when the zone's offset is one and the same
    /// through all of it: consecutive lines mostly fall in the same hour,
    /// and looking the offset up in the zone's rules costs more than
    /// parsing the rest of the envelope.
    hour_offset: Option<HourOffset>,
    /// The last date a line without a year was given, by month and day:
    /// consecutive lines mostly share it.
    last_date: Option<(i32, u32, u32, NaiveDate)>,
}

/// `day` of `month` in `year`, or the month's last day when the month is
/// shorter (a checkpoint written before days were kept names none).
fn clamped_date(year: i32, month: u32, day: u32) -> NaiveDate {
    (1..=day.min(31))
        .rev()
        .find_map(|d| NaiveDate::from_ymd_opt(year, month, d))
        .unwrap_or(NaiveDate::MIN)
}

/// A local hour through which the zone keeps one offset, and the instant
/// it begins.
#[derive(Debug, Clone, Copy)]
struct HourOffset {
    date: NaiveDate,
    hour: u32,
    starts: DateTime<Utc>,
}

/// The instant the local hour `hour` of `date` begins, when the zone keeps
/// one offset through all of it; `None` when the offset changes within
/// that hour (the hour is then in a gap or repeated, and read by the full
/// rules).
fn hour_of_one_offset(zone: Tz, date: NaiveDate, hour: u32) -> Option<HourOffset> {
    let first = date.and_hms_opt(hour, 0, 0)?;
    let last = date.and_hms_nano_opt(hour, 59, 59, 999_999_999)?;
    let offset = zone.offset_from_local_datetime(&first).single()?.fix();
    let end = zone.offset_from_local_datetime(&last).single()?.fix();
    (offset == end).then(|| HourOffset {
        date,
        hour,
        starts: Utc
            .from_utc_datetime(&(first - Duration::seconds(offset.local_minus_utc().into()))),
    })
}

impl TimeResolver {
    pub fn new(zone: Tz, year: YearRule) -> Self {
        TimeResolver {
            zone,
            year,
            previous_local: None,
            hour_offset: None,
            last_date: None,
        }
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The year rule as it stands now, to be saved with a checkpoint.
    pub fn year_rule(&self) -> YearRule {
        self.year
    }

    /// Resolves one line's time; `received` is when the line reached us.
    pub fn resolve(
        &mut self,
        time: &LineTime,
        received: DateTime<Utc>,
    ) -> Result<Resolved, TimeError> {
        match *time {
            LineTime::Absolute { at } => Ok(Resolved {
                at: at.with_timezone(&Utc),
                flag: None,
            }),
            LineTime::Missing => Ok(Resolved {
                at: received,
                flag: Some(TimeFlag::ReceivedTime),
            }),
            LineTime::Local { at } => Ok(self.local(at)),
            LineTime::YearLess { month, day, time } => {
                let date = self.date_without_year(month, day, received)?;
                Ok(self.local(date.and_time(time)))
            }
        }
    }

    /// Picks the year of a `month day` and returns the full date.
    fn date_without_year(
        &mut self,
        month: u32,
        day: u32,
        received: DateTime<Utc>,
    ) -> Result<NaiveDate, TimeError> {
        match &mut self.year {
            YearRule::Sequential { year, latest } => {
                let year_of_line = match *latest {
                    None => *year,
                    Some((latest_month, latest_day)) => {
                        // Most lines share the latest line's date.
                        if (month, day) == (latest_month, latest_day) {
                            if let Some((y, m, d, date)) = self.last_date {
                                if (y, m, d) == (*year, month, day) {
                                    return Ok(date);
                                }
                            }
                        }
                        let latest_date = clamped_date(*year, latest_month, latest_day);
                        let late_from = latest_date - chrono::Days::new(LATE_DAYS);
                        // Late across New Year's Eve: last year's date, just
                        // before; it moves nothing.
                        if let Some(date) = NaiveDate::from_ymd_opt(*year - 1, month, day)
                            .filter(|d| *d >= late_from)
                        {
                            return Ok(date);
                        }
                        match NaiveDate::from_ymd_opt(*year, month, day) {
                            // Late: this year's, and the latest stays.
                            Some(date) if date >= late_from && date <= latest_date => {
                                self.last_date = Some((*year, month, day, date));
                                return Ok(date);
                            }
                            Some(date) if date > latest_date => *year,
                            // Further back, the month going back: a new
                            // year; within the month, the same year.
                            _ if month < latest_month => *year + 1,
                            _ => *year,
                        }
                    }
                };
                let date = NaiveDate::from_ymd_opt(year_of_line, month, day).ok_or(
                    TimeError::NoSuchDate {
                        year: year_of_line,
                        month,
                        day,
                    },
                )?;
                *year = year_of_line;
                *latest = Some((month, day));
                self.last_date = Some((year_of_line, month, day, date));
                Ok(date)
            }
            YearRule::ClosestToReceived => {
                // The latest year that does not put the line in the future:
                // a gateway's clock may run ahead of ours a little, never
                // by most of a year, so a `Mar 12` line received in December
                // is from this March, not next year's.
                let local_received = received.with_timezone(&self.zone).naive_local();
                let latest = local_received.date() + chrono::Days::new(CLOCK_AHEAD_DAYS);
                let base = local_received.year();
                [base + 1, base, base - 1]
                    .into_iter()
                    .filter_map(|y| NaiveDate::from_ymd_opt(y, month, day))
                    .find(|d| *d <= latest)
                    .ok_or(TimeError::NoSuchDate {
                        year: base,
                        month,
                        day,
                    })
            }
        }
    }

    /// Reads a local time in the zone, with the DST rules of DESIGN.md.
    fn local(&mut self, at: NaiveDateTime) -> Resolved {
        // Within an hour of one offset, no rule below can apply: the
        // instant is that far into the hour.
        let (date, hour) = (at.date(), at.hour());
        let known = match self.hour_offset {
            Some(h) if h.date == date && h.hour == hour => Some(h),
            _ => {
                self.hour_offset = hour_of_one_offset(self.zone, date, hour);
                self.hour_offset
            }
        };
        if let Some(known) = known {
            let into_hour = Duration::seconds(i64::from(at.minute() * 60 + at.second()))
                + Duration::nanoseconds(i64::from(at.nanosecond()));
            let at = known.starts + into_hour;
            self.previous_local = Some(at);
            return Resolved { at, flag: None };
        }

        let resolved = match self.zone.from_local_datetime(&at) {
            LocalResult::Single(t) => Resolved {
                at: t.with_timezone(&Utc),
                flag: None,
            },
            LocalResult::Ambiguous(first, second) => {
                let first = first.with_timezone(&Utc);
                let second = second.with_timezone(&Utc);
                // Going back in time from the last line means the clock was
                // set back: we are in the second pass of the hour.
                if self.previous_local.is_some_and(|previous| first < previous) {
                    Resolved {
                        at: second,
                        flag: Some(TimeFlag::SecondPassOfRepeatedHour),
                    }
                } else {
                    Resolved {
                        at: first,
                        flag: None,
                    }
                }
            }
            LocalResult::None => {
                // In the spring gap: use the offset in force just before it.
                let before = at - Duration::hours(3);
                let offset = self
                    .zone
                    .offset_from_local_datetime(&before)
                    .earliest()
                    .map_or_else(
                        || FixedOffset::east_opt(0).expect("zero offset"),
                        |o| o.fix(),
                    );
                let utc = at - Duration::seconds(i64::from(offset.local_minus_utc()));
                Resolved {
                    at: Utc.from_utc_datetime(&utc),
                    flag: Some(TimeFlag::NonexistentLocalTime),
                }
            }
        };
        self.previous_local = Some(resolved.at);
        resolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn year_less(month: u32, day: u32, h: u32, m: u32, s: u32) -> LineTime {
        LineTime::YearLess {
            month,
            day,
            time: NaiveTime::from_hms_opt(h, m, s).unwrap(),
        }
    }

    #[test]
    fn year_rolls_back_across_new_year() {
        let mut r = TimeResolver::new(chrono_tz::Europe::Paris, YearRule::ClosestToReceived);
        let got = r
            .resolve(&year_less(12, 31, 23, 59, 58), utc("2025-01-01T00:00:03Z"))
            .unwrap();
        assert_eq!(got.at, utc("2024-12-31T22:59:58Z"));
        let got = r
            .resolve(&year_less(1, 1, 0, 0, 2), utc("2025-01-01T00:00:03Z"))
            .unwrap();
        assert_eq!(got.at, utc("2024-12-31T23:00:02Z"));
    }

    #[test]
    fn a_live_line_is_never_dated_months_ahead() {
        let mut r = TimeResolver::new(chrono_tz::Europe::Paris, YearRule::ClosestToReceived);
        let received = utc("2026-12-04T06:00:00Z");
        let got = r.resolve(&year_less(3, 12, 9, 14, 3), received).unwrap();
        assert_eq!(got.at, utc("2026-03-12T08:14:03Z"));
        // A sender a few hours ahead across New Year's Eve.
        let got = r
            .resolve(&year_less(1, 1, 0, 0, 5), utc("2026-12-31T22:30:00Z"))
            .unwrap();
        assert_eq!(got.at, utc("2026-12-31T23:00:05Z"));
        // The same day last year, not a year ahead.
        let got = r.resolve(&year_less(12, 4, 8, 0, 0), received).unwrap();
        assert_eq!(got.at, utc("2026-12-04T07:00:00Z"));
    }

    #[test]
    fn sequential_year_rolls_forward_when_month_goes_back() {
        let rule = YearRule::Sequential {
            year: 2023,
            latest: None,
        };
        let mut r = TimeResolver::new(chrono_tz::UTC, rule);
        let now = utc("2030-01-01T00:00:00Z");
        assert_eq!(
            r.resolve(&year_less(12, 31, 23, 0, 0), now).unwrap().at,
            utc("2023-12-31T23:00:00Z")
        );
        assert_eq!(
            r.resolve(&year_less(1, 2, 1, 0, 0), now).unwrap().at,
            utc("2024-01-02T01:00:00Z")
        );
    }

    #[test]
    fn a_late_line_stays_before_the_new_year_it_arrived_in() {
        let rule = YearRule::Sequential {
            year: 2023,
            latest: None,
        };
        let mut r = TimeResolver::new(chrono_tz::Europe::Paris, rule);
        let now = utc("2030-01-01T00:00:00Z");
        let mut at =
            |month, day, h, m, s| r.resolve(&year_less(month, day, h, m, s), now).unwrap().at;
        assert_eq!(at(12, 31, 23, 59, 58), utc("2023-12-31T22:59:58Z"));
        assert_eq!(at(1, 1, 0, 0, 1), utc("2023-12-31T23:00:01Z"));
        // A second late: last year's, and the file stays in the new year.
        assert_eq!(at(12, 31, 23, 59, 59), utc("2023-12-31T22:59:59Z"));
        assert_eq!(at(1, 1, 0, 0, 2), utc("2023-12-31T23:00:02Z"));
        // Late across a month's end: the same year, not the next.
        assert_eq!(at(2, 29, 23, 0, 0), utc("2024-02-29T22:00:00Z"));
        assert_eq!(at(3, 1, 0, 30, 0), utc("2024-02-29T23:30:00Z"));
        assert_eq!(at(2, 29, 23, 59, 0), utc("2024-02-29T22:59:00Z"));
        assert_eq!(at(3, 1, 1, 0, 0), utc("2024-03-01T00:00:00Z"));
        // A week late is still late; more than that, the month going back
        // is a new year.
        assert_eq!(at(2, 23, 8, 0, 0), utc("2024-02-23T07:00:00Z"));
        assert_eq!(at(2, 22, 8, 0, 0), utc("2025-02-22T07:00:00Z"));
        assert_eq!(
            r.year_rule(),
            YearRule::Sequential {
                year: 2025,
                latest: Some((2, 22))
            }
        );
    }

    #[test]
    fn a_checkpoint_without_the_day_reads_the_month_as_before() {
        // Resumed from a checkpoint that kept the month only (day 31
        // stands for "some day of it").
        let rule = YearRule::Sequential {
            year: 2024,
            latest: Some((4, 31)),
        };
        let mut r = TimeResolver::new(chrono_tz::UTC, rule);
        let now = utc("2030-01-01T00:00:00Z");
        assert_eq!(
            r.resolve(&year_less(4, 2, 10, 0, 0), now).unwrap().at,
            utc("2024-04-02T10:00:00Z")
        );
        assert_eq!(
            r.resolve(&year_less(3, 10, 10, 0, 0), now).unwrap().at,
            utc("2025-03-10T10:00:00Z")
        );
    }

    #[test]
    fn repeated_autumn_hour_going_back_is_second_pass() {
        let rule = YearRule::Sequential {
            year: 2024,
            latest: None,
        };
        let mut r = TimeResolver::new(chrono_tz::Europe::Paris, rule);
        let now = utc("2030-01-01T00:00:00Z");
        // 27 Oct 2024: 03:00 CEST becomes 02:00 CET.
        let a = r.resolve(&year_less(10, 27, 2, 50, 0), now).unwrap();
        assert_eq!(a.at, utc("2024-10-27T00:50:00Z"));
        let b = r.resolve(&year_less(10, 27, 2, 10, 0), now).unwrap();
        assert_eq!(b.at, utc("2024-10-27T01:10:00Z"));
        assert_eq!(b.flag, Some(TimeFlag::SecondPassOfRepeatedHour));
        let c = r.resolve(&year_less(10, 27, 2, 20, 0), now).unwrap();
        assert_eq!(c.at, utc("2024-10-27T01:20:00Z"));
    }

    #[test]
    fn spring_gap_uses_offset_before_the_gap() {
        let rule = YearRule::Sequential {
            year: 2024,
            latest: None,
        };
        let mut r = TimeResolver::new(chrono_tz::Europe::Paris, rule);
        let got = r
            .resolve(&year_less(3, 31, 2, 30, 0), utc("2030-01-01T00:00:00Z"))
            .unwrap();
        assert_eq!(got.at, utc("2024-03-31T01:30:00Z"));
        assert_eq!(got.flag, Some(TimeFlag::NonexistentLocalTime));
    }

    #[test]
    fn february_29_of_a_common_year_is_an_error() {
        let rule = YearRule::Sequential {
            year: 2023,
            latest: None,
        };
        let mut r = TimeResolver::new(chrono_tz::UTC, rule);
        let err = r
            .resolve(&year_less(2, 29, 0, 0, 0), utc("2030-01-01T00:00:00Z"))
            .unwrap_err();
        assert_eq!(
            err,
            TimeError::NoSuchDate {
                year: 2023,
                month: 2,
                day: 29
            }
        );
    }
}
