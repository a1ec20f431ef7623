//! The admin's business hours editor, under the site's settings: the time
//! zone, each weekday's intervals, dated exceptions, and whether out of
//! hours the widget offers only the offline form. The relay checks what is
//! saved; its sentence is shown as it is.

use std::collections::BTreeMap;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;

use super::admin::failed;
use super::spawn_while_shown;
use crate::api::{self, Calendar, Exception, Hours, Interval};

/// The weekdays as the API names them, and as the editor shows them.
const WEEKDAYS: [(&str, &str); 7] = [
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
];

/// Zones offered in the zone field; any other IANA name may be typed.
const ZONES: [&str; 12] = [
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
];

/// One editable row, keyed so `<For>` keeps its inputs.
#[derive(Debug, Clone, Copy)]
struct Row<T: Send + Sync + 'static> {
    key: u64,
    value: RwSignal<T>,
}

/// One weekday's intervals as the editor holds them.
type Intervals = RwSignal<Vec<Row<Interval>>>;

fn rows<T: Send + Sync + 'static>(next: &mut u64, values: Vec<T>) -> Vec<Row<T>> {
    values
        .into_iter()
        .map(|value| {
            *next += 1;
            Row { key: *next, value: RwSignal::new(value) }
        })
        .collect()
}

#[component]
pub fn HoursForm(notice: RwSignal<Option<Result<String, String>>>) -> impl IntoView {
    let loaded = RwSignal::new(None::<Hours>);
    spawn_while_shown(async move {
        match api::hours().await {
            Ok(found) => loaded.set(Some(found)),
            Err(error) => failed(notice, &error),
        }
    });
    move || loaded.get().map(|hours| view! { <HoursEditor hours notice /> })
}

#[component]
fn HoursEditor(hours: Hours, notice: RwSignal<Option<Result<String, String>>>) -> impl IntoView {
    let next_key = StoredValue::new(0_u64);
    let make_rows = move |intervals: Vec<Interval>| {
        let mut next = next_key.get_value();
        let made = rows(&mut next, intervals);
        next_key.set_value(next);
        made
    };
    let enabled = RwSignal::new(hours.enabled);
    let offline_form_only = RwSignal::new(hours.offline_form_only);
    let zone = RwSignal::new(hours.calendar.zone.clone());
    let days: Vec<(&'static str, &'static str, Intervals)> = WEEKDAYS
        .iter()
        .map(|&(key, name)| {
            let intervals = hours.calendar.week.get(key).cloned().unwrap_or_default();
            (key, name, RwSignal::new(make_rows(intervals)))
        })
        .collect();
    let exceptions = RwSignal::new({
        let mut next = next_key.get_value();
        let made = rows(
            &mut next,
            hours.calendar.exceptions.iter().map(|e| (e.date.clone(), intervals_text(&e.intervals))).collect(),
        );
        next_key.set_value(next);
        made
    });
    let saving = RwSignal::new(false);
    let read_days = days.clone();
    let save = move |event: SubmitEvent| {
        event.prevent_default();
        let mut week = BTreeMap::new();
        for (key, _, rows) in &read_days {
            let intervals = rows.get_untracked().iter().map(|row| row.value.get_untracked()).collect();
            week.insert((*key).to_owned(), intervals);
        }
        let mut dated = Vec::new();
        for row in exceptions.get_untracked() {
            let (date, text) = row.value.get_untracked();
            match parse_intervals(&text) {
                Ok(intervals) => dated.push(Exception { date: date.trim().to_owned(), intervals }),
                Err(error) => {
                    notice.set(Some(Err(format!("{date}: {error}"))));
                    return;
                }
            }
        }
        let hours = Hours {
            enabled: enabled.get_untracked(),
            offline_form_only: offline_form_only.get_untracked(),
            calendar: Calendar { zone: zone.get_untracked().trim().to_owned(), week, exceptions: dated },
        };
        saving.set(true);
        spawn_while_shown(async move {
            match api::update_hours(&hours).await {
                Ok(_) => notice.set(Some(Ok("Business hours saved.".to_owned()))),
                Err(error) => failed(notice, &error),
            }
            saving.set(false);
        });
    };
    let add_exception = move |_| {
        let mut next = next_key.get_value();
        let made = rows(&mut next, vec![(String::new(), String::new())]);
        next_key.set_value(next);
        exceptions.update(|list| list.extend(made));
    };
    view! {
        <form class="panel form-grid hours" on:submit=save>
            <h2>"Business hours"</h2>
            <label class="check">
                <input type="checkbox" name="hours_enabled" prop:checked=move || enabled.get()
                    on:change=move |e| enabled.set(event_target_checked(&e)) />
                <span>"Keep business hours"<span class="hint">"Off: the site is always open."</span></span>
            </label>
            <label>"Time zone"<span class="hint">"An IANA name, e.g. Europe/Berlin. Times below are in it."</span>
                <input type="text" name="zone" list="kefu-zones" prop:value=move || zone.get()
                    on:input=move |e| zone.set(event_target_value(&e)) />
                <datalist id="kefu-zones">{ZONES.map(|z| view! { <option value=z></option> }).collect_view()}</datalist>
            </label>
            <div class="hours-week">
                {days.into_iter().map(|(key, name, rows)| view! { <Day key name rows make_rows /> }).collect_view()}
            </div>
            <div class="hours-exceptions">
                <h3>"Exceptions"<span class="hint">" A date (YYYY-MM-DD) with its own hours, e.g. 09:00-12:00, 13:00-17:00; empty: closed."</span></h3>
                <For each=move || exceptions.get() key=|row| row.key let:row>
                    <div class="hours-row">
                        <input type="date" name="exception_date" prop:value=move || row.value.get().0
                            on:input=move |e| row.value.update(|v| v.0 = event_target_value(&e)) />
                        <input type="text" name="exception_hours" placeholder="closed" prop:value=move || row.value.get().1
                            on:input=move |e| row.value.update(|v| v.1 = event_target_value(&e)) />
                        <button type="button" class="button ghost small"
                            on:click=move |_| exceptions.update(|list| list.retain(|r| r.key != row.key))>"Remove"</button>
                    </div>
                </For>
                <button type="button" class="button ghost small" name="add_exception" on:click=add_exception>"Add exception"</button>
            </div>
            <label class="check">
                <input type="checkbox" name="offline_form_only" prop:checked=move || offline_form_only.get()
                    on:change=move |e| offline_form_only.set(event_target_checked(&e)) />
                <span>"Offline form only"<span class="hint">"Out of hours visitors leave their details instead of chatting."</span></span>
            </label>
            <div class="form-actions">
                <button type="submit" class="button primary" name="save_hours" disabled=move || saving.get()>
                    {move || if saving.get() { "Saving…" } else { "Save hours" }}
                </button>
            </div>
        </form>
    }
}

