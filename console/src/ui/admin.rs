//! The admin's pages: the team's agents, the site's settings and the canned
//! replies. Each talks to the HTTP API directly (with the CSRF header, see
//! [`api`]) and shows the relay's refusal as a sentence.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::{Ctx, spawn_while_shown};
use crate::api::{self, AgentChange, AgentView, ApiError, Canned, NewAgent, SiteChange, SiteView};

/// A page's frame: title, one line of help, an error or success line.
#[component]
pub(super) fn AdminPage(
    title: &'static str,
    help: &'static str,
    notice: RwSignal<Option<Result<String, String>>>,
    children: Children,
) -> impl IntoView {
    view! {
        <main class="admin">
            <div class="admin-inner">
                <header class="admin-head">
                    <h1>{title}</h1>
                    <p class="muted">{help}</p>
                </header>
                {move || notice.get().map(|n| match n {
                    Ok(text) => view! { <p class="success" role="status">{text}</p> }.into_any(),
                    Err(text) => view! { <p class="error" role="alert">{text}</p> }.into_any(),
                })}
                {children()}
            </div>
        </main>
    }
}

pub(super) fn failed(notice: RwSignal<Option<Result<String, String>>>, error: &ApiError) {
    notice.try_set(Some(Err(error.message.clone())));
}

