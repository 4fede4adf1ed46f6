//! `lablink admin rekey` and `lablink admin new-key`: the shell side of changing the master key.

use lablink_service::Services;
use lablink_service::rekey::ColumnRekeyed;

use crate::config::Settings;
use crate::master_key;

/// `lablink admin new-key`: a new first line in the key file, the old key kept below it.
pub fn new_key(settings: &Settings) -> anyhow::Result<()> {
    let path = master_key::add_new_key(settings)?;
    println!(
        "A new master key is now the first line of {}; the previous key stays below it.\n\
         Next: restart every lablink process that uses this file (they seal with the new key and \
         still open what the old one sealed), then run `lablink admin rekey`.",
        path.display()
    );
    Ok(())
}

/// `lablink admin rekey --check`: which key seals what. Fails when anything is not sealed with
/// the current key.
pub async fn check(services: &Services) -> anyhow::Result<()> {
    let inventory = services.sealed_inventory().await?;
    let current = services.current_key_id();
    let mut behind = 0;
    println!("current key: {current}");
    for (column, keys) in &inventory {
        let older: u64 = keys.previous.values().sum();
        behind += older + keys.unreadable.len() as u64;
        let mut line = format!("{column:<40} {:>6} current", keys.current);
        for (id, n) in &keys.previous {
            line.push_str(&format!(", {n} under previous key {id}"));
        }
        if !keys.unreadable.is_empty() {
            line.push_str(&format!(
                ", {} that no configured key opens (rows {})",
                keys.unreadable.len(),
                keys.unreadable.join(", ")
            ));
        }
        println!("{line}");
    }
    if behind == 0 {
        println!("Every stored secret is sealed with the current key.");
        Ok(())
    } else {
        anyhow::bail!(
            "{behind} stored secrets are not sealed with the current key; run `lablink admin rekey`"
        )
    }
}

/// `lablink admin rekey`: re-seals everything under the current key, printing each column's
/// progress; with `forget_previous`, a complete run also drops the older keys from the key file.
pub async fn rekey(
    settings: &Settings,
    services: &Services,
    forget_previous: bool,
) -> anyhow::Result<()> {
    println!(
        "Re-sealing every stored secret under key {}…",
        services.current_key_id()
    );
    let done = services.rekey(print_progress).await?;
    let unreadable: Vec<String> = done
        .columns
        .iter()
        .flat_map(|c| {
            c.unreadable
                .iter()
                .map(move |row| format!("{} row {row}", c.column))
        })
        .collect();
    if !unreadable.is_empty() {
        anyhow::bail!(
            "{} secrets could not be opened with any configured key and were left as they are: {}. \
             Add the key that sealed them to `previous_secret_keys` and run `lablink admin rekey` again.",
            unreadable.len(),
            unreadable.join("; ")
        );
    }
    if !done.complete() {
        anyhow::bail!(
            "lablink kept rewriting some secrets while they were re-sealed (a process may still \
             seal with an older key): restart every lablink process, then run `lablink admin rekey` again"
        );
    }
    println!(
        "Done: {} secrets re-sealed; every stored secret is sealed with key {}.",
        done.resealed(),
        done.key_id
    );
    if forget_previous {
        match master_key::forget_previous_keys(settings)? {
            Some(path) => println!("The older keys were removed from {}.", path.display()),
            None => println!(
                "The keys come from the settings: remove `previous_secret_keys` and restart."
            ),
        }
    } else {
        println!(
            "The older keys can now be removed (`lablink admin rekey --forget-previous` for the \
             key file, or the setting `previous_secret_keys`) once every process has restarted."
        );
    }
    Ok(())
}

fn print_progress(column: &ColumnRekeyed) {
    println!(
        "  {:<40} {:>6} re-sealed, {:>6} already current",
        column.column, column.resealed, column.already_current
    );
}
