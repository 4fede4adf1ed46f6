//! The dbt command lines of a job: parsed from the job's text with shell-like word splitting (no
//! shell ever runs them), restricted to `dbt`, and given deferral to production state.

use std::fmt;
use std::path::Path;

use super::DbtError;

/// One dbt invocation; `args` excludes the leading `dbt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbtCommand {
    args: Vec<String>,
}

/// Flags lablink sets itself through the environment; a job that passes them would point dbt
/// away from the run's private profile, target or directories.
const RESERVED_FLAGS: &[&str] = &[
    "--profiles-dir",
    "--project-dir",
    "--target-path",
    "--log-path",
    "--profile",
    "--target",
    "-t",
];

/// Subcommands that select nodes and so understand `--defer --state`.
const DEFERRING_SUBCOMMANDS: &[&str] = &[
    "build", "run", "test", "seed", "snapshot", "compile", "list", "ls", "show",
];

impl DbtCommand {
    /// The default CI command: only what changed (and its children) against production state
    /// when there is one, everything otherwise (dbt-platform.md §3.12).
    pub fn default_ci(production_state: Option<&Path>) -> Self {
        match production_state {
            Some(state) => {
                Self::from_args(["build", "--select", "state:modified+"]).with_deferral(state)
            }
            None => Self::from_args(["build"]),
        }
    }

    /// `dbt deps`, for projects with packages.
    pub fn deps() -> Self {
        Self::from_args(["deps"])
    }

    /// `dbt parse`: reads the whole project, builds nothing.
    pub fn parse_only() -> Self {
        Self::from_args(["parse"])
    }

    /// The commands a job runs: its configured lines, or the default when it has none. With
    /// production state, node-selecting commands defer to it unless they choose their own.
    pub fn for_job(
        configured: &[String],
        production_state: Option<&Path>,
    ) -> Result<Vec<Self>, DbtError> {
        if configured.iter().all(|line| line.trim().is_empty()) {
            return Ok(vec![Self::default_ci(production_state)]);
        }
        configured
            .iter()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let command = Self::parse(line)?;
                Ok(match production_state {
                    Some(state) => command.with_deferral(state),
                    None => command,
                })
            })
            .collect()
    }

    /// Parses one command line such as `dbt build --select "tag:nightly"`.
    pub fn parse(line: &str) -> Result<Self, DbtError> {
        let invalid = |reason: String| DbtError::InvalidCommand {
            command: line.to_owned(),
            reason,
        };
        let mut words = split_words(line)
            .map_err(|e| invalid(e.to_string()))?
            .into_iter();
        match words.next().as_deref() {
            Some("dbt") => {}
            Some(program) => {
                return Err(invalid(format!(
                    "only dbt commands can run, not `{program}`"
                )));
            }
            None => return Err(invalid("the command is empty".into())),
        }
        let args: Vec<String> = words.collect();
        if args.is_empty() {
            return Err(invalid("a dbt subcommand is missing".into()));
        }
        for arg in &args {
            let flag = arg.split('=').next().unwrap_or(arg);
            if RESERVED_FLAGS.contains(&flag) {
                return Err(invalid(format!(
                    "`{flag}` is set by lablink for every run; remove it"
                )));
            }
        }
        Ok(Self { args })
    }

    /// A command of lablink's own (never a job's: those go through [`DbtCommand::parse`]).
    pub(super) fn from_words(args: Vec<String>) -> Self {
        Self { args }
    }

    pub(super) fn from_args<const N: usize>(args: [&str; N]) -> Self {
        Self {
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn with_deferral(mut self, state: &Path) -> Self {
        let selects = self
            .args
            .first()
            .is_some_and(|sub| DEFERRING_SUBCOMMANDS.contains(&sub.as_str()));
        let chooses_own = self.args.iter().any(|arg| {
            let flag = arg.split('=').next().unwrap_or(arg);
            matches!(flag, "--state" | "--defer" | "--no-defer" | "--defer-state")
        });
        if selects && !chooses_own {
            self.args.extend([
                "--defer".to_owned(),
                "--state".to_owned(),
                state.to_string_lossy().into_owned(),
            ]);
        }
        self
    }

    /// The arguments after `dbt`.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// `dbt deps` downloads packages: it needs the network whatever the warehouse.
    pub fn needs_network(&self) -> bool {
        self.args.first().is_some_and(|sub| sub == "deps")
    }
}

/// Shell-quoted, for logs and run pages.
impl fmt::Display for DbtCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dbt")?;
        for arg in &self.args {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.,:/+=@%^".contains(c));
            if plain {
                write!(f, " {arg}")?;
            } else {
                write!(f, " '{}'", arg.replace('\'', r"'\''"))?;
            }
        }
        Ok(())
    }
}