#[component]
pub fn AgentsPage() -> impl IntoView {
    let ctx = Ctx::get();
    let me = ctx.me.get_value().id;
    let agents = RwSignal::new(Vec::<AgentView>::new());
    let notice = RwSignal::new(None);
    let reload = move || {
        spawn_while_shown(async move {
            match api::agents().await {
                Ok(list) => agents.set(list),
                Err(error) => failed(notice, &error),
            }
        });
    };
    reload();
    let change = move |agent: AgentView, change: AgentChange, done: &'static str| {
        spawn_while_shown(async move {
            match api::update_agent(agent.id, &change).await {
                Ok(updated) => {
                    agents.update(|list| {
                        if let Some(slot) = list.iter_mut().find(|a| a.id == updated.id) {
                            *slot = updated.clone();
                        }
                    });
                    notice.set(Some(Ok(format!("{} {done}.", updated.name))));
                }
                Err(error) => failed(notice, &error),
            }
        });
    };

    let (name, email, password) =
        (RwSignal::new(String::new()), RwSignal::new(String::new()), RwSignal::new(String::new()));
    let role = RwSignal::new("agent".to_owned());
    let capacity = RwSignal::new("3".to_owned());
    let create = move |event: SubmitEvent| {
        event.prevent_default();
        let agent = NewAgent {
            name: name.get_untracked().trim().to_owned(),
            email: email.get_untracked().trim().to_owned(),
            password: password.get_untracked(),
            role: role.get_untracked(),
            capacity: capacity.get_untracked().trim().parse().unwrap_or(3),
        };
        if agent.name.is_empty() || agent.email.is_empty() || agent.password.is_empty() {
            notice.set(Some(Err("Enter a name, an email and a first password.".to_owned())));
            return;
        }
        spawn_while_shown(async move {
            match api::create_agent(&agent).await {
                Ok(created) => {
                    notice.set(Some(Ok(format!("{} can now sign in as {}.", created.name, created.email))));
                    agents.update(|list| list.push(created));
                    name.set(String::new());
                    email.set(String::new());
                    password.set(String::new());
                }
                Err(error) => failed(notice, &error),
            }
        });
    };

    view! {
        <AdminPage title="Agents" help="Who answers chats, their role, and how many open chats auto-assignment gives each." notice>
            <table class="table">
                <thead><tr><th>"Name"</th><th>"Email"</th><th>"Role"</th><th>"Capacity"</th><th>"Status"</th><th></th></tr></thead>
                <tbody>
                    <For each=move || agents.get() key=|a| (a.id, a.role.clone(), a.capacity, a.active, a.name.clone()) children=move |agent| {
                        let (for_role, for_capacity, for_active) = (agent.clone(), agent.clone(), agent.clone());
                        let own = agent.id == me;
                        view! {
                            <tr class:inactive=!agent.active data-email=agent.email.clone()>
                                <td class="strong">{agent.name.clone()}{own.then_some(" (you)")}</td>
                                <td>{agent.email.clone()}</td>
                                <td>
                                    <select aria-label="Role" disabled=own on:change=move |e| {
                                        change(for_role.clone(), AgentChange { role: Some(event_target_value(&e)), ..AgentChange::default() }, "has a new role");
                                    }>
                                        <option value="agent" selected=agent.role == "agent">"Agent"</option>
                                        <option value="admin" selected=agent.role == "admin">"Admin"</option>
                                    </select>
                                </td>
                                <td>
                                    <input type="number" class="narrow" min="0" max="100" aria-label="Capacity" value=agent.capacity.to_string()
                                        on:change=move |e| {
                                            if let Ok(capacity) = event_target_value(&e).trim().parse() {
                                                change(for_capacity.clone(), AgentChange { capacity: Some(capacity), ..AgentChange::default() }, "has a new capacity");
                                            }
                                        } />
                                </td>
                                <td>{if agent.active {
                                    view! { <span class="pill open">"Active"</span> }.into_any()
                                } else {
                                    view! { <span class="pill closed">"Deactivated"</span> }.into_any()
                                }}</td>
                                <td class="right">
                                    {(!own).then(|| {
                                        let active = for_active.active;
                                        view! {
                                            <button type="button" class="button ghost small" on:click=move |_| {
                                                let (change_to, done) = if active { (false, "was deactivated") } else { (true, "was reactivated") };
                                                change(for_active.clone(), AgentChange { active: Some(change_to), ..AgentChange::default() }, done);
                                            }>{if active { "Deactivate" } else { "Reactivate" }}</button>
                                        }
                                    })}
                                </td>
                            </tr>
                        }
                    } />
                </tbody>
            </table>
            <form class="panel form-grid" on:submit=create>
                <h2>"Add an agent"</h2>
                <label>"Name"<input type="text" name="name" prop:value=move || name.get() on:input=move |e| name.set(event_target_value(&e)) /></label>
                <label>"Email"<input type="email" name="email" autocomplete="off" prop:value=move || email.get() on:input=move |e| email.set(event_target_value(&e)) /></label>
                <label>"First password"<input type="password" name="password" autocomplete="new-password" prop:value=move || password.get() on:input=move |e| password.set(event_target_value(&e)) /></label>
                <label>"Role"
                    <select name="role" on:change=move |e| role.set(event_target_value(&e))>
                        <option value="agent" selected=true>"Agent"</option>
                        <option value="admin">"Admin"</option>
                    </select>
                </label>
                <label>"Capacity"<input type="number" name="capacity" min="0" max="100" prop:value=move || capacity.get() on:input=move |e| capacity.set(event_target_value(&e)) /></label>
                <div class="form-actions"><button type="submit" class="button primary">"Add agent"</button></div>
            </form>
        </AdminPage>
    }
}

#[component]
pub fn SitePage() -> impl IntoView {
    let notice = RwSignal::new(None);
    let site = RwSignal::new(None::<SiteView>);
    spawn_while_shown(async move {
        match api::site().await {
            Ok(found) => site.set(Some(found)),
            Err(error) => failed(notice, &error),
        }
    });
    view! {
        <AdminPage title="Settings" help="The site's name, keys and how the widget looks to visitors." notice>
            {move || site.get().map(|found| view! { <SiteForm site=found notice /> })}
            <super::mail::MailPanels />
            <super::hours::HoursForm notice />
            <super::forms::FormsEditor notice />
        </AdminPage>
    }
}

