//! The application core: everything a dispatch needs that is neither MCP nor the terminal.
//! `App` owns the state one process shares between calls — the concurrency limiter, the result
//! cache, the job store, the config snapshot, the stop flag and the async job threads — and the
//! `RunEnv` its children inherit. The dispatch pipeline (`pipeline`), the fan-out with an
//! aggregator (`fanout`), the two-agent dialogue (`dialogue`) and background jobs (`background`)
//! run on it. Adapters (`mcp`, `cli`) turn their input into an `Ask` and a `Target`, call in, and
//! render the typed results and `app::Error`s they get back.

pub mod background;
pub mod dialogue;
mod error;
pub mod fanout;
pub mod pipeline;
mod snapshot;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub use error::Error;
pub use pipeline::{Dispatch, Kind, Observer, Ran, Reply, Target};

use crate::ask::Ask;
use crate::cache::Cache;
use crate::cancel::Cancel;
use crate::config::{self, Config};
use crate::gate::MachineGate;
use crate::jobs::JobStore;
use crate::journal::{self, Journal};
use crate::limiter::Limiter;
use crate::log;
use crate::pyfmt;
use crate::runenv::RunEnv;

/// State shared by every call of one process.
pub struct App {
    config_path: PathBuf,
    /// The one concurrency gate for every child this process starts.
    limiter: Limiter,
    /// The cap on live children shared with every process of the same config directory
    /// (`settings.machine_max_concurrency`); a child's permit carries one of its slots.
    gate: MachineGate,
    cache: Mutex<Cache>,
    snapshot: snapshot::Snapshot,
    /// Tripped at shutdown so queued work gives up instead of starting children.
    stopping: Cancel,
    /// The job store, opened on first successful use; its directory is fixed from then on
    /// (SPEC §8.1). A failed open is retried on the next call, so fixing the permissions works
    /// without a restart.
    jobs: Mutex<Option<JobStore>>,
    /// Async job threads still running in this process.
    job_threads: Arc<AtomicUsize>,
    /// How often a silent run sends a keep-alive to an observer that wants them
    /// (`AGENT_DISPATCH_HEARTBEAT_SECS`, default 15).
    heartbeat: Duration,
    run_env: RunEnv,
    /// The usage journal every dispatch is recorded in (`settings.usage_log` decides per run).
    journal: Journal,
}

impl App {
    /// An application over `config_path` whose children inherit `run_env`. Reads the config
    /// once for the start-up settings (limiter size, machine gate, cache shape); a broken file
    /// is reported by the first call that needs it, not here.
    pub fn new(config_path: PathBuf, mut run_env: RunEnv) -> App {
        if run_env.ssh_control_dir.is_none() {
            run_env.ssh_control_dir = Some(crate::remote::control_dir(&config_path));
        }
        let app = App {
            limiter: Limiter::new(1),
            gate: MachineGate::new(crate::gate::gate_dir(&config_path), 0),
            cache: Mutex::new(Cache::new(0, 0)),
            snapshot: snapshot::Snapshot::default(),
            stopping: Cancel::new(),
            jobs: Mutex::new(None),
            job_threads: Arc::new(AtomicUsize::new(0)),
            heartbeat: heartbeat_interval(),
            run_env,
            journal: Journal::for_config(&config_path, true),
            config_path,
        };
        let settings = app.config().map(|c| c.settings.clone()).unwrap_or_default();
        app.apply_settings(&settings);
        app
    }

    /// A long-lived server's application: `new`, then fail the jobs whose owning process died
    /// (nobody holds their lock) and apply `settings.job_retention_days`. A broken jobs
    /// directory or config is logged, never fatal.
    pub fn start(config_path: PathBuf, run_env: RunEnv) -> App {
        let app = App::new(config_path, run_env);
        let days = app.config().map(|c| c.settings.job_retention_days);
        app.tidy_jobs(days.unwrap_or_default());
        app
    }

