//! The tool table: every tool's name, title, description, parameters and annotations, and the
//! instructions sent at `initialize`. Data only; `mod.rs` turns it into `tools/list` and reads
//! arguments through it.

use super::{Annotations, Kind, Param, Tool, async_jobs, dispatch, manage, p};

const DISPATCHES: Annotations = Annotations {
    read_only: false,
    destructive: true,
    idempotent: false,
    open_world: true,
};
const READS: Annotations = Annotations {
    read_only: true,
    destructive: false,
    idempotent: true,
    open_world: false,
};

const AGENT: Param = p(
    "agent",
    Kind::ReqStr,
    "Name of a configured agent (see list_agents)",
);
const TASK: Param = p(
    "task",
    Kind::ReqStr,
    "What the agent should do, in plain language",
);
const CONTEXT: Param = p(
    "context",
    Kind::Str(""),
    "Background the agent needs (facts, snippets, constraints)",
);
const CALLER: Param = p(
    "caller",
    Kind::Str(""),
    "Who is asking (your project or agent name); shown to the agent",
);
const GOAL: Param = p(
    "goal",
    Kind::Str(""),
    "The larger goal this task serves; shown to the agent",
);
const RESPONSE_FORMAT: Param = p(
    "response_format",
    Kind::Str(""),
    "\"json\" asks the agent for a single JSON value and adds it as parsed_result",
);
const GROUP: Param = p(
    "group",
    Kind::Str(""),
    "Dispatch as a member of this group (see list_groups): the agent must belong to it, and \
     the group's shared_context is put ahead of context",
);
const TIMEOUT_SECONDS: Param = p(
    "timeout_seconds",
    Kind::Int(0),
    "One-off timeout in seconds, clamped to [10, 7200]; 0 keeps the agent's own",
);
const RETURN_REF: Param = p(
    "return_ref",
    Kind::Bool(false),
    "Store the full result and return only a summary and a ref for fetch_result",
);
const JOB_ID: Param = p(
    "job_id",
    Kind::ReqStr,
    "The job id returned by dispatch_async (32 lowercase hex characters)",
);
const SUMMARY_CHARS: Param = p(
    "summary_chars",
    Kind::Int(500),
    "With return_ref: characters of the result to inline, [0, 100000]",
);