#[component]
fn SiteForm(site: SiteView, notice: RwSignal<Option<Result<String, String>>>) -> impl IntoView {
    let name = RwSignal::new(site.name.clone());
    let color = RwSignal::new(site.color.clone());
    let greeting = RwSignal::new(site.greeting.clone());
    let position = RwSignal::new(site.position.clone());
    let draft_preview = RwSignal::new(site.draft_preview);
    let origins = RwSignal::new(site.allowed_origins.join("\n"));
    let reveal = RwSignal::new(false);
    let saving = RwSignal::new(false);
    let save = move |event: SubmitEvent| {
        event.prevent_default();
        let change = SiteChange {
            name: name.get_untracked().trim().to_owned(),
            draft_preview: draft_preview.get_untracked(),
            color: color.get_untracked(),
            greeting: greeting.get_untracked(),
            position: position.get_untracked(),
            allowed_origins: origins
                .get_untracked()
                .lines()
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(ToOwned::to_owned)
                .collect(),
        };
        saving.set(true);
        spawn_while_shown(async move {
            match api::update_site(&change).await {
                Ok(_) => notice.set(Some(Ok("Settings saved. Widgets pick them up on their next load.".to_owned()))),
                Err(error) => failed(notice, &error),
            }
            saving.set(false);
        });
    };
    let secret = site.identity_secret.clone();
    view! {
        <form class="panel form-grid" on:submit=save>
            <h2>"Site"</h2>
            <label>"Name"<input type="text" name="name" prop:value=move || name.get() on:input=move |e| name.set(event_target_value(&e)) /></label>
            <label>"Site key"<span class="hint">"Goes in the widget snippet; public."</span>
                <input type="text" readonly class="mono" value=site.key.clone() />
            </label>
            {secret.map(|secret| view! {
                <label>"Identity secret"<span class="hint">"Your backend signs user ids with it (HMAC-SHA256). Keep it private."</span>
                    <span class="secret-row">
                        <input type=move || if reveal.get() { "text" } else { "password" } readonly class="mono" value=secret />
                        <button type="button" class="button ghost small" on:click=move |_| reveal.update(|r| *r = !*r)>
                            {move || if reveal.get() { "Hide" } else { "Show" }}
                        </button>
                    </span>
                </label>
            })}
            <label>"Allowed origins"<span class="hint">"One per line, e.g. https://shop.example.com. The widget runs only on these."</span>
                <textarea name="origins" rows="3" class="mono" prop:value=move || origins.get() on:input=move |e| origins.set(event_target_value(&e))></textarea>
            </label>
            <h2>"Widget"</h2>
            <label>"Colour"
                <span class="color-row">
                    <input type="color" name="color" prop:value=move || color.get() on:input=move |e| color.set(event_target_value(&e)) />
                    <span class="mono">{move || color.get()}</span>
                </span>
            </label>
            <label>"Greeting"<textarea name="greeting" rows="2" prop:value=move || greeting.get() on:input=move |e| greeting.set(event_target_value(&e))></textarea></label>
            <label>"Position"
                <select name="position" on:change=move |e| position.set(event_target_value(&e))>
                    <option value="right" selected=site.position != "left">"Bottom right"</option>
                    <option value="left" selected=site.position == "left">"Bottom left"</option>
                </select>
            </label>
            <label class="check">
                <input type="checkbox" name="draft_preview" prop:checked=move || draft_preview.get()
                    on:change=move |e| draft_preview.set(event_target_checked(&e)) />
                <span>"Draft preview"<span class="hint">"Agents see what visitors type before they send it."</span></span>
            </label>
            <div class="form-actions">
                <button type="submit" class="button primary" disabled=move || saving.get()>
                    {move || if saving.get() { "Saving…" } else { "Save settings" }}
                </button>
            </div>
        </form>
    }
}

