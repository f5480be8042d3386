//! `group add|list|inspect|update|remove` (0.16.0 groups): named working sets of agents. Every
//! change is one locked read-modify-write through `config::mutate`, so keys this version does
//! not know survive and a file that fails to load is never written. Views flag a member whose
//! agent is gone instead of failing.

use std::io;

use lexopt::prelude::*;

use super::{Color, Command, CommandSpec, EXIT_ERROR, EXIT_OK, Io, help};
use crate::config::{self, Config, Group, GroupMember, MutateError};

pub const SPEC: CommandSpec = CommandSpec {
    name: "group",
    summary: "Manage groups of agents (add, list, inspect, update, remove)",
    help: HELP,
    parse,
};

const HELP: &str = "\
Usage: agent-dispatch group [OPTIONS] COMMAND [ARGS]...

  A group bundles agents that work together across projects (code repos plus gateways such as
  an infra or analytics agent). Its description tells the calling session how to coordinate
  them and is never sent to a member; its shared context is facts every member gets when a
  dispatch names the group; each member may carry a use_for hint.

Commands:
  add      Create a group from existing agents
  list     List groups, flagging members whose agent is gone
  inspect  Show one group in full
  update   Change a group's texts or members
  remove   Delete a group (its agents are not touched)

Options:
  -h, --help  Show this message and exit.

Run 'agent-dispatch group COMMAND --help' for the options of a command.
";

const ADD_HELP: &str = "\
Usage: agent-dispatch group add [OPTIONS] NAME

  Create group NAME (letters, digits, '-' and '_', starting with a letter or digit). Every
  member must be a configured agent.

Options:
  -d, --description TEXT          For the caller: how to coordinate the group (not sent to members)
  --shared-context TEXT           For members: facts prepended to dispatches made with the group
  --member AGENT[:USE_FOR]        A member and, after ':', when to use it (repeatable)
  -h, --help                      Show this message and exit.
";

const LIST_HELP: &str = "\
Usage: agent-dispatch group list [OPTIONS]

  List every group with its description, members and whether it has shared context. A member
  whose agent is not configured is marked (unknown).

Options:
  -h, --help  Show this message and exit.
";

const INSPECT_HELP: &str = "\
Usage: agent-dispatch group inspect [OPTIONS] NAME

  Show group NAME: description, the full shared context, and each member with its hint.

Options:
  -h, --help  Show this message and exit.
";

const UPDATE_HELP: &str = "\
Usage: agent-dispatch group update [OPTIONS] NAME

  Change group NAME; everything not given stays as it is. Texts are stored as given ('' clears
  one). --member adds a member, or replaces the hint of one already there; --remove-member drops
  one, including a member whose agent is gone.

Options:
  -d, --description TEXT          New description
  --shared-context TEXT           New shared context
  --member AGENT[:USE_FOR]        Add a member or change its hint (repeatable)
  --remove-member AGENT           Drop a member (repeatable)
  -h, --help                      Show this message and exit.
";

const REMOVE_HELP: &str = "\
Usage: agent-dispatch group remove [OPTIONS] NAME

  Delete group NAME. Its agents stay configured.

Options:
  -h, --help  Show this message and exit.
";

#[derive(Debug, Default, PartialEq)]
pub struct GroupEdit {
    pub name: String,
    pub description: Option<String>,
    pub shared_context: Option<String>,
    pub members: Vec<GroupMember>,
    pub remove_members: Vec<String>,
}

#[derive(Debug, PartialEq)]
pub enum GroupCommand {
    Add(GroupEdit),
    List,
    Inspect(String),
    Update(GroupEdit),
    Remove(String),
}

