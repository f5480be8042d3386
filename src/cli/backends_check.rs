//! `doctor`'s look at the coding CLIs the config uses: for each backend at least one agent runs
//! (claude always), is its program there (`PATH`, or `settings.backends.<name>.command`), which
//! version it reports, and — for claude, when the dispatch protocol or an agent's instructions
//! need it — whether it knows `--append-system-prompt`.

use std::collections::BTreeSet;
use std::io;
use std::time::Duration;

use super::doctor::Report;
use super::host;
use crate::backend::{self, Backend};
use crate::config::Config;
use crate::runenv::RunEnv;

/// How long one `--version` or `--help` may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn check(r: &mut Report, config: &Config) -> io::Result<()> {
    let mut used: BTreeSet<&'static str> = BTreeSet::from([Backend::Claude.name()]);
    used.extend(config.agents.iter().map(|(_, a)| a.backend.name()));
    let env = RunEnv::from_process();
    for backend in Backend::ALL.into_iter().filter(|b| used.contains(b.name())) {
        let Some(program) = backend::find_program(&env, &config.settings, backend) else {
            if backend == Backend::Claude {
                // The Environment section has already failed a missing claude.
                continue;
            }
            let users = config
                .agents
                .iter()
                .filter(|(_, a)| a.backend == backend)
                .count();
            let text = format!("{backend}: not found ({users} agent(s) use it)");
            if users > 0 {
                r.fail(&text)?;
            } else {
                r.warn(&text)?;
            }
            r.more(backend.cli().install_hint())?;
            continue;
        };
        let version = host::run_captured(&program, &["--version".to_string()], PROBE_TIMEOUT)
            .ok()
            .filter(host::Captured::success)
            .and_then(|c| c.stdout.lines().next().map(|l| l.trim().to_string()))
            .filter(|v| !v.is_empty());
        match version {
            Some(v) => r.ok(&format!("{backend}: {} ({v})", program.display()))?,
            None => r.warn(&format!(
                "{backend}: {} does not answer --version",
                program.display()
            ))?,
        }
        let wants_system_prompt = config.settings.dispatch_protocol
            || config
                .agents
                .iter()
                .any(|(_, a)| a.instructions().is_some());
        if backend == Backend::Claude && wants_system_prompt {
            let help = host::run_captured(&program, &["--help".to_string()], PROBE_TIMEOUT);
            if let Ok(h) = help
                && !h.stdout.contains("--append-system-prompt")
            {
                r.warn("claude --help does not list --append-system-prompt: the dispatch protocol and agents' instructions will be refused")?;
                r.more("Update claude (npm install -g @anthropic-ai/claude-code), or set settings.dispatch_protocol: false")?;
            }
        }
    }
    Ok(())
}
