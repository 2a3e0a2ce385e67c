//! A borrowed view of one JSON-RPC message, and the splice helpers that forward it.
//!
//! gangway is a byte router: a forwarded message is written as the original bytes with a
//! few spans replaced (the id, sometimes a tool name), never parsed into a `Value` and
//! re-encoded. `Message::parse` borrows every field it keeps from the line, so the byte
//! offset of any field is known (`span_of`) and can be spliced (`splice`).

use super::scan::{top, Params, Refused, ResultMembers, Top};
use serde::Deserialize;
use serde_json::error::Category;
use serde_json::value::RawValue;
use std::ops::Range;

/// JSON-RPC error code: the line is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC error code: JSON, but not a valid request.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC error code: the method is not known.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC error code: the params are wrong for the method.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC error code: an internal error of gangway.
pub const INTERNAL_ERROR: i64 = -32603;
/// Server error code used by gangway when a backend failed (crashed, could not start).
pub const BACKEND_ERROR: i64 = -32000;
/// Server error code used by gangway when a request timed out (as the MCP SDKs do).
pub const REQUEST_TIMEOUT: i64 = -32001;
/// A client sent more requests than the config's `rate_limit` allows.
pub const RATE_LIMITED: i64 = -32029;
/// MCP's error code for a resource URI that no server has.
pub const RESOURCE_NOT_FOUND: i64 = -32002;

/// The fields of a message that routing looks at, each borrowed from the line. Raw values
/// go through `raw` so that an explicit `null` is seen as present (`"id": null` is an
/// invalid id, not a missing one).
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default, deserialize_with = "raw")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    method: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    error: Option<&'a RawValue>,
}

fn raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// The members of `line` as serde_json reads them: the slow path of [`Message::parse`]
/// (for the rare lines the scanner leaves to it, and for the error of an invalid one),
/// and the oracle the scanner is checked against.
///
/// # Errors
///
/// serde_json's, when the line is not a JSON object with at most one of each member.
pub fn serde_members(line: &[u8]) -> Result<Top<'_>, serde_json::Error> {
    let f: Fields<'_> = serde_json::from_slice(line)?;
    Ok(Top {
        jsonrpc: f.jsonrpc.map(RawValue::get),
        id: f.id.map(RawValue::get),
        method: f.method.map(RawValue::get),
        params: f.params.map(RawValue::get),
        result: f.result.map(RawValue::get),
        error: f.error.map(RawValue::get),
        params_members: f.params.and_then(|p| serde_params(p.get())),
        result_members: f.result.and_then(|r| serde_result(r.get())),
    })
}

/// The members of `result` (an object) the gateway reads, as serde_json reads them;
/// `None` when it is not an object or names one of them twice.
pub fn serde_result(result: &str) -> Option<ResultMembers<'_>> {
    #[derive(Deserialize)]
    struct R<'a> {
        #[serde(borrow, default, deserialize_with = "raw", rename = "isError")]
        is_error: Option<&'a RawValue>,
        #[serde(borrow, default, deserialize_with = "raw", rename = "_meta")]
        meta: Option<&'a RawValue>,
        #[serde(borrow, default, deserialize_with = "raw", rename = "resultType")]
        result_type: Option<&'a RawValue>,
    }
    if !result.starts_with('{') {
        return None;
    }
    let r: R<'_> = serde_json::from_str(result).ok()?;
    Some(ResultMembers {
        is_error: r.is_error.map(RawValue::get),
        meta: r.meta.map(RawValue::get),
        result_type: r.result_type.map(RawValue::get),
    })
}

/// The members of `params` (an object) routing reads, as serde_json reads them (an
/// explicit `null` present, like the top members); `None` when it is not an object or
/// names one of them twice.
pub fn serde_params(params: &str) -> Option<Params<'_>> {
    #[derive(Deserialize)]
    struct P<'a> {
        #[serde(borrow, default, deserialize_with = "raw")]
        name: Option<&'a RawValue>,
        #[serde(borrow, default, deserialize_with = "raw")]
        arguments: Option<&'a RawValue>,
        #[serde(borrow, default, deserialize_with = "raw", rename = "_meta")]
        meta: Option<&'a RawValue>,
        #[serde(borrow, default, deserialize_with = "raw")]
        task: Option<&'a RawValue>,
        #[serde(borrow, default, deserialize_with = "raw", rename = "requestState")]
        request_state: Option<&'a RawValue>,
    }
    if !params.starts_with('{') {
        return None;
    }
    let p: P<'_> = serde_json::from_str(params).ok()?;
    Some(Params {
        name: p.name.map(RawValue::get),
        arguments: p.arguments.map(RawValue::get),
        meta: p.meta.map(RawValue::get),
        task: p.task.map(RawValue::get),
        request_state: p.request_state.map(RawValue::get),
    })
}

