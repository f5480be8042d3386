//! How the job commands show a job to a person: the `job ID` text (fields, progress tail,
//! result preview), one-line task cuts for tables and local timestamps. `jobs_cmd` parses and
//! runs; this file only formats.

use crate::jobs::Job;

/// Characters of the result `job` prints.
const RESULT_PREVIEW_CHARS: usize = 2000;

/// The `job ID` text: fields, progress tail, result preview.
pub(super) fn render_job(job: &Job, owned: bool) -> String {
    let mut s = String::new();
    let mut field = |name: &str, value: &str| {
        s.push_str(&format!("  {:<11}{value}\n", format!("{name}:")));
    };
    field("status", job.status.as_str());
    field("agent", &job.agent);
    if let Some(c) = &job.caller {
        field("caller", c);
    }
    if let Some(g) = &job.goal {
        field("goal", g);
    }
    if let Some(r) = &job.response_format {
        field("format", r);
    }
    if let Some(t) = job.timeout {
        field("timeout", &format!("{t}s"));
    }
    field("created", &local_time(job.created_at));
    if let Some(t) = job.started_at {
        field("started", &local_time(t));
    }
    if let Some(t) = job.completed_at {
        field("completed", &local_time(t));
    }
    if !job.status.is_terminal() {
        let owner = match (owned, job.owner_pid) {
            (true, Some(pid)) => format!("server pid {pid} (alive)"),
            (true, None) => "a live server".to_string(),
            (false, _) => {
                // Readers fail an unowned job as soon as they see it, so this shows only when the
                // owner died between that check and this one.
                "nobody: the server that ran it has just exited (the next read marks it failed)"
                    .to_string()
            }
        };
        field("owner", &owner);
    }
    if let Some(e) = &job.error {
        field("error", e);
    }
    let mut s = format!("Job {}\n{s}", job.id);
    s.push_str("\nTask:\n");
    s.push_str(&indent(&job.task));
    if let Some(c) = &job.context {
        s.push_str("\nContext:\n");
        s.push_str(&indent(c));
    }
    if let Some(p) = job.progress.as_ref().filter(|p| !p.is_empty()) {
        s.push_str(&format!("\nProgress (last {} lines):\n", p.len()));
        for line in p {
            s.push_str(&indent(line));
        }
    }
    if let Some(r) = &job.result {
        let size = r.result.chars().count();
        let preview = crate::text::first_chars(&r.result, RESULT_PREVIEW_CHARS);
        s.push_str(&format!(
            "\nResult ({}, {size} characters):\n",
            if r.success { "success" } else { "failure" }
        ));
        s.push_str(&indent(preview));
        if size > RESULT_PREVIEW_CHARS {
            s.push_str(&format!(
                "  ... {} more characters (fetch_result with this id returns all of it)\n",
                size - RESULT_PREVIEW_CHARS
            ));
        }
    }
    s
}

fn indent(text: &str) -> String {
    let mut s = String::new();
    for line in text.lines() {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    if s.is_empty() {
        s.push_str("    \n");
    }
    s
}

/// The first line of `text`, cut to `n` characters with an ellipsis.
pub(super) fn one_line(text: &str, n: usize) -> String {
    let first = text.lines().next().unwrap_or("");
    let cut = crate::text::first_chars(first, n);
    if cut.len() < text.trim_end().len() {
        format!("{cut}…")
    } else {
        cut.to_string()
    }
}

/// Epoch seconds as local `YYYY-MM-DD HH:MM:SS`.
pub(super) fn local_time(epoch: f64) -> String {
    let secs = epoch as libc::time_t;
    // SAFETY: localtime_r only writes the `tm` we own; a zeroed `tm` is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return format!("{epoch:.0}");
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_and_indent() {
        assert_eq!(one_line("short", 10), "short");
        assert_eq!(one_line("éééé", 2), "éé…");
        assert_eq!(one_line("a\nb", 10), "a…");
        assert_eq!(indent("a\nb"), "    a\n    b\n");
    }
}
