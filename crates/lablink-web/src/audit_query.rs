//! The audit log's filters as the page, its exports and the API take them, and the CSV export.

use chrono::{NaiveDate, TimeZone, Utc};
use lablink_service::audit::{AuditEntry, AuditFilter};
use serde::Deserialize;
use utoipa::IntoParams;

/// Filters of the audit log; every one optional.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Part of the actor's email or username.
    pub actor: Option<String>,
    /// An action or the start of one (`repository.`).
    pub action: Option<String>,
    /// Part of the target (`repository acme/analytics`).
    pub target: Option<String>,
    /// From this day (`YYYY-MM-DD`, UTC) or moment (RFC 3339).
    pub from: Option<String>,
    /// Up to and including this day (`YYYY-MM-DD`, UTC), or until this moment (RFC 3339).
    pub to: Option<String>,
    /// The cursor of the next page, from the previous answer.
    pub before: Option<String>,
}

/// A moment as people type it: a day (its start, or with `day_after` the next day's start) or an
/// RFC 3339 time.
fn moment(text: &str, day_after: bool, name: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if day_after {
            day.succ_opt().unwrap_or(day)
        } else {
            day
        };
        let start = day.and_hms_opt(0, 0, 0).expect("midnight exists");
        return Ok(Utc.from_utc_datetime(&start).timestamp_millis());
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("“{text}” is not a date: write {name} as YYYY-MM-DD"))
}

/// The cursor after `entry`: its time and id.
pub fn cursor(entry: &AuditEntry) -> String {
    format!("{}_{}", entry.created_at, entry.id)
}

impl AuditQuery {
    pub fn filter(&self) -> Result<AuditFilter, String> {
        let text = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        };
        let before = match text(&self.before) {
            Some(c) => Some(
                c.split_once('_')
                    .and_then(|(at, id)| Some((at.parse().ok()?, id.to_owned())))
                    .ok_or("The page link is damaged: start again from the first page.")?,
            ),
            None => None,
        };
        Ok(AuditFilter {
            actor: text(&self.actor),
            action: text(&self.action),
            target: text(&self.target),
            from: text(&self.from)
                .map(|t| moment(&t, false, "from"))
                .transpose()?,
            until: text(&self.to).map(|t| moment(&t, true, "to")).transpose()?,
            before,
        })
    }

    /// The query string of these filters (without the cursor), for links.
    pub fn query_string(&self) -> String {
        let pairs = [
            ("actor", &self.actor),
            ("action", &self.action),
            ("target", &self.target),
            ("from", &self.from),
            ("to", &self.to),
        ];
        pairs
            .iter()
            .filter_map(|(k, v)| {
                v.as_deref()
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| format!("{k}={}", urlencoding(v)))
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

fn urlencoding(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// One CSV cell: quoted when needed, and a leading `=`, `+`, `-` or `@` defused so a spreadsheet
/// does not run it as a formula (the text comes from users and from GitLab).
fn cell(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// The entries as CSV (RFC 4180), with a header row.
pub fn csv(entries: &[AuditEntry]) -> String {
    let mut out = String::from("time,actor,action,target,outcome,client_ip,user_agent,detail\r\n");
    for e in entries {
        let time = chrono::DateTime::from_timestamp_millis(e.created_at)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default();
        let row = [
            time.as_str(),
            e.actor_email.as_deref().unwrap_or(""),
            &e.action,
            e.target.as_deref().unwrap_or(""),
            e.outcome.as_str(),
            e.client_ip.as_deref().unwrap_or(""),
            e.user_agent.as_deref().unwrap_or(""),
            &e.detail,
        ];
        out.push_str(&row.map(cell).join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
    }

    #[test]
    fn days_and_moments_are_read_and_bad_ones_explained() {
        let q = AuditQuery {
            from: Some("2026-12-01".into()),
            to: Some("2026-12-01".into()),
            ..AuditQuery::default()
        };
        let f = q.filter().unwrap();
        assert_eq!(f.until.unwrap() - f.from.unwrap(), 24 * 3600 * 1000);
        let bad = AuditQuery {
            from: Some("yesterday".into()),
            ..AuditQuery::default()
        };
        assert!(
            bad.filter()
                .unwrap_err()
                .contains("write from as YYYY-MM-DD")
        );
        let damaged = AuditQuery {
            before: Some("x".into()),
            ..AuditQuery::default()
        };
        assert!(damaged.filter().is_err());
    }
}
