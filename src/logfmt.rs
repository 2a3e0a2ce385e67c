//! How a log line looks on stderr: human text (`gangway info: MESSAGE`, the default) or,
//! with `--log-format json`, one JSON object per line for journald, Loki and friends:
//! `time` (RFC 3339, UTC, milliseconds), `level`, `target`, `backend` and `session` when
//! the message names them, and `message`.
//!
//! `backend` and `session` are read from the message text, which names them in fixed
//! ways: `backend 'NAME'` in gangway's own messages, `[NAME] ` before a line a backend
//! wrote to its stderr (target `gangway::backend`), and `session ID8` (the first 8 hex
//! digits of an HTTP session id). Nothing else is added: what the message does not say,
//! the line does not carry, so an env value or token (never in a message) never appears.

use serde::Serialize;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// The format of log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `gangway LEVEL: MESSAGE`, for a person.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    /// `text` or `json`; anything else is refused with a message that lists both.
    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format {other:?}: use text (the default) or json"
            )),
        }
    }
}

/// One log record as a line of text, without its newline.
pub fn text_line(level: log::Level, message: &str) -> String {
    format!("gangway {}: {message}", level.as_str().to_lowercase())
}

#[derive(Serialize)]
struct JsonLine<'a> {
    time: String,
    level: String,
    target: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
    message: &'a str,
}

/// One log record as a JSON object on one line, without its newline (see the module
/// documentation for its fields). A message's own newlines are escaped, so a record is
/// always one line.
pub fn json_line(time: SystemTime, level: log::Level, target: &str, message: &str) -> String {
    let line = JsonLine {
        time: rfc3339(time),
        level: level.as_str().to_lowercase(),
        target,
        backend: backend_in(target, message),
        session: session_in(message),
        message,
    };
    // Strings and an Option of strings always serialize; the fallback keeps the contract.
    serde_json::to_string(&line).unwrap_or_else(|_| String::from("{}"))
}

/// `time` as RFC 3339 in UTC with milliseconds: `2026-11-30T02:52:11.123Z`. A time before
/// 1970 is written as 1970-01-01T00:00:00.000Z.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, m, d) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` days after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days after the epoch only).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Counted from 0000-03-01, so that the leap day ends a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The backend a message names: `[NAME] ` at the start of a backend's stderr line
/// (target `gangway::backend`), else the first `backend 'NAME'`.
fn backend_in<'a>(target: &str, message: &'a str) -> Option<&'a str> {
    if target == "gangway::backend" {
        if let Some((name, _)) = message.strip_prefix('[').and_then(|m| m.split_once("] ")) {
            return Some(name);
        }
    }
    let at = message.find("backend '")? + "backend '".len();
    let rest = &message[at..];
    let end = rest.find('\'')?;
    Some(&rest[..end]).filter(|n| !n.is_empty())
}

/// The session a message names: `session ` followed by 8 lowercase hex digits (how the
/// HTTP front shortens a session id) and a word boundary.
fn session_in(message: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(i) = message[from..].find("session ") {
        let at = from + i + "session ".len();
        let rest = &message[at..];
        let id = rest.get(..8).filter(|id| {
            id.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        let boundary = !rest
            .as_bytes()
            .get(8)
            .is_some_and(|b| b.is_ascii_alphanumeric());
        if let (Some(id), true) = (id, boundary) {
            return Some(id);
        }
        from = at;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_match_counting_day_by_day_for_three_centuries() {
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for days in 0..(330 * 366) {
            if days > 0 {
                (y, m, d) = naive_civil_step(y, m, d);
            }
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
        }
    }

    /// The day after `y-m-d`, by the calendar's rules.
    fn naive_civil_step(y: u64, m: u64, d: u64) -> (u64, u64, u64) {
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let len = match m {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        match (d < len, m < 12) {
            (true, _) => (y, m, d + 1),
            (false, true) => (y, m + 1, 1),
            (false, false) => (y + 1, 1, 1),
        }
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        let at = |secs, ms| UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms);
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000Z");
        // `date -u -d @951825599`: the leap day of 2000, a year divisible by 400.
        assert_eq!(rfc3339(at(951_825_599, 999)), "2000-02-29T11:59:59.999Z");
        assert_eq!(rfc3339(at(1_795_999_931, 7)), "2026-11-30T00:52:11.007Z");
        assert_eq!(rfc3339(at(4_107_542_399, 0)), "2100-02-28T23:59:59.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn backend_and_session_come_from_the_message_when_it_names_them() {
        let t = UNIX_EPOCH;
        let info = log::Level::Info;
        let parse = |l: String| -> serde_json::Value { serde_json::from_str(&l).expect("JSON") };

        let v = parse(json_line(
            t,
            info,
            "gangway::backend",
            "[alpha] ready: 3 tools",
        ));
        assert_eq!(v["backend"], "alpha");
        assert_eq!(v["message"], "[alpha] ready: 3 tools");
        assert_eq!(v["level"], "info");
        assert_eq!(v["target"], "gangway::backend");
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
        assert!(v.get("session").is_none());

        let v = parse(json_line(
            t,
            log::Level::Warn,
            "gangway::gateway",
            "backend 'git hub''s container c1 is gone",
        ));
        assert_eq!(v["backend"], "git hub");
        assert_eq!(v["level"], "warn");

        let v = parse(json_line(
            t,
            info,
            "gangway::http",
            "HTTP: session 0a1b2c3d opened",
        ));
        assert_eq!(v["session"], "0a1b2c3d");
        assert!(v.get("backend").is_none());

        // Lookalikes are not ids or names.
        for msg in [
            "session timeout is 1800 s",
            "session 0a1b2c3d4 is not a short id",
            "session 0A1B2C3D has capitals",
            "backend '' is empty",
            "[alpha] without the backend target",
        ] {
            let v = parse(json_line(t, info, "gangway::gateway", msg));
            assert!(
                v.get("session").is_none() && v.get("backend").is_none(),
                "{msg}: {v}"
            );
        }

        let v = parse(json_line(t, info, "gangway", "two\nlines \"quoted\""));
        assert_eq!(v["message"], "two\nlines \"quoted\"");
    }

    #[test]
    fn log_formats_parse_and_refuse_what_they_do_not_know() {
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        let e = "yaml".parse::<LogFormat>().expect_err("unknown");
        assert!(e.contains("text") && e.contains("json"), "{e}");
    }
}
