//! Loading `agents.yaml`: document shapes, coercion, error kinds and locations.

mod parse {
    use super::super::*;

    #[test]
    fn empty_and_null_documents_are_defaults() {
        let p = Path::new("x.yaml");
        assert_eq!(Config::parse(p, b"").ok(), Some(Config::default()));
        assert_eq!(Config::parse(p, b"~\n").ok(), Some(Config::default()));
    }

    #[test]
    fn agents_keep_file_order_and_tri_state_tools() {
        let yaml = "agents:\n  zeta:\n    directory: /tmp\n    allowed_tools: []\n  alpha:\n    directory: /\n";
        let c = Config::parse(Path::new("x"), yaml.as_bytes()).unwrap_or_default();
        let names: Vec<&str> = c.agents.names().collect();
        assert_eq!(names, ["zeta", "alpha"]);
        assert_eq!(
            c.agent("zeta").and_then(|a| a.allowed_tools.clone()),
            Some(vec![])
        );
        assert_eq!(c.agent("alpha").and_then(|a| a.allowed_tools.clone()), None);
        assert_eq!(c.agent("alpha").map(|a| a.timeout), Some(300));
    }

    #[test]
    fn merge_keys_apply_like_pyyaml() {
        let yaml = "x-defaults: &d\n  timeout: 60\n  directory: /tmp\n  model: haiku\n\
                    x-more: &m\n  description: from m\n  timeout: 5\n\
                    agents:\n  a:\n    <<: *d\n    model: sonnet\n  b:\n    <<: [*m, *d]\n";
        let c = Config::parse(Path::new("x"), yaml.as_bytes()).unwrap();
        let a = c.agent("a").unwrap();
        assert_eq!(a.directory, Path::new("/tmp"));
        assert_eq!(a.timeout, 60);
        assert_eq!(a.model.as_deref(), Some("sonnet"), "explicit keys win");
        let b = c.agent("b").unwrap();
        assert_eq!(b.timeout, 5, "the first merged mapping wins");
        assert_eq!(b.description, "from m");
        assert_eq!(b.directory, Path::new("/tmp"));
        let names: Vec<&str> = c.agents.names().collect();
        assert_eq!(names, ["a", "b"]);
        // A merge of a scalar is an error, not a silent drop.
        let bad = "agents:\n  a:\n    <<: 3\n    directory: /tmp\n";
        assert!(Config::parse(Path::new("x"), bad.as_bytes()).is_err());
    }

    #[test]
    fn duplicate_keys_are_rejected_by_name() {
        let yaml = "agents:\n  a:\n    directory: /tmp\n  a:\n    directory: /\n";
        match Config::parse(Path::new("f.yaml"), yaml.as_bytes()) {
            Err(Error::Invalid {
                kind: InvalidKind::Syntax,
                message,
                location: Some(_),
                ..
            }) => assert!(message.contains("duplicate key \"a\""), "{message}"),
            other => panic!("expected a duplicate key error, got {other:?}"),
        }
    }

    #[test]
    fn yaml_errors_carry_a_location() {
        match Config::parse(Path::new("f.yaml"), b"agents: [\n") {
            Err(Error::Invalid {
                location: Some(_), ..
            }) => {}
            other => panic!("expected located error, got {other:?}"),
        }
    }
}

mod lenient_tests {
    use super::super::*;

    fn parse(yaml: &str) -> Result<Config, Error> {
        Config::parse(Path::new("a.yaml"), yaml.as_bytes())
    }

    fn schema_error(yaml: &str) -> (String, Option<(usize, usize)>) {
        match parse(yaml) {
            Err(Error::Invalid {
                kind: InvalidKind::Schema,
                message,
                location,
                ..
            }) => (message, location),
            other => panic!("expected schema error for {yaml:?}, got {other:?}"),
        }
    }

    #[test]
    fn scalars_are_coerced() {
        let c = parse(
            "agents:\n  a:\n    directory: /x\n    timeout: \"30\"\n    max_budget_usd: '2'\n    model: 4\n\
             settings:\n  default_timeout: 60.0\n  max_concurrency: ' 7 '\n  cache:\n    enabled: no\n    ttl: 0\n",
        )
        .unwrap();
        let a = c.agent("a").unwrap();
        assert_eq!(a.timeout, 30);
        assert_eq!(a.max_budget_usd, Some(2.0));
        assert_eq!(a.model.as_deref(), Some("4"));
        assert_eq!(c.settings.default_timeout, 60);
        assert_eq!(c.settings.max_concurrency, 7);
        assert!(!c.settings.cache.enabled);
        assert_eq!(c.settings.cache.ttl, 0);
        for (word, value) in [("yes", true), ("off", false), ("1", true), ("False", false)] {
            let c = parse(&format!("settings:\n  cache:\n    enabled: {word}\n")).unwrap();
            assert_eq!(c.settings.cache.enabled, value, "{word}");
        }
    }

    #[test]
    fn nulls_mean_defaults() {
        let c = parse("agents:\nsettings:\n  cache:\n  default_allowed_tools:\n").unwrap();
        assert_eq!(c, Config::default());
        let c =
            parse("agents:\n  a:\n    directory: /x\n    timeout:\n    allowed_tools:\n").unwrap();
        assert_eq!(c.agent("a").unwrap().timeout, 300);
        assert_eq!(c.agent("a").unwrap().allowed_tools, None);
    }

