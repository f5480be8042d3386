//! The command line. (Only the job commands live in this branch; the other subcommands and the
//! top-level dispatch are added alongside.)

pub mod jobs_cmd;
