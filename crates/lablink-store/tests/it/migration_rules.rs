//! The rules that keep the previous release working while a fleet rolls to the next one
//! (`migrations/RELEASED` says why): a migration newer than the last released one must not drop,
//! rename or change what the previous release reads and writes, nor add a column its `INSERT`s
//! cannot fill; and no released migration is edited.
//!
//! The check reads the SQL as text, statement by statement: simple enough to trust, strict
//! enough to stop the usual mistakes (a column dropped in the release that stopped using it, a
//! SQLite table rebuilt under its own name). A statement it refuses is let through when the
//! migration says, in a line of its own, `-- previous release does not use: <name>` for a name
//! the statement touches: a removal made a release after the code stopped using it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations")
}

/// Every migration file as (version, file name, text), in order.
fn migrations() -> Vec<(i64, String, String)> {
    let mut all: Vec<(i64, String, String)> = std::fs::read_dir(migrations_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .map(|name| {
            let version = name.split('_').next().unwrap().parse().unwrap();
            let text = std::fs::read_to_string(migrations_dir().join(&name)).unwrap();
            (version, name, text)
        })
        .collect();
    all.sort();
    all
}

/// `RELEASED`: the last released migration's version and the digest written with it.
fn released() -> (i64, String) {
    let text = std::fs::read_to_string(migrations_dir().join("RELEASED")).unwrap();
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .expect("RELEASED names the last released migration");
    let (version, digest) = line.split_once(' ').expect("`<version> sha256:<hex>`");
    (version.parse().unwrap(), digest.trim().to_owned())
}

/// SHA-256 over each released migration's file name and text, in order.
fn digest_up_to(version: i64) -> String {
    let mut hash = Sha256::new();
    for (v, name, text) in migrations() {
        if v <= version {
            hash.update(name.as_bytes());
            hash.update(b"\n");
            hash.update(text.as_bytes());
        }
    }
    format!("sha256:{}", hex::encode(hash.finalize()))
}

#[test]
fn released_migrations_are_not_edited() {
    let (version, digest) = released();
    assert!(
        migrations().iter().any(|(v, _, _)| *v == version),
        "RELEASED names migration {version}, which does not exist"
    );
    let now = digest_up_to(version);
    assert_eq!(
        digest, now,
        "a migration up to {version:04} (released) changed, was added or was removed: sqlx would \
         refuse every database it was applied to. Put the change in a new migration. (If \
         RELEASED was just moved to a new release, write `{version:04} {now}` there.)"
    );
}

#[test]
fn migrations_after_the_last_release_keep_it_working() {
    let (released, _) = released();
    let mut problems = Vec::new();
    let mut new_tables = HashSet::new();
    for (version, name, text) in migrations() {
        if version > released {
            problems.extend(
                breaking(&text, &mut new_tables)
                    .into_iter()
                    .map(|p| format!("{name}: {p}")),
            );
        }
    }
    assert!(
        problems.is_empty(),
        "these would break the previous release while replicas roll (add first, remove in a \
         later release; docs/deploy.md, \"Upgrading a fleet\"):\n{}",
        problems.join("\n")
    );
}

/// What in one migration breaks the previous release. `new_tables` are the tables created by
/// migrations after the release (the previous release knows nothing of them); it grows with
/// this migration's.
fn breaking(sql: &str, new_tables: &mut HashSet<String>) -> Vec<String> {
    let allowed: Vec<String> = sql
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-- previous release does not use:"))
        .map(|name| name.trim().to_uppercase())
        .collect();
    let code: String = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ");
    let mut problems = Vec::new();
    for statement in code.split(';') {
        let words: Vec<String> = statement
            .split_whitespace()
            .map(|w| w.trim_matches(|c| c == '(' || c == ')' || c == ',' || c == '"'))
            .map(str::to_uppercase)
            .collect();
        let text = words.join(" ");
        if text.is_empty() {
            continue;
        }
        if let Some(table) = after(&words, &["CREATE", "TABLE"]) {
            new_tables.insert(table);
            continue;
        }
        // `ALTER TABLE t …` or `DROP TABLE t`: what a table created since the release goes
        // through is nobody else's business.
        let table =
            after(&words, &["ALTER", "TABLE"]).or_else(|| after(&words, &["DROP", "TABLE"]));
        if table.as_ref().is_some_and(|t| new_tables.contains(t)) {
            continue;
        }
        let Some(why) = refusal(&text) else { continue };
        if allowed.iter().any(|name| words.contains(name)) {
            continue;
        }
        problems.push(format!(
            "`{}`: {why}",
            statement.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    problems
}

/// Why a statement (upper-cased, one space between words) breaks the previous release.
fn refusal(text: &str) -> Option<&'static str> {
    let has = |phrase: &str| format!(" {text} ").contains(&format!(" {phrase} "));
    if has("DROP TABLE") {
        Some("drops a table the previous release reads and writes")
    } else if has("DROP COLUMN") {
        Some("drops a column the previous release reads and writes")
    } else if has("RENAME") {
        Some("renames what the previous release knows by its old name")
    } else if has("ALTER COLUMN") {
        Some("changes a column's type or constraints under the previous release's statements")
    } else if has("DROP INDEX") {
        Some("drops an index: if unique, the previous release's ON CONFLICT needs it")
    } else if has("ADD COLUMN") && has("NOT NULL") && !has("DEFAULT") {
        Some("adds a NOT NULL column without a DEFAULT: the previous release's INSERTs omit it")
    } else {
        None
    }
}

/// The name after `keywords` (skipping `IF [NOT] EXISTS`), upper-cased.
fn after(words: &[String], keywords: &[&str]) -> Option<String> {
    let start = words
        .windows(keywords.len())
        .position(|w| w.iter().zip(keywords).all(|(a, b)| a == b))?;
    words[start + keywords.len()..]
        .iter()
        .find(|w| !matches!(w.as_str(), "IF" | "NOT" | "EXISTS"))
        .cloned()
}

#[test]
fn the_check_refuses_removals_and_lets_additions_through() {
    let check = |sql: &str| breaking(sql, &mut HashSet::new());
    // Additions: a table, a nullable column, a NOT NULL column with a default, an index.
    let additive = "-- A note.\n\
        CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT NOT NULL);\n\
        ALTER TABLE runs ADD COLUMN note TEXT;\n\
        ALTER TABLE runs ADD COLUMN tries BIGINT NOT NULL DEFAULT 0;\n\
        CREATE INDEX runs_note ON runs (note); -- dropped_at stays";
    assert_eq!(check(additive), Vec::<String>::new());

    let refused = [
        ("DROP TABLE runs;", "drops a table"),
        ("ALTER TABLE runs DROP COLUMN note;", "drops a column"),
        ("ALTER TABLE runs RENAME COLUMN note TO remark;", "renames"),
        ("ALTER TABLE runs RENAME TO ci_runs;", "renames"),
        (
            "ALTER TABLE runs ALTER COLUMN note TYPE BIGINT;",
            "changes a column",
        ),
        ("DROP INDEX IF EXISTS runs_by_sha;", "drops an index"),
        (
            "ALTER TABLE runs ADD COLUMN tries BIGINT NOT NULL;",
            "NOT NULL column",
        ),
        // SQLite's way of changing a table: the old one is dropped and the new one renamed.
        (
            "CREATE TABLE runs_new (id TEXT);\nINSERT INTO runs_new SELECT id FROM runs;\n\
             DROP TABLE runs;\nALTER TABLE runs_new RENAME TO runs;",
            "drops a table",
        ),
    ];
    for (sql, why) in refused {
        let problems = check(sql);
        assert!(
            problems.iter().any(|p| p.contains(why)),
            "{sql}: {problems:?}"
        );
    }

    // A table made since the release is the new release's own.
    assert_eq!(
        check(
            "CREATE TABLE IF NOT EXISTS drafts (id TEXT);\nALTER TABLE drafts DROP COLUMN id;\nDROP TABLE drafts;"
        ),
        Vec::<String>::new()
    );
    // A removal the migration says the previous release does not need.
    let marked = "-- previous release does not use: legacy_note\n\
                  ALTER TABLE runs DROP COLUMN legacy_note;";
    assert_eq!(check(marked), Vec::<String>::new());
    let wrong_name = "-- previous release does not use: other\n\
                      ALTER TABLE runs DROP COLUMN legacy_note;";
    assert_eq!(check(wrong_name).len(), 1);
}
