//! A dbt log folded into one section per command: lablink writes `[lablink] $ <command>` before
//! each, so the setup before the first command and each command's output can be folded apart.

/// A part of a log: the setup before the first command, or one command and its output.
pub(super) struct LogSection {
    pub title: String,
    /// The title is a command (not the setup before the first).
    pub command: bool,
    pub outcome: Option<String>,
    /// Shown unfolded: a step that did not succeed.
    pub open: bool,
    pub lines: Vec<String>,
}

/// lablink's own log line that starts each command.
const STEP_MARK: &str = "[lablink] $ ";

/// The log's sections; `outcome` says how each command ended (`None`: unknown), and a section
/// whose outcome is not `success` is shown unfolded.
pub(super) fn log_sections<'a>(
    lines: impl Iterator<Item = &'a str>,
    setup_title: &str,
    outcome: impl Fn(&str, bool) -> Option<String>,
) -> Vec<LogSection> {
    let mut sections = vec![LogSection {
        title: setup_title.into(),
        command: false,
        outcome: None,
        open: false,
        lines: Vec::new(),
    }];
    let lines: Vec<&str> = lines.collect();
    let last_command = lines.iter().rposition(|l| l.starts_with(STEP_MARK));
    for (at, line) in lines.iter().enumerate() {
        if let Some(command) = line.strip_prefix(STEP_MARK) {
            let last = Some(at) == last_command;
            let outcome = outcome(command, last);
            sections.push(LogSection {
                title: command.to_owned(),
                command: true,
                open: outcome.as_deref().is_some_and(|o| o != "success"),
                outcome,
                lines: Vec::new(),
            });
        } else if let Some(section) = sections.last_mut() {
            section.lines.push((*line).to_owned());
        }
    }
    sections.retain(|s| s.command || !s.lines.is_empty());
    sections
}