    #[test]
    fn bad_values_are_located_schema_errors() {
        let (m, loc) = schema_error("agents:\n  a:\n    directory: /x\n    timeout: 30.5\n");
        assert!(m.contains("timeout") && m.contains("whole number"), "{m}");
        assert_eq!(loc.map(|l| l.0), Some(4));
        let (m, _) = schema_error("agents:\n  a:\n    directory: /x\n    timeout: -1\n");
        assert!(m.contains("greater than or equal to 0"), "{m}");
        let (m, _) = schema_error("agents:\n  a:\n    directory: /x\n    max_budget_usd: -0.5\n");
        assert!(m.contains("greater than or equal to 0"), "{m}");
        let (m, _) = schema_error("settings:\n  default_timeout: 0\n");
        assert!(m.contains("greater than or equal to 1"), "{m}");
        let (m, _) = schema_error("settings:\n  max_dispatch_depth: 0\n");
        assert!(m.contains("max_dispatch_depth"), "{m}");
        let (m, _) = schema_error("settings:\n  cache:\n    max_size: 0\n");
        assert!(m.contains("max_size"), "{m}");
        let (m, _) = schema_error("agents:\n  a:\n    timeout: 5\n");
        assert!(m.contains("directory"), "{m}");
        let (m, _) = schema_error("agents:\n  a:\n    directory: [1]\n");
        assert!(m.contains("directory"), "{m}");
        let (m, _) = schema_error("agents:\n  a:\n    directory: /x\n    allowed_tools: Bash\n");
        assert!(m.contains("allowed_tools"), "{m}");
        let (m, _) = schema_error("settings:\n  cache:\n    enabled: maybe\n");
        assert!(m.contains("boolean"), "{m}");
        schema_error("- just\n- a list\n");
        schema_error("agents: 5\n");
    }

    #[test]
    fn syntax_and_encoding_errors_are_told_apart() {
        let e = parse("agents: [\n").unwrap_err();
        assert_eq!(e.kind(), Some(InvalidKind::Syntax));
        assert!(e.headline().ends_with("is not valid YAML:"));
        let e = Config::parse(Path::new("a.yaml"), b"agents:\n  x\xff: 1\n").unwrap_err();
        assert_eq!(e.kind(), Some(InvalidKind::Encoding));
        assert_eq!(e.location(), Some((2, 4)));
        assert!(!e.hint().is_empty());
    }

    #[test]
    fn directories_resolve_on_load_but_not_as_written() {
        let dir = std::env::temp_dir().join(format!("ad-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("agents.yaml");
        std::fs::write(
            &file,
            "agents:\n  a:\n    directory: /tmp/../tmp/./nonexistent-ad/x\n",
        )
        .unwrap();
        let resolved = Config::load(&file).unwrap();
        let raw = Config::load_as_written(&file).unwrap();
        let tmp = Path::new("/tmp").canonicalize().unwrap();
        assert_eq!(
            resolved.agent("a").unwrap().directory,
            tmp.join("nonexistent-ad").join("x")
        );
        assert_eq!(
            raw.agent("a").unwrap().directory,
            Path::new("/tmp/../tmp/./nonexistent-ad/x")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn fresh_config_text_matches_the_reference() {
        assert_eq!(
            Config::default().to_yaml().unwrap(),
            "agents: {}\nsettings:\n  default_timeout: 300\n  default_allowed_tools: []\n  \
             default_disallowed_tools: []\n  max_dispatch_depth: 3\n  max_concurrency: 5\n  \
             cache:\n    enabled: true\n    ttl: 300\n    max_size: 1000\n"
        );
    }
}

use std::path::Path;

use super::{Config, problems};

#[test]
fn the_example_config_loads_and_shows_every_section() {
    let text = include_str!("../../agents.example.yaml");
    let c = Config::parse(Path::new("agents.example.yaml"), text.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let billing = c.agent("billing-api").unwrap();
    assert!(!billing.capabilities.is_empty() && billing.instructions().is_some());
    assert!(c.group("billing").is_some_and(|g| g.has_member("docs")));
    assert!(problems(&c).is_empty());
}

mod gate_settings {
    use super::super::*;

    #[test]
    fn machine_max_concurrency_is_lenient_and_off_by_default() {
        let parse = |yaml: &str| Config::parse(Path::new("a.yaml"), yaml.as_bytes());
        assert_eq!(Settings::default().machine_max_concurrency, 0);
        let c = parse("settings:\n  machine_max_concurrency: ' 3 '\n").unwrap();
        assert_eq!(c.settings.machine_max_concurrency, 3);
        let c = parse("settings:\n  machine_max_concurrency:\n").unwrap();
        assert_eq!(c.settings.machine_max_concurrency, 0);
        let e = parse("settings:\n  machine_max_concurrency: -1\n").unwrap_err();
        assert!(e.to_string().contains("machine_max_concurrency"), "{e}");
    }
}

mod bounded_errors {
    use super::super::*;

    #[test]
    fn a_huge_scalar_config_is_not_quoted_whole() {
        let dir = std::env::temp_dir().join(format!("ad-cfg-huge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agents.yaml");
        std::fs::write(&path, "z".repeat(1_000_000)).unwrap();
        let err = Config::load(&path).unwrap_err();
        let shown = err.to_string();
        assert!(shown.len() < 1_000, "{} bytes", shown.len());
        assert!(shown.contains("more characters not shown"), "{shown}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
