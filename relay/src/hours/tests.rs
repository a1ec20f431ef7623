use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn at(text: &str) -> Option<DateTime<Utc>> {
    Some(utc(text))
}

fn iv(from: &str, to: &str) -> Interval {
    Interval { from: from.parse().unwrap(), to: to.parse().unwrap() }
}

fn calendar(zone: &str, week: Week) -> Calendar {
    Calendar { zone: zone.into(), week, exceptions: vec![] }
}

fn weekdays_nine_to_five() -> Week {
    let day = || vec![iv("09:00", "17:00")];
    Week { mon: day(), tue: day(), wed: day(), thu: day(), fri: day(), ..Week::default() }
}

#[test]
fn the_dates_used_here_are_the_weekdays_they_claim() {
    let date = |text: &str| NaiveDate::from_str(text).unwrap().weekday();
    assert_eq!(date("2026-12-04"), Weekday::Fri);
    assert_eq!(date("2026-12-07"), Weekday::Mon);
    assert_eq!(date("2026-12-24"), Weekday::Thu);
    // Europe/Berlin changes on the last Sundays of March and October.
    assert_eq!(date("2026-03-29"), Weekday::Sun);
    assert_eq!(date("2026-10-25"), Weekday::Sun);
}

#[test]
fn an_interval_may_run_past_midnight() {
    let schedule = calendar("UTC", Week { fri: vec![iv("22:00", "02:00")], ..Week::default() }).schedule().unwrap();
    assert!(!schedule.is_open(utc("2026-12-04T21:59:00Z")));
    assert!(schedule.is_open(utc("2026-12-04T22:00:00Z")));
    assert!(schedule.is_open(utc("2026-12-05T01:59:00Z")), "Saturday early is still Friday night");
    assert!(!schedule.is_open(utc("2026-12-05T02:00:00Z")));
    assert_eq!(schedule.next_closing(utc("2026-12-04T23:00:00Z")), at("2026-12-05T02:00:00Z"));
    assert_eq!(schedule.next_opening(utc("2026-12-05T03:00:00Z")), at("2026-12-11T22:00:00Z"));
    assert_eq!(schedule.last_closing(utc("2026-12-05T03:00:00Z")), at("2026-12-05T02:00:00Z"));
}

#[test]
fn intervals_touching_at_midnight_are_one_opening() {
    let week = Week { mon: vec![iv("20:00", "24:00")], tue: vec![iv("00:00", "06:00")], ..Week::default() };
    let schedule = calendar("UTC", week).schedule().unwrap();
    assert_eq!(schedule.next_closing(utc("2026-12-07T21:00:00Z")), at("2026-12-08T06:00:00Z"));
    assert_eq!(schedule.next_opening(utc("2026-12-07T21:00:00Z")), at("2026-12-14T20:00:00Z"));
}

#[test]
fn a_lunch_break_closes_the_site_between_two_periods() {
    let week = Week { mon: vec![iv("09:00", "12:00"), iv("13:00", "17:00")], ..Week::default() };
    // Berlin is UTC+1 in December.
    let schedule = calendar("Europe/Berlin", week).schedule().unwrap();
    assert!(schedule.is_open(utc("2026-12-07T09:00:00Z")));
    assert_eq!(schedule.next_closing(utc("2026-12-07T09:00:00Z")), at("2026-12-07T11:00:00Z"));
    assert!(!schedule.is_open(utc("2026-12-07T11:30:00Z")), "lunch");
    assert_eq!(schedule.next_opening(utc("2026-12-07T11:30:00Z")), at("2026-12-07T12:00:00Z"));
    assert_eq!(schedule.last_closing(utc("2026-12-07T11:30:00Z")), at("2026-12-07T11:00:00Z"));
    assert_eq!(schedule.next_closing(utc("2026-12-07T11:30:00Z")), at("2026-12-07T16:00:00Z"));
}

#[test]
fn a_holiday_closes_a_day_and_special_hours_replace_a_day() {
    let mut calendar = calendar("UTC", weekdays_nine_to_five());
    calendar.exceptions = vec![
        Exception { date: NaiveDate::from_str("2026-12-24").unwrap(), intervals: vec![iv("09:00", "12:00")] },
        Exception { date: NaiveDate::from_str("2026-12-25").unwrap(), intervals: vec![] },
    ];
    let schedule = calendar.schedule().unwrap();
    assert_eq!(schedule.next_closing(utc("2026-12-24T10:00:00Z")), at("2026-12-24T12:00:00Z"));
    assert!(!schedule.is_open(utc("2026-12-24T13:00:00Z")), "special hours end at noon");
    assert!(!schedule.is_open(utc("2026-12-25T10:00:00Z")), "holiday");
    // Friday the 25th is a holiday, then the weekend.
    assert_eq!(schedule.next_opening(utc("2026-12-24T13:00:00Z")), at("2026-12-28T09:00:00Z"));
    assert!(schedule.is_open(utc("2026-12-23T16:00:00Z")), "the day before is a normal Wednesday");
}

