//! `help [COMMAND]` and `completions bash|zsh|fish`. Both read the command table
//! ([`super::COMMANDS`]): the completion scripts take each command's options from the
//! `Options:` section of its help text, so help and completions have one source.

use std::io;

use lexopt::prelude::*;

use super::{COMMANDS, Command, CommandSpec, EXIT_OK, Io, help, top_help};

pub const SPEC: CommandSpec = CommandSpec {
    name: "completions",
    summary: "Print a shell completion script (bash, zsh or fish)",
    help: HELP,
    parse,
};

pub const HELP_SPEC: CommandSpec = CommandSpec {
    name: "help",
    summary: "Show the help of agent-dispatch or of one command",
    help: HELP_HELP,
    parse: parse_help,
};

const HELP: &str = "\
Usage: agent-dispatch completions [OPTIONS] SHELL

  Print a completion script for SHELL (bash, zsh or fish) on stdout. Install it with:

    bash:  agent-dispatch completions bash > ~/.local/share/bash-completion/completions/agent-dispatch
    zsh:   agent-dispatch completions zsh > \"${fpath[1]}/_agent-dispatch\"
    fish:  agent-dispatch completions fish > ~/.config/fish/completions/agent-dispatch.fish

Options:
  -h, --help  Show this message and exit.
";

const HELP_HELP: &str = "\
Usage: agent-dispatch help [COMMAND]

  Show the list of commands, or the help of COMMAND (the same as COMMAND --help).

Options:
  -h, --help  Show this message and exit.
";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

fn parse(p: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
    let mut shell = None;
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(help(&SPEC)),
            Value(v) if shell.is_none() => {
                shell = Some(match v.to_string_lossy().as_ref() {
                    "bash" => Shell::Bash,
                    "zsh" => Shell::Zsh,
                    "fish" => Shell::Fish,
                    other => {
                        return Err(format!(
                            "Invalid value for 'SHELL': '{other}' is not one of 'bash', 'zsh', 'fish'."
                        )
                        .into());
                    }
                });
            }
            other => return Err(other.unexpected()),
        }
    }
    shell
        .map(Command::Completions)
        .ok_or_else(|| "Missing argument 'SHELL' (bash, zsh or fish).".into())
}

fn parse_help(p: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
    let mut topic: Option<String> = None;
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(help(&HELP_SPEC)),
            Value(v) if topic.is_none() => topic = Some(v.string()?),
            other => return Err(other.unexpected()),
        }
    }
    match topic {
        None => Ok(Command::Help(top_help())),
        Some(name) => COMMANDS
            .iter()
            .find(|c| c.name == name)
            .map(help)
            .ok_or_else(|| format!("No such command '{name}'.").into()),
    }
}

/// One option of a command as its help text declares it.
#[derive(Debug, PartialEq)]
struct OptionSpec {
    short: Option<char>,
    long: Option<String>,
    takes_value: bool,
    summary: String,
}

/// The options listed under `Options:` in a command's help: lines `  -x, --long VALUE  text`.
fn options_of(help_text: &str) -> Vec<OptionSpec> {
    let mut in_options = false;
    let mut out = Vec::new();
    for line in help_text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_options = line == "Options:";
            continue;
        }
        let trimmed = line.trim_start();
        if !in_options || !trimmed.starts_with('-') {
            continue;
        }
        let (decl, summary) = trimmed.split_once("  ").unwrap_or((trimmed, ""));
        let mut spec = OptionSpec {
            short: None,
            long: None,
            takes_value: false,
            summary: summary.trim().to_string(),
        };
        for word in decl.split([',', ' ']).filter(|w| !w.is_empty()) {
            if let Some(l) = word.strip_prefix("--") {
                spec.long = Some(l.to_string());
            } else if let Some(s) = word.strip_prefix('-') {
                spec.short = s.chars().next();
            } else {
                spec.takes_value = true;
            }
        }
        out.push(spec);
    }
    out
}

fn flags_of(spec: &CommandSpec) -> Vec<String> {
    let mut flags = Vec::new();
    for o in options_of(spec.help) {
        if let Some(s) = o.short {
            flags.push(format!("-{s}"));
        }
        if let Some(l) = o.long {
            flags.push(format!("--{l}"));
        }
    }
    flags
}

fn command_names() -> String {
    COMMANDS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(" ")
}