#[component]
pub fn CannedPage() -> impl IntoView {
    let ctx = Ctx::get();
    let notice = RwSignal::new(None);
    let shortcut = RwSignal::new(String::new());
    let text = RwSignal::new(String::new());
    let editing = RwSignal::new(None::<u64>);
    ctx.reload_canned();
    let save = move |event: SubmitEvent| {
        event.prevent_default();
        let canned = Canned {
            id: editing.get_untracked().unwrap_or(0),
            shortcut: shortcut.get_untracked().trim().trim_start_matches('/').to_owned(),
            text: text.get_untracked().trim().to_owned(),
        };
        if canned.shortcut.is_empty() || canned.shortcut.contains(char::is_whitespace) || canned.text.is_empty() {
            notice.set(Some(Err("A shortcut is one word; the reply cannot be empty.".to_owned())));
            return;
        }
        // The list is the whole console's (the composer's shortcuts): the
        // request runs to its end even when the page is left meanwhile.
        spawn_local(async move {
            let result =
                if canned.id == 0 { api::create_canned(&canned).await } else { api::update_canned(&canned).await };
            match result {
                Ok(saved) => {
                    notice.try_set(Some(Ok(format!("/{} saved.", saved.shortcut))));
                    shortcut.try_set(String::new());
                    text.try_set(String::new());
                    editing.try_set(None);
                    ctx.reload_canned();
                }
                Err(error) => failed(notice, &error),
            }
        });
    };
    let delete = move |canned: Canned| {
        // The list is the whole console's (the composer's shortcuts): the
        // request runs to its end even when the page is left meanwhile.
        spawn_local(async move {
            match api::delete_canned(canned.id).await {
                Ok(()) => {
                    notice.try_set(Some(Ok(format!("/{} deleted.", canned.shortcut))));
                    ctx.reload_canned();
                }
                Err(error) => failed(notice, &error),
            }
        });
    };
    view! {
        <AdminPage title="Canned replies" help="Type /shortcut in the composer, then Space, Tab or Enter, to insert the reply." notice>
            <Show when=move || !ctx.canned.with(Vec::is_empty)
                fallback=|| view! { <div class="panel empty-state"><p class="empty-title">"No canned replies yet"</p><p>"Add the answers your team types most often."</p></div> }>
                <ul class="canned-list panel">
                    <For each=move || ctx.canned.get() key=|c| (c.id, c.shortcut.clone(), c.text.clone()) children=move |canned| {
                        let (for_edit, for_delete) = (canned.clone(), canned.clone());
                        view! {
                            <li class="canned">
                                <span class="shortcut">"/"{canned.shortcut.clone()}</span>
                                <span class="canned-text">{canned.text.clone()}</span>
                                <span class="canned-actions">
                                    <button type="button" class="button ghost small" on:click=move |_| {
                                        editing.set(Some(for_edit.id));
                                        shortcut.set(for_edit.shortcut.clone());
                                        text.set(for_edit.text.clone());
                                    }>"Edit"</button>
                                    <button type="button" class="button ghost small danger" on:click=move |_| delete(for_delete.clone())>"Delete"</button>
                                </span>
                            </li>
                        }
                    } />
                </ul>
            </Show>
            <form class="panel form-grid" on:submit=save>
                <h2>{move || if editing.get().is_some() { "Edit canned reply" } else { "New canned reply" }}</h2>
                <label>"Shortcut"<input type="text" name="shortcut" placeholder="thanks" prop:value=move || shortcut.get() on:input=move |e| shortcut.set(event_target_value(&e)) /></label>
                <label>"Reply"<textarea name="text" rows="3" placeholder="Thank you for waiting! Let me check that for you." prop:value=move || text.get() on:input=move |e| text.set(event_target_value(&e))></textarea></label>
                <div class="form-actions">
                    {move || editing.get().is_some().then(|| view! {
                        <button type="button" class="button ghost" on:click=move |_| { editing.set(None); shortcut.set(String::new()); text.set(String::new()); }>"Cancel"</button>
                    })}
                    <button type="submit" class="button primary">{move || if editing.get().is_some() { "Save" } else { "Add reply" }}</button>
                </div>
            </form>
        </AdminPage>
    }
}
