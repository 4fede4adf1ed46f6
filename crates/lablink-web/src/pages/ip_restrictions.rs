//! Account settings → IP restrictions (admins): the rules, the switch that enforces them, an
//! address tester, and where webhook deliveries may come from. Every change redirects back with a message (post/redirect/get); a refused
//! change shows the form again with what was typed.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lablink_core::Role;
use lablink_service::ServiceError;
use lablink_service::ip_restrictions::{IpRuleInput, WebhookSourcesInput};
use serde::Deserialize;

use super::when;
use crate::extract::ClientIp;
use crate::{AppState, Chrome, CurrentUser, HtmlError, render};

const PAGE: &str = "/settings/ip-restrictions";
const ADMINS_ONLY: &str = "IP restrictions are for account admins. Ask an admin of your account.";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PAGE, get(show))
        .route("/settings/ip-restrictions/rules", post(create))
        .route("/settings/ip-restrictions/rules/{id}", post(update))
        .route("/settings/ip-restrictions/rules/{id}/delete", post(delete))
        .route("/settings/ip-restrictions/enabled", post(enable))
        .route(
            "/settings/ip-restrictions/webhook-sources",
            post(webhook_sources),
        )
}

/// What the last action did, shown once after its redirect.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Done {
    Created,
    Changed,
    Deleted,
    Enabled,
    Disabled,
    SourcesSaved,
}

impl Done {
    fn message(self) -> &'static str {
        match self {
            Done::Created => "The rule was added.",
            Done::Changed => "The rule was saved.",
            Done::Deleted => "The rule was deleted.",
            Done::Enabled => {
                "IP restrictions are enabled: every request is checked against the rules."
            }
            Done::Disabled => "IP restrictions are disabled: the rules are kept but not enforced.",
            Done::SourcesSaved => "The webhook delivery settings were saved.",
        }
    }

    fn redirect(self) -> Response {
        let name = match self {
            Done::Created => "created",
            Done::Changed => "changed",
            Done::Deleted => "deleted",
            Done::Enabled => "enabled",
            Done::Disabled => "disabled",
            Done::SourcesSaved => "sources_saved",
        };
        Redirect::to(&format!("{PAGE}?done={name}")).into_response()
    }
}

struct RuleRow {
    id: String,
    name: String,
    description: String,
    allow: bool,
    ranges: Vec<String>,
    updated: String,
}

/// The rule form: empty, a rule being edited, or what was typed before a refusal.
#[derive(Default)]
struct RuleForm {
    /// `None` for a new rule.
    id: Option<String>,
    name: String,
    description: String,
    kind: String,
    ranges: String,
    error: Option<String>,
}

/// The webhook sources form: as saved, or what was typed before a refusal.
struct SourcesForm {
    enabled: bool,
    ranges: String,
    error: Option<String>,
}

/// What a refused form gets back, shown next to that form.
enum Typed {
    Rule(RuleForm),
    Sources(SourcesForm),
    /// A refusal of an action without fields (delete, enable), shown at the top.
    Nothing,
}