/// One weekday's intervals, each with a remove button, and an add button.
#[component]
fn Day(
    key: &'static str,
    name: &'static str,
    rows: Intervals,
    make_rows: impl Fn(Vec<Interval>) -> Vec<Row<Interval>> + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let add = move |_| {
        let interval = Interval { from: "09:00".into(), to: "17:00".into() };
        rows.update(|list| list.extend(make_rows(vec![interval])));
    };
    view! {
        <div class="hours-day" data-day=key>
            <span class="hours-day-name">{name}</span>
            <div class="hours-intervals">
                <Show when=move || rows.with(Vec::is_empty)><span class="muted">"Closed"</span></Show>
                <For each=move || rows.get() key=|row| row.key let:row>
                    <div class="hours-row">
                        <input type="time" name="from" prop:value=move || row.value.get().from
                            on:input=move |e| row.value.update(|v| v.from = event_target_value(&e)) />
                        "–"
                        <input type="time" name="to" prop:value=move || row.value.get().to
                            on:input=move |e| row.value.update(|v| v.to = event_target_value(&e)) />
                        <button type="button" class="button ghost small"
                            on:click=move |_| rows.update(|list| list.retain(|r| r.key != row.key))>"Remove"</button>
                    </div>
                </For>
            </div>
            <button type="button" class="button ghost small" name="add_interval" on:click=add>"Add"</button>
        </div>
    }
}

fn intervals_text(intervals: &[Interval]) -> String {
    intervals.iter().map(|i| format!("{}-{}", i.from, i.to)).collect::<Vec<_>>().join(", ")
}

/// `09:00-12:00, 13:00-17:00` as intervals; the relay checks the times.
fn parse_intervals(text: &str) -> Result<Vec<Interval>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (from, to) =
                part.split_once('-').ok_or_else(|| format!("{part:?} is not an interval like 09:00-17:00"))?;
            Ok(Interval { from: from.trim().to_owned(), to: to.trim().to_owned() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_hours_are_comma_separated_intervals() {
        let parsed = parse_intervals(" 09:00-12:00, 13:00 - 17:00 ,").unwrap();
        assert_eq!(intervals_text(&parsed), "09:00-12:00, 13:00-17:00");
        assert!(parse_intervals("").unwrap().is_empty(), "empty is closed");
        assert!(parse_intervals("9 to 5").is_err());
    }
}
