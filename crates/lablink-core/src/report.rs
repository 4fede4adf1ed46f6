//! What a merge request's run changed, for reviewers: which nodes differ from production and why
//! each built node ran, the tests' results, and how the built models' data differ from
//! production's (computed in the warehouse; see the comparison plan). Pure functions over dbt's
//! artifacts (`manifest.json`, `run_results.json`) and the comparison's results; the note on the
//! merge request and the run page both show [`Report`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An artifact that is not what dbt writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{artifact} cannot be read: {why}")]
pub struct ArtifactError {
    pub artifact: &'static str,
    pub why: String,
}

/// A relation in the warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    pub database: Option<String>,
    pub schema: String,
    pub identifier: String,
}

/// The part of a manifest node the report uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub unique_id: String,
    pub name: String,
    pub resource_type: String,
    checksum: String,
    config: Value,
    contract: Option<String>,
    pub depends_on: Vec<String>,
    pub relation: Relation,
    materialized: String,
    /// The model's primary key: a `primary_key` constraint, else the columns that carry both a
    /// `unique` and a `not_null` test.
    pub primary_key: Option<Vec<String>>,
}

/// The nodes of a `manifest.json` that build something (models, seeds, snapshots).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    pub nodes: BTreeMap<String, Node>,
    /// The name of every node, tests included, by unique id.
    pub names: BTreeMap<String, String>,
}

fn manifest_error(why: impl Into<String>) -> ArtifactError {
    ArtifactError {
        artifact: "manifest.json",
        why: why.into(),
    }
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, ArtifactError> {
        let doc: Value = serde_json::from_str(text).map_err(|e| manifest_error(e.to_string()))?;
        let all = doc
            .get("nodes")
            .and_then(Value::as_object)
            .ok_or_else(|| manifest_error("no nodes"))?;
        let text_of = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        // Columns with a unique and a not_null test, per model.
        let mut tested: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for test in all.values().filter(|n| n["resource_type"] == "test") {
            let (Some(model), Some(column), Some(kind)) = (
                text_of(test, "attached_node"),
                text_of(test, "column_name"),
                test["test_metadata"]["name"].as_str(),
            ) else {
                continue;
            };
            tested
                .entry(model)
                .or_default()
                .entry(column)
                .or_default()
                .insert(kind.to_owned());
        }
        let mut nodes = BTreeMap::new();
        let names = all
            .iter()
            .filter_map(|(id, node)| Some((id.clone(), text_of(node, "name")?)))
            .collect();
        for (id, node) in all {
            let kind = node["resource_type"].as_str().unwrap_or_default();
            if !matches!(kind, "model" | "seed" | "snapshot") {
                continue;
            }
            let keyed_by_tests: Vec<String> = tested
                .get(id)
                .map(|columns| {
                    columns
                        .iter()
                        .filter(|(_, kinds)| kinds.contains("unique") && kinds.contains("not_null"))
                        .map(|(column, _)| column.clone())
                        .collect()
                })
                .unwrap_or_default();
            let primary_key = constraint_key(node)
                .or_else(|| (keyed_by_tests.len() == 1).then_some(keyed_by_tests));
            nodes.insert(
                id.clone(),
                Node {
                    unique_id: id.clone(),
                    name: text_of(node, "name").unwrap_or_else(|| id.clone()),
                    resource_type: kind.to_owned(),
                    checksum: node["checksum"]["checksum"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    config: node.get("config").cloned().unwrap_or(Value::Null),
                    contract: node["contract"]["checksum"].as_str().map(str::to_owned),
                    depends_on: node["depends_on"]["nodes"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                    relation: Relation {
                        database: text_of(node, "database"),
                        schema: text_of(node, "schema").unwrap_or_default(),
                        identifier: text_of(node, "alias")
                            .or_else(|| text_of(node, "name"))
                            .unwrap_or_default(),
                    },
                    materialized: node["config"]["materialized"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    primary_key,
                },
            );
        }
        Ok(Manifest { nodes, names })
    }

    /// The schemas (database, schema) that `built` nodes of this manifest were built in.
    pub fn schemas_of(&self, built: &[String]) -> BTreeSet<(Option<String>, String)> {
        built
            .iter()
            .filter_map(|id| self.nodes.get(id))
            .map(|n| (n.relation.database.clone(), n.relation.schema.clone()))
            .collect()
    }
}

/// A `primary_key` constraint, on the model or on its columns.
fn constraint_key(node: &Value) -> Option<Vec<String>> {
    let is_pk = |c: &Value| c["type"] == "primary_key";
    if let Some(model_level) = node["constraints"].as_array()?.iter().find(|c| is_pk(c)) {
        let columns: Vec<String> = model_level["columns"]
            .as_array()?
            .iter()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect();
        return (!columns.is_empty()).then_some(columns);
    }
    let columns: Vec<String> = node["columns"]
        .as_object()?
        .iter()
        .filter(|(_, c)| {
            c["constraints"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(is_pk))
        })
        .map(|(name, _)| name.clone())
        .collect();
    (!columns.is_empty()).then_some(columns)
}

/// One result of `run_results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeResult {
    pub unique_id: String,
    /// dbt's status: success, error, skipped, pass, fail, warn, runtime error, ...
    pub status: String,
    pub execution_time: f64,
}

pub fn parse_run_results(text: &str) -> Result<Vec<NodeResult>, ArtifactError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| ArtifactError {
        artifact: "run_results.json",
        why: e.to_string(),
    })?;
    Ok(doc["results"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .filter_map(|r| {
                    Some(NodeResult {
                        unique_id: r["unique_id"].as_str()?.to_owned(),
                        status: r["status"].as_str().unwrap_or_default().to_owned(),
                        execution_time: r["execution_time"].as_f64().unwrap_or_default(),
                    })
                })
                .collect()
        })
        .unwrap_or_default())
}

