//! The command line. Each subcommand owns its parser, help text and body in its own file.

pub mod test_cmd;
