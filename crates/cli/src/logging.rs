//! Which log filter applies, and setting up the subscriber: `--log-level` (or
//! `MICROCOMMERCE_LOG`) first, then `RUST_LOG`, then the command's default. A filter that does
//! not parse is an error, never quietly replaced.

use tracing_subscriber::EnvFilter;

/// Level names a bare `--log-level` directive may use.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Checks a `--log-level` value: every comma-separated directive is a level or
/// `target=level` (a bare word would otherwise silently mean "that target, everything").
pub fn parse_log_level(value: &str) -> Result<String, String> {
    for directive in value.split(',').map(str::trim) {
        if !directive.contains('=') && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "`{directive}` is neither a level ({}) nor `target=level`",
                LEVELS.join(", ")
            ));
        }
    }
    EnvFilter::try_new(value).map_err(|error| error.to_string())?;
    Ok(value.to_owned())
}

/// The filter to log with: the option if given, else `RUST_LOG` if set, else `default`.
pub fn choose_filter(
    option: Option<&str>,
    rust_log: Option<&str>,
    default: &str,
) -> Result<EnvFilter, String> {
    match (option, rust_log) {
        (Some(option), _) => EnvFilter::try_new(option).map_err(|e| e.to_string()),
        (None, Some(rust_log)) if !rust_log.trim().is_empty() => EnvFilter::try_new(rust_log)
            .map_err(|error| format!("RUST_LOG={rust_log:?} does not parse: {error}")),
        _ => Ok(EnvFilter::new(default)),
    }
}

/// Logs to standard error with `filter`, as text or JSON lines.
pub fn init(filter: EnvFilter, json: bool) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_level_is_levels_or_target_level_pairs() {
        for good in [
            "info",
            "DEBUG",
            "warn,bus=debug",
            "microcommerce=debug,bus=info",
        ] {
            assert_eq!(parse_log_level(good).as_deref(), Ok(good));
        }
        for bad in ["verbose", "info,loud", "bus=loud"] {
            assert!(parse_log_level(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn the_option_wins_then_rust_log_then_the_default() {
        let shown = |f: Result<EnvFilter, String>| f.unwrap().to_string();
        assert_eq!(
            shown(choose_filter(Some("debug"), Some("warn"), "info")),
            "debug"
        );
        assert_eq!(
            shown(choose_filter(None, Some("bus=trace"), "info")),
            "bus=trace"
        );
        assert_eq!(shown(choose_filter(None, Some(" "), "info")), "info");
        assert_eq!(shown(choose_filter(None, None, "warn")), "warn");
        assert!(choose_filter(None, Some("bus=loud"), "info").is_err());
    }
}