fn parse(p: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
    let sub = match p.next()? {
        None => return Err("Missing command (add, list, inspect, update or remove).".into()),
        Some(Short('h') | Long("help")) => return Ok(help(&SPEC)),
        Some(Value(v)) => v.string()?,
        Some(other) => return Err(other.unexpected()),
    };
    // (takes NAME, help, options it accepts)
    let (takes_name, sub_help, allowed): (bool, &str, &[&str]) = match sub.as_str() {
        "add" => (true, ADD_HELP, &["-d", "--shared-context", "--member"]),
        "update" => (
            true,
            UPDATE_HELP,
            &["-d", "--shared-context", "--member", "--remove-member"],
        ),
        "list" => (false, LIST_HELP, &[]),
        "inspect" => (true, INSPECT_HELP, &[]),
        "remove" => (true, REMOVE_HELP, &[]),
        other => return Err(format!("No such group command '{other}'.").into()),
    };
    let mut e = GroupEdit::default();
    let mut name = None;
    while let Some(arg) = p.next()? {
        let key = match arg {
            Short('h') | Long("help") => return Ok(Command::Help(sub_help.to_string())),
            Value(v) if takes_name && name.is_none() => {
                name = Some(v.string()?);
                continue;
            }
            Short('d') | Long("description") => "-d",
            Long("shared-context") => "--shared-context",
            Long("member") => "--member",
            Long("remove-member") => "--remove-member",
            other => return Err(other.unexpected()),
        };
        if !allowed.contains(&key) {
            return Err(lexopt::Error::UnexpectedOption(key.to_string()));
        }
        let value = p.value()?.string()?;
        match key {
            "-d" => e.description = Some(value),
            "--shared-context" => e.shared_context = Some(value),
            "--member" => e.members.push(
                config::parse_member_spec(&value)
                    .map_err(|m| lexopt::Error::from(format!("--member {value:?}: {m}")))?,
            ),
            _ => e.remove_members.push(value.trim().to_string()),
        }
    }
    if takes_name && name.is_none() {
        return Err("Missing argument 'NAME'.".into());
    }
    e.name = name.unwrap_or_default();
    Ok(Command::Group(match sub.as_str() {
        "add" => GroupCommand::Add(e),
        "update" => GroupCommand::Update(e),
        "list" => GroupCommand::List,
        "inspect" => GroupCommand::Inspect(e.name),
        _ => GroupCommand::Remove(e.name),
    }))
}

pub fn run(io: &mut Io, cmd: GroupCommand) -> io::Result<u8> {
    match cmd {
        GroupCommand::Add(e) => run_add(io, e),
        GroupCommand::List => run_list(io),
        GroupCommand::Inspect(name) => run_inspect(io, &name),
        GroupCommand::Update(e) => run_update(io, e),
        GroupCommand::Remove(name) => run_remove(io, &name),
    }
}

fn group_not_found(name: &str) -> String {
    format!("Group '{name}' not found. Run 'agent-dispatch group list' to see groups.")
}

/// Prints why a mutation failed; always exit 1.
fn report(io: &mut Io, e: &MutateError) -> io::Result<u8> {
    match e {
        MutateError::Load(load) => super::print_config_error(io, load),
        MutateError::Rejected(msg) => {
            io.error(&format!("Error: {msg}"))?;
            Ok(EXIT_ERROR)
        }
        other => {
            io.error(&format!("Error: {other}"))?;
            Ok(EXIT_ERROR)
        }
    }
}

/// Members must be configured agents, each named once.
fn check_new_members(c: &Config, members: &[GroupMember]) -> Result<(), String> {
    for (i, m) in members.iter().enumerate() {
        if !c.agents.contains(&m.agent) {
            return Err(format!(
                "agent '{}' not found. Add it first ('agent-dispatch add') or check the name.",
                m.agent
            ));
        }
        if members[..i].iter().any(|o| o.agent == m.agent) {
            return Err(format!("agent '{}' is given twice.", m.agent));
        }
    }
    Ok(())
}

