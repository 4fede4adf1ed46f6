//! IP restrictions (account settings): allow and deny rules by address range, enforced on pages,
//! the JSON API and sign-in once an admin enables them; and the ranges the account's webhook
//! deliveries may come from, enforced by intake.
//!
//! Requests are checked against an in-memory copy of each account's rules ([`IpRulesCache`]),
//! never by a query: every replica reloads an account's rules when its version in the database
//! changes ([`ip_rules_loop`], every [`REFRESH_EVERY`]), and the replica that made a change
//! reloads at once. Saving or enabling is refused while the admin's own address would be denied.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use lablink_core::ip_range::{IpNet, parse_ip_range};
use lablink_core::ip_rules::{Decision, IpRules, Rule, RuleKind};
use lablink_store::audit::AuditEvent;
use lablink_store::ip_rules::IpRuleFields;
pub use lablink_store::ip_rules::{IpRestrictions, IpRule, WebhookSources};
use tokio_util::sync::CancellationToken;

use crate::error::require;
use crate::{Principal, ServiceError, Services};

/// What a denied caller is told, on a page, in the API and at sign-in (the dbt platform's words).
pub const ACCESS_DENIED: &str = "Access denied! Please contact your admin for more details.";

/// How often a replica looks for rules changed on another replica.
pub const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// A denied address is written to the audit log at most this often per account.
const DENIED_AUDIT_EVERY: Duration = Duration::from_secs(60);

const ADMINS_ONLY: &str = "Only account admins can change IP restrictions.";

/// The ranges GitLab.com sends webhooks from: GitLab's documentation, "GitLab.com settings" → "IP
/// range" (gitlabhq `doc/user/gitlab_com/_index.md`). Offered as the list when the account's
/// GitLab is gitlab.com; a self-managed instance's admins know their own.
pub const GITLAB_COM_WEBHOOK_SOURCES: [&str; 2] = ["34.74.90.64/28", "34.74.226.0/24"];

/// One account's rules as this replica enforces them.
#[derive(Debug)]
struct Enforced {
    version: i64,
    enabled: bool,
    rules: IpRules,
    /// `Some` while webhook deliveries are restricted to these ranges.
    webhook_sources: Option<Vec<IpNet>>,
}

/// Every account's enforced rules, and when each denied address was last audited.
#[derive(Debug, Default)]
pub struct IpRulesCache {
    accounts: RwLock<HashMap<String, Arc<Enforced>>>,
    denied_audited: Mutex<HashMap<(String, IpAddr), Instant>>,
}

/// A rule as a person typed it (a form or the API).
#[derive(Debug, Clone, Default)]
pub struct IpRuleInput {
    pub name: String,
    pub description: String,
    /// `allow` or `deny`.
    pub kind: String,
    /// Ranges separated by new lines or commas.
    pub ranges: String,
}

/// The webhook source ranges as a person typed them.
#[derive(Debug, Clone, Default)]
pub struct WebhookSourcesInput {
    pub enabled: bool,
    /// Ranges separated by new lines or commas.
    pub ranges: String,
}

/// The settings page's and the API's view of an account's restrictions.
#[derive(Debug, Clone)]
pub struct IpRestrictionsView {
    pub restrictions: IpRestrictions,
    /// How the caller's own address fares under the saved rules (`None`: address unknown).
    pub your_address: Option<(String, Decision)>,
    /// The published webhook ranges of the account's GitLab (gitlab.com's), when it has any.
    pub published_webhook_sources: Vec<String>,
}

fn parse_address(text: &str) -> Result<IpAddr, ServiceError> {
    text.trim().parse().map_err(|_| {
        ServiceError::BadInput(format!(
            "`{}` is not an IP address: write one like 203.0.113.7 or 2001:db8::7",
            text.trim()
        ))
    })
}

/// Checks a typed rule: a name, a kind, and at least one range, every bad range named.
fn validate(input: &IpRuleInput) -> Result<(String, String, RuleKind, Vec<IpNet>), ServiceError> {
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ServiceError::BadInput(
            "Give the rule a name of 1 to 100 characters.".into(),
        ));
    }
    let description = input.description.trim();
    if description.chars().count() > 1000 {
        return Err(ServiceError::BadInput(
            "The description is limited to 1,000 characters.".into(),
        ));
    }
    let kind: RuleKind = input.kind.parse().map_err(|_| {
        ServiceError::BadInput("Choose whether the rule allows or denies its ranges.".into())
    })?;
    let ranges = parse_ranges(&input.ranges)?;
    if ranges.is_empty() {
        return Err(ServiceError::BadInput(
            "Add at least one range, like 203.0.113.0/24 or 2001:db8::/32.".into(),
        ));
    }
    Ok((name.to_owned(), description.to_owned(), kind, ranges))
}