crate::text_enum! {
    /// What differs in a node between the merge request and production.
    pub enum Aspect ("changed aspect") {
        Body = "body",
        Config = "config",
        Contract = "contract",
        Upstream = "upstream",
    }
}

/// How a node differs from production.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    New,
    Modified { aspects: Vec<Aspect> },
    Removed,
}

/// The nodes whose definition differs between the two manifests.
pub fn changes(mr: &Manifest, production: &Manifest) -> BTreeMap<String, Change> {
    let mut out = BTreeMap::new();
    for (id, node) in &mr.nodes {
        match production.nodes.get(id) {
            None => {
                out.insert(id.clone(), Change::New);
            }
            Some(prod) => {
                let mut aspects = Vec::new();
                if node.checksum != prod.checksum {
                    aspects.push(Aspect::Body);
                }
                if node.config != prod.config {
                    aspects.push(Aspect::Config);
                }
                if node.contract != prod.contract {
                    aspects.push(Aspect::Contract);
                }
                if node.depends_on != prod.depends_on {
                    aspects.push(Aspect::Upstream);
                }
                if !aspects.is_empty() {
                    out.insert(id.clone(), Change::Modified { aspects });
                }
            }
        }
    }
    for id in production.nodes.keys() {
        if !mr.nodes.contains_key(id) {
            out.insert(id.clone(), Change::Removed);
        }
    }
    out
}

/// Why a node ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Why {
    /// It is new or modified itself.
    ModifiedItself,
    /// An upstream node is new or modified (the nearest one).
    DownstreamOf { node: String },
    /// Nothing it depends on changed (a selector chose it, or there is no production).
    Selected,
}

/// The reason each executed node ran: itself changed, or the nearest changed ancestor.
pub fn selection_reasons(
    mr: &Manifest,
    changes: &BTreeMap<String, Change>,
    executed: &[String],
) -> BTreeMap<String, Why> {
    let changed = |id: &str| matches!(changes.get(id), Some(Change::New | Change::Modified { .. }));
    let mut out = BTreeMap::new();
    for id in executed {
        let why = if changed(id) {
            Why::ModifiedItself
        } else {
            // Breadth-first upstream: the nearest changed ancestor.
            let mut seen = BTreeSet::new();
            let mut frontier: Vec<String> = mr
                .nodes
                .get(id)
                .map(|n| n.depends_on.clone())
                .unwrap_or_default();
            let mut found = None;
            while found.is_none() && !frontier.is_empty() {
                let mut next = Vec::new();
                for parent in frontier {
                    if !seen.insert(parent.clone()) {
                        continue;
                    }
                    if changed(&parent) {
                        found = Some(parent);
                        break;
                    }
                    if let Some(n) = mr.nodes.get(&parent) {
                        next.extend(n.depends_on.iter().cloned());
                    }
                }
                frontier = next;
            }
            match found {
                Some(node) => Why::DownstreamOf { node },
                None => Why::Selected,
            }
        };
        out.insert(id.clone(), why);
    }
    out
}

