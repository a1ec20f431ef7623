//! The owner's Sites page: every site of the deployment, making a site
//! with its first admin, and stepping into one (the tab is then signed in
//! to that site as the owner's own admin there, and starts over on it).

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::admin::{AdminPage, failed};
use super::spawn_while_shown;
use crate::api::{self, NewSite, OwnedSite};

#[component]
pub fn SitesPage() -> impl IntoView {
    let sites = RwSignal::new(Vec::<OwnedSite>::new());
    let notice = RwSignal::new(None);
    let reload = move || {
        spawn_while_shown(async move {
            match api::owner_sites().await {
                Ok(list) => sites.set(list),
                Err(error) => failed(notice, &error),
            }
        });
    };
    reload();
    let enter = move |key: String| {
        // Runs to its end: the session has moved once the relay answers.
        spawn_local(async move {
            match api::enter_site(&key).await {
                // A fresh start on the other site: its inbox, its agents.
                Ok(_) => {
                    let location = window().location();
                    let _ = location.set_hash("#inbox");
                    let _ = location.reload();
                }
                Err(error) => failed(notice, &error),
            }
        });
    };

    let (key, name, email, password) = (
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
    );
    let create = move |event: SubmitEvent| {
        event.prevent_default();
        let typed = password.get_untracked();
        let site = NewSite {
            key: key.get_untracked().trim().to_owned(),
            name: name.get_untracked().trim().to_owned(),
            admin_email: email.get_untracked().trim().to_owned(),
            admin_password: (!typed.is_empty()).then_some(typed),
        };
        if site.key.is_empty() || site.name.is_empty() || site.admin_email.is_empty() {
            notice.set(Some(Err("Enter a site key, a name and the admin's email.".to_owned())));
            return;
        }
        spawn_while_shown(async move {
            match api::create_site(&site).await {
                Ok(created) => {
                    let login = match &created.admin_password {
                        Some(password) => format!(
                            "{} can sign in with the password {password} (shown once: note it now).",
                            created.admin_email
                        ),
                        None => format!("{} can sign in with the password you chose.", created.admin_email),
                    };
                    notice
                        .set(Some(Ok(format!("Site {} ({}) is ready. {login}", created.site.name, created.site.key))));
                    for field in [key, name, email, password] {
                        field.set(String::new());
                    }
                    reload();
                }
                Err(error) => failed(notice, &error),
            }
        });
    };

    view! {
        <AdminPage title="Sites" help="Every site this Kefu serves, each with its own agents, conversations and widget key. Open one to work in it as its admin." notice>
            <table class="table sites">
                <thead><tr><th>"Name"</th><th>"Site key"</th><th>"Agents"</th><th>"Open chats"</th><th></th></tr></thead>
                <tbody>
                    <For each=move || sites.get() key=|s| (s.key.clone(), s.agents, s.open_conversations, s.current) children=move |site| {
                        let key = site.key.clone();
                        view! {
                            <tr data-site=site.key.clone()>
                                <td class="strong">{site.name.clone()}</td>
                                <td class="mono">{site.key.clone()}</td>
                                <td>{site.agents}</td>
                                <td>{site.open_conversations}</td>
                                <td class="right">{if site.current {
                                    view! { <span class="pill open">"You are here"</span> }.into_any()
                                } else {
                                    view! { <button type="button" class="button ghost small" on:click=move |_| enter(key.clone())>"Open"</button> }.into_any()
                                }}</td>
                            </tr>
                        }
                    } />
                </tbody>
            </table>
            <form class="panel form-grid" on:submit=create>
                <h2>"Add a site"</h2>
                <label>"Name"<input type="text" name="site-name" prop:value=move || name.get() on:input=move |e| name.set(event_target_value(&e)) /></label>
                <label>"Site key"<span class="hint">"Letters, digits, - and _; goes in the site's script tag."</span>
                    <input type="text" name="site-key" class="mono" autocomplete="off" prop:value=move || key.get() on:input=move |e| key.set(event_target_value(&e)) />
                </label>
                <label>"Admin's email"<input type="email" name="admin-email" autocomplete="off" prop:value=move || email.get() on:input=move |e| email.set(event_target_value(&e)) /></label>
                <label>"Admin's first password"<span class="hint">"Leave empty to have one generated and shown once."</span>
                    <input type="password" name="admin-password" autocomplete="new-password" prop:value=move || password.get() on:input=move |e| password.set(event_target_value(&e)) />
                </label>
                <div class="form-actions"><button type="submit" class="button primary">"Add site"</button></div>
            </form>
        </AdminPage>
    }
}