#[derive(Template)]
#[template(path = "ip_restrictions.html")]
struct IpRestrictionsPage {
    chrome: Chrome,
    enabled: bool,
    rules: Vec<RuleRow>,
    your_address: Option<(String, String, bool)>,
    form: RuleForm,
    sources: SourcesForm,
    /// The account's GitLab's published webhook ranges (gitlab.com's), if any.
    published_sources: Vec<String>,
    tested: Option<(String, Result<String, String>, bool)>,
    message: Option<&'static str>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct PageQuery {
    done: Option<Done>,
    edit: Option<String>,
    test: Option<String>,
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    client_ip: Option<&str>,
    query: PageQuery,
    typed: Typed,
    error: Option<String>,
) -> Result<IpRestrictionsPage, HtmlError> {
    let (form, sources) = match typed {
        Typed::Rule(form) => (Some(form), None),
        Typed::Sources(sources) => (None, Some(sources)),
        Typed::Nothing => (None, None),
    };
    let view = state
        .services
        .ip_restrictions(&user.principal, client_ip)
        .await?;
    let rules: Vec<RuleRow> = view
        .restrictions
        .rules
        .iter()
        .map(|r| RuleRow {
            id: r.rule.id.clone(),
            name: r.rule.name.clone(),
            description: r.description.clone(),
            allow: r.rule.kind == lablink_core::ip_rules::RuleKind::Allow,
            ranges: r.rule.ranges.iter().map(ToString::to_string).collect(),
            updated: when(r.updated_at),
        })
        .collect();
    let form = form.unwrap_or_else(|| {
        query
            .edit
            .as_deref()
            .and_then(|id| view.restrictions.rules.iter().find(|r| r.rule.id == id))
            .map(|r| RuleForm {
                id: Some(r.rule.id.clone()),
                name: r.rule.name.clone(),
                description: r.description.clone(),
                kind: r.rule.kind.as_str().to_owned(),
                ranges: r
                    .rule
                    .ranges
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
                error: None,
            })
            .unwrap_or_else(|| RuleForm {
                kind: "allow".into(),
                ..RuleForm::default()
            })
    });
    let tested = match query.test.as_deref().map(str::trim) {
        Some(address) if !address.is_empty() => {
            let outcome = state
                .services
                .test_ip_address(&user.principal, address)
                .await;
            Some(match outcome {
                Ok(decision) => (address.to_owned(), Ok(decision.explain()), decision.allowed),
                Err(ServiceError::BadInput(why)) => (address.to_owned(), Err(why), false),
                Err(e) => return Err(e.into()),
            })
        }
        _ => None,
    };
    let saved = &view.restrictions.webhook_sources;
    let sources = sources.unwrap_or_else(|| SourcesForm {
        enabled: saved.enabled,
        // Nothing saved yet: offer the published ranges, which the admin still has to save.
        ranges: if saved.ranges.is_empty() {
            view.published_webhook_sources.join("\n")
        } else {
            saved
                .ranges
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        },
        error: None,
    });
    Ok(IpRestrictionsPage {
        chrome: Chrome::for_user(user),
        enabled: view.restrictions.enabled,
        sources,
        published_sources: view.published_webhook_sources,
        rules,
        your_address: view
            .your_address
            .map(|(address, d)| (address, d.explain(), d.allowed)),
        form,
        tested,
        message: query.done.map(Done::message),
        error,
    })
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    ClientIp(client_ip): ClientIp,
    Query(query): Query<PageQuery>,
) -> Result<impl IntoResponse, HtmlError> {
    user.require(Role::can_manage_account, ADMINS_ONLY)?;
    render(
        &page(
            &state,
            &user,
            client_ip.as_deref(),
            query,
            Typed::Nothing,
            None,
        )
        .await?,
    )
}

#[derive(Deserialize)]
struct RuleFields {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    ranges: String,
}

impl RuleFields {
    fn input(&self) -> IpRuleInput {
        IpRuleInput {
            name: self.name.clone(),
            description: self.description.clone(),
            kind: self.kind.clone(),
            ranges: self.ranges.clone(),
        }
    }
}

