//! The right column: who the selected conversation's visitor is. The live
//! profile (name, page, attributes) comes over the WebSocket; the rest
//! (pages visited, browser, language, earlier conversations) from
//! `GET /api/visitors/{id}`, fetched again when the visitor moves on.

use kefu_protocol::frame::{ConversationStatus, VisitorProfile};
use kefu_protocol::ids::VisitorId;
use leptos::prelude::*;

use super::{Ctx, ago, clock, spawn_while_shown};
use crate::api::{self, VisitorDetails};

#[component]
pub fn VisitorPanel() -> impl IntoView {
    let ctx = Ctx::get();
    let visitor = Memo::new(move |_| ctx.model.with(|m| Some(m.conversation(m.selected()?)?.visitor)));
    let profile = Memo::new(move |_| {
        let visitor = visitor.get()?;
        ctx.model.with(|m| Some((visitor, m.visitor_name(visitor), m.profile(visitor).cloned())))
    });
    // What to fetch details for: the visitor, where they are now, and who
    // they are (whether name and email are signed comes with the details).
    let wanted = Memo::new(move |_| {
        profile.with(|p| {
            p.as_ref().map(|(v, _, p)| {
                let page = p.as_ref().and_then(|p| p.page.as_ref().map(|pg| pg.url.clone()));
                let identity = p.as_ref().map(|p| (p.verified, p.user_id.clone(), p.name.clone(), p.email.clone()));
                (*v, page, identity)
            })
        })
    });
    let details = RwSignal::new(None::<(VisitorId, VisitorDetails)>);
    // The pre-chat form's labels, to name what visitors filled in.
    let labels = RwSignal::new(Vec::<(String, String)>::new());
    spawn_while_shown(async move {
        if let Ok(forms) = api::forms().await {
            labels.try_set(forms.prechat.fields.iter().map(|f| (f.attribute(), f.label.clone())).collect());
        }
    });
    Effect::new(move |_| {
        let Some((visitor, _, _)) = wanted.get() else {
            return;
        };
        spawn_while_shown(async move {
            // By the time the answer comes the panel may be gone (another
            // page): `try_` reads find its memo disposed and drop it.
            let still_wanted = || wanted.try_with_untracked(|w| w.as_ref().is_some_and(|w| w.0 == visitor));
            if let Ok(found) = api::visitor(visitor).await
                && still_wanted() == Some(true)
            {
                details.try_set(Some((visitor, found)));
            }
        });
    });
    view! {
        <aside class="visitor" aria-label="Visitor">
            {move || match profile.get() {
                None => view! {
                    <div class="empty-state">
                        <p class="empty-title">"Visitor details"</p>
                        <p>"Open a conversation to see who you are talking to."</p>
                    </div>
                }.into_any(),
                Some((visitor, name, live)) => {
                    // The live profile is fresher; the fetched one stands in
                    // until it comes.
                    let fetched = details.with(|d| d.as_ref().filter(|d| d.0 == visitor).map(|d| d.1.profile.clone()));
                    let more = Memo::new(move |_| details.with(|d| d.as_ref().filter(|d| d.0 == visitor).map(|d| d.1.clone())));
                    view! { <Card visitor name profile=live.or(fetched) more labels /> }.into_any()
                }
            }}
        </aside>
    }
}