pub static TOOLS: &[Tool] = &[
    Tool {
        name: "list_agents",
        title: "List agents",
        description: "List the configured agents with their directories, descriptions, health, MCP servers, \
                      stacks, databases and tool permissions. Cheap: no subprocess.",
        params: &[],
        annotations: READS,
        call: manage::list_agents,
    },
    Tool {
        name: "inspect_agent",
        title: "Inspect an agent",
        description: "Look at one agent's project without running it: configuration, MCP servers, stacks, \
                      databases and previews of CLAUDE.md and README.md.",
        params: &[
            p("name", Kind::ReqStr, "Agent name"),
            p(
                "preview_lines",
                Kind::Int(40),
                "Lines of CLAUDE.md/README.md to preview, [0, 200]; 0 omits previews",
            ),
        ],
        annotations: READS,
        call: manage::inspect_agent,
    },
    Tool {
        name: "list_groups",
        title: "List groups",
        description: "The configured groups of agents (cross-project working sets): description, whether \
                      there is shared context, and each member with its use_for hint and health; members \
                      whose agent was removed are flagged unknown. Cheap: no subprocess.",
        params: &[],
        annotations: READS,
        call: manage::list_groups,
    },
    Tool {
        name: "inspect_group",
        title: "Inspect a group",
        description: "One group: its orchestration brief (description), the shared_context every dispatch \
                      with group= receives, and its members with their use_for hints, directories and health.",
        params: &[p("name", Kind::ReqStr, "Group name (see list_groups)")],
        annotations: READS,
        call: manage::inspect_group,
    },
    Tool {
        name: "dispatch",
        title: "Dispatch a task",
        description: "Run a one-shot task in an agent's project (a `claude -p` session in its directory, with \
                      its CLAUDE.md, MCP servers and tools) and return the result. Identical successful \
                      requests are served from a short-lived cache.",
        params: &[
            AGENT,
            TASK,
            CONTEXT,
            CALLER,
            GOAL,
            RESPONSE_FORMAT,
            RETURN_REF,
            SUMMARY_CHARS,
            TIMEOUT_SECONDS,
            GROUP,
        ],
        annotations: DISPATCHES,
        call: dispatch::dispatch,
    },
    Tool {
        name: "dispatch_session",
        title: "Dispatch in a session",
        description: "Multi-turn work with one agent: omit session_id to start a session, pass the returned \
                      session_id to continue it. Also resumes a timed-out dispatch (task: \"Continue where \
                      you left off\"). Never cached.",
        params: &[
            AGENT,
            TASK,
            p(
                "session_id",
                Kind::Str(""),
                "Session to resume; empty starts a new one",
            ),
            CONTEXT,
            CALLER,
            GOAL,
            RESPONSE_FORMAT,
            TIMEOUT_SECONDS,
            GROUP,
        ],
        annotations: DISPATCHES,
        call: dispatch::dispatch_session,
    },
    Tool {
        name: "dispatch_parallel",
        title: "Dispatch in parallel",
        description: "Run several dispatches at once. `dispatches` is a JSON array string of objects with \
                      agent and task (and optionally context, caller, goal, response_format, return_ref, \
                      summary_chars, timeout_seconds, group). Everything is validated before anything runs. With \
                      `aggregate`, that agent synthesises the results into one answer.",
        params: &[
            p(
                "dispatches",
                Kind::ReqStr,
                "JSON array of {agent, task, ...} objects",
            ),
            p(
                "aggregate",
                Kind::Str(""),
                "Agent that synthesises all results into one answer",
            ),
        ],
        annotations: DISPATCHES,
        call: dispatch::dispatch_parallel,
    },
    Tool {
        name: "dispatch_stream",
        title: "Dispatch with live progress",
        description: "Like dispatch, but streams the agent's progress (its messages and tool calls) as log and \
                      progress notifications while it works. Never cached.",
        params: &[
            AGENT,
            TASK,
            CONTEXT,
            CALLER,
            GOAL,
            RESPONSE_FORMAT,
            TIMEOUT_SECONDS,
            GROUP,
        ],
        annotations: DISPATCHES,
        call: dispatch::dispatch_stream,
    },
    Tool {
        name: "dispatch_dialogue",
        title: "Two-agent dialogue",
        description: "Let two agents talk until the responder (the expert) and the requester (the one with the \
                      problem) resolve the topic, marked by [RESOLVED], or max_rounds runs out.",
        params: &[
            p("requester", Kind::ReqStr, "Agent with the problem"),
            p(
                "responder",
                Kind::ReqStr,
                "Agent with the expertise; speaks first",
            ),
            p("topic", Kind::ReqStr, "What they should work out"),
            p(
                "max_rounds",
                Kind::Int(3),
                "Rounds of responder + requester turns, [1, 10]",
            ),
        ],
        annotations: DISPATCHES,
        call: dispatch::dispatch_dialogue,
    },
    Tool {
        name: "add_agent",
        title: "Add an agent",
        description: "Register a project directory as an agent. Without a description one is generated from \
                      CLAUDE.md, README.md, pyproject.toml, package.json and the detected stack. With host, \
                      the directory is on that machine: checked and described over ssh, and dispatches run \
                      there.",
        params: &[
            p(
                "name",
                Kind::ReqStr,
                "Letters, digits, '-' and '_', starting with a letter or digit",
            ),
            p(
                "directory",
                Kind::ReqStr,
                "Project directory (~ is expanded)",
            ),
            p(
                "description",
                Kind::Str(""),
                "What the agent knows; empty generates one",
            ),
            p("timeout", Kind::Int(0), "Timeout in seconds; 0 means 300"),
            p(
                "max_budget_usd",
                Kind::Num(0.0),
                "Spending cap per dispatch in USD; 0 means none",
            ),
            p(
                "permission_mode",
                Kind::Str(""),
                "acceptEdits, auto, bypassPermissions, default, dontAsk, manual or plan",
            ),
            p(
                "allowed_tools",
                Kind::Str(""),
                "Comma-separated tools the agent may use (e.g. Read,Grep,Bash(git *))",
            ),
            p(
                "disallowed_tools",
                Kind::Str(""),
                "Comma-separated tools the agent may not use",
            ),
            p(
                "backend",
                Kind::Str(""),
                "The coding CLI that runs it: claude, codex or gemini; empty = claude",
            ),
            p(
                "host",
                Kind::Str(""),
                "ssh destination the project lives on (box, user@box, ssh://user@box:2222); directory is then a path there. Empty: this machine",
            ),
        ],
        annotations: Annotations {
            read_only: false,
            destructive: false,
            idempotent: false,
            open_world: false,
        },
        call: manage::add_agent,
    },
    Tool {
        name: "remove_agent",
        title: "Remove an agent",
        description: "Remove an agent from the configuration (its directory is not touched).",
        params: &[p("name", Kind::ReqStr, "Agent name")],
        annotations: Annotations {
            read_only: false,
            destructive: true,
            idempotent: true,
            open_world: false,
        },
        call: manage::remove_agent,
    },
    Tool {
        name: "update_agent",
        title: "Update an agent",
        description: "Change an agent's settings. Only non-empty arguments act; \"none\" clears model, \
                      permission_mode and the tool lists (which then inherit the defaults) and host (the \
                      agent runs here again); a negative max_budget_usd clears the budget.",
        params: &[
            p("name", Kind::ReqStr, "Agent name"),
            p("description", Kind::Str(""), "New description"),
            p(
                "timeout",
                Kind::Int(0),
                "New timeout in seconds; 0 leaves it",
            ),
            p(
                "max_budget_usd",
                Kind::Num(0.0),
                "New budget in USD; negative clears; 0 leaves it",
            ),
            p("model", Kind::Str(""), "Model name; \"none\" clears"),
            p(
                "permission_mode",
                Kind::Str(""),
                "acceptEdits, auto, bypassPermissions, default, dontAsk, manual or plan; \"none\" clears",
            ),
            p(
                "allowed_tools",
                Kind::Str(""),
                "Comma-separated tools; \"none\" clears",
            ),
            p(
                "disallowed_tools",
                Kind::Str(""),
                "Comma-separated tools; \"none\" clears",
            ),
            p(
                "backend",
                Kind::Str(""),
                "claude, codex or gemini; empty leaves it",
            ),
            p(
                "host",
                Kind::Str(""),
                "ssh destination it runs on; \"none\" makes it local; empty leaves it",
            ),
        ],
        annotations: Annotations {
            read_only: false,
            destructive: true,
            idempotent: true,
            open_world: false,
        },
        call: manage::update_agent,
    },
    Tool {
        name: "dispatch_async",
        title: "Start a background dispatch",
        description: "Start a dispatch in the background and return a job_id at once. Poll with \
                      dispatch_status, block with dispatch_wait, stop with dispatch_cancel. The job \
                      survives in the job store and shows live progress while it runs.",
        params: &[
            AGENT,
            TASK,
            CONTEXT,
            CALLER,
            GOAL,
            RESPONSE_FORMAT,
            TIMEOUT_SECONDS,
            GROUP,
        ],
        annotations: DISPATCHES,
        call: async_jobs::dispatch_async,
    },
    Tool {
        name: "dispatch_status",
        title: "Job status",
        description: "The full record of a job: status, timestamps, the last 20 progress lines and, once \
                      finished, the result.",
        params: &[JOB_ID],
        annotations: READS,
        call: async_jobs::dispatch_status,
    },
    Tool {
        name: "dispatch_wait",
        title: "Wait for a job",
        description: "Block until a job finishes or timeout_seconds pass, then return its record \
                      (with timed_out_waiting: true if it is still running; the job keeps going).",
        params: &[
            JOB_ID,
            p(
                "timeout_seconds",
                Kind::Int(60),
                "How long to wait, clamped to [1, 3600]",
            ),
        ],
        annotations: READS,
        call: async_jobs::dispatch_wait,
    },
    Tool {
        name: "dispatch_cancel",
        title: "Cancel a job",
        description: "Cancel a pending or running job. A running job is marked cancelled first, then its \
                      claude process group is killed (by whichever server process runs it). outcome is \
                      cancelled, cancelled_running, already_terminal.",
        params: &[JOB_ID],
        annotations: Annotations {
            read_only: false,
            destructive: true,
            idempotent: true,
            open_world: false,
        },
        call: async_jobs::dispatch_cancel,
    },
    Tool {
        name: "dispatch_jobs",
        title: "List jobs",
        description: "Recent jobs and stored results, newest first, with status, task, cost, error_type and \
                      the latest progress line of running jobs.",
        params: &[
            p(
                "status",
                Kind::Str(""),
                "Only this status: pending, running, done, failed, cancelled; empty = all",
            ),
            p("limit", Kind::Int(50), "At most this many, [1, 1000]"),
            p(
                "agent",
                Kind::Str(""),
                "Only jobs of this agent (exact name, removed agents included); empty = all",
            ),
        ],
        annotations: READS,
        call: async_jobs::dispatch_jobs,
    },
    Tool {
        name: "fetch_result",
        title: "Fetch a stored result",
        description: "The full result behind a ref (from return_ref) or an async job_id; max_chars > 0 cuts \
                      the text and reports truncated and full_size.",
        params: &[
            p(
                "ref",
                Kind::ReqStr,
                "The ref or job_id (32 lowercase hex characters)",
            ),
            p(
                "max_chars",
                Kind::Int(0),
                "Return at most this many characters of result; 0 = all",
            ),
        ],
        annotations: READS,
        call: async_jobs::fetch_result,
    },
    Tool {
        name: "dispatch_gc",
        title: "Purge old jobs",
        description: "Delete finished jobs (done, failed, cancelled) older than max_age_days. Pending and \
                      running jobs are never deleted.",
        params: &[
            p(
                "max_age_days",
                Kind::Num(7.0),
                "Age threshold in days; must be > 0",
            ),
            p(
                "dry_run",
                Kind::Bool(false),
                "Only report which jobs would be deleted; delete nothing",
            ),
        ],
        annotations: Annotations {
            read_only: false,
            destructive: true,
            idempotent: true,
            open_world: false,
        },
        call: async_jobs::dispatch_gc,
    },
    Tool {
        name: "cache_stats",
        title: "Cache statistics",
        description: "Size, hits, misses, evictions, hit rate and TTL of the dispatch result cache.",
        params: &[],
        annotations: READS,
        call: manage::cache_stats,
    },
    Tool {
        name: "cache_clear",
        title: "Clear the cache",
        description: "Drop every cached dispatch result and reset the counters.",
        params: &[],
        annotations: Annotations {
            read_only: false,
            destructive: true,
            idempotent: true,
            open_world: false,
        },
        call: manage::cache_clear,
    },
];