/// One model to compare with production in the warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComparePair {
    pub unique_id: String,
    pub mr: Relation,
    pub production: Relation,
    pub key: Option<Vec<String>>,
}

/// A node not compared, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotCompared {
    pub unique_id: String,
    pub why: String,
}

/// Which built models are compared with production: those that exist there as a table or view,
/// at most `max_models` of them (the job's budget); the others, with the reason.
pub fn compare_plan(
    mr: &Manifest,
    production: &Manifest,
    built: &[String],
    max_models: usize,
) -> (Vec<ComparePair>, Vec<NotCompared>) {
    let mut pairs = Vec::new();
    let mut skipped = Vec::new();
    for id in built {
        let Some(node) = mr.nodes.get(id) else {
            continue;
        };
        if node.resource_type != "model" {
            continue;
        }
        let skip = |why: &str| NotCompared {
            unique_id: id.clone(),
            why: why.to_owned(),
        };
        let Some(prod) = production.nodes.get(id) else {
            skipped.push(skip("new: not in production"));
            continue;
        };
        if node.materialized == "ephemeral" || prod.materialized == "ephemeral" {
            skipped.push(skip("ephemeral: nothing in the warehouse"));
            continue;
        }
        if node.relation == prod.relation {
            skipped.push(skip("built into production's own relation"));
            continue;
        }
        if node.relation.database != prod.relation.database {
            skipped.push(skip(
                "production is in another database, which one query cannot reach",
            ));
            continue;
        }
        if pairs.len() >= max_models {
            skipped.push(skip("over the job's budget of models to compare"));
            continue;
        }
        pairs.push(ComparePair {
            unique_id: id.clone(),
            mr: node.relation.clone(),
            production: prod.relation.clone(),
            key: node.primary_key.clone(),
        });
    }
    (pairs, skipped)
}

/// How a model's data differ from production's, as the warehouse computed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataDiff {
    pub unique_id: String,
    pub rows: i64,
    pub production_rows: i64,
    pub columns_added: Vec<String>,
    pub columns_removed: Vec<String>,
    /// (column, production type, merge request type)
    pub columns_retyped: Vec<(String, String, String)>,
    pub keyed: Option<KeyedDiff>,
}

impl DataDiff {
    /// What the warehouse comparison printed for one model (`{id, rows, production_rows,
    /// mr_columns, production_columns}`, with `key, added, removed, changed` when compared by
    /// key); `None` when it is not that.
    pub fn from_compared(value: &Value) -> Option<DataDiff> {
        let columns = |key: &str| -> Option<BTreeMap<String, String>> {
            value[key]
                .as_array()?
                .iter()
                .map(|pair| {
                    Some((
                        pair[0].as_str()?.to_owned(),
                        pair[1].as_str().unwrap_or_default().to_lowercase(),
                    ))
                })
                .collect()
        };
        let mr = columns("mr_columns")?;
        let production = columns("production_columns")?;
        let keyed = match value["key"].as_array() {
            Some(key) => Some(KeyedDiff {
                key: key
                    .iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect(),
                added: value["added"].as_i64()?,
                removed: value["removed"].as_i64()?,
                changed: value["changed"].as_i64()?,
            }),
            None => None,
        };
        Some(DataDiff {
            unique_id: value["id"].as_str()?.to_owned(),
            rows: value["rows"].as_i64()?,
            production_rows: value["production_rows"].as_i64()?,
            columns_added: mr
                .keys()
                .filter(|c| !production.contains_key(*c))
                .cloned()
                .collect(),
            columns_removed: production
                .keys()
                .filter(|c| !mr.contains_key(*c))
                .cloned()
                .collect(),
            columns_retyped: mr
                .iter()
                .filter_map(|(c, t)| {
                    let before = production.get(c)?;
                    (before != t).then(|| (c.clone(), before.clone(), t.clone()))
                })
                .collect(),
            keyed,
        })
    }
}

/// Rows matched by primary key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedDiff {
    pub key: Vec<String>,
    pub added: i64,
    pub removed: i64,
    pub changed: i64,
}

/// Where production comes from: the latest successful run of the project's merge job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Production {
    pub run_id: String,
    pub sha: String,
}