/// The raw JSON text of one value, borrowed from the line it was read from (which was
/// checked to be valid JSON): what [`RawValue`] is, without having to be made by
/// serde_json.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a>(&'a str);

impl<'a> Raw<'a> {
    /// `text`, which the caller read as one JSON value (a member the scanner or
    /// serde_json found).
    pub fn of(text: &'a str) -> Raw<'a> {
        Raw(text)
    }

    /// The JSON text.
    pub fn get(self) -> &'a str {
        self.0
    }
}

impl<'a> From<&'a RawValue> for Raw<'a> {
    fn from(r: &'a RawValue) -> Raw<'a> {
        Raw(r.get())
    }
}

/// The text of a raw JSON string that needs no unescaping, borrowed.
fn plain_str(raw: &str) -> Option<&str> {
    let s = raw.strip_prefix('"')?.strip_suffix('"')?;
    (!s.contains('\\')).then_some(s)
}

/// What kind of JSON-RPC message a line holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has `method` and a valid `id`: expects an answer.
    Request,
    /// Has `method` and no `id`.
    Notification,
    /// Has a valid `id`, no `method`, and exactly one of `result` / `error`.
    Response,
}

/// A classified JSON-RPC message; every field borrows from the line it was parsed from.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The whole line the message came from (no trailing newline).
    pub line: &'a [u8],
    /// Request, notification or response.
    pub kind: Kind,
    /// The raw `id` (a JSON string or integer, exactly as written). `None` for notifications.
    pub id: Option<Raw<'a>>,
    /// The method, for requests and notifications.
    pub method: Option<&'a str>,
    /// The raw `params`, when present.
    pub params: Option<Raw<'a>>,
    /// The raw `result` of a success response.
    pub result: Option<Raw<'a>>,
    /// The raw `error` of an error response.
    pub error: Option<Raw<'a>>,
    /// The members of `params` read in the same pass, when it could read them exactly
    /// (see [`Message::call_params`]).
    params_members: Option<Params<'a>>,
    /// The members of `result` read in the same pass (see [`Message::is_tool_error`]).
    result_members: Option<ResultMembers<'a>>,
}

/// Why a line is not a usable JSON-RPC message, with the answer it deserves.
#[derive(Debug, Clone)]
pub struct Invalid<'a> {
    /// -32700 (not JSON) or -32600 (not a valid JSON-RPC message).
    pub code: i64,
    /// A short human-readable reason.
    pub reason: String,
    /// The id to answer with, when one could be read (raw JSON); `None` means answer with `null`.
    pub id: Option<Raw<'a>>,
}

