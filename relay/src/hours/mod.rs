//! A site's business hours: an IANA time zone, open intervals per weekday
//! in that zone's local time, and dated exceptions (a holiday, special
//! hours). Answers whether the site is open at an instant and when it next
//! opens or closes. Pure: no I/O and no clock; callers pass the instant.
//!
//! [`Calendar`] is what admins edit and the store keeps (as JSON);
//! [`Calendar::schedule`] checks it and gives the [`Schedule`] that answers.
//!
//! An interval whose end is not after its start ends the next day:
//! `22:00`-`02:00` is open from 22:00 until 02:00 the following morning,
//! and `00:00`-`24:00` is the whole day. Intervals that touch or overlap
//! across midnight (Monday `20:00`-`24:00` and Tuesday `00:00`-`06:00`) are
//! one opening: the site does not close at midnight in between.
//!
//! # Daylight saving time
//!
//! Times are wall-clock times in the site's zone, so `09:00` stays `09:00`
//! local all year. Around a change:
//! - a time that does not exist (the clocks jump from 02:00 to 03:00) is
//!   read with the offset before the jump, so it lands as far past the
//!   jump as it was past the start of the gap: `02:30` means `03:30`; an
//!   interval wholly inside the gap is never open;
//! - a time that exists twice (the clocks go back from 03:00 to 02:00)
//!   means its first occurrence: `02:30` is the earlier `02:30`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most intervals in one day: a lunch break or split shifts need a few,
/// not dozens.
pub const MAX_INTERVALS_PER_DAY: usize = 12;
/// Most dated exceptions: every day of a year, and then some.
pub const MAX_EXCEPTIONS: usize = 400;
/// How far ahead (and back) openings are looked for: a site closed for
/// longer than this counts as never opening.
const HORIZON_DAYS: i64 = 400;

const MINUTES_PER_DAY: u32 = 24 * 60;

/// A site's hours as admins write them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    /// An IANA zone name, e.g. `Europe/Berlin`.
    pub zone: String,
    #[serde(default)]
    pub week: Week,
    #[serde(default)]
    pub exceptions: Vec<Exception>,
}

impl Default for Calendar {
    /// Monday to Friday, 09:00 to 17:00 UTC: a starting point to edit.
    fn default() -> Calendar {
        let day = || vec![Interval { from: ClockTime(9 * 60), to: ClockTime(17 * 60) }];
        Calendar {
            zone: "UTC".into(),
            week: Week { mon: day(), tue: day(), wed: day(), thu: day(), fri: day(), sat: vec![], sun: vec![] },
            exceptions: vec![],
        }
    }
}

/// Open intervals for each weekday; a day without any is closed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Week {
    #[serde(default)]
    pub mon: Vec<Interval>,
    #[serde(default)]
    pub tue: Vec<Interval>,
    #[serde(default)]
    pub wed: Vec<Interval>,
    #[serde(default)]
    pub thu: Vec<Interval>,
    #[serde(default)]
    pub fri: Vec<Interval>,
    #[serde(default)]
    pub sat: Vec<Interval>,
    #[serde(default)]
    pub sun: Vec<Interval>,
}

impl Week {
    fn day(&self, weekday: Weekday) -> &[Interval] {
        match weekday {
            Weekday::Mon => &self.mon,
            Weekday::Tue => &self.tue,
            Weekday::Wed => &self.wed,
            Weekday::Thu => &self.thu,
            Weekday::Fri => &self.fri,
            Weekday::Sat => &self.sat,
            Weekday::Sun => &self.sun,
        }
    }
}

/// A date with other hours than its weekday: closed when `intervals` is
/// empty (a holiday), else open just then (special hours).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    /// `YYYY-MM-DD`, in the site's zone.
    pub date: NaiveDate,
    #[serde(default)]
    pub intervals: Vec<Interval>,
}

/// Open from `from` until `to`, local time; into the next day when `to`
/// is not after `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    pub from: ClockTime,
    pub to: ClockTime,
}

impl Interval {
    /// Minutes from the day's midnight to the start and to the end (past
    /// 1440 when it ends the next day).
    fn minutes(self) -> (u32, u32) {
        let (from, to) = (u32::from(self.from.0), u32::from(self.to.0));
        if to > from { (from, to) } else { (from, to + MINUTES_PER_DAY) }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.from, self.to)
    }
}

/// A wall-clock time `HH:MM`, `00:00` to `24:00` (the end of a day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClockTime(u16);

impl ClockTime {
    /// `hour:minute`, or `None` past `24:00`.
    pub fn new(hour: u16, minute: u16) -> Option<ClockTime> {
        let total = hour.checked_mul(60)?.checked_add(minute)?;
        (minute < 60 && u32::from(total) <= MINUTES_PER_DAY).then_some(ClockTime(total))
    }
}

impl FromStr for ClockTime {
    type Err = String;

