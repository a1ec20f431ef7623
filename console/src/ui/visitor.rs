//! The right column: who the selected conversation's visitor is, from the
//! relay's `VisitorProfile`.

use leptos::prelude::*;

use super::{Ctx, clock};

#[component]
pub fn VisitorPanel() -> impl IntoView {
    let ctx = Ctx::get();
    let profile = Memo::new(move |_| {
        ctx.model.with(|m| {
            let visitor = m.conversation(m.selected()?)?.visitor;
            Some((visitor, m.visitor_name(visitor), m.profile(visitor).cloned()))
        })
    });
    view! {
        <aside class="visitor" aria-label="Visitor">
            <h2 class="column-title">"Visitor"</h2>
            {move || match profile.get() {
                None => view! { <p class="empty">"Select a conversation to see who you are talking to."</p> }.into_any(),
                Some((visitor, name, profile)) => {
                    let verified = profile.as_ref().is_some_and(|p| p.verified);
                    let email = profile.as_ref().and_then(|p| p.email.clone());
                    let user_id = profile.as_ref().and_then(|p| p.user_id.clone());
                    let page = profile.as_ref().and_then(|p| p.page.clone());
                    let since = profile.as_ref().and_then(|p| p.page_since);
                    let attributes = profile.map(|p| p.attributes).unwrap_or_default();
                    view! {
                        <div class="card">
                            <p class="visitor-name">{name}</p>
                            {if verified {
                                view! { <span class="tag verified" title="Identity signed by the site's backend">"✓ Verified"</span> }.into_any()
                            } else {
                                view! { <span class="tag anonymous" title="Not verified by the site">"Anonymous"</span> }.into_any()
                            }}
                            <dl class="facts">
                                <dt>"Visitor"</dt><dd>{format!("#{visitor}")}</dd>
                                {email.map(|email| view! { <dt>"Email"</dt><dd class="wrap">{email}</dd> })}
                                {user_id.map(|id| view! { <dt>"User id"</dt><dd class="wrap">{id}</dd> })}
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
                                        <p class="muted wrap">"From "{r}</p>
                                    })}
                                }.into_any(),
                                None => view! { <p class="muted">"Not reported yet."</p> }.into_any(),
                            }}
                        </div>
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
                    }.into_any()
                }
            }}
        </aside>
    }
}