impl<'a> Message<'a> {
    /// Parses and classifies one line. Never panics; anything that is not a JSON-RPC 2.0
    /// request, notification or response is an `Invalid` that says why.
    pub fn parse(line: &'a [u8]) -> Result<Message<'a>, Invalid<'a>> {
        if line.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(Invalid {
                code: INVALID_REQUEST,
                reason: "JSON-RPC batches (arrays) are not supported by MCP since 2025-06-18; send one message per line".to_string(),
                id: None,
            });
        }
        // The scanner decides almost every line in one pass; what it leaves (an invalid
        // line, or a rare valid shape) goes to serde_json.
        let fields: Top<'a> = match top(line).or_else(|Refused| serde_members(line)) {
            Ok(f) => f,
            Err(e) => {
                let code = match e.classify() {
                    Category::Data => INVALID_REQUEST,
                    _ => PARSE_ERROR,
                };
                let reason = if code == PARSE_ERROR {
                    format!("not valid JSON: {e}")
                } else {
                    format!("not a JSON-RPC message: {e}")
                };
                return Err(Invalid {
                    code,
                    reason,
                    id: None,
                });
            }
        };
        let valid_id = fields.id.map(Raw).filter(|id| is_valid_id(*id));
        let invalid = |reason: &str| Invalid {
            code: INVALID_REQUEST,
            reason: reason.to_string(),
            id: valid_id,
        };
        if fields.jsonrpc != Some(r#""2.0""#) {
            return Err(invalid("\"jsonrpc\" must be \"2.0\""));
        }
        if fields.id.is_some() && valid_id.is_none() {
            return Err(invalid("\"id\" must be a string or an integer"));
        }
        let method = match fields.method {
            None => None,
            Some(m) if !m.starts_with('"') => return Err(invalid("\"method\" must be a string")),
            // MCP method names never need escapes; an escaped one is an unknown method,
            // reported by its raw text.
            Some(m) => Some(plain_str(m).unwrap_or(m)),
        };
        let kind = match (method.is_some(), valid_id.is_some()) {
            (true, true) => Kind::Request,
            (true, false) => Kind::Notification,
            (false, true) => match (fields.result.is_some(), fields.error.is_some()) {
                (true, false) | (false, true) => Kind::Response,
                _ => {
                    return Err(invalid(
                        "a response must have exactly one of \"result\" and \"error\"",
                    ))
                }
            },
            (false, false) => return Err(invalid("no \"method\" and no \"id\"")),
        };
        Ok(Message {
            line,
            kind,
            id: valid_id,
            method,
            params: fields.params.map(Raw),
            result: fields.result.map(Raw),
            error: fields.error.map(Raw),
            params_members: fields.params_members,
            result_members: fields.result_members,
        })
    }

    /// Whether this is a result with `"isError": true` (a tool call that failed as a
    /// tool), read from the pass that read the line, or by serde_json when that pass could
    /// not read `result` exactly.
    pub fn is_tool_error(&self) -> bool {
        self.result_members().and_then(|m| m.is_error) == Some("true")
    }

    /// The members of `result` the gateway reads (`isError`, `_meta`, raw): from the pass
    /// that read the line, or read again by serde_json when that pass could not. `None`
    /// when `result` is absent, not an object, or names one of them twice.
    pub fn result_members(&self) -> Option<ResultMembers<'a>> {
        self.result_members
            .or_else(|| self.result.and_then(|r| serde_result(r.get())))
    }

    /// The members of `params` that routing reads (`name`, `arguments`, `_meta`, `task`,
    /// raw; an explicit `null` present): from the pass that read the line, or read again
    /// by serde_json when that pass could not (a key with escapes). `None` when `params` is
    /// absent, not an object, or names one of them twice.
    pub fn call_params(&self) -> Option<Params<'a>> {
        self.params_members
            .or_else(|| self.params.and_then(|p| serde_params(p.get())))
    }

    /// The raw `params._meta.progressToken` of a request that asks for progress.
    pub fn progress_token(&self) -> Option<Raw<'a>> {
        match self.params_members {
            Some(p) => meta_progress_token(p.meta),
            None => request_progress_token(self.params),
        }
    }

    /// The byte range of the `id` value within `line`, if there is one.
    pub fn id_span(&self) -> Option<Range<usize>> {
        self.id.and_then(|id| span_of(self.line, id.get()))
    }
}

/// Whether a raw id is one MCP allows: a JSON string or an integer (no fraction, no
/// exponent). Null, floats, booleans, arrays and objects are refused, as the SDKs do.
pub fn is_valid_id(id: Raw<'_>) -> bool {
    let text = id.get().as_bytes();
    match text.first() {
        Some(b'"') => true,
        Some(b'-') => text.len() > 1 && text[1..].iter().all(u8::is_ascii_digit),
        Some(_) => text.iter().all(u8::is_ascii_digit),
        None => false,
    }
}

/// The byte range that `part` occupies inside `whole`, when `part` is a subslice of it
/// (as every borrowed field of a parsed line is).
pub fn span_of(whole: &[u8], part: &str) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some(start..end)
}

/// Appends `line` to `out` with each `(range, replacement)` applied, then a newline.
/// Edits must be in ascending order and must not overlap; an edit that breaks that rule
/// or lies outside the line is ignored rather than producing garbage.
pub fn splice(out: &mut Vec<u8>, line: &[u8], edits: &[(Range<usize>, &[u8])]) {
    let mut at = 0;
    for (range, replacement) in edits {
        if range.start < at || range.end < range.start || range.end > line.len() {
            continue;
        }
        out.extend_from_slice(&line[at..range.start]);
        out.extend_from_slice(replacement);
        at = range.end;
    }
    out.extend_from_slice(&line[at..]);
    out.push(b'\n');
}