/// Everything the note and the run page show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `None`: no production yet (the run built everything and compares nothing).
    pub production: Option<Production>,
    pub changes: BTreeMap<String, Change>,
    pub reasons: BTreeMap<String, Why>,
    pub results: Vec<NodeResult>,
    pub data: Vec<DataDiff>,
    pub not_compared: Vec<NotCompared>,
    /// Names by unique id, for display.
    pub names: BTreeMap<String, String>,
}

impl Report {
    /// The report of a merge request's run whose manifest is `mr`: against `production` when
    /// there is one (else every executed node counts as selected), with the comparison's
    /// results.
    pub fn new(
        mr: &Manifest,
        production: Option<(Production, &Manifest)>,
        results: Vec<NodeResult>,
        data: Vec<DataDiff>,
        not_compared: Vec<NotCompared>,
    ) -> Report {
        let executed: Vec<String> = results.iter().map(|r| r.unique_id.clone()).collect();
        let (production, changes) = match production {
            Some((p, manifest)) => (Some(p), changes(mr, manifest)),
            None => (None, BTreeMap::new()),
        };
        let reasons = selection_reasons(mr, &changes, &executed)
            .into_iter()
            .filter(|(id, _)| mr.nodes.contains_key(id))
            .collect();
        Report {
            production,
            changes,
            reasons,
            results,
            data,
            not_compared,
            names: mr.names.clone(),
        }
    }
}

/// Text from the repository or the warehouse on one line of the note: no control characters
/// (a line of its own starting with `/` would be a GitLab quick action), at most 300 characters.
pub fn inline(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    if text.chars().count() > 300 {
        line.push('…');
    }
    line
}

/// A name inside a code span or a table cell of the note: on one line, without the characters
/// that would end either.
fn code(name: &str) -> String {
    inline(name).replace(['`', '|'], "'")
}

/// Short name of a unique id (`model.pkg.orders` → `orders`).
fn short(id: &str) -> &str {
    id.rsplit('.').next().unwrap_or(id)
}

/// One line of a section: a name and what is said of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub name: String,
    pub text: String,
}

/// One compared model, as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRow {
    pub name: String,
    pub rows: i64,
    pub production_rows: i64,
    /// `+col`, `−col`, `col old → new`; empty when the columns are the same.
    pub columns: Vec<String>,
    /// `added / removed / changed`, or why there is none.
    pub by_key: String,
}

/// The sections of a report as the note and the run page show them (one wording for both).
impl Report {
    /// A node's name as shown (from the repository: see [`code`]).
    pub fn name(&self, id: &str) -> String {
        code(self.names.get(id).map_or_else(|| short(id), String::as_str))
    }

    fn tests(&self, statuses: &[&str]) -> Vec<String> {
        self.results
            .iter()
            .filter(|r| r.unique_id.starts_with("test.") && statuses.contains(&r.status.as_str()))
            .map(|r| self.name(&r.unique_id))
            .collect()
    }

    fn models_built(&self) -> Vec<&NodeResult> {
        self.results
            .iter()
            .filter(|r| !r.unique_id.starts_with("test.") && r.status == "success")
            .collect()
    }

    /// The first line: what changed, what failed, what moved in the data.
    pub fn summary(&self) -> String {
        let changed = self
            .changes
            .values()
            .filter(|c| !matches!(c, Change::Removed))
            .count();
        let mut parts = vec![match self.production {
            Some(_) => format!(
                "{changed} model{} changed",
                if changed == 1 { "" } else { "s" }
            ),
            None => "no production run yet: everything was built, nothing compared".to_owned(),
        }];
        let failing = self.tests(&["fail", "error"]).len();
        if failing > 0 {
            parts.push(format!(
                "{failing} test{} failing",
                if failing == 1 { "" } else { "s" }
            ));
        }
        for diff in &self.data {
            let name = self.name(&diff.unique_id);
            let delta = diff.rows - diff.production_rows;
            if delta != 0 {
                parts.push(format!("`{name}`: {delta:+} rows"));
            }
            for column in &diff.columns_removed {
                parts.push(format!("`{name}`: column `{}` removed", code(column)));
            }
            for column in &diff.columns_added {
                parts.push(format!("`{name}`: column `{}` added", code(column)));
            }
        }
        parts.join(", ")
    }