#[component]
fn Card(
    visitor: VisitorId,
    name: String,
    profile: Option<VisitorProfile>,
    more: Memo<Option<VisitorDetails>>,
    labels: RwSignal<Vec<(String, String)>>,
) -> impl IntoView {
    let ctx = Ctx::get();
    let p = profile;
    let verified = p.as_ref().is_some_and(|p| p.verified);
    // Name and email count as verified only when they were signed.
    let signed = Memo::new(move |_| more.with(|m| m.as_ref().is_some_and(|m| m.profile_signed)));
    let email = p.as_ref().and_then(|p| p.email.clone());
    let user_id = p.as_ref().and_then(|p| p.user_id.clone());
    let page = p.as_ref().and_then(|p| p.page.clone());
    let since = p.as_ref().and_then(|p| p.page_since);
    // What the widget's forms asked is the visitor's word, shown apart.
    let (given, attributes): (Vec<_>, Vec<_>) =
        p.map(|p| p.attributes).unwrap_or_default().into_iter().partition(|a| is_form_value(&a.key));
    let initial = name.chars().next().map(|c| c.to_uppercase().collect::<String>()).unwrap_or_default();
    let selected = ctx.model.with_untracked(|m| m.selected());
    view! {
        <div class="card identity">
            <span class="avatar big visitor-avatar" aria-hidden="true">{initial}</span>
            <div>
                <p class="visitor-name">{name}</p>
                {move || match (verified, signed.get()) {
                    (true, true) => view! {
                        <span class="tag verified" title="User id, name and email signed by the site's backend">"✓ Verified"</span>
                    }.into_any(),
                    (true, false) => view! {
                        <span class="tag verified" title="Only the user id is signed (plain hash); name and email are the page's claim">
                            "✓ User id verified"
                        </span>
                    }.into_any(),
                    (false, _) => view! { <span class="tag anonymous" title="Not verified by the site">"Anonymous"</span> }.into_any(),
                }}
            </div>
        </div>
        <div class="card">
            <dl class="facts">
                <dt>"Visitor"</dt><dd>{format!("#{visitor}")}</dd>
                {email.map(|email| view! {
                    <dt>"Email"</dt>
                    <dd class="wrap">
                        {email}
                        {move || (verified && signed.get()).then(|| view! { <span class="signed" title="Signed by the site's backend">" ✓"</span> })}
                    </dd>
                })}
                {user_id.map(|id| view! { <dt>"User id"</dt><dd class="wrap">{id}</dd> })}
                {move || more.get().map(|m| view! {
                    {m.browser.map(|b| view! { <dt>"Browser"</dt><dd>{b}</dd> })}
                    {m.os.map(|os| view! { <dt>"System"</dt><dd>{os}</dd> })}
                    {m.language.map(|l| view! { <dt>"Language"</dt><dd>{l}</dd> })}
                })}
            </dl>
        </div>
        <div class="card">
            <h3>"Current page"</h3>
            {match page {
                Some(page) => view! {
                    <p class="page-title">{if page.title.is_empty() { page.url.clone() } else { page.title.clone() }}</p>
                    <p class="page-url wrap">{page.url}</p>
                    {since.map(|since| view! { <p class="muted">"Since "{clock(since)}</p> })}
                    {page.referrer.filter(|r| !r.is_empty()).map(|r| view! {
                        <p class="muted wrap">"Came from "{r}</p>
                    })}
                }.into_any(),
                None => view! { <p class="muted">"Not reported yet."</p> }.into_any(),
            }}
        </div>
        {move || more.get().filter(|m| m.visits.len() > 1).map(|m| {
            let now = ctx.now.get();
            view! {
                <div class="card">
                    <h3>"Pages visited"</h3>
                    <ol class="visits">
                        {m.visits.into_iter().take(12).map(|visit| view! {
                            <li>
                                <span class="visit-title wrap">{if visit.title.is_empty() { visit.url.clone() } else { visit.title.clone() }}</span>
                                <span class="visit-time" title=clock(visit.at)>{ago(visit.at, now)}" ago"</span>
                            </li>
                        }).collect_view()}
                    </ol>
                </div>
            }
        })}
        {(!given.is_empty()).then(|| view! {
            <div class="card form-values">
                <h3>"From the chat form "<span class="tag anonymous" title="Typed by the visitor; nobody checked it">"Unverified"</span></h3>
                <dl class="facts">
                    {given.into_iter().map(|a| {
                        let key = a.key.clone();
                        let label = move || labels.with(|l| form_label(l, &key));
                        view! { <dt>{label}</dt><dd class="wrap">{a.value}</dd> }
                    }).collect_view()}
                </dl>
            </div>
        })}
        <div class="card">
            <h3>"Attributes"</h3>
            {if attributes.is_empty() {
                view! { <p class="muted">"None set."</p> }.into_any()
            } else {
                view! {
                    <dl class="facts">
                        {attributes.into_iter().map(|a| view! { <dt>{a.key}</dt><dd class="wrap">{a.value}</dd> }).collect_view()}
                    </dl>
                }.into_any()
            }}
        </div>
        {move || more.get().map(|m| {
            let earlier: Vec<_> = m.conversations.into_iter().filter(|c| Some(c.id) != selected).collect();
            view! {
                <div class="card">
                    <h3>"Earlier conversations"</h3>
                    {if earlier.is_empty() {
                        view! { <p class="muted">"This is the first one."</p> }.into_any()
                    } else {
                        view! {
                            <ul class="earlier">
                                {earlier.into_iter().map(|c| {
                                    let status = if c.status == "open" { ConversationStatus::Open } else { ConversationStatus::Closed };
                                    view! {
                                        <li>
                                            <button type="button" class="link" on:click=move |_| {
                                                ctx.connection(|conn| conn.view_changed(|model| model.know(c.id, visitor, status, c.last_seq)));
                                                ctx.select(c.id);
                                            }>
                                                {format!("#{}", c.id)}" · "{clock(c.updated_at)}
                                            </button>
                                            <span class="pill" class:open=c.status == "open" class:closed=c.status != "open">{c.status.clone()}</span>
                                        </li>
                                    }
                                }).collect_view()}
                            </ul>
                        }.into_any()
                    }}
                </div>
            }
        })}
    }
}

/// Whether an attribute is one the widget's forms set: the built-in
/// fields, and the site's own under `form.`.
fn is_form_value(key: &str) -> bool {
    matches!(key, "name" | "email" | "phone") || key.starts_with("form.")
}

/// What to call a form value: its field's label, else a plain name.
fn form_label(labels: &[(String, String)], key: &str) -> String {
    if let Some((_, label)) = labels.iter().find(|(attribute, _)| attribute == key) {
        return label.clone();
    }
    match key {
        "name" => "Name".into(),
        "email" => "Email".into(),
        "phone" => "Phone".into(),
        "form.consent" => "Agreed to the privacy text".into(),
        other => other.trim_start_matches("form.").to_owned(),
    }
}