/// Appends a JSON-RPC error response line. `id` is raw JSON (`b"null"` when unknown).
pub fn write_error(out: &mut Vec<u8>, id: &[u8], code: i64, message: &str) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id);
    out.extend_from_slice(b",\"error\":{\"code\":");
    out.extend_from_slice(code.to_string().as_bytes());
    out.extend_from_slice(b",\"message\":");
    write_json_string(out, message);
    out.extend_from_slice(b"}}\n");
}

/// Appends a JSON-RPC success response line. `id` and `result` are raw JSON.
pub fn write_result(out: &mut Vec<u8>, id: &[u8], result: &[u8]) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id);
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(result);
    out.extend_from_slice(b"}\n");
}

/// Appends a JSON-RPC request (with `id`) or notification (`id` = None) line.
/// `params` is raw JSON.
pub fn write_request(out: &mut Vec<u8>, id: Option<u64>, method: &str, params: Option<&[u8]>) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",");
    if let Some(id) = id {
        out.extend_from_slice(b"\"id\":");
        out.extend_from_slice(id.to_string().as_bytes());
        out.push(b',');
    }
    out.extend_from_slice(b"\"method\":");
    write_json_string(out, method);
    if let Some(params) = params {
        out.extend_from_slice(b",\"params\":");
        out.extend_from_slice(params);
    }
    out.extend_from_slice(b"}\n");
}

/// Appends `s` as a JSON string literal.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    // Serializing a str into a Vec cannot fail; fall back to an empty string regardless.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

/// A short, printable excerpt of a line for logs (never the whole of a huge line).
pub fn excerpt(line: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&line[..line.len().min(MAX)]);
    if line.len() > MAX {
        format!("{text}… ({} bytes)", line.len())
    } else {
        text.into_owned()
    }
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(rename = "progressToken", borrow, default)]
    token: Option<&'a RawValue>,
}

/// The raw `params._meta.progressToken` of a request, if it asks for progress (see
/// [`Message::progress_token`], which reads only `_meta` when it can).
pub fn request_progress_token(params: Option<Raw<'_>>) -> Option<Raw<'_>> {
    #[derive(Deserialize)]
    struct WithMeta<'a> {
        #[serde(rename = "_meta", borrow, default)]
        meta: Option<Meta<'a>>,
    }
    serde_json::from_str::<WithMeta<'_>>(params?.get())
        .ok()?
        .meta?
        .token
        .map(Raw::from)
}

/// The raw `progressToken` of a request's `_meta` (its raw text; `null` or absent: none).
fn meta_progress_token(meta: Option<&str>) -> Option<Raw<'_>> {
    serde_json::from_str::<Option<Meta<'_>>>(meta?)
        .ok()??
        .token
        .map(Raw::from)
}