    /// Nodes that differ from production, and how.
    pub fn change_lines(&self) -> Vec<Line> {
        self.changes
            .iter()
            .map(|(id, change)| Line {
                name: self.name(id),
                text: match change {
                    Change::New => "new".to_owned(),
                    Change::Removed => "removed".to_owned(),
                    Change::Modified { aspects } => format!(
                        "modified ({})",
                        aspects
                            .iter()
                            .map(|a| a.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            })
            .collect()
    }

    /// Why each node ran.
    pub fn reason_lines(&self) -> Vec<Line> {
        self.reasons
            .iter()
            .map(|(id, why)| Line {
                name: self.name(id),
                text: match why {
                    Why::ModifiedItself => "changed itself".to_owned(),
                    Why::DownstreamOf { node } => format!("downstream of {}", self.name(node)),
                    Why::Selected => "selected".to_owned(),
                },
            })
            .collect()
    }

    /// Test outcomes (failed first), then the models built with their time.
    pub fn result_lines(&self) -> Vec<Line> {
        let mut lines = Vec::new();
        for (label, statuses) in [
            ("failed", &["fail", "error"][..]),
            ("warned", &["warn"][..]),
            ("passed", &["pass"][..]),
        ] {
            lines.extend(self.tests(statuses).into_iter().map(|name| Line {
                name,
                text: format!("test {label}"),
            }));
        }
        lines.extend(self.models_built().into_iter().map(|r| Line {
            name: self.name(&r.unique_id),
            text: format!("built in {:.1} s", r.execution_time),
        }));
        lines
    }

    /// `N tests passed, N failed, N warned; N models built`.
    pub fn results_summary(&self) -> String {
        let passed = self.tests(&["pass"]).len();
        let built = self.models_built().len();
        format!(
            "{passed} test{} passed, {} failed, {} warned; {built} model{} built",
            if passed == 1 { "" } else { "s" },
            self.tests(&["fail", "error"]).len(),
            self.tests(&["warn"]).len(),
            if built == 1 { "" } else { "s" },
        )
    }

    /// The compared models.
    pub fn data_rows(&self) -> Vec<DataRow> {
        self.data
            .iter()
            .map(|diff| DataRow {
                name: self.name(&diff.unique_id),
                rows: diff.rows,
                production_rows: diff.production_rows,
                columns: diff
                    .columns_added
                    .iter()
                    .map(|c| format!("+{}", code(c)))
                    .chain(diff.columns_removed.iter().map(|c| format!("−{}", code(c))))
                    .chain(
                        diff.columns_retyped.iter().map(|(c, from, to)| {
                            format!("{} {} → {}", code(c), code(from), code(to))
                        }),
                    )
                    .collect(),
                by_key: diff.keyed.as_ref().map_or_else(
                    || "no primary key".to_owned(),
                    |k| format!("{} / {} / {}", k.added, k.removed, k.changed),
                ),
            })
            .collect()
    }

    /// Models not compared, with the reason.
    pub fn not_compared_lines(&self) -> Vec<Line> {
        self.not_compared
            .iter()
            .map(|n| Line {
                name: self.name(&n.unique_id),
                text: inline(&n.why),
            })
            .collect()
    }

    /// The merge request note (GitLab Markdown): the summary first, the details folded.
    pub fn markdown(&self, title: &str, run_url: &str) -> String {
        let mut md = format!("**{title}** — {}\n\n", self.summary());
        let _ = writeln!(md, "[Run in lablink]({run_url})\n");
        let bullets = |md: &mut String, lines: Vec<Line>| {
            for line in lines {
                let _ = writeln!(md, "- `{}`: {}", line.name, line.text);
            }
        };
        match &self.production {
            None => md.push_str(NO_PRODUCTION),
            Some(production) => {
                let _ = write!(
                    md,
                    "<details><summary>What changed against production ({}) and why each node \
                     ran</summary>\n\n",
                    &production.sha[..production.sha.len().min(8)]
                );
                if self.changes.is_empty() {
                    md.push_str("No model differs from production.\n");
                }
                bullets(&mut md, self.change_lines());
                md.push_str("\nWhy each node ran:\n\n");
                bullets(&mut md, self.reason_lines());
                md.push_str("\n</details>\n\n");
            }
        }
        let _ = write!(
            md,
            "<details><summary>Results: {}</summary>\n\n",
            self.results_summary()
        );
        bullets(&mut md, self.result_lines());
        md.push_str("\n</details>\n\n");
        if self.production.is_some() {
            md.push_str(
                "<details><summary>Data against production (computed in the warehouse)</summary>\n\n",
            );
            let rows = self.data_rows();
            if !rows.is_empty() {
                md.push_str(
                    "| model | rows | production | columns | by key: added / removed / changed |\n\
                     |---|---:|---:|---|---|\n",
                );
            }
            for row in rows {
                let columns = if row.columns.is_empty() {
                    "same".to_owned()
                } else {
                    row.columns
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let _ = writeln!(
                    md,
                    "| `{}` | {} | {} | {columns} | {} |",
                    row.name, row.rows, row.production_rows, row.by_key
                );
            }
            for line in self.not_compared_lines() {
                let _ = writeln!(md, "- `{}` not compared: {}", line.name, line.text);
            }
            md.push_str("\n</details>\n");
        }
        md
    }
}

/// Said when there is no production to compare with.
pub const NO_PRODUCTION: &str = "No successful run of the project's merge job yet, so there is no \
     production to compare with: every node was built.\n\n";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(nodes: Value) -> Manifest {
        Manifest::parse(&json!({ "nodes": nodes }).to_string()).unwrap()
    }

    fn model(id: &str, checksum: &str, deps: &[&str], schema: &str) -> (String, Value) {
        (
            id.to_owned(),
            json!({"resource_type": "model", "name": short(id), "checksum": {"checksum": checksum},
                   "config": {"materialized": "table"}, "depends_on": {"nodes": deps},
                   "database": "w", "schema": schema, "alias": short(id), "columns": {}}),
        )
    }

    fn test(model: &str, column: &str, kind: &str) -> (String, Value) {
        (
            format!("test.p.{kind}_{}_{column}", short(model)),
            json!({"resource_type": "test", "attached_node": model, "column_name": column,
                   "test_metadata": {"name": kind}, "depends_on": {"nodes": [model]}}),
        )
    }

    fn nodes(items: Vec<(String, Value)>) -> Value {
        Value::Object(items.into_iter().collect())
    }

    #[test]
    fn changes_reasons_and_the_comparison_plan_follow_the_manifests() {
        let prod = manifest(nodes(vec![
            model("model.p.stg", "a", &[], "prod"),
            model("model.p.orders", "b", &["model.p.stg"], "prod"),
            model("model.p.gone", "c", &[], "prod"),
        ]));
        let mr = manifest(nodes(vec![
            model("model.p.stg", "a2", &[], "pr"),
            model("model.p.orders", "b", &["model.p.stg"], "pr"),
            model("model.p.new", "d", &[], "pr"),
            test("model.p.orders", "id", "unique"),
            test("model.p.orders", "id", "not_null"),
            test("model.p.new", "id", "unique"),
        ]));
        let changes = changes(&mr, &prod);
        assert_eq!(
            changes["model.p.stg"],
            Change::Modified {
                aspects: vec![Aspect::Body]
            }
        );
        assert_eq!(changes["model.p.new"], Change::New);
        assert_eq!(changes["model.p.gone"], Change::Removed);
        assert!(!changes.contains_key("model.p.orders"));
        let executed = ["model.p.stg", "model.p.orders", "model.p.new"].map(String::from);
        let reasons = selection_reasons(&mr, &changes, &executed);
        assert_eq!(reasons["model.p.stg"], Why::ModifiedItself);
        assert_eq!(
            reasons["model.p.orders"],
            Why::DownstreamOf {
                node: "model.p.stg".into()
            }
        );
        let (pairs, skipped) = compare_plan(&mr, &prod, &executed, 1);
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].unique_id, "model.p.stg");
        assert_eq!(pairs[0].production.schema, "prod");
        assert_eq!(pairs[0].mr.schema, "pr");
        assert_eq!(
            skipped
                .iter()
                .map(|s| (s.unique_id.as_str(), s.why.as_str()))
                .collect::<Vec<_>>(),
            [
                (
                    "model.p.orders",
                    "over the job's budget of models to compare"
                ),
                ("model.p.new", "new: not in production"),
            ]
        );
        // A unique + not_null pair makes a key; unique alone does not.
        assert_eq!(
            mr.nodes["model.p.orders"].primary_key,
            Some(vec!["id".to_owned()])
        );
        assert_eq!(mr.nodes["model.p.new"].primary_key, None);
    }

    #[test]
    fn the_note_starts_with_the_summary_and_folds_the_details() {
        let report = Report {
            production: Some(Production {
                run_id: "r".into(),
                sha: "0123456789abcdef".into(),
            }),
            changes: BTreeMap::from([(
                "model.p.orders".to_owned(),
                Change::Modified {
                    aspects: vec![Aspect::Body],
                },
            )]),
            reasons: BTreeMap::from([("model.p.orders".to_owned(), Why::ModifiedItself)]),
            results: vec![
                NodeResult {
                    unique_id: "model.p.orders".into(),
                    status: "success".into(),
                    execution_time: 1.25,
                },
                NodeResult {
                    unique_id: "test.p.unique_orders_id".into(),
                    status: "fail".into(),
                    execution_time: 0.1,
                },
            ],
            data: vec![DataDiff {
                unique_id: "model.p.orders".into(),
                rows: 112,
                production_rows: 100,
                columns_added: vec![],
                columns_removed: vec!["email".into()],
                columns_retyped: vec![],
                keyed: Some(KeyedDiff {
                    key: vec!["id".into()],
                    added: 12,
                    removed: 0,
                    changed: 3,
                }),
            }],
            not_compared: vec![],
            names: BTreeMap::new(),
        };
        assert_eq!(
            report.summary(),
            "1 model changed, 1 test failing, `orders`: +12 rows, `orders`: column `email` removed"
        );
        let md = report.markdown("lablink/ci", "https://lablink/runs/r");
        assert!(md.starts_with("**lablink/ci** — 1 model changed"));
        assert!(md.contains("<details><summary>Results: 0 tests passed, 1 failed"));
        assert!(
            md.contains("| `orders` | 112 | 100 | `−email` | 12 / 0 / 3 |"),
            "{md}"
        );
        assert!(md.contains("- `orders`: built in 1.2 s"), "{md}");
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<Report>(&json).unwrap(), report);
    }

