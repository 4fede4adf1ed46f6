//! `lablink doctor`: the connection checks from a shell, as text or as the stable JSON report
//! described in `docs/doctor-json.md`.

use lablink_service::doctor::{Outcome, Report};

/// True when `--fix` repaired every finding of the report.
pub fn all_repaired(report: &Report) -> bool {
    report.findings.len() == report.repairs.len()
        && report
            .repairs
            .iter()
            .all(|r| r.outcome == Outcome::Repaired)
}

pub fn print(reports: &[Report], json: bool) -> anyhow::Result<()> {
    if json {
        let doc = serde_json::json!({ "version": 1, "reports": reports });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    for report in reports {
        let place = report
            .path_with_namespace
            .as_deref()
            .unwrap_or("(not connected)");
        println!("{} → {place}", report.project_name);
        if report.healthy() {
            println!("  ok: no problems found");
        }
        for f in &report.findings {
            let severity = serde_json::to_value(f.severity)?;
            println!(
                "  {} {}: {}\n    fix: {}",
                severity.as_str().unwrap_or_default(),
                f.code.as_str(),
                f.message,
                f.fix
            );
        }
        for r in &report.repairs {
            let outcome = serde_json::to_value(r.outcome)?;
            println!(
                "  {} {}: {}",
                outcome.as_str().unwrap_or_default(),
                r.code.as_str(),
                r.message
            );
        }
    }
    Ok(())
}