#[test]
fn a_week_with_nothing_open_never_opens() {
    let schedule = calendar("Europe/Berlin", Week::default()).schedule().unwrap();
    let now = utc("2026-12-07T10:00:00Z");
    assert!(!schedule.is_open(now));
    assert_eq!(schedule.next_opening(now), None);
    assert_eq!(schedule.next_closing(now), None);
    assert_eq!(schedule.last_closing(now), None);
}

#[test]
fn a_week_open_around_the_clock_never_closes() {
    let day = || vec![iv("00:00", "24:00")];
    let week = Week { mon: day(), tue: day(), wed: day(), thu: day(), fri: day(), sat: day(), sun: day() };
    let schedule = calendar("Europe/Berlin", week).schedule().unwrap();
    let now = utc("2026-03-29T01:30:00Z");
    assert!(schedule.is_open(now));
    assert_eq!(schedule.next_closing(now), None);
    assert_eq!(schedule.next_opening(now), None);
}

#[test]
fn a_time_skipped_in_spring_lands_as_far_past_the_jump() {
    // 2026-03-29 in Berlin: 02:00 CET becomes 03:00 CEST (01:00 UTC).
    let week = Week {
        sat: vec![iv("22:00", "10:00")],
        sun: vec![iv("12:00", "13:00")],
        mon: vec![iv("09:00", "17:00")],
        ..Week::default()
    };
    let schedule = calendar("Europe/Berlin", week).schedule().unwrap();
    // Saturday 22:00 CET is 21:00 UTC; Sunday 10:00 CEST is 08:00 UTC: the
    // night is an hour shorter.
    assert_eq!(schedule.next_opening(utc("2026-03-28T12:00:00Z")), at("2026-03-28T21:00:00Z"));
    assert_eq!(schedule.next_closing(utc("2026-03-28T22:00:00Z")), at("2026-03-29T08:00:00Z"));
    assert_eq!(schedule.next_opening(utc("2026-03-29T09:00:00Z")), at("2026-03-29T10:00:00Z"), "noon CEST");
    assert_eq!(schedule.next_opening(utc("2026-03-29T12:00:00Z")), at("2026-03-30T07:00:00Z"), "09:00 CEST");

    let alone = Week { sun: vec![iv("02:30", "04:00")], ..Week::default() };
    let schedule = calendar("Europe/Berlin", alone).schedule().unwrap();
    // 02:30 does not exist that night: read with the winter offset it is
    // 01:30 UTC, which is 03:30 CEST.
    assert_eq!(schedule.next_opening(utc("2026-03-28T12:00:00Z")), at("2026-03-29T01:30:00Z"));
    assert_eq!(schedule.next_closing(utc("2026-03-28T12:00:00Z")), at("2026-03-29T02:00:00Z"));
    // A week earlier it is an ordinary 02:30 CET.
    assert_eq!(schedule.next_opening(utc("2026-03-21T12:00:00Z")), at("2026-03-22T01:30:00Z"));

    let inside_the_gap = Week { sun: vec![iv("02:00", "02:45")], ..Week::default() };
    let schedule = calendar("Europe/Berlin", inside_the_gap).schedule().unwrap();
    assert_eq!(schedule.next_opening(utc("2026-03-28T12:00:00Z")), at("2026-03-29T01:00:00Z"));
    assert_eq!(schedule.next_closing(utc("2026-03-28T12:00:00Z")), at("2026-03-29T01:45:00Z"));
}

#[test]
fn a_time_repeated_in_autumn_means_its_first_occurrence() {
    // 2026-10-25 in Berlin: 03:00 CEST becomes 02:00 CET (01:00 UTC).
    let week = Week { sun: vec![iv("02:30", "03:30")], mon: vec![iv("09:00", "17:00")], ..Week::default() };
    let schedule = calendar("Europe/Berlin", week).schedule().unwrap();
    // The first 02:30 is CEST (00:30 UTC); 03:30 is CET (02:30 UTC): two hours.
    assert_eq!(schedule.next_opening(utc("2026-10-24T12:00:00Z")), at("2026-10-25T00:30:00Z"));
    assert_eq!(schedule.next_closing(utc("2026-10-24T12:00:00Z")), at("2026-10-25T02:30:00Z"));
    assert!(schedule.is_open(utc("2026-10-25T01:30:00Z")), "the second 02:30 is still open");
    assert_eq!(schedule.next_opening(utc("2026-10-25T03:00:00Z")), at("2026-10-26T08:00:00Z"), "09:00 CET");
}

