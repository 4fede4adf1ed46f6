//! Re-sealing every stored secret under the current master key (`lablink admin rekey`), and the
//! inventory of which key seals what (`lablink admin rekey --check`). The store does the
//! crash-safe part (one compare-and-set per value); this walks every sealed column in chunks,
//! reports progress, and records the outcome in the audit log.

use lablink_store::audit::AuditEvent;
use lablink_store::sealed::{self, ColumnKeys, Resealed};

use crate::{ServiceError, Services};

/// Values re-sealed between two progress reports.
const CHUNK: u64 = 500;

/// Passes over a column while lablink keeps rewriting values in it (a process that still seals
/// with an older key could), before the command reports them instead of waiting.
const PASSES: usize = 3;

/// A column's progress or outcome.
#[derive(Debug, Clone, Default)]
pub struct ColumnRekeyed {
    /// `table.column`.
    pub column: String,
    pub resealed: u64,
    pub already_current: u64,
    /// Values rewritten by lablink during the last pass; re-running the command seals them.
    pub changed_meanwhile: u64,
    /// Row ids whose value no configured key opens.
    pub unreadable: Vec<String>,
}

/// What `rekey` did, column by column.
#[derive(Debug, Clone)]
pub struct Rekeyed {
    /// The id of the key everything is sealed with now.
    pub key_id: String,
    pub columns: Vec<ColumnRekeyed>,
}

impl Rekeyed {
    pub fn resealed(&self) -> u64 {
        self.columns.iter().map(|c| c.resealed).sum()
    }

    /// Whether every stored secret is now sealed with the current key.
    pub fn complete(&self) -> bool {
        self.columns
            .iter()
            .all(|c| c.unreadable.is_empty() && c.changed_meanwhile == 0)
    }
}

impl Services {
    /// Re-seals under the current key every value an older key sealed. `progress` hears about
    /// each column after every chunk and when it is done. Running it again after a crash or an
    /// interruption picks up what is left.
    #[tracing::instrument(skip_all)]
    pub async fn rekey(
        &self,
        mut progress: impl FnMut(&ColumnRekeyed),
    ) -> Result<Rekeyed, ServiceError> {
        let mut columns = Vec::new();
        for column in sealed::all() {
            let mut done = ColumnRekeyed {
                column: column.name(),
                ..ColumnRekeyed::default()
            };
            for pass in 0..PASSES {
                let mut after = String::new();
                let mut changed = 0;
                let mut unreadable = Vec::new();
                loop {
                    let chunk: Resealed = self
                        .db
                        .reseal(&self.keys, &column, &after, Some(CHUNK))
                        .await?;
                    done.resealed += chunk.resealed;
                    if pass == 0 {
                        done.already_current += chunk.already_current;
                    }
                    changed += chunk.changed_meanwhile;
                    unreadable.extend(chunk.unreadable);
                    match chunk.resume_after {
                        Some(next) => {
                            after = next;
                            progress(&done);
                        }
                        None => break,
                    }
                }
                done.changed_meanwhile = changed;
                done.unreadable = unreadable;
                if changed == 0 {
                    break;
                }
            }
            progress(&done);
            columns.push(done);
        }
        let rekeyed = Rekeyed {
            key_id: self.keys.current_key_id(),
            columns,
        };
        self.audit(AuditEvent {
            action: "secrets.rekeyed",
            detail: format!(
                "{} secrets re-sealed under key {}{}",
                rekeyed.resealed(),
                rekeyed.key_id,
                if rekeyed.complete() {
                    ""
                } else {
                    "; some could not be re-sealed"
                }
            ),
            ..AuditEvent::default()
        })
        .await?;
        Ok(rekeyed)
    }

    /// Which key seals each stored secret, column by column (`table.column`).
    pub async fn sealed_inventory(&self) -> Result<Vec<(String, ColumnKeys)>, ServiceError> {
        let mut inventory = Vec::new();
        for column in sealed::all() {
            let keys = self.db.sealed_keys(&self.keys, &column).await?;
            inventory.push((column.name(), keys));
        }
        Ok(inventory)
    }

    /// The id of the key new secrets are sealed with.
    pub fn current_key_id(&self) -> String {
        self.keys.current_key_id()
    }
}
