//! Parsers of the command-line values the subcommands share (durations like `60s`),
//! with their limits.

use std::time::Duration;

/// Longest run, in seconds (a day).
const DURATION_SECONDS_MAX: u64 = 86_400;

/// Parses `500ms`, `30s`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit_ms) = if let Some(number) = text.strip_suffix("ms") {
        (number, 1)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1_000)
    } else if let Some(number) = text.strip_suffix('m') {
        (number, 60_000)
    } else {
        (text, 1_000)
    };
    let value: u64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 60s, 2m or 500ms"))?;
    let duration = Duration::from_millis(value.saturating_mul(unit_ms));
    if duration.is_zero() || duration > Duration::from_secs(DURATION_SECONDS_MAX) {
        return Err(format!(
            "duration must be more than 0 and at most {DURATION_SECONDS_MAX} s"
        ));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_have_units_and_limits() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("2d").is_err());
        assert!(parse_duration("100000s").is_err());
    }
}