/// Ranges separated by new lines or commas, each bad one named, duplicates dropped.
fn parse_ranges(text: &str) -> Result<Vec<IpNet>, ServiceError> {
    let mut ranges = Vec::new();
    let mut problems = Vec::new();
    for text in text
        .split(['\n', ','])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        match parse_ip_range(text) {
            Ok(range) if !ranges.contains(&range) => ranges.push(range),
            Ok(_) => {}
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(ServiceError::BadInput(format!(
            "{} of the ranges cannot be used: {}",
            problems.len(),
            problems.join("; ")
        )));
    }
    if ranges.len() > 1000 {
        return Err(ServiceError::BadInput(
            "A list holds at most 1,000 ranges; split them over several rules.".into(),
        ));
    }
    Ok(ranges)
}

impl Services {
    /// Reloads the rules of every account whose version changed since this replica last looked.
    pub async fn refresh_ip_rules(&self) -> Result<(), ServiceError> {
        let versions = self.db.ip_restriction_versions().await?;
        for (account_id, version) in versions {
            let known = self
                .ip_rules
                .accounts
                .read()
                .map_err(|_| poisoned())?
                .get(&account_id)
                .map(|e| e.version);
            if known != Some(version) {
                self.reload_ip_rules(&account_id).await?;
            }
        }
        Ok(())
    }

    async fn reload_ip_rules(&self, account_id: &str) -> Result<IpRestrictions, ServiceError> {
        let stored = self.db.ip_restrictions(account_id).await?;
        let rules = stored_rules(stored.rules.iter().map(|r| r.rule.clone()).collect())?;
        self.ip_rules
            .accounts
            .write()
            .map_err(|_| poisoned())?
            .insert(
                account_id.to_owned(),
                Arc::new(Enforced {
                    version: stored.version,
                    enabled: stored.enabled,
                    rules,
                    webhook_sources: stored
                        .webhook_sources
                        .enabled
                        .then(|| stored.webhook_sources.ranges.clone()),
                }),
            );
        Ok(stored)
    }

    /// Whether a request of an account's user from `client_ip` may go on: refused with
    /// [`ACCESS_DENIED`] when the account's rules are enabled and deny the address (or the
    /// address is unknown). Reads memory only; a refusal is audited once a minute per address.
    pub async fn check_client_address(
        &self,
        account_id: &str,
        client_ip: Option<&str>,
    ) -> Result<(), ServiceError> {
        let enforced = self
            .ip_rules
            .accounts
            .read()
            .map_err(|_| poisoned())?
            .get(account_id)
            .cloned();
        let Some(enforced) = enforced.filter(|e| e.enabled) else {
            return Ok(());
        };
        let address = client_ip.and_then(|a| a.parse::<IpAddr>().ok());
        let decision = address.map(|a| enforced.rules.decide(a));
        if decision.as_ref().is_some_and(|d| d.allowed) {
            return Ok(());
        }
        if let Some(address) = address
            && self.first_denial_in_a_while(account_id, address)?
        {
            let why = decision.map(|d| d.explain()).unwrap_or_default();
            self.audit(AuditEvent {
                account_id: Some(account_id),
                action: "ip_restrictions.denied",
                outcome: lablink_store::audit::AuditOutcome::Denied,
                target: Some(format!("address {address}")),
                detail: format!("a request from {address} was {why}"),
                client_ip,
                ..AuditEvent::default()
            })
            .await?;
        }
        Err(ServiceError::Forbidden(ACCESS_DENIED.into()))
    }

    /// Whether a webhook delivery to one of the account's repositories may come from
    /// `client_ip`: always, unless the account restricts its webhook sources; then only from
    /// inside them (an unknown address is outside). Reads memory only.
    pub fn webhook_source_allowed(
        &self,
        account_id: &str,
        client_ip: Option<&str>,
    ) -> Result<bool, ServiceError> {
        let accounts = self.ip_rules.accounts.read().map_err(|_| poisoned())?;
        let Some(sources) = accounts
            .get(account_id)
            .and_then(|e| e.webhook_sources.as_ref())
        else {
            return Ok(true);
        };
        let address = client_ip.and_then(|a| a.parse::<IpAddr>().ok());
        Ok(address.is_some_and(|a| sources.iter().any(|net| net.contains(&a))))
    }

