//! Fuzzing the config parser (`FlowConfig::from_toml_str`, what `flow config check`,
//! `flow node --config` and every `FlowConfig::from_file` run on a user's file):
//! arbitrary text, arbitrary bytes as (lossy) text, and mutations of the default config
//! never panic, stay within `MAX_DECODE_ALLOCATION` bytes, and bad input is a typed
//! `ConfigError` (parse or validation) naming the problem. `FUZZ_CASES=N` runs longer
//! (see erlmcp-flow-fuzzkit).

erlmcp_flow_fuzzkit::install_alloc_probe!();

use erlmcp_flow_core::{ConfigError, FlowConfig};
use erlmcp_flow_fuzzkit::{MAX_DECODE_ALLOCATION, arbitrary_bytes, measure, mutated};
use proptest::prelude::*;

fn seeds() -> Vec<Vec<u8>> {
    let mut raft = FlowConfig::default();
    raft.cluster.enabled = true;
    raft.raft.enabled = true;
    raft.raft.voters = vec!["a".into(), "b".into(), "c".into()];
    vec![FlowConfig::default().to_toml_string().into_bytes(), raft.to_toml_string().into_bytes()]
}

fn parse_checked(bytes: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(bytes);
    let (result, peak) = measure(|| FlowConfig::from_toml_str(&text));
    prop_assert!(peak <= MAX_DECODE_ALLOCATION, "{peak} bytes held parsing {} bytes", bytes.len());
    match result {
        // What parses and validates prints back to TOML that parses to the same config.
        Ok(cfg) => {
            let again = FlowConfig::from_toml_str(&cfg.to_toml_string())
                .map_err(|e| TestCaseError::fail(format!("a valid config did not round-trip: {e}")))?;
            prop_assert_eq!(again.to_toml_string(), cfg.to_toml_string());
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(!msg.is_empty());
            prop_assert!(matches!(e, ConfigError::Parse(_) | ConfigError::Invalid { .. }), "{e:?}");
        }
    }
    Ok(())
}

/// The seeds parse; and the probe is live.
#[test]
fn seeds_parse_and_probe_is_installed() {
    assert!(erlmcp_flow_fuzzkit::probe_installed());
    for s in seeds() {
        FlowConfig::from_toml_str(std::str::from_utf8(&s).unwrap()).unwrap();
    }
}

/// Numbers at every extreme in every numeric field are refused or accepted with a
/// typed error, never a panic (an overflow in validation would be one).
#[test]
fn extreme_numbers_in_every_field() {
    let text = String::from_utf8(seeds().remove(1)).unwrap();
    for (i, line) in text.lines().enumerate() {
        let Some((key, value)) = line.split_once(" = ") else { continue };
        if value.parse::<f64>().is_err() {
            continue;
        }
        for extreme in ["0", "-1", "9223372036854775807", "-9223372036854775808", "1e308", "nan", "inf", "0.0"] {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            lines[i] = format!("{key} = {extreme}");
            parse_checked(lines.join("\n").as_bytes()).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(erlmcp_flow_fuzzkit::config())]

    /// Arbitrary bytes as text.
    #[test]
    fn arbitrary_text_never_panics(bytes in arbitrary_bytes()) {
        parse_checked(&bytes)?;
    }

    /// Mutations of valid configs.
    #[test]
    fn mutated_configs_never_panic(bytes in mutated(seeds())) {
        parse_checked(&bytes)?;
    }
}