    #[test]
    fn the_warehouse_comparison_becomes_a_data_diff() {
        let compared = json!({
            "id": "model.p.orders", "rows": 5, "production_rows": 7,
            "mr_columns": [["id", "INTEGER"], ["amount", "DOUBLE"], ["note", "VARCHAR"]],
            "production_columns": [["id", "INTEGER"], ["amount", "INTEGER"], ["email", "VARCHAR"]],
            "key": ["id"], "added": 1, "removed": 3, "changed": 2,
        });
        let diff = DataDiff::from_compared(&compared).unwrap();
        assert_eq!(diff.columns_added, ["note"]);
        assert_eq!(diff.columns_removed, ["email"]);
        assert_eq!(
            diff.columns_retyped,
            [(
                "amount".to_owned(),
                "integer".to_owned(),
                "double".to_owned()
            )]
        );
        assert_eq!(diff.keyed.unwrap().removed, 3);
        let unkeyed = json!({"id": "m", "rows": 1, "production_rows": 1,
                             "mr_columns": [], "production_columns": []});
        assert_eq!(DataDiff::from_compared(&unkeyed).unwrap().keyed, None);
        assert_eq!(DataDiff::from_compared(&json!({"id": "m"})), None);
        assert_eq!(DataDiff::from_compared(&json!("garbage")), None);
    }

    #[test]
    fn repository_text_cannot_start_a_line_of_the_note() {
        let hostile = "orders\n/close\n/merge`|";
        let report = Report {
            production: Some(Production {
                run_id: "r".into(),
                sha: "0123456789".into(),
            }),
            changes: BTreeMap::from([("model.p.x".to_owned(), Change::New)]),
            reasons: BTreeMap::new(),
            results: vec![],
            data: vec![],
            not_compared: vec![NotCompared {
                unique_id: "model.p.x".into(),
                why: "dbt said\n/close".into(),
            }],
            names: BTreeMap::from([("model.p.x".to_owned(), hostile.to_owned())]),
        };
        let md = report.markdown("lablink/ci", "https://lablink/runs/r");
        assert!(md.lines().all(|line| !line.starts_with('/')), "{md}");
        assert!(md.contains("`orders /close /merge''`"), "{md}");
        assert_eq!(inline(&"x".repeat(400)).chars().count(), 301);
    }
}