    fn from_str(text: &str) -> Result<ClockTime, String> {
        let wrong = || format!("{text:?} is not a time like 09:00 (00:00 to 24:00)");
        let (hour, minute) = text.split_once(':').ok_or_else(wrong)?;
        if hour.len() != 2 || minute.len() != 2 {
            return Err(wrong());
        }
        let hour: u16 = hour.parse().map_err(|_| wrong())?;
        let minute: u16 = minute.parse().map_err(|_| wrong())?;
        ClockTime::new(hour, minute).ok_or_else(wrong)
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for ClockTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ClockTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a calendar was refused; the text is for the admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    #[error("unknown time zone {0:?}: use an IANA name such as Europe/Berlin or America/New_York")]
    UnknownZone(String),
    #[error("{day}: {interval} is empty (its start and end are the same time)")]
    Empty { day: String, interval: Interval },
    #[error("{day}: an interval cannot start at 24:00; start at 00:00 the next day")]
    StartsAtEndOfDay { day: String },
    #[error("{day}: {first} and {second} overlap")]
    Overlap { day: String, first: Interval, second: Interval },
    #[error("{day}: at most {MAX_INTERVALS_PER_DAY} intervals a day")]
    TooManyIntervals { day: String },
    #[error("at most {MAX_EXCEPTIONS} dated exceptions")]
    TooManyExceptions,
    #[error("{0} has two exceptions; keep one")]
    DuplicateException(NaiveDate),
}

/// A checked calendar, ready to answer.
#[derive(Debug, Clone)]
pub struct Schedule {
    zone: Tz,
    /// Monday first; (start, end) minutes from midnight.
    week: [Vec<(u32, u32)>; 7],
    exceptions: BTreeMap<NaiveDate, Vec<(u32, u32)>>,
}

/// An open span as instants, start inclusive, end exclusive.
type Span = (DateTime<Utc>, DateTime<Utc>);

impl Calendar {
    /// Checks the calendar: a known zone, and per day at most
    /// [`MAX_INTERVALS_PER_DAY`] intervals that are neither empty nor
    /// overlapping (also across midnight into the next weekday).
    pub fn schedule(&self) -> Result<Schedule, HoursError> {
        let zone = Tz::from_str(self.zone.trim()).map_err(|_| HoursError::UnknownZone(self.zone.clone()))?;
        let mut week: [Vec<(u32, u32)>; 7] = Default::default();
        let mut in_week = Vec::new();
        for (index, weekday) in weekdays().enumerate() {
            let name = format!("{weekday}");
            week[index] = day_minutes(&name, self.week.day(weekday))?;
            let offset = i64::from(weekday.num_days_from_monday() * MINUTES_PER_DAY);
            for (interval, &(start, end)) in self.week.day(weekday).iter().zip(&week[index]) {
                in_week.push((offset + i64::from(start), offset + i64::from(end), name.clone(), *interval));
            }
        }
        no_overlap_in_week(in_week)?;
        if self.exceptions.len() > MAX_EXCEPTIONS {
            return Err(HoursError::TooManyExceptions);
        }
        let mut exceptions = BTreeMap::new();
        for exception in &self.exceptions {
            let minutes = day_minutes(&exception.date.to_string(), &exception.intervals)?;
            if exceptions.insert(exception.date, minutes).is_some() {
                return Err(HoursError::DuplicateException(exception.date));
            }
        }
        Ok(Schedule { zone, week, exceptions })
    }
}

fn weekdays() -> impl Iterator<Item = Weekday> {
    [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun].into_iter()
}

/// One day's intervals as minutes, checked on their own.
fn day_minutes(day: &str, intervals: &[Interval]) -> Result<Vec<(u32, u32)>, HoursError> {
    if intervals.len() > MAX_INTERVALS_PER_DAY {
        return Err(HoursError::TooManyIntervals { day: day.into() });
    }
    let mut minutes = Vec::with_capacity(intervals.len());
    for &interval in intervals {
        if interval.from == interval.to {
            return Err(HoursError::Empty { day: day.into(), interval });
        }
        if u32::from(interval.from.0) == MINUTES_PER_DAY {
            return Err(HoursError::StartsAtEndOfDay { day: day.into() });
        }
        minutes.push(interval.minutes());
    }
    let mut sorted: Vec<_> = intervals.iter().copied().zip(minutes.iter().copied()).collect();
    sorted.sort_by_key(|(_, (start, _))| *start);
    for pair in sorted.windows(2) {
        let ((first, (_, first_end)), (second, (second_start, _))) = (pair[0], pair[1]);
        if second_start < first_end {
            return Err(HoursError::Overlap { day: day.into(), first, second });
        }
    }
    Ok(minutes)
}

/// The weekly intervals as minutes from Monday 00:00 must not overlap,
/// Sunday night into Monday morning included.
fn no_overlap_in_week(spans: Vec<(i64, i64, String, Interval)>) -> Result<(), HoursError> {
    const WEEK: i64 = 7 * MINUTES_PER_DAY as i64;
    // A span running past Sunday midnight also counts a week earlier, so
    // it meets Monday morning's.
    let wrapped: Vec<_> = spans
        .iter()
        .filter(|(_, end, ..)| *end > WEEK)
        .map(|(start, end, day, interval)| (start - WEEK, end - WEEK, day.clone(), *interval))
        .collect();
    let mut all = spans;
    all.extend(wrapped);
    all.sort_by_key(|(start, ..)| *start);
    for pair in all.windows(2) {
        let (first, second) = (&pair[0], &pair[1]);
        if second.0 < first.1 {
            let day = if first.2 == second.2 { first.2.clone() } else { format!("{} and {}", first.2, second.2) };
            return Err(HoursError::Overlap { day, first: first.3, second: second.3 });
        }
    }
    Ok(())
}

/// Where a site stands at an instant, for the widget and the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Openings {
    pub open_now: bool,
    pub next_opening: Option<DateTime<Utc>>,
    pub next_closing: Option<DateTime<Utc>>,
}

