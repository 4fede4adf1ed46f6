//! The status language of every page: a badge with a colour, an icon and a word, so no state is
//! told by colour alone and no internal code reaches the reader.

use std::fmt;

use lablink_core::run::RunState;

/// A status badge; renders as HTML (its texts are all fixed here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Badge {
    tone: &'static str,
    icon: &'static str,
    label: &'static str,
}

impl fmt::Display for Badge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<span class=\"badge badge-{}\"><span aria-hidden=\"true\">{}</span> {}</span>",
            self.tone, self.icon, self.label
        )
    }
}

const fn badge(tone: &'static str, icon: &'static str, label: &'static str) -> Badge {
    Badge { tone, icon, label }
}

/// A run's state.
pub fn run(state: RunState) -> Badge {
    match state {
        RunState::AwaitingApproval => badge("warn", "⏸", "Waiting for approval"),
        RunState::Queued => badge("wait", "◷", "Queued"),
        RunState::Starting => badge("busy", "◐", "Starting"),
        RunState::Running => badge("busy", "●", "Running"),
        RunState::Success => badge("ok", "✓", "Passed"),
        RunState::Error => badge("bad", "✗", "Failed"),
        RunState::Cancelled => badge("muted", "⊘", "Cancelled"),
        RunState::Skipped => badge("muted", "»", "Skipped"),
    }
}

/// A workspace dbt command's state (`DevCommand::state`).
pub fn dev_command(state: &str) -> Badge {
    match state {
        "running" => badge("busy", "●", "Running"),
        "succeeded" => badge("ok", "✓", "Succeeded"),
        "cancelled" => badge("muted", "⊘", "Cancelled"),
        "timed_out" => badge("bad", "⧗", "Timed out"),
        "stopped" => badge("bad", "✗", "Stopped at a limit"),
        "lost" => badge("warn", "!", "Lost"),
        _ => badge("bad", "✗", "Failed"),
    }
}

/// A connection's health after its last check.
pub fn connection(errors: i64, warnings: i64) -> Badge {
    if errors > 0 {
        badge("bad", "✗", "Broken")
    } else if warnings > 0 {
        badge("warn", "!", "Works, with warnings")
    } else {
        badge("ok", "✓", "Healthy")
    }
}

/// A doctor's finding.
pub fn severity(error: bool) -> Badge {
    if error {
        badge("bad", "✗", "Broken")
    } else {
        badge("warn", "!", "Warning")
    }
}

/// The first `n` characters of a commit SHA, as lists show them.
pub fn short(sha: &str, n: usize) -> &str {
    sha.char_indices().nth(n).map_or(sha, |(i, _)| &sha[..i])
}

/// A run's id as lists show it: its last 8 characters (ids are UUIDv7, whose first characters
/// are the time of creation and so repeat among runs made together).
pub fn run_ref(id: &str) -> &str {
    id.char_indices().rev().nth(7).map_or(id, |(i, _)| &id[i..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_run_state_has_a_word_and_an_icon() {
        for state in [
            RunState::AwaitingApproval,
            RunState::Queued,
            RunState::Starting,
            RunState::Running,
            RunState::Success,
            RunState::Error,
            RunState::Cancelled,
            RunState::Skipped,
        ] {
            let html = run(state).to_string();
            assert!(html.contains("aria-hidden=\"true\""), "{html}");
            assert!(!html.contains('_'), "no internal code in {html}");
        }
    }

    #[test]
    fn short_ids_cut_at_characters() {
        assert_eq!(short("0123456789abcdef", 8), "01234567");
        assert_eq!(short("abc", 8), "abc");
        assert_eq!(run_ref("01a2471b-dc9c-7075-b0d7-30ec93e3b6b4"), "93e3b6b4");
        assert_eq!(run_ref("abc"), "abc");
    }
}