/// Why a command line could not be split into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum SplitError {
    #[error("a quote is not closed")]
    UnclosedQuote,
    #[error("it ends with a lone backslash")]
    TrailingBackslash,
    #[error(
        "`{0}` is shell syntax, and commands do not run in a shell: quote it, or use one line per command"
    )]
    ShellSyntax(char),
    #[error(
        "`$` expansion is not supported: use the job's environment variables with env_var() in dbt, or single quotes"
    )]
    Expansion,
    #[error("control characters are not allowed")]
    ControlCharacter,
}

/// Splits a line into words the way a POSIX shell does for quoting (single quotes, double quotes
/// with backslash escapes, backslash outside quotes), and refuses everything that would make a
/// shell do more than split: operators, redirections, substitutions and comments.
fn split_words(line: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if let Some(done) = word.take() {
                    words.push(done);
                }
            }
            c if c.is_control() => return Err(SplitError::ControlCharacter),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) if c.is_control() => return Err(SplitError::ControlCharacter),
                        Some(c) => w.push(c),
                        None => return Err(SplitError::UnclosedQuote),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err(SplitError::UnclosedQuote),
                        },
                        Some('$' | '`') => return Err(SplitError::Expansion),
                        Some(c) if c.is_control() => return Err(SplitError::ControlCharacter),
                        Some(c) => w.push(c),
                        None => return Err(SplitError::UnclosedQuote),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) if c.is_control() => return Err(SplitError::ControlCharacter),
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err(SplitError::TrailingBackslash),
            },
            '$' | '`' => return Err(SplitError::Expansion),
            ';' | '&' | '|' | '<' | '>' | '(' | ')' => return Err(SplitError::ShellSyntax(c)),
            '#' if word.is_none() => return Err(SplitError::ShellSyntax(c)),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        split_words(line).unwrap()
    }

    #[test]
    fn splitting_follows_shell_quoting() {
        assert_eq!(words("  dbt   build\t-s a "), ["dbt", "build", "-s", "a"]);
        assert_eq!(
            words(r#"dbt run --vars '{"day": "2024-01-01"}'"#),
            ["dbt", "run", "--vars", r#"{"day": "2024-01-01"}"#]
        );
        assert_eq!(
            words(r#"dbt run --vars "{\"a\": 1, \"b\": \$x}""#),
            ["dbt", "run", "--vars", r#"{"a": 1, "b": $x}"#]
        );
        assert_eq!(words(r"a\ b 'c''d' e#f"), ["a b", "cd", "e#f"]);
        assert_eq!(words(r#"'' "" x"#), ["", "", "x"]);
        assert_eq!(words(r#""a\nb""#), [r"a\nb"]);
        assert_eq!(words("'$HOME; ls | x'"), ["$HOME; ls | x"]);
        assert!(words("").is_empty());
    }

    #[test]
    fn splitting_refuses_what_only_a_shell_would_do() {
        let cases = [
            ("dbt build 'x", SplitError::UnclosedQuote),
            (r#"dbt build "x"#, SplitError::UnclosedQuote),
            (r"dbt build \", SplitError::TrailingBackslash),
            ("dbt build; rm -rf /", SplitError::ShellSyntax(';')),
            ("dbt build && echo", SplitError::ShellSyntax('&')),
            ("dbt ls | head", SplitError::ShellSyntax('|')),
            ("dbt ls > out", SplitError::ShellSyntax('>')),
            ("dbt run $(id)", SplitError::Expansion),
            ("dbt run `id`", SplitError::Expansion),
            (r#"dbt run "$HOME""#, SplitError::Expansion),
            ("dbt run # all", SplitError::ShellSyntax('#')),
            ("dbt run\nrm -rf /", SplitError::ControlCharacter),
        ];
        for (line, err) in cases {
            assert_eq!(split_words(line), Err(err), "{line:?}");
        }
    }

    #[test]
    fn only_dbt_commands_without_reserved_flags_parse() {
        let cmd = DbtCommand::parse("dbt build --select 'tag:ci' --full-refresh").unwrap();
        assert_eq!(
            cmd.args(),
            ["build", "--select", "tag:ci", "--full-refresh"]
        );
        for (line, reason) in [
            (
                "bash -c 'dbt build'",
                "only dbt commands can run, not `bash`",
            ),
            (
                "/usr/bin/dbt build",
                "only dbt commands can run, not `/usr/bin/dbt`",
            ),
            ("   ", "the command is empty"),
            ("dbt", "a dbt subcommand is missing"),
            (
                "dbt build --profiles-dir /etc",
                "`--profiles-dir` is set by lablink for every run; remove it",
            ),
            (
                "dbt run --target=prod",
                "`--target` is set by lablink for every run; remove it",
            ),
            (
                "dbt run -t prod",
                "`-t` is set by lablink for every run; remove it",
            ),
        ] {
            match DbtCommand::parse(line) {
                Err(DbtError::InvalidCommand {
                    command,
                    reason: got,
                }) => {
                    assert_eq!(command, line);
                    assert_eq!(got, reason, "{line:?}");
                }
                other => panic!("{line:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn the_default_defers_to_production_state_only_when_it_exists() {
        let state = Path::new("/runs/r1/state");
        assert_eq!(
            DbtCommand::default_ci(Some(state)).args(),
            [
                "build",
                "--select",
                "state:modified+",
                "--defer",
                "--state",
                "/runs/r1/state"
            ]
        );
        assert_eq!(DbtCommand::default_ci(None).args(), ["build"]);
        assert_eq!(
            DbtCommand::for_job(&[], None).unwrap(),
            [DbtCommand::default_ci(None)]
        );
        assert_eq!(
            DbtCommand::for_job(&[" ".into()], Some(state)).unwrap(),
            [DbtCommand::default_ci(Some(state))]
        );
    }

    #[test]
    fn configured_commands_defer_unless_they_choose_their_own_state() {
        let state = Path::new("/s");
        let lines = [
            "dbt seed".to_owned(),
            "".to_owned(),
            "dbt run --select state:modified+ --state=/mine".to_owned(),
            "dbt deps".to_owned(),
            "dbt test --no-defer".to_owned(),
        ];
        let commands = DbtCommand::for_job(&lines, Some(state)).unwrap();
        let args: Vec<_> = commands.iter().map(|c| c.args().join(" ")).collect();
        assert_eq!(
            args,
            [
                "seed --defer --state /s",
                "run --select state:modified+ --state=/mine",
                "deps",
                "test --no-defer",
            ]
        );
        let plain = DbtCommand::for_job(&lines, None).unwrap();
        assert_eq!(plain[0].args(), ["seed"]);
        assert!(DbtCommand::for_job(&["dbt run; ls".into()], None).is_err());
    }

    #[test]
    fn commands_display_shell_quoted() {
        let cmd =
            DbtCommand::parse(r#"dbt run --vars '{"a": "it'\''s"}' -s state:modified+"#).unwrap();
        assert_eq!(
            cmd.to_string(),
            r#"dbt run --vars '{"a": "it'\''s"}' -s state:modified+"#
        );
        assert_eq!(split_words(&cmd.to_string()).unwrap()[1..], *cmd.args());
        assert_eq!(DbtCommand::deps().to_string(), "dbt deps");
    }
}
