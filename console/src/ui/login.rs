//! The login screen: email and password, a clear error when they are
//! wrong, and which site, when the email is an agent of several.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::Logo;
use crate::api::{self, Login, Me, SiteChoice};

#[component]
pub fn LoginScreen(
    /// Why the agent is here again (a session that ended), if not by choice.
    notice: RwSignal<Option<&'static str>>,
    on_login: impl Fn(Me) + Copy + 'static,
) -> impl IntoView {
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    // Filled when the relay asks which site; the chosen key goes with the
    // next attempt.
    let sites = RwSignal::new(Vec::<SiteChoice>::new());
    let site = RwSignal::new(None::<String>);

    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let (address, secret) = (email.get_untracked(), password.get_untracked());
        if address.trim().is_empty() || secret.is_empty() {
            error.set(Some("Enter your email and password.".to_owned()));
            return;
        }
        busy.set(true);
        error.set(None);
        notice.set(None);
        spawn_local(async move {
            let chosen = site.get_untracked();
            let result = api::login(address.trim(), &secret, chosen.as_deref()).await;
            busy.set(false);
            match result {
                Ok(Login::Done(me)) => on_login(me),
                Ok(Login::ChooseSite { sites: choices }) => {
                    site.set(choices.first().map(|choice| choice.key.clone()));
                    sites.set(choices);
                    error.set(Some("This email works on several sites: choose one.".to_owned()));
                }
                Err(failure) => {
                    password.set(String::new());
                    error.set(Some(failure.message));
                }
            }
        });
    };

    view! {
        <div class="login-page">
            <form class="login-card" on:submit=submit novalidate>
                <div class="brand big"><Logo />"Kefu"</div>
                <h1>"Sign in to the console"</h1>
                {move || notice.get().map(|text| view! { <p class="notice" role="status">{text}</p> })}
                <label for="email">"Email"</label>
                <input id="email" name="email" type="email" autocomplete="username" required autofocus
                    prop:value=move || email.get() on:input=move |e| email.set(event_target_value(&e)) />
                <label for="password">"Password"</label>
                <input id="password" name="password" type="password" autocomplete="current-password" required
                    prop:value=move || password.get() on:input=move |e| password.set(event_target_value(&e)) />
                {move || (!sites.with(Vec::is_empty)).then(|| view! {
                    <label for="site">"Site"</label>
                    <select id="site" name="site" on:change=move |e| site.set(Some(event_target_value(&e)))>
                        {sites.get().into_iter().map(|choice| {
                            let selected = site.get_untracked().as_deref() == Some(choice.key.as_str());
                            view! { <option value=choice.key.clone() selected=selected>{choice.name}</option> }
                        }).collect_view()}
                    </select>
                })}
                {move || error.get().map(|text| view! { <p class="error" role="alert">{text}</p> })}
                <button type="submit" class="button primary wide" disabled=move || busy.get()>
                    {move || if busy.get() { "Signing in…" } else { "Sign in" }}
                </button>
            </form>
        </div>
    }
}