fn run_add(io: &mut Io, e: GroupEdit) -> io::Result<u8> {
    if let Err(msg) = config::validate_agent_name(&e.name) {
        io.error(&format!(
            "Error: {}",
            msg.replacen("agent name", "group name", 1)
        ))?;
        return Ok(EXIT_ERROR);
    }
    let name = e.name.clone();
    let outcome = config::mutate(&config::config_path(), |c| {
        if c.groups.contains(&name) {
            return Err(format!(
                "Group '{name}' already exists. Change it with 'agent-dispatch group update {name}'."
            ));
        }
        check_new_members(c, &e.members)?;
        c.groups.insert(
            name.clone(),
            Group {
                description: e.description.clone().unwrap_or_default(),
                shared_context: e.shared_context.clone().unwrap_or_default(),
                members: e.members.clone(),
            },
        );
        Ok(())
    });
    if let Err(err) = outcome {
        return report(io, &err);
    }
    let n = e.members.len();
    io.say_in(
        Color::Green,
        &format!("Added group '{name}' ({n} member(s))."),
    )?;
    if n == 0 {
        io.warn(&format!(
            "Warning: group has no members yet. Add some: \
             agent-dispatch group update {name} --member AGENT[:use_for]"
        ))?;
    }
    Ok(EXIT_OK)
}

fn run_update(io: &mut Io, e: GroupEdit) -> io::Result<u8> {
    let name = e.name.clone();
    let outcome = config::mutate(&config::config_path(), |c| {
        let Some(group) = c.groups.get(&name) else {
            return Err(group_not_found(&name));
        };
        if e.description.is_none()
            && e.shared_context.is_none()
            && e.members.is_empty()
            && e.remove_members.is_empty()
        {
            return Err(
                "Nothing to update. Pass --description, --shared-context, --member or \
                        --remove-member (see --help)."
                    .to_string(),
            );
        }
        for gone in &e.remove_members {
            if !group.has_member(gone) || e.members.iter().any(|m| &m.agent == gone) {
                return Err(format!("'{gone}' is not a member of group '{name}'."));
            }
        }
        check_new_members(c, &e.members)?;
        let mut fields = Vec::new();
        let Some(group) = c.groups.get_mut(&name) else {
            return Err(group_not_found(&name));
        };
        if let Some(d) = &e.description {
            group.description = d.clone();
            fields.push("description");
        }
        if let Some(s) = &e.shared_context {
            group.shared_context = s.clone();
            fields.push("shared_context");
        }
        if !e.members.is_empty() || !e.remove_members.is_empty() {
            group
                .members
                .retain(|m| !e.remove_members.contains(&m.agent));
            for m in &e.members {
                match group.members.iter_mut().find(|o| o.agent == m.agent) {
                    Some(slot) => slot.use_for = m.use_for.clone(),
                    None => group.members.push(m.clone()),
                }
            }
            fields.push("members");
        }
        Ok(fields)
    });
    match outcome {
        Ok(fields) => {
            io.say_in(
                Color::Green,
                &format!("Updated group '{name}': {}", fields.join(", ")),
            )?;
            Ok(EXIT_OK)
        }
        Err(err) => report(io, &err),
    }
}

fn run_remove(io: &mut Io, name: &str) -> io::Result<u8> {
    let outcome = config::mutate(&config::config_path(), |c| {
        c.groups
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| group_not_found(name))
    });
    if let Err(err) = outcome {
        return report(io, &err);
    }
    io.say_in(Color::Green, &format!("Removed group '{name}'."))?;
    Ok(EXIT_OK)
}

fn load(io: &mut Io) -> io::Result<Result<Config, u8>> {
    match Config::load(&config::config_path()) {
        Ok(c) => Ok(Ok(c)),
        Err(e) => super::print_config_error(io, &e).map(Err),
    }
}