    fn tidy_jobs(&self, days: u64) {
        let store = match self.jobs() {
            Ok(s) => s,
            Err(e) => return log::warn(&format!("jobs directory unusable: {}", e.message)),
        };
        match store.recover_abandoned() {
            Ok(0) => {}
            Ok(n) => log::info(&format!("Marked {n} abandoned job(s) as failed")),
            Err(e) => log::warn(&format!("job recovery failed: {e}")),
        }
        if days > 0 {
            match store.purge_older_than_days(days) {
                Ok(n) if n > 0 => log::info(&format!(
                    "Purged {n} terminal job(s) older than {days} day(s)"
                )),
                Ok(_) => {}
                Err(e) => log::warn(&format!("job retention purge failed: {e}")),
            }
        }
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn run_env(&self) -> &RunEnv {
        &self.run_env
    }

    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    pub fn gate(&self) -> &MachineGate {
        &self.gate
    }

    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// Records one dispatch in the usage journal, unless `settings.usage_log` is off. Never
    /// fails the dispatch.
    pub fn record(&self, settings: &config::Settings, entry: &journal::Entry) {
        if settings.usage_log {
            self.journal.record(entry);
        }
    }

    /// `agents.yaml` as written (SPEC §3.2: every call sees the latest file), parsed again only
    /// when it changed; live settings are applied when it did.
    pub fn config(&self) -> Result<Arc<Config>, Error> {
        self.load_config().map_err(|e| {
            Error::new(e.to_string()).with_hint(format!(
                "Fix the file (or move it aside and run `agent-dispatch init`); `agent-dispatch doctor` \
                 shows the problem. Path: {}",
                self.config_path.display()
            ))
        })
    }

    /// [`App::config`] with the loader's own error, for a caller that words it itself (the CLI).
    pub fn load_config(&self) -> Result<Arc<Config>, config::Error> {
        let loaded = self.snapshot.get(&self.config_path)?;
        if loaded.changed {
            self.apply_settings(&loaded.config.settings);
        }
        Ok(loaded.config)
    }

    fn apply_settings(&self, settings: &config::Settings) {
        self.limiter.set_capacity(settings.max_concurrency);
        // A process inside a dispatched agent (depth ≥ 1) passes the gate: its ancestor's child
        // holds a slot for the whole tree, and N agents that each dispatch once more would
        // otherwise wait forever for slots they hold themselves.
        let nested = self.run_env.depth.as_ref().is_ok_and(|d| *d > 0);
        self.gate.set_capacity(if nested {
            0
        } else {
            settings.machine_max_concurrency
        });
        self.cache()
            .configure(settings.cache.ttl, settings.cache.max_size);
    }

    /// The agent called `name`, ready to run: its directory resolved, a per-call
    /// `timeout_seconds` override applied (SPEC §7.3: `<= 0` keeps the agent's own, otherwise
    /// clamped to [10, 7200]). Only this agent is resolved, whatever the size of the roster.
    pub fn target(
        &self,
        config: &Config,
        name: &str,
        timeout_seconds: i64,
    ) -> Result<Target, Error> {
        let Some(agent) = config.agent(name) else {
            return Err(unknown_agent(config, name));
        };
        let mut agent = agent.clone();
        // A remote agent's directory is a path on its host, resolved there (`~` included).
        if agent.remote_host().is_none() {
            agent.directory = config::resolve_path(&agent.directory);
        }
        let configured = agent.clone();
        if timeout_seconds > 0 {
            agent.timeout = timeout_seconds.clamp(10, 7200) as u64;
        }
        Ok(Target {
            name: name.to_string(),
            configured,
            agent,
            settings: config.settings.clone(),
        })
    }

    pub fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The job store (`AGENT_DISPATCH_JOBS_DIR`, else `jobs/` next to the config).
    pub fn jobs(&self) -> Result<JobStore, Error> {
        let mut slot = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(store) = slot.as_ref() {
            return Ok(store.clone());
        }
        let store = JobStore::open(&config::jobs_dir(&self.config_path)).map_err(|e| {
            Error::new(e.to_string()).with_hint(
                "Set AGENT_DISPATCH_JOBS_DIR to a writable directory, or fix the permissions.",
            )
        })?;
        *slot = Some(store.clone());
        Ok(store)
    }

    /// Runs an async job on a thread of its own, counted so shutdown can wait for it.
    fn spawn_job(&self, id: &str, work: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let counter = Arc::clone(&self.job_threads);
        counter.fetch_add(1, Ordering::SeqCst);
        let spawned = std::thread::Builder::new()
            .name(format!("job-{}", &id[..8.min(id.len())]))
            .spawn(move || {
                // Detached: the job store's ownership lock, not a JoinHandle, tracks its life.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
                counter.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            self.job_threads.fetch_sub(1, Ordering::SeqCst);
        }
        spawned.map(|_| ())
    }

    /// Called when the process stops: nothing new may start, and async jobs stop their children.
    pub fn shutdown(&self) {
        self.stopping.trip();
    }

    /// True while async job threads of this process are still winding down.
    pub fn busy(&self) -> bool {
        self.job_threads.load(Ordering::SeqCst) > 0
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.is_tripped()
    }

    pub fn stopping(&self) -> &Cancel {
        &self.stopping
    }
}

fn heartbeat_interval() -> Duration {
    crate::env::secs(
        "AGENT_DISPATCH_HEARTBEAT_SECS",
        Duration::from_secs(15),
        Duration::from_secs(3600),
    )
}

/// Dispatches `ask` to `agent` as a member of `group` (0.16.0): the agent must be a member
/// (checked before anything runs) and the group's `shared_context` leads the call's context.
pub fn join_group(config: &Config, group: &str, agent: &str, ask: &mut Ask) -> Result<(), Error> {
    let found = config
        .group_for_dispatch(group, agent)
        .map_err(Error::new)?;
    let merged = found.merge_context(group, ask.context.as_deref().unwrap_or(""));
    ask.context = Some(merged).filter(|c| !c.is_empty());
    Ok(())
}

/// The SPEC §7.3 unknown-agent error.
pub fn unknown_agent(config: &Config, name: &str) -> Error {
    let available: Vec<&str> = config.agents.names().collect();
    let list = if available.is_empty() {
        "(none configured)".to_string()
    } else {
        available.join(", ")
    };
    Error::new(format!(
        "Unknown agent: {}. Available: {list}",
        pyfmt::repr(name)
    ))
}