/// Sent in the `initialize` result: how a calling model should use this server.
pub const INSTRUCTIONS: &str = "\
agent-dispatch delegates tasks to coding agents (Claude Code, Codex or Gemini CLI) that live in other \
project directories. Each agent runs with its own CLAUDE.md, MCP servers and tools, so dispatch when a \
task needs another project's files, tools or knowledge; do the work yourself when it does not.

How to use it:
1. list_agents to see who is available (cheap, no subprocess).
2. inspect_agent for a closer look at one project without running it.
3. dispatch for one-shot work (identical successful requests are cached briefly).
4. dispatch_session for multi-turn work: pass back the session_id it returns.
5. dispatch_parallel to ask several agents at once; aggregate= lets one agent merge the answers.
6. dispatch_stream to watch progress live on long tasks.
7. dispatch_dialogue to let two agents work a problem out between them.
8. list_groups / inspect_group for working sets of agents; group= on a dispatch gives the agent \
the group's shared facts.
Always pass caller (who you are) and goal (why you ask): the agent sees both.

OUTCOMES: agents end with a STATUS line that becomes outcome (done, partial, blocked). partial and \
blocked carry a hint with the dispatch_session call that continues; usage_limit means the account's \
limit: another agent will not help, wait for the reset.

TIMEOUTS: pass timeout_seconds for long tasks. A timed-out dispatch returns a session_id; resume it \
with dispatch_session(agent, task=\"Continue where you left off\", session_id=...).

PERMISSIONS: denied_tools plus a hint in a result mean the answer may be incomplete. Grant the tools \
with update_agent(name, allowed_tools=...) or permission_mode=\"bypassPermissions\" for trusted \
projects, then retry.

ASYNC: dispatch_async starts a job and returns a job_id at once; dispatch_status shows its \
progress, dispatch_wait blocks until it finishes, dispatch_cancel stops it (pending or running), \
dispatch_jobs lists recent jobs, dispatch_gc purges old ones.

SAVING CONTEXT: pass return_ref=true to dispatch or to dispatch_parallel items to get a short \
summary plus a ref instead of a long result; fetch_result(ref) returns the full text when needed.

MANAGING AGENTS: add_agent, update_agent, remove_agent; cache_stats and cache_clear for the result \
cache.";
