//! The layering rules ARCHITECTURE.md states, checked against `cargo metadata`: who may depend on
//! whom. Only normal (non-dev) dependencies count; tests may use anything.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Every workspace crate's normal dependencies: crate name → (dependency name → optional).
fn normal_dependencies() -> BTreeMap<String, BTreeMap<String, bool>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let deps = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| {
                    (
                        d["name"].as_str().unwrap().to_owned(),
                        d["optional"].as_bool().unwrap(),
                    )
                })
                .collect();
            (package["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

fn names(deps: &BTreeMap<String, bool>) -> BTreeSet<&str> {
    deps.keys().map(String::as_str).collect()
}

#[test]
fn the_crates_depend_on_each_other_as_architecture_md_says() {
    let all = normal_dependencies();
    let deps = |name: &str| names(&all[name]);

    // lablink-core has no IO: plain types and pure functions only.
    let core: BTreeSet<&str> = deps("lablink-core");
    let allowed: BTreeSet<&str> = ["ipnet", "serde", "serde_json", "thiserror"].into();
    assert!(
        core.is_subset(&allowed),
        "lablink-core may only use {allowed:?}, it uses {core:?}"
    );

    // Handlers are thin: the web crate reaches the store and GitLab only through the service.
    let web = deps("lablink-web");
    for forbidden in [
        "lablink-store",
        "lablink-gitlab",
        "lablink-exec",
        "sqlx",
        "reqwest",
    ] {
        assert!(
            !web.contains(forbidden),
            "lablink-web depends on {forbidden}"
        );
    }

    // SQL appears only in the store (the test kit makes and drops test databases, and is only
    // ever a dev-dependency).
    for (name, crate_deps) in &all {
        if name != "lablink-store" && name != "lablink-testkit" {
            assert!(!crate_deps.contains_key("sqlx"), "{name} depends on sqlx");
        }
        assert!(
            !crate_deps.contains_key("lablink-testkit"),
            "{name} depends on the test kit outside its tests"
        );
    }

    // gitlab-sim is GitLab, not lablink: it depends on no lablink crate, and only the binary's
    // optional `demo` feature depends on it.
    assert!(
        deps("gitlab-sim").iter().all(|d| !d.starts_with("lablink")),
        "gitlab-sim depends on a lablink crate"
    );
    for (name, crate_deps) in &all {
        match crate_deps.get("gitlab-sim") {
            None => {}
            Some(true) if name == "lablink" => {}
            Some(_) => panic!("{name} depends on gitlab-sim outside the demo feature"),
        }
    }
}
