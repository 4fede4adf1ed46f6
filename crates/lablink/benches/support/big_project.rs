//! The benchmarks' large dbt repository: 20,000 small files (models with their YAML, tests,
//! macros and seeds spread over domains, layers and groups of a few dozen files per directory).

use std::path::{Path, PathBuf};

pub const FILES: usize = 20_000;
pub const DOMAINS: [&str; 8] = [
    "finance",
    "marketing",
    "sales",
    "ops",
    "product",
    "hr",
    "support",
    "growth",
];
pub const LAYERS: [&str; 3] = ["staging", "intermediate", "marts"];

pub fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// Writes a dbt project of `FILES` files below `root`.
pub fn generate_project(root: &Path) {
    write(
        &root.join("dbt_project.yml"),
        "name: warehouse\nversion: '1.0'\nprofile: warehouse\n",
    );
    write(&root.join(".gitignore"), "target/\nlogs/\ndbt_packages/\n");
    write(
        &root.join("packages.yml"),
        "packages:\n  - package: dbt-labs/dbt_utils\n    version: 1.1.1\n",
    );
    let mut files = 3;
    let mut i = 0;
    while files < FILES {
        let domain = DOMAINS[i % DOMAINS.len()];
        let layer = LAYERS[i % LAYERS.len()];
        let dir = root
            .join("models")
            .join(domain)
            .join(layer)
            .join(format!("group_{:02}", (i / 24) % 40));
        let mut add = |path: PathBuf, content: String| {
            if files < FILES {
                write(&path, &content);
                files += 1;
            }
        };
        add(
            dir.join(format!("model_{i:05}.sql")),
            format!(
                "select id, amount_{i} as amount, '{domain}' as domain\nfrom {{{{ ref('src_{}') }}}}\nwhere id > {i}\n",
                i % 500
            ),
        );
        if i % 2 == 0 {
            add(
                dir.join(format!("model_{i:05}.yml")),
                format!(
                    "version: 2\nmodels:\n  - name: model_{i:05}\n    columns:\n      - name: id\n        tests: [not_null, unique]\n"
                ),
            );
        }
        if i % 7 == 0 {
            add(
                root.join(format!("tests/{domain}/test_{i:05}.sql")),
                format!("select * from {{{{ ref('model_{i:05}') }}}} where amount < 0\n"),
            );
        }
        if i % 11 == 0 {
            add(
                root.join(format!("macros/{domain}/macro_{i:05}.sql")),
                format!("{{% macro m_{i}(x) %}}{{{{ x }}}} * {i}{{% endmacro %}}\n"),
            );
        }
        if i % 13 == 0 {
            add(
                root.join(format!("seeds/{domain}/seed_{i:05}.csv")),
                (0..5).fold("id,name\n".to_owned(), |acc, k| format!("{acc}{k},n{k}\n")),
            );
        }
        i += 1;
    }
}
