//! How a rendered command line is started: exec'd directly when that means the same as the
//! shell would, else handed to `sh -c`.

/// Characters that make a line mean something only a shell can do.
const SHELL_META: &[char] = &[
    '|', '&', ';', '<', '>', '(', ')', '$', '`', '*', '?', '[', ']', '#', '~', '{', '}', '\n', '\r',
];

/// Words that are shell syntax or builtins with no program of the same name (`exit 1`, `cd x`).
const SHELL_WORDS: &[&str] = &[
    "!", ".", ":", "alias", "break", "case", "cd", "continue", "eval", "exec", "exit", "export",
    "for", "if", "readonly", "return", "set", "shift", "source", "trap", "ulimit", "umask",
    "unset", "until", "wait", "while",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Direct { program: String, args: Vec<String> },
    Shell(String),
}

impl Invocation {
    /// The program as people know it, for messages.
    pub fn program(&self) -> &str {
        match self {
            Invocation::Direct { program, .. } => program,
            Invocation::Shell(_) => SHELL,
        }
    }
}

pub const SHELL: &str = "/bin/sh";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    #[error("the command line is empty")]
    Empty,
    #[error("cannot split the command line into words (unbalanced quotes?): {0}")]
    Unbalanced(String),
}

/// Decides how to start `line`.
pub fn plan(line: &str) -> Result<Invocation, CmdlineError> {
    if line.trim().is_empty() {
        return Err(CmdlineError::Empty);
    }
    if needs_shell(line) {
        return Ok(Invocation::Shell(line.to_string()));
    }
    let mut words = shlex::split(line).ok_or_else(|| CmdlineError::Unbalanced(line.to_string()))?;
    if words.is_empty() {
        return Err(CmdlineError::Empty);
    }
    let program = words.remove(0);
    Ok(Invocation::Direct {
        program,
        args: words,
    })
}

/// True when the line uses shell syntax: metacharacters, a leading `VAR=value` assignment, or a
/// shell-only first word. Conservative: a quoted `|` also goes to the shell, which is still right.
pub fn needs_shell(line: &str) -> bool {
    if line.contains(SHELL_META) {
        return true;
    }
    let Some(first) = line.split_whitespace().next() else {
        return false;
    };
    is_assignment(first) || SHELL_WORDS.contains(&first)
}

fn is_assignment(word: &str) -> bool {
    let Some((name, _)) = word.split_once('=') else {
        return false;
    };
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_are_exec_directly() {
        for line in [
            "echo hello",
            "cargo build --release",
            "grep -e a=b file",
            "  ls  -la  ",
            "./script.sh --flag=value",
            "echo \"hello world\"",
            "printf '%s\\n' x",
            "=x",
            "1A=b",
            "exiting now",
        ] {
            assert!(!needs_shell(line), "{line:?} should be exec'd directly");
        }
    }

    #[test]
    fn shell_syntax_goes_to_sh() {
        for line in [
            "echo a | wc -l",
            "make && make test",
            "a; b",
            "sort < in",
            "echo x > out",
            "echo x >> out",
            "(cd x)",
            "echo $HOME",
            "echo `date`",
            "ls *.rs",
            "ls file?",
            "ls [ab]",
            "echo hi # comment",
            "ls ~",
            "echo {a,b}",
            "echo a\necho b",
            "sleep 1 &",
            "FOO=bar env",
            "_X1=2 cmd",
            "exit 3",
            "cd /tmp",
            "export A=1",
            "if",
            "! false",
            // Quoted metacharacters too: conservative, and sh runs it the same.
            "python3 -c 'print(1)'",
        ] {
            assert!(needs_shell(line), "{line:?} should go to sh");
        }
    }

    #[test]
    fn plans_split_words_like_a_shell() {
        assert_eq!(
            plan("echo 'a b' \"c d\" e\\ f").unwrap(),
            Invocation::Direct {
                program: "echo".into(),
                args: vec!["a b".into(), "c d".into(), "e f".into()],
            }
        );
        assert_eq!(
            plan("echo a | cat").unwrap(),
            Invocation::Shell("echo a | cat".into())
        );
        assert_eq!(plan("echo a | cat").unwrap().program(), "/bin/sh");
    }

    #[test]
    fn bad_lines_are_errors() {
        assert_eq!(plan("   "), Err(CmdlineError::Empty));
        assert!(matches!(
            plan("echo 'oops"),
            Err(CmdlineError::Unbalanced(_))
        ));
        assert!(matches!(
            plan("echo \"oops"),
            Err(CmdlineError::Unbalanced(_))
        ));
    }
}