/// After an action: back to the page with its message, or the page again with the refusal —
/// next to the form with what was typed, or at the top.
async fn settle(
    state: &AppState,
    user: &CurrentUser,
    client_ip: Option<&str>,
    result: Result<(), ServiceError>,
    done: Done,
    typed: Typed,
) -> Result<Response, HtmlError> {
    match result {
        Ok(()) => Ok(done.redirect()),
        Err(ServiceError::BadInput(why) | ServiceError::Conflict(why)) => {
            let (typed, error) = match typed {
                Typed::Rule(form) => (
                    Typed::Rule(RuleForm {
                        error: Some(why),
                        ..form
                    }),
                    None,
                ),
                Typed::Sources(form) => (
                    Typed::Sources(SourcesForm {
                        error: Some(why),
                        ..form
                    }),
                    None,
                ),
                Typed::Nothing => (Typed::Nothing, Some(why)),
            };
            let page = page(state, user, client_ip, PageQuery::default(), typed, error).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

impl RuleFields {
    /// The form again with what was typed.
    fn form(self, id: Option<String>) -> RuleForm {
        RuleForm {
            id,
            name: self.name,
            description: self.description,
            kind: self.kind,
            ranges: self.ranges,
            error: None,
        }
    }
}

async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    ClientIp(client_ip): ClientIp,
    Form(fields): Form<RuleFields>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&fields.csrf_token)?;
    user.require(Role::can_manage_account, ADMINS_ONLY)?;
    let result = state
        .services
        .create_ip_rule(&user.principal, &fields.input(), client_ip.as_deref())
        .await
        .map(drop);
    let form = fields.form(None);
    settle(
        &state,
        &user,
        client_ip.as_deref(),
        result,
        Done::Created,
        Typed::Rule(form),
    )
    .await
}

async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    ClientIp(client_ip): ClientIp,
    Path(id): Path<String>,
    Form(fields): Form<RuleFields>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&fields.csrf_token)?;
    user.require(Role::can_manage_account, ADMINS_ONLY)?;
    let result = state
        .services
        .update_ip_rule(&user.principal, &id, &fields.input(), client_ip.as_deref())
        .await;
    let form = fields.form(Some(id));
    settle(
        &state,
        &user,
        client_ip.as_deref(),
        result,
        Done::Changed,
        Typed::Rule(form),
    )
    .await
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf_token: String,
}

async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    ClientIp(client_ip): ClientIp,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    user.require(Role::can_manage_account, ADMINS_ONLY)?;
    let result = state
        .services
        .delete_ip_rule(&user.principal, &id, client_ip.as_deref())
        .await;
    settle(
        &state,
        &user,
        client_ip.as_deref(),
        result,
        Done::Deleted,
        Typed::Nothing,
    )
    .await
}

#[derive(Deserialize)]
struct EnableForm {
    #[serde(default)]
    csrf_token: String,
    enabled: String,
}

async fn enable(
    State(state): State<AppState>,
    user: CurrentUser,
    ClientIp(client_ip): ClientIp,
    Form(form): Form<EnableForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    user.require(Role::can_manage_account, ADMINS_ONLY)?;
    let enabled = form.enabled == "true";
    let result = state
        .services
        .set_ip_restrictions_enabled(&user.principal, enabled, client_ip.as_deref())
        .await;
    let done = if enabled {
        Done::Enabled
    } else {
        Done::Disabled
    };
    settle(
        &state,
        &user,
        client_ip.as_deref(),
        result,
        done,
        Typed::Nothing,
    )
    .await
}

#[derive(Deserialize)]
struct SourcesFields {
    #[serde(default)]
    csrf_token: String,
    /// A checkbox: present (`on`) when ticked.
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    ranges: String,
}

async fn webhook_sources(
    State(state): State<AppState>,
    user: CurrentUser,
    ClientIp(client_ip): ClientIp,
    Form(fields): Form<SourcesFields>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&fields.csrf_token)?;
    user.require(Role::can_manage_account, ADMINS_ONLY)?;
    let input = WebhookSourcesInput {
        enabled: fields.enabled.is_some(),
        ranges: fields.ranges,
    };
    let result = state
        .services
        .set_webhook_sources(&user.principal, &input, client_ip.as_deref())
        .await;
    let typed = Typed::Sources(SourcesForm {
        enabled: input.enabled,
        ranges: input.ranges,
        error: None,
    });
    settle(
        &state,
        &user,
        client_ip.as_deref(),
        result,
        Done::SourcesSaved,
        typed,
    )
    .await
}