fn run_list(io: &mut Io) -> io::Result<u8> {
    let config = match load(io)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if config.groups.is_empty() {
        io.say("No groups configured. Run: agent-dispatch group add <name> --member <agent>")?;
        return Ok(EXIT_OK);
    }
    for (name, group) in config.groups.iter() {
        let bold = io.tint(Color::Bold, name);
        io.say(&format!("  {bold} ({} member(s))", group.members.len()))?;
        if !group.description.is_empty() {
            io.say(&format!("    desc: {}", group.description))?;
        }
        let dangling = group.dangling_members(&config);
        let members: Vec<String> = group
            .members
            .iter()
            .map(|m| {
                if dangling.contains(&m.agent) {
                    io.tint(Color::Red, &format!("{}(unknown)", m.agent))
                } else {
                    m.agent.clone()
                }
            })
            .collect();
        if !members.is_empty() {
            io.say(&format!("    members: {}", members.join(", ")))?;
        }
        let shared = if group.shared_context().is_some() {
            "yes"
        } else {
            "no"
        };
        io.say(&format!("    shared context: {shared}"))?;
        io.say("")?;
    }
    Ok(EXIT_OK)
}

fn run_inspect(io: &mut Io, name: &str) -> io::Result<u8> {
    let config = match load(io)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let Some(group) = config.group(name) else {
        io.error(&group_not_found(name))?;
        return Ok(EXIT_ERROR);
    };
    let bold = io.tint(Color::Bold, name);
    io.say(&bold)?;
    if !group.description.is_empty() {
        io.say(&format!("  description:    {}", group.description))?;
    }
    if !group.shared_context.is_empty() {
        io.say("  shared_context:")?;
        for line in group.shared_context.lines() {
            io.say(&format!("    {line}"))?;
        }
    }
    io.say(&format!("  members ({}):", group.members.len()))?;
    let dangling = group.dangling_members(&config);
    for m in &group.members {
        let marker = if dangling.contains(&m.agent) {
            io.tint(Color::Red, " (unknown)")
        } else {
            String::new()
        };
        let hint = if m.use_for.is_empty() {
            String::new()
        } else {
            format!(" \u{2014} {}", m.use_for)
        };
        io.say(&format!("    - {}{marker}{hint}", m.agent))?;
    }
    if group.members.is_empty() {
        io.warn(&format!(
            "    (no members \u{2014} add some: agent-dispatch group update {name} --member AGENT)"
        ))?;
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    fn p(args: &[&str]) -> Result<Command, lexopt::Error> {
        parse(&mut lexopt::Parser::from_args(
            args.iter().map(OsString::from),
        ))
    }

    fn member(agent: &str, use_for: &str) -> GroupMember {
        GroupMember {
            agent: agent.into(),
            use_for: use_for.into(),
        }
    }

    #[test]
    fn parses_every_subcommand() {
        assert_eq!(
            p(&[
                "add",
                "shop",
                "-d",
                "how",
                "--member",
                "web:css",
                "--member=api"
            ])
            .unwrap(),
            Command::Group(GroupCommand::Add(GroupEdit {
                name: "shop".into(),
                description: Some("how".into()),
                members: vec![member("web", "css"), member("api", "")],
                ..GroupEdit::default()
            }))
        );
        assert_eq!(
            p(&[
                "update",
                "shop",
                "--shared-context",
                "",
                "--remove-member",
                "web"
            ])
            .unwrap(),
            Command::Group(GroupCommand::Update(GroupEdit {
                name: "shop".into(),
                shared_context: Some(String::new()),
                remove_members: vec!["web".into()],
                ..GroupEdit::default()
            }))
        );
        assert_eq!(p(&["list"]).unwrap(), Command::Group(GroupCommand::List));
        assert_eq!(
            p(&["inspect", "g"]).unwrap(),
            Command::Group(GroupCommand::Inspect("g".into()))
        );
        assert_eq!(
            p(&["remove", "g"]).unwrap(),
            Command::Group(GroupCommand::Remove("g".into()))
        );
        assert_eq!(p(&["--help"]).unwrap(), Command::Help(HELP.into()));
        assert_eq!(
            p(&["update", "-h"]).unwrap(),
            Command::Help(UPDATE_HELP.into())
        );
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["frob"],
            &["add"],
            &["add", "g", "--remove-member", "x"],
            &["add", "g", "--member", "bad name"],
            &["add", "g", "--member"],
            &["list", "x"],
            &["list", "-d", "x"],
            &["inspect"],
            &["remove", "a", "b"],
            &["update", "g", "--frob", "1"],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }
}