impl Openings {
    /// A site without business hours: open, and it never changes.
    pub const ALWAYS_OPEN: Openings = Openings { open_now: true, next_opening: None, next_closing: None };
}

impl Schedule {
    /// Whether the site is open at `at`, and when that changes next.
    pub fn openings(&self, at: DateTime<Utc>) -> Openings {
        Openings {
            open_now: self.is_open(at),
            next_opening: self.next_opening(at),
            next_closing: self.next_closing(at),
        }
    }

    /// Whether the site is open at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let today = self.local_date(at);
        self.spans(today - Duration::days(2), today).iter().any(|&(start, end)| start <= at && at < end)
    }

    /// The first instant after `at` at which the site opens (it was closed
    /// just before); `None` if it does not open within about a year.
    pub fn next_opening(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.ahead(at, |spans| spans.iter().map(|&(start, _)| start).find(|&start| start > at))
    }

    /// The first instant after `at` at which the site closes; `None` if it
    /// is open around the clock, or never opens, within about a year.
    pub fn next_closing(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = self.local_date(at);
        for days in [8, HORIZON_DAYS] {
            let last = today + Duration::days(days);
            let spans = self.spans(today - Duration::days(2), last);
            let Some(&(_, end)) = spans.iter().find(|&&(_, end)| end > at) else { continue };
            // A span reaching the end of the window may go on past it.
            if end < self.instant(last, MINUTES_PER_DAY) {
                return Some(end);
            }
        }
        None
    }

    /// The last instant at or before `at` at which the site closed; `None`
    /// if it did not close within about a year.
    pub fn last_closing(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = self.local_date(at);
        for days in [8, HORIZON_DAYS] {
            let spans = self.spans(today - Duration::days(days), today + Duration::days(1));
            if let Some(&(_, end)) = spans.iter().rev().find(|&&(_, end)| end <= at) {
                return Some(end);
            }
        }
        None
    }

    /// Looks at the spans of the next week, then of the next
    /// [`HORIZON_DAYS`], for what `find` wants.
    fn ahead(&self, at: DateTime<Utc>, find: impl Fn(&[Span]) -> Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let today = self.local_date(at);
        [8, HORIZON_DAYS]
            .into_iter()
            .find_map(|days| find(&self.spans(today - Duration::days(2), today + Duration::days(days))))
    }

    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.zone).date_naive()
    }

    /// The open spans of the days `first..=last` (local dates), merged
    /// where they touch or overlap, in order.
    fn spans(&self, first: NaiveDate, last: NaiveDate) -> Vec<Span> {
        let mut spans: Vec<Span> = Vec::new();
        for date in first.iter_days().take_while(|date| *date <= last) {
            let minutes = self
                .exceptions
                .get(&date)
                .unwrap_or_else(|| &self.week[date.weekday().num_days_from_monday() as usize]);
            for &(start, end) in minutes {
                let (start, end) = (self.instant(date, start), self.instant(date, end));
                // Wholly inside a spring-forward gap: never open.
                if start < end {
                    spans.push((start, end));
                }
            }
        }
        spans.sort_unstable();
        let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(previous) if start <= previous.1 => previous.1 = previous.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// The instant `minutes` after local midnight starting `date` (see the
    /// module's notes on daylight saving time).
    fn instant(&self, date: NaiveDate, minutes: u32) -> DateTime<Utc> {
        let local = date.and_hms_opt(0, 0, 0).unwrap_or_default() + Duration::minutes(i64::from(minutes));
        // Up to a day back in quarter hours: gaps are an hour, rarely half
        // an hour or (Samoa, 2011) a whole day.
        for back in 0..=96 {
            let earlier = Duration::minutes(15 * back);
            match self.zone.from_local_datetime(&(local - earlier)) {
                LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => return at.with_timezone(&Utc) + earlier,
                LocalResult::None => {}
            }
        }
        Utc.from_utc_datetime(&local)
    }
}

/// `at` as milliseconds since 1970, as the API and the store count time.
pub fn millis(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0)
}

/// Milliseconds since 1970 as an instant.
pub fn from_millis(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms).ok().and_then(DateTime::from_timestamp_millis).unwrap_or_default()
}

#[cfg(test)]
mod tests;
