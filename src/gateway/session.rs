//! Sessions: one per client. A session holds what belongs to that client alone: its
//! capabilities, its log level and its output. Requests are owned by the session that sent
//! them (the id table records it), so answers, progress and cancellations find their way
//! back; what concerns every client (list_changed) goes to all sessions.

use super::OutBuf;
use serde_json::value::RawValue;

/// A client of the gateway. Ids are never reused within one gateway, so a late answer for
/// a session that ended is recognised and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

/// The MCP log levels, least severe first (RFC 5424 order, as MCP defines them).
const LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// The rank of an MCP log level name (0 = debug), or `None` for another text.
pub fn level_rank(name: &str) -> Option<u8> {
    LEVELS
        .iter()
        .position(|l| *l == name)
        .and_then(|i| u8::try_from(i).ok())
}

/// The level name of a rank from [`level_rank`].
pub fn level_name(rank: u8) -> &'static str {
    LEVELS.get(usize::from(rank)).copied().unwrap_or("debug")
}

/// The rank of the `level` field of `logging/setLevel` params or of a
/// `notifications/message`'s params, when it is a known level.
pub fn params_level(params: Option<&RawValue>) -> Option<u8> {
    #[derive(serde::Deserialize)]
    struct P<'a> {
        #[serde(borrow)]
        level: &'a str,
    }
    let p: P<'_> = serde_json::from_str(params?.get()).ok()?;
    level_rank(p.level)
}

/// One client's state.
#[derive(Debug, Default)]
pub struct Session {
    /// What is waiting to be written to this client.
    pub out: OutBuf,
    /// The capabilities the client declared in `initialize` (null before).
    pub caps: serde_json::Value,
    /// The least severe level of `notifications/message` it asked for with
    /// `logging/setLevel` (a rank of [`level_rank`]); `None`: every message.
    pub log_level: Option<u8>,
    /// The resource URIs it subscribed to (`resources/subscribe`).
    pub subscriptions: std::collections::BTreeSet<String>,
    /// One of gangway's own shell commands (`check`, `tools`, `call`): see
    /// `Gateway::open_shell_session`.
    pub shell: bool,
}

impl Session {
    /// Whether the client declared `capability` (`sampling`, `roots`, …).
    pub fn declares(&self, capability: &str) -> bool {
        self.caps.get(capability).is_some()
    }

    /// Whether a log message of rank `level` (unknown: always) is for this client.
    pub fn wants_log(&self, level: Option<u8>) -> bool {
        match (self.log_level, level) {
            (Some(min), Some(level)) => level >= min,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_rank_in_mcp_order() {
        assert_eq!(level_rank("debug"), Some(0));
        assert_eq!(level_rank("warning"), Some(3));
        assert_eq!(level_rank("emergency"), Some(7));
        assert_eq!(level_rank("verbose"), None);
        assert_eq!(level_name(3), "warning");
        let raw = RawValue::from_string(r#"{"level":"error","data":1}"#.to_string()).ok();
        assert_eq!(params_level(raw.as_deref()), Some(4));
    }

    #[test]
    fn a_session_hears_what_its_level_admits() {
        let mut s = Session::default();
        assert!(s.wants_log(Some(0)), "no level set: everything");
        s.log_level = Some(3);
        assert!(!s.wants_log(Some(1)));
        assert!(s.wants_log(Some(3)) && s.wants_log(Some(7)));
        assert!(s.wants_log(None), "a message of unknown level is passed on");
    }
}