fn bash() -> String {
    let mut s = String::from(
        "# bash completion for agent-dispatch (generated by 'agent-dispatch completions bash')\n\
         _agent_dispatch() {\n    local cur=\"${COMP_WORDS[COMP_CWORD]}\" opts\n    \
         if [ \"$COMP_CWORD\" -eq 1 ]; then\n",
    );
    s.push_str(&format!(
        "        COMPREPLY=($(compgen -W \"{} --help --version\" -- \"$cur\"))\n        return\n    fi\n",
        command_names()
    ));
    s.push_str("    case \"${COMP_WORDS[1]}\" in\n");
    for c in COMMANDS {
        s.push_str(&format!(
            "        {}) opts=\"{}\" ;;\n",
            c.name,
            flags_of(c).join(" ")
        ));
    }
    s.push_str("        *) opts=\"\" ;;\n    esac\n");
    s.push_str("    if [ \"${COMP_WORDS[1]}\" = help ] && [ \"$COMP_CWORD\" -eq 2 ]; then\n");
    s.push_str(&format!(
        "        COMPREPLY=($(compgen -W \"{}\" -- \"$cur\"))\n        return\n    fi\n",
        command_names()
    ));
    s.push_str(
        "    if [ \"${COMP_WORDS[1]}\" = completions ] && [ \"$COMP_CWORD\" -eq 2 ]; then\n        \
         COMPREPLY=($(compgen -W \"bash zsh fish\" -- \"$cur\"))\n        return\n    fi\n",
    );
    s.push_str(
        "    COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n}\n\
         complete -o default -F _agent_dispatch agent-dispatch\n",
    );
    s
}

/// Single quotes for zsh and fish strings.
fn quoted(text: &str) -> String {
    text.replace('\'', "'\\''")
}

fn zsh() -> String {
    let mut s = String::from(
        "#compdef agent-dispatch\n# zsh completion for agent-dispatch (generated by \
         'agent-dispatch completions zsh')\n_agent_dispatch() {\n    local -a commands\n    commands=(\n",
    );
    for c in COMMANDS {
        s.push_str(&format!(
            "        '{}:{}'\n",
            c.name,
            quoted(&c.summary.replace(':', "\\:"))
        ));
    }
    s.push_str(
        "    )\n    if (( CURRENT == 2 )); then\n        _describe 'command' commands\n        return\n    fi\n    case $words[2] in\n",
    );
    for c in COMMANDS {
        let mut args = Vec::new();
        for o in options_of(c.help) {
            let value = if o.takes_value { ":value:" } else { "" };
            let summary = quoted(&o.summary.replace(['[', ']'], ""));
            if let Some(l) = &o.long {
                args.push(format!("'--{l}[{summary}]{value}'"));
            }
            if let Some(sh) = o.short {
                args.push(format!("'-{sh}[{summary}]{value}'"));
            }
        }
        s.push_str(&format!(
            "        {}) _arguments {} '*:file:_files' ;;\n",
            c.name,
            args.join(" ")
        ));
    }
    s.push_str("    esac\n}\ncompdef _agent_dispatch agent-dispatch\n");
    s
}

fn fish() -> String {
    let mut s = String::from(
        "# fish completion for agent-dispatch (generated by 'agent-dispatch completions fish')\n",
    );
    for c in COMMANDS {
        s.push_str(&format!(
            "complete -c agent-dispatch -n __fish_use_subcommand -f -a {} -d '{}'\n",
            c.name,
            quoted(c.summary)
        ));
    }
    for c in COMMANDS {
        for o in options_of(c.help) {
            let mut line = format!(
                "complete -c agent-dispatch -n '__fish_seen_subcommand_from {}'",
                c.name
            );
            if let Some(l) = &o.long {
                line.push_str(&format!(" -l {l}"));
            }
            if let Some(sh) = o.short {
                line.push_str(&format!(" -s {sh}"));
            }
            if o.takes_value {
                line.push_str(" -r");
            }
            line.push_str(&format!(" -d '{}'\n", quoted(&o.summary)));
            s.push_str(&line);
        }
    }
    s.push_str(
        "complete -c agent-dispatch -n '__fish_seen_subcommand_from completions' -f -a 'bash zsh fish'\n",
    );
    s
}

pub fn run(io: &mut Io, shell: Shell) -> io::Result<u8> {
    let script = match shell {
        Shell::Bash => bash(),
        Shell::Zsh => zsh(),
        Shell::Fish => fish(),
    };
    io.out.write_all(script.as_bytes())?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_come_from_the_help_text() {
        let opts = options_of(super::super::test_cmd::HELP);
        let longs: Vec<_> = opts.iter().filter_map(|o| o.long.as_deref()).collect();
        assert!(
            longs.contains(&"stream") && longs.contains(&"timeout"),
            "{longs:?}"
        );
        let timeout = opts
            .iter()
            .find(|o| o.long.as_deref() == Some("timeout"))
            .unwrap();
        assert!(timeout.takes_value);
        assert!(opts.iter().any(|o| o.short == Some('h')));
    }

    #[test]
    fn every_command_and_option_is_in_every_script() {
        for script in [bash(), zsh(), fish()] {
            for c in COMMANDS {
                assert!(script.contains(c.name), "{}", c.name);
                for o in options_of(c.help) {
                    if let Some(l) = o.long {
                        assert!(script.contains(&l), "{} --{l}", c.name);
                    }
                }
            }
        }
    }
}