    fn first_denial_in_a_while(
        &self,
        account_id: &str,
        address: IpAddr,
    ) -> Result<bool, ServiceError> {
        let mut audited = self
            .ip_rules
            .denied_audited
            .lock()
            .map_err(|_| poisoned())?;
        let now = Instant::now();
        audited.retain(|_, at| now.duration_since(*at) < DENIED_AUDIT_EVERY);
        Ok(audited
            .insert((account_id.to_owned(), address), now)
            .is_none())
    }

    /// The account's rules, and how the caller's own address fares under them.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %admin.account_id, user_id = %admin.user_id),
    )]
    pub async fn ip_restrictions(
        &self,
        admin: &Principal,
        client_ip: Option<&str>,
    ) -> Result<IpRestrictionsView, ServiceError> {
        require(admin.role.can_manage_account(), ADMINS_ONLY)?;
        let restrictions = self.db.ip_restrictions(&admin.account_id).await?;
        let rules = stored_rules(restrictions.rules.iter().map(|r| r.rule.clone()).collect())?;
        let your_address = client_ip
            .and_then(|a| a.parse::<IpAddr>().ok())
            .map(|a| (a.to_string(), rules.decide(a)));
        let integration = self
            .db
            .gitlab_integration(&self.keys, &admin.account_id)
            .await?;
        let on_gitlab_com = integration.is_some_and(|i| {
            url::Url::parse(&i.instance_url)
                .is_ok_and(|u| u.host_str().is_some_and(|h| h == "gitlab.com"))
        });
        Ok(IpRestrictionsView {
            restrictions,
            your_address,
            published_webhook_sources: if on_gitlab_com {
                GITLAB_COM_WEBHOOK_SOURCES.map(str::to_owned).to_vec()
            } else {
                Vec::new()
            },
        })
    }

    /// Restricts (or stops restricting) where the account's webhook deliveries may come from.
    /// Enabling needs at least one range; a delivery from outside is then refused and counted.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %admin.account_id, user_id = %admin.user_id),
    )]
    pub async fn set_webhook_sources(
        &self,
        admin: &Principal,
        input: &WebhookSourcesInput,
        client_ip: Option<&str>,
    ) -> Result<(), ServiceError> {
        require(admin.role.can_manage_account(), ADMINS_ONLY)?;
        let ranges = parse_ranges(&input.ranges)?;
        if input.enabled && ranges.is_empty() {
            return Err(ServiceError::BadInput(
                "Add the ranges GitLab sends webhooks from before restricting deliveries to \
                 them (for gitlab.com: 34.74.90.64/28 and 34.74.226.0/24)."
                    .into(),
            ));
        }
        let sources = WebhookSources {
            enabled: input.enabled,
            ranges,
        };
        self.db
            .set_webhook_sources(&admin.account_id, &sources)
            .await?;
        self.reload_ip_rules(&admin.account_id).await?;
        let ranges: Vec<String> = sources.ranges.iter().map(ToString::to_string).collect();
        self.audit(AuditEvent {
            account_id: Some(&admin.account_id),
            actor_user_id: Some(&admin.user_id),
            action: "ip_restrictions.webhook_sources_changed",
            target: Some("webhook sources".into()),
            detail: format!(
                "webhook deliveries {}: {}",
                if sources.enabled {
                    "restricted"
                } else {
                    "not restricted"
                },
                if ranges.is_empty() {
                    "no ranges".to_owned()
                } else {
                    ranges.join(", ")
                }
            ),
            client_ip,
            ..AuditEvent::default()
        })
        .await?;
        Ok(())
    }

    /// Which rule decides for `address` under the account's saved rules.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %admin.account_id, user_id = %admin.user_id),
    )]
    pub async fn test_ip_address(
        &self,
        admin: &Principal,
        address: &str,
    ) -> Result<Decision, ServiceError> {
        require(admin.role.can_manage_account(), ADMINS_ONLY)?;
        let address = parse_address(address)?;
        let stored = self.db.ip_restrictions(&admin.account_id).await?;
        let rules = stored_rules(stored.rules.into_iter().map(|r| r.rule).collect())?;
        Ok(rules.decide(address))
    }

    /// Refuses a change whose rules conflict, or that would deny the admin's own address.
    fn guard(rules: Vec<Rule>, client_ip: Option<&str>) -> Result<(), ServiceError> {
        let rules = IpRules::new(rules).map_err(|e| ServiceError::BadInput(e.to_string()))?;
        let Some(address) = client_ip.and_then(|a| a.parse::<IpAddr>().ok()) else {
            return Err(ServiceError::BadInput(
                "lablink cannot tell your address, so it cannot check that these rules let you \
                 in; change them from a connection lablink sees the address of."
                    .into(),
            ));
        };
        let decision = rules.decide(address);
        if decision.allowed {
            Ok(())
        } else {
            Err(ServiceError::BadInput(format!(
                "This would lock you out: your address {address} would be {}. Add an allow rule \
                 for your address first, or change the rule.",
                decision.explain()
            )))
        }
    }

    /// Adds a rule; refused when its ranges are bad, its range is on the other list already, or
    /// it would deny the admin's own address.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %admin.account_id, user_id = %admin.user_id),
    )]
    pub async fn create_ip_rule(
        &self,
        admin: &Principal,
        input: &IpRuleInput,
        client_ip: Option<&str>,
    ) -> Result<String, ServiceError> {
        require(admin.role.can_manage_account(), ADMINS_ONLY)?;
        let (name, description, kind, ranges) = validate(input)?;
        let current = self.db.ip_restrictions(&admin.account_id).await?;
        let mut rules: Vec<Rule> = current.rules.into_iter().map(|r| r.rule).collect();
        rules.push(Rule {
            id: String::new(),
            name: name.clone(),
            kind,
            ranges: ranges.clone(),
        });
        Self::guard(rules, client_ip)?;
        let fields = IpRuleFields {
            name: &name,
            description: &description,
            kind,
            ranges: &ranges,
        };
        let id = self.db.create_ip_rule(&admin.account_id, &fields).await?;
        self.after_rule_change(admin, client_ip, "ip_restrictions.rule_created", &fields)
            .await?;
        Ok(id)
    }

    /// Replaces a rule, with the same checks as [`Services::create_ip_rule`].
    #[tracing::instrument(
        skip_all,
        fields(account_id = %admin.account_id, user_id = %admin.user_id, rule_id = %id),
    )]
    pub async fn update_ip_rule(
        &self,
        admin: &Principal,
        id: &str,
        input: &IpRuleInput,
        client_ip: Option<&str>,
    ) -> Result<(), ServiceError> {
        require(admin.role.can_manage_account(), ADMINS_ONLY)?;
        let (name, description, kind, ranges) = validate(input)?;
        let current = self.db.ip_restrictions(&admin.account_id).await?;
        if !current.rules.iter().any(|r| r.rule.id == id) {
            return Err(ServiceError::NotFound("This rule no longer exists.".into()));
        }
        let rules: Vec<Rule> = current
            .rules
            .into_iter()
            .map(|r| {
                if r.rule.id == id {
                    Rule {
                        id: id.to_owned(),
                        name: name.clone(),
                        kind,
                        ranges: ranges.clone(),
                    }
                } else {
                    r.rule
                }
            })
            .collect();
        Self::guard(rules, client_ip)?;
        let fields = IpRuleFields {
            name: &name,
            description: &description,
            kind,
            ranges: &ranges,
        };
        if !self
            .db
            .update_ip_rule(&admin.account_id, id, &fields)
            .await?
        {
            return Err(ServiceError::NotFound("This rule no longer exists.".into()));
        }
        self.after_rule_change(admin, client_ip, "ip_restrictions.rule_changed", &fields)
            .await
    }

    /// Deletes a rule; refused when the remaining rules would deny the admin's own address.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %admin.account_id, user_id = %admin.user_id, rule_id = %id),
    )]
    pub async fn delete_ip_rule(
        &self,
        admin: &Principal,
        id: &str,
        client_ip: Option<&str>,
    ) -> Result<(), ServiceError> {
        require(admin.role.can_manage_account(), ADMINS_ONLY)?;
        let current = self.db.ip_restrictions(&admin.account_id).await?;
        let Some(deleted) = current.rules.iter().find(|r| r.rule.id == id).cloned() else {
            return Err(ServiceError::NotFound("This rule no longer exists.".into()));
        };
        let rest: Vec<Rule> = current
            .rules
            .into_iter()
            .map(|r| r.rule)
            .filter(|r| r.id != id)
            .collect();
        if current.enabled {
            Self::guard(rest, client_ip)?;
        }
        if !self.db.delete_ip_rule(&admin.account_id, id).await? {
            return Err(ServiceError::NotFound("This rule no longer exists.".into()));
        }
        self.reload_ip_rules(&admin.account_id).await?;
        self.audit(AuditEvent {
            account_id: Some(&admin.account_id),
            actor_user_id: Some(&admin.user_id),
            action: "ip_restrictions.rule_deleted",
            target: Some(format!("rule {}", deleted.rule.name)),
            detail: format!("rule “{}”", deleted.rule.name),
            client_ip,
            ..AuditEvent::default()
        })
        .await?;
        Ok(())
    }

    async fn after_rule_change(
        &self,
        admin: &Principal,
        client_ip: Option<&str>,
        action: &str,
        fields: &IpRuleFields<'_>,
    ) -> Result<(), ServiceError> {
        self.reload_ip_rules(&admin.account_id).await?;
        let ranges: Vec<String> = fields.ranges.iter().map(ToString::to_string).collect();
        self.audit(AuditEvent {
            account_id: Some(&admin.account_id),
            actor_user_id: Some(&admin.user_id),
            action,
            target: Some(format!("rule {}", fields.name)),
            detail: format!(
                "rule “{}”: {} {}",
                fields.name,
                fields.kind,
                ranges.join(", ")
            ),
            client_ip,
            ..AuditEvent::default()
        })
        .await?;
        Ok(())
    }

    /// Turns enforcement on (refused when it would deny the admin's own address) or off.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %admin.account_id, user_id = %admin.user_id),
    )]
    pub async fn set_ip_restrictions_enabled(
        &self,
        admin: &Principal,
        enabled: bool,
        client_ip: Option<&str>,
    ) -> Result<(), ServiceError> {
        require(admin.role.can_manage_account(), ADMINS_ONLY)?;
        if enabled {
            let current = self.db.ip_restrictions(&admin.account_id).await?;
            Self::guard(
                current.rules.into_iter().map(|r| r.rule).collect(),
                client_ip,
            )?;
        }
        self.db
            .set_ip_restrictions_enabled(&admin.account_id, enabled)
            .await?;
        self.reload_ip_rules(&admin.account_id).await?;
        self.audit(AuditEvent {
            account_id: Some(&admin.account_id),
            actor_user_id: Some(&admin.user_id),
            action: if enabled {
                "ip_restrictions.enabled"
            } else {
                "ip_restrictions.disabled"
            },
            detail: String::new(),
            client_ip,
            ..AuditEvent::default()
        })
        .await?;
        Ok(())
    }

    /// The operator's way back in (`lablink admin ip-restrictions disable`): turns an account's
    /// restrictions off from a shell.
    #[tracing::instrument(skip_all)]
    pub async fn disable_ip_restrictions_of_account(
        &self,
        account_name: &str,
    ) -> Result<(), ServiceError> {
        let account = self
            .db
            .account_by_name(account_name)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(format!("There is no account named “{account_name}”."))
            })?;
        self.db
            .set_ip_restrictions_enabled(&account.id, false)
            .await?;
        self.audit(AuditEvent {
            account_id: Some(&account.id),
            action: "ip_restrictions.disabled",
            detail: "by an operator from a shell".into(),
            ..AuditEvent::default()
        })
        .await?;
        Ok(())
    }
}

/// Saved rules, indexed; they were checked when saved, so a conflict means a damaged store.
fn stored_rules(rules: Vec<Rule>) -> Result<IpRules, ServiceError> {
    IpRules::new(rules)
        .map_err(|e| ServiceError::Internal(format!("stored IP rules conflict: {e}")))
}

fn poisoned() -> ServiceError {
    ServiceError::Internal("the IP rules cache is poisoned".into())
}

/// Picks up rules changed on other replicas every [`REFRESH_EVERY`] until `stop`.
pub async fn ip_rules_loop(services: Services, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(REFRESH_EVERY) => {}
        }
        if let Err(e) = services.refresh_ip_rules().await {
            tracing::warn!(error = %e, "reloading IP restrictions failed");
        }
    }
}