#[test]
fn a_zone_without_daylight_saving_keeps_its_offset() {
    let schedule = calendar("Asia/Shanghai", weekdays_nine_to_five()).schedule().unwrap();
    // Saturday in Shanghai: next is Monday 09:00 CST, 01:00 UTC, in spring and autumn alike.
    assert_eq!(schedule.next_opening(utc("2026-03-28T04:00:00Z")), at("2026-03-30T01:00:00Z"));
    assert_eq!(schedule.next_opening(utc("2026-10-24T04:00:00Z")), at("2026-10-26T01:00:00Z"));
    // Monday 08:59 UTC is 16:59 in Shanghai.
    assert!(schedule.is_open(utc("2026-10-26T08:59:00Z")));
    assert!(!schedule.is_open(utc("2026-10-26T09:00:00Z")));
    let kolkata = calendar("Asia/Kolkata", weekdays_nine_to_five()).schedule().unwrap();
    assert_eq!(kolkata.next_opening(utc("2026-10-24T04:00:00Z")), at("2026-10-26T03:30:00Z"));
}

#[test]
fn bad_calendars_are_refused_with_the_reason() {
    let refused = |week: Week| calendar("UTC", week).schedule().unwrap_err().to_string();
    assert_eq!(
        calendar("Mars/Olympus", Week::default()).schedule().unwrap_err().to_string(),
        "unknown time zone \"Mars/Olympus\": use an IANA name such as Europe/Berlin or America/New_York"
    );
    assert_eq!(
        refused(Week { mon: vec![iv("09:00", "09:00")], ..Week::default() }),
        "Mon: 09:00-09:00 is empty (its start and end are the same time)"
    );
    assert_eq!(
        refused(Week { mon: vec![iv("13:00", "17:00"), iv("09:00", "13:30")], ..Week::default() }),
        "Mon: 09:00-13:30 and 13:00-17:00 overlap"
    );
    assert_eq!(
        refused(Week { mon: vec![iv("22:00", "02:00")], tue: vec![iv("01:00", "03:00")], ..Week::default() }),
        "Mon and Tue: 22:00-02:00 and 01:00-03:00 overlap"
    );
    assert_eq!(
        refused(Week { sun: vec![iv("23:00", "02:00")], mon: vec![iv("01:00", "03:00")], ..Week::default() }),
        "Sun and Mon: 23:00-02:00 and 01:00-03:00 overlap"
    );
    assert_eq!(
        refused(Week { tue: vec![iv("24:00", "02:00")], ..Week::default() }),
        "Tue: an interval cannot start at 24:00; start at 00:00 the next day"
    );
    let many = (0..13).map(|h| iv(&format!("{h:02}:00"), &format!("{h:02}:30"))).collect();
    assert_eq!(refused(Week { wed: many, ..Week::default() }), "Wed: at most 12 intervals a day");
    // Touching is fine.
    assert!(
        calendar("UTC", Week { mon: vec![iv("09:00", "12:00"), iv("12:00", "17:00")], ..Week::default() })
            .schedule()
            .is_ok()
    );

    let christmas = NaiveDate::from_str("2026-12-25").unwrap();
    let mut twice = calendar("UTC", Week::default());
    twice.exceptions = vec![Exception { date: christmas, intervals: vec![] }; 2];
    assert_eq!(twice.schedule().unwrap_err().to_string(), "2026-12-25 has two exceptions; keep one");
    let mut too_many = calendar("UTC", Week::default());
    too_many.exceptions = christmas.iter_days().take(401).map(|date| Exception { date, intervals: vec![] }).collect();
    assert_eq!(too_many.schedule().unwrap_err().to_string(), "at most 400 dated exceptions");
}

#[test]
fn times_are_hh_mm_and_the_json_is_plain() {
    for bad in ["9:00", "25:00", "12:60", "24:01", "noon", "12-00", ""] {
        assert!(bad.parse::<ClockTime>().is_err(), "{bad:?}");
    }
    let json = r#"{"zone":"Europe/Berlin","week":{"mon":[{"from":"22:00","to":"02:00"}]},"exceptions":[{"date":"2026-12-25"}]}"#;
    let calendar: Calendar = serde_json::from_str(json).unwrap();
    assert_eq!(calendar.week.mon, vec![iv("22:00", "02:00")]);
    assert!(calendar.exceptions[0].intervals.is_empty(), "a date without intervals is closed");
    assert_eq!(
        serde_json::to_string(&calendar).unwrap(),
        r#"{"zone":"Europe/Berlin","week":{"mon":[{"from":"22:00","to":"02:00"}],"tue":[],"wed":[],"thu":[],"fri":[],"sat":[],"sun":[]},"exceptions":[{"date":"2026-12-25","intervals":[]}]}"#
    );
    let error = serde_json::from_str::<Calendar>(r#"{"zone":"UTC","week":{"mon":[{"from":"9","to":"17:00"}]}}"#)
        .unwrap_err()
        .to_string();
    assert!(error.contains("\"9\" is not a time like 09:00"), "{error}");
}