/// The raw `params.progressToken` of a `notifications/progress`.
pub fn notification_progress_token(params: Option<Raw<'_>>) -> Option<Raw<'_>> {
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(rename = "progressToken", borrow)]
        token: &'a RawValue,
    }
    serde_json::from_str::<Params<'_>>(params?.get())
        .ok()
        .map(|p| Raw::from(p.token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Message<'_>, Invalid<'_>> {
        Message::parse(s.as_bytes())
    }

    #[test]
    fn classifies_request_notification_response() {
        let m = parse(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        assert_eq!(m.kind, Kind::Request);
        assert_eq!(m.method, Some("ping"));
        let m = parse(r#"{"method":"notifications/initialized","jsonrpc":"2.0"}"#).unwrap();
        assert_eq!(m.kind, Kind::Notification);
        let m = parse(r#"{"result":{},"jsonrpc":"2.0","id":"a"}"#).unwrap();
        assert_eq!(m.kind, Kind::Response);
        assert_eq!(m.id.unwrap().get(), "\"a\"");
        let m = parse(r#"{"jsonrpc":"2.0","id":7,"error":{"code":1,"message":"x"}}"#).unwrap();
        assert_eq!(m.kind, Kind::Response);
    }

    #[test]
    fn a_tool_error_is_the_result_member_not_text_that_looks_like_it() {
        let error = |s: &str| parse(s).unwrap().is_tool_error();
        assert!(error(
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#
        ));
        assert!(error(
            r#"{"jsonrpc":"2.0","id":1,"result":{ "isError" : true }}"#
        ));
        // Read by serde_json when the pass leaves it (a key with escapes).
        assert!(error(
            r#"{"jsonrpc":"2.0","id":1,"result":{"is\u0045rror":true}}"#
        ));
        assert!(!error(
            r#"{"jsonrpc":"2.0","id":1,"result":{"isError":false}}"#
        ));
        // A text that quotes a failed result is not one.
        assert!(!error(
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"isError\":true}"}]}}"#
        ));
        assert!(!error(
            r#"{"jsonrpc":"2.0","id":1,"result":{"a":{"isError":true}}}"#
        ));
        assert!(!error(r#"{"jsonrpc":"2.0","id":1,"result":[true]}"#));
    }

    #[test]
    fn id_last_and_whitespace_are_fine() {
        let line = r#"{ "jsonrpc" : "2.0", "method" : "tools/call", "params" : {"a":[1,2]}, "id" : 12345678901234567890123 }"#;
        let m = parse(line).unwrap();
        assert_eq!(m.kind, Kind::Request);
        let span = m.id_span().unwrap();
        assert_eq!(&line[span], "12345678901234567890123");
        assert_eq!(m.params.unwrap().get(), r#"{"a":[1,2]}"#);
    }

    #[test]
    fn rejects_bad_input_with_the_right_code() {
        assert_eq!(parse("not json").unwrap_err().code, PARSE_ERROR);
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":1"#).unwrap_err().code,
            PARSE_ERROR
        );
        let batch = parse(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).unwrap_err();
        assert_eq!(batch.code, INVALID_REQUEST);
        assert!(batch.reason.contains("batch"));
        assert_eq!(parse("42").unwrap_err().code, INVALID_REQUEST);
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0"}"#).unwrap_err().code,
            INVALID_REQUEST
        );
        let v1 = parse(r#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#).unwrap_err();
        assert_eq!(v1.code, INVALID_REQUEST);
        assert_eq!(v1.id.unwrap().get(), "3");
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":1,"method":7}"#)
                .unwrap_err()
                .code,
            INVALID_REQUEST
        );
        let both = parse(r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{}}"#).unwrap_err();
        assert_eq!(both.code, INVALID_REQUEST);
    }

    #[test]
    fn refuses_ids_mcp_does_not_allow() {
        for id in ["null", "1.5", "1e3", "true", "[1]", "{}", "-0.5"] {
            let line = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            let err = parse(&line).unwrap_err();
            assert_eq!(err.code, INVALID_REQUEST, "{id}");
            assert!(err.id.is_none(), "{id}");
        }
        for id in ["0", "-1", "\"x\"", "\"\"", "99999999999999999999999"] {
            let line = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            assert_eq!(parse(&line).unwrap().kind, Kind::Request, "{id}");
        }
    }

    #[test]
    fn splice_replaces_id_and_restores_it() {
        let line = br#"{"result":{"x":"id"},"jsonrpc":"2.0","id":"client-7"}"#;
        let m = Message::parse(line).unwrap();
        let span = m.id_span().unwrap();
        let mut out = Vec::new();
        splice(&mut out, line, &[(span.clone(), b"42")]);
        assert_eq!(
            out,
            b"{\"result\":{\"x\":\"id\"},\"jsonrpc\":\"2.0\",\"id\":42}\n"
        );
        let back = Message::parse(&out[..out.len() - 1]).unwrap();
        let mut restored = Vec::new();
        splice(
            &mut restored,
            back.line,
            &[(back.id_span().unwrap(), b"\"client-7\"")],
        );
        assert_eq!(&restored[..restored.len() - 1], &line[..]);
    }

    #[test]
    fn splice_ignores_out_of_order_edits() {
        let mut out = Vec::new();
        splice(
            &mut out,
            b"abcdef",
            &[(3..4, b"X"), (1..2, b"Y"), (5..9, b"Z")],
        );
        assert_eq!(out, b"abcXef\n");
    }

    #[test]
    fn writers_produce_parseable_lines() {
        let mut out = Vec::new();
        write_error(&mut out, b"null", PARSE_ERROR, "bad \"quote\"\n");
        write_result(&mut out, b"\"a\"", b"{}");
        write_request(&mut out, Some(9), "tools/list", Some(b"{}"));
        write_request(&mut out, None, "notifications/initialized", None);
        let lines: Vec<_> = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 4);
        for l in lines {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap();
            assert_eq!(v["jsonrpc"], "2.0");
        }
    }

    #[test]
    fn excerpt_shortens_long_lines() {
        let long = vec![b'a'; 1000];
        let e = excerpt(&long);
        assert!(e.len() < 300 && e.contains("1000 bytes"));
        assert_eq!(excerpt(b"short"), "short");
    }
}
