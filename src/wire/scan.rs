//! One validating pass over a JSON-RPC line that finds its top-level members without
//! building anything: the fast path of [`super::message::Message::parse`].
//!
//! It accepts exactly what `serde_json::from_slice` accepts for a struct of the members
//! [`Top`] names (each captured raw, unknown members ignored), with one difference kept on
//! the safe side: some rare lines serde_json accepts are refused here (a key written with
//! escapes, a member named twice), and the caller then asks serde_json, which decides.
//! Whatever this accepts, serde_json accepts too, with the same members; the `message`
//! fuzz target checks both directions of that claim on every input it tries.
//!
//! Strings are skipped 64 bytes at a time (a fixed-size block test the compiler turns
//! into vector instructions), so a long string costs about what `memchr` would.

/// The members of a JSON-RPC message, each the raw JSON text of its value (a sub-slice
/// of the line); an explicit `null` is present (`Some("null")`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Top<'a> {
    /// `jsonrpc`.
    pub jsonrpc: Option<&'a str>,
    /// `id`.
    pub id: Option<&'a str>,
    /// `method`.
    pub method: Option<&'a str>,
    /// `params`.
    pub params: Option<&'a str>,
    /// `result`.
    pub result: Option<&'a str>,
    /// `error`.
    pub error: Option<&'a str>,
    /// The members of `params` the gateway routes by, read in the same pass; `None` when
    /// `params` is not an object, or is one this pass cannot read exactly (a key with
    /// escapes, a member named twice: then serde_json reads `params`).
    pub params_members: Option<Params<'a>>,
    /// The members of `result` the gateway reads, in the same pass; `None` when `result`
    /// is not an object, or one this pass cannot read exactly (as for `params_members`).
    pub result_members: Option<ResultMembers<'a>>,
}

/// The members of a result that the gateway reads, raw, each `None` when absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResultMembers<'a> {
    /// `isError` (of a tool result).
    pub is_error: Option<&'a str>,
    /// `_meta` (a related task, for one).
    pub meta: Option<&'a str>,
    /// `resultType` (a 2026-07-28 result).
    pub result_type: Option<&'a str>,
}

/// The members of a request's `params` that routing reads, raw, each `None` when absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Params<'a> {
    /// `name` (of a tool or prompt).
    pub name: Option<&'a str>,
    /// `arguments`.
    pub arguments: Option<&'a str>,
    /// `_meta` (the progress token and friends).
    pub meta: Option<&'a str>,
    /// `task` (task augmentation).
    pub task: Option<&'a str>,
    /// `requestState` (a revision 2026-07-28 retry).
    pub request_state: Option<&'a str>,
}

/// The keys of [`Params`], in its order.
const PARAMS_KEYS: [&[u8]; 5] = [b"name", b"arguments", b"_meta", b"task", b"requestState"];

/// The keys of [`ResultMembers`], in its order.
const RESULT_KEYS: [&[u8]; 3] = [b"isError", b"_meta", b"resultType"];

/// Nesting deeper than this is refused (serde_json refuses its own structures at 128
/// levels; ignored values have no limit there, but this scanner keeps one so its stack
/// stays small; a refusal here only sends the line to serde_json).
const MAX_DEPTH: usize = 1024;

/// Why [`top`] did not accept a line. Not an answer to give: the caller asks serde_json.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// Scans `line` (one JSON value, whitespace around it allowed): the members of the top
/// object, or `Refused` for anything that is not an object serde_json would take as is.
///
/// # Errors
///
/// `Refused` for invalid JSON, a value that is not an object, a member of [`Top`] named
/// twice, a key with escapes, nesting deeper than 1024, or a captured member that is not
/// UTF-8.
pub fn top(line: &[u8]) -> Result<Top<'_>, Refused> {
    let mut s = Scanner::new(line);
    let mut top = Top::default();
    let mut seen = 0u8;
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            s.eat(b'"')?;
            let start = s.i;
            let end = s.string_end(false)?;
            let key = &line[start..end];
            // serde_json reads every key as a string: it must be UTF-8.
            std::str::from_utf8(key).map_err(|_| Refused)?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            let (bit, slot) = match key {
                b"jsonrpc" => (1, Some(&mut top.jsonrpc)),
                b"id" => (2, Some(&mut top.id)),
                b"method" => (4, Some(&mut top.method)),
                b"params" => (8, Some(&mut top.params)),
                b"result" => (16, Some(&mut top.result)),
                b"error" => (32, Some(&mut top.error)),
                _ => (0, None),
            };
            let from = s.i;
            s.high = 0;
            let mut params = None;
            let mut result = None;
            match (bit, s.peek()) {
                (8, Some(b'{')) => {
                    let mut found = [None; PARAMS_KEYS.len()];
                    if s.object_members(&PARAMS_KEYS, &mut found)? {
                        params = Some(found);
                    }
                }
                (16, Some(b'{')) => {
                    let mut found = [None; RESULT_KEYS.len()];
                    if s.object_members(&RESULT_KEYS, &mut found)? {
                        result = Some(found);
                    }
                }
                _ => s.value()?,
            }
            if let Some(slot) = slot {
                if seen & bit != 0 {
                    return Err(Refused);
                }
                seen |= bit;
                let raw = s.text_since(from)?;
                *slot = Some(raw);
                if let Some(found) = params {
                    let [name, arguments, meta, task, request_state] = within(raw, from, found);
                    top.params_members = Some(Params {
                        name,
                        arguments,
                        meta,
                        task,
                        request_state,
                    });
                }
                if let Some(found) = result {
                    let [is_error, meta, result_type] = within(raw, from, found);
                    top.result_members = Some(ResultMembers {
                        is_error,
                        meta,
                        result_type,
                    });
                }
            }
            s.ws();
            match s.next() {
                Some(b',') => s.ws(),
                Some(b'}') => break,
                _ => return Err(Refused),
            }
        }
    }
    s.ws();
    if s.i == line.len() {
        Ok(top)
    } else {
        Err(Refused)
    }
}

/// The raw values of `keys` in `object` (JSON text that must be one object, whitespace
/// around it allowed), validated in the same pass as the rest of it; `None` when it is not
/// one valid object, or names a key of `keys` twice, or has a key with escapes (whose
/// meaning serde_json would have to read).
pub fn members<'a, const N: usize>(
    object: &'a str,
    keys: &[&[u8]; N],
) -> Option<[Option<&'a str>; N]> {
    let mut s = Scanner::new(object.as_bytes());
    s.ws();
    let mut found = [None; N];
    let exact = s.object_members(keys, &mut found).ok()?;
    s.ws();
    (exact && s.i == object.len()).then(|| within(object, 0, found))
}

/// The text of each span in `found` (offsets in the line) inside `raw`, which starts at
/// offset `from` of the line. Spans begin and end at JSON punctuation, so they are on
/// character boundaries; one that is not is left out.
fn within<const N: usize>(
    raw: &str,
    from: usize,
    found: [Option<(usize, usize)>; N],
) -> [Option<&str>; N] {
    found.map(|span| span.and_then(|(a, b)| raw.get(a.checked_sub(from)?..b.checked_sub(from)?)))
}

/// Whether `text` is exactly one JSON value (whitespace around it allowed) by the rules
/// serde_json applies to a value it skips. For tests and the fuzz target.
pub fn is_value(text: &[u8]) -> bool {
    let mut s = Scanner::new(text);
    s.ws();
    s.value().is_ok() && {
        s.ws();
        s.i == text.len()
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    /// Every string byte passed over, or-ed: bit 7 clear means all of them were ASCII.
    /// Every other byte the scanner accepts is a specific ASCII byte, so a span scanned
    /// with bit 7 clear is ASCII throughout.
    high: u8,
}

impl<'a> Scanner<'a> {
    fn new(b: &'a [u8]) -> Self {
        Scanner { b, i: 0, high: 0 }
    }

    /// The text of `self.b[from..self.i]`, a span scanned since `self.high` was cleared:
    /// checked as UTF-8 only if it holds bytes that are not ASCII.
    fn text_since(&self, from: usize) -> Result<&'a str, Refused> {
        let bytes = &self.b[from..self.i];
        if self.high & 0x80 != 0 {
            return std::str::from_utf8(bytes).map_err(|_| Refused);
        }
        debug_assert!(bytes.is_ascii());
        // SAFETY: bit 7 of `high` is clear, so every string byte in the span was ASCII
        // (see `high`), and every other byte the scanner accepted is ASCII punctuation, a
        // literal or a digit: the span is ASCII, hence UTF-8. The fuzz target (built with
        // debug assertions) checks the assertion above on every input it tries.
        Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.i += 1;
        c
    }

    fn eat(&mut self, want: u8) -> Result<(), Refused> {
        if self.next() == Some(want) {
            Ok(())
        } else {
            Err(Refused)
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// After an opening quote: skips the string and returns where its closing quote
    /// is (the scanner is then past it). Escapes are checked as serde_json checks a
    /// string it skips (`\u` takes any four hex digits); `escapes` false refuses any.
    fn string_end(&mut self, escapes: bool) -> Result<usize, Refused> {
        loop {
            self.i = special(self.b, self.i, &mut self.high);
            match self.next() {
                Some(b'"') => return Ok(self.i - 1),
                Some(b'\\') if escapes => match self.next() {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {}
                    Some(b'u') => {
                        let hex = self.b.get(self.i..self.i + 4).ok_or(Refused)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return Err(Refused);
                        }
                        self.i += 4;
                    }
                    _ => return Err(Refused),
                },
                // A control character, a refused escape, or the end of the line.
                _ => return Err(Refused),
            }
        }
    }

    /// Skips one value (whitespace before it already skipped), iteratively: a stack of
    /// one bit per open container says whether it is an object.
    fn value(&mut self) -> Result<(), Refused> {
        let mut stack: Vec<bool> = Vec::new();
        loop {
            // A value.
            match self.next() {
                Some(b'"') => {
                    self.string_end(true)?;
                }
                Some(b'{') => {
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                    } else {
                        if stack.len() >= MAX_DEPTH {
                            return Err(Refused);
                        }
                        stack.push(true);
                        self.member_key()?;
                        continue;
                    }
                }
                Some(b'[') => {
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                    } else {
                        if stack.len() >= MAX_DEPTH {
                            return Err(Refused);
                        }
                        stack.push(false);
                        continue;
                    }
                }
                Some(b't') => self.literal(b"rue")?,
                Some(b'f') => self.literal(b"alse")?,
                Some(b'n') => self.literal(b"ull")?,
                Some(b'-') => self.number()?,
                Some(b'0'..=b'9') => {
                    self.i -= 1;
                    self.number()?;
                }
                _ => return Err(Refused),
            }
            // After a value: close containers, or go on to the next element.
            loop {
                let Some(&object) = stack.last() else {
                    return Ok(());
                };
                self.ws();
                match (self.next(), object) {
                    (Some(b','), true) => {
                        self.ws();
                        self.member_key()?;
                        break;
                    }
                    (Some(b','), false) => {
                        self.ws();
                        break;
                    }
                    (Some(b'}'), true) | (Some(b']'), false) => {
                        stack.pop();
                    }
                    _ => return Err(Refused),
                }
            }
        }
    }

    /// Walks the object at the scanner (validating all of it) and puts where the value of
    /// each member named in `keys` lies (start, end) in the same place of `found`. Returns
    /// whether that reading is exact: no key with escapes, no key of `keys` twice (else
    /// the caller asks serde_json).
    fn object_members<const N: usize>(
        &mut self,
        keys: &[&[u8]; N],
        found: &mut [Option<(usize, usize)>; N],
    ) -> Result<bool, Refused> {
        let mut exact = true;
        self.eat(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(true);
        }
        loop {
            self.eat(b'"')?;
            let start = self.i;
            let end = self.string_end(true)?;
            let key = &self.b[start..end];
            exact &= !key.contains(&b'\\');
            self.ws();
            self.eat(b':')?;
            self.ws();
            let from = self.i;
            self.value()?;
            if let Some(k) = keys.iter().position(|k| *k == key) {
                exact &= found[k].is_none();
                found[k] = Some((from, self.i));
            }
            self.ws();
            match self.next() {
                Some(b',') => self.ws(),
                Some(b'}') => return Ok(exact),
                _ => return Err(Refused),
            }
        }
    }

    /// A key and its colon inside a skipped object, leaving the scanner at the value.
    fn member_key(&mut self) -> Result<(), Refused> {
        self.eat(b'"')?;
        self.string_end(true)?;
        self.ws();
        self.eat(b':')?;
        self.ws();
        Ok(())
    }

    fn literal(&mut self, rest: &[u8]) -> Result<(), Refused> {
        if self.b.get(self.i..self.i + rest.len()) == Some(rest) {
            self.i += rest.len();
            Ok(())
        } else {
            Err(Refused)
        }
    }

    /// A number after its sign: `0` or a digit run not starting with 0, then an
    /// optional fraction and exponent, each with at least one digit.
    fn number(&mut self) -> Result<(), Refused> {
        match self.next() {
            Some(b'0') => {
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(Refused);
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Refused),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(Refused);
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(Refused);
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }
}

/// The index of the first byte at or after `from` that ends a plain run inside a string
/// (a quote, a backslash or a control character), or `b.len()`.
/// `high` is or-ed with every byte passed over, so bit 7 says whether any was not ASCII.
fn special(b: &[u8], from: usize, high: &mut u8) -> usize {
    let mut i = from;
    // Most strings (keys, names, ids) end within the first block: tested here, inline.
    if let Some(block) = b.get(i..i + BLOCK) {
        let (hit, any) = block_test(block);
        if hit {
            return plain_run_end(b, i, high);
        }
        *high |= any;
        i += BLOCK;
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, the only thing `blocks_avx2` requires.
            i = unsafe { blocks_avx2(b, i, high) };
            return plain_run_end(b, i, high);
        }
    }
    i = blocks(b, i, high);
    plain_run_end(b, i, high)
}

/// Bytes per block test.
const BLOCK: usize = 64;

/// Whether `block` holds a byte that ends a plain run, and all its bytes or-ed. No early
/// exit: one plain fold over a fixed size vectorizes.
#[inline(always)]
fn block_test(block: &[u8]) -> (bool, u8) {
    let (hit, any) = block.iter().fold((0u8, 0u8), |(acc, any), &c| {
        (
            acc | u8::from(c < 0x20) | u8::from(c == b'"') | u8::from(c == b'\\'),
            any | c,
        )
    });
    (hit != 0, any)
}

/// From `i`, skips whole blocks with no byte that ends a plain run; returns where the
/// first block that has one (or the last, partial block) starts.
#[inline(always)]
fn blocks(b: &[u8], mut i: usize, high: &mut u8) -> usize {
    while let Some(block) = b.get(i..i + BLOCK) {
        let (hit, any) = block_test(block);
        if hit {
            break;
        }
        *high |= any;
        i += BLOCK;
    }
    i
}

/// [`blocks`] compiled for AVX2: the block test takes 32 bytes per instruction (about
/// 1.6x the speed of the baseline's 16 on a long string).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn blocks_avx2(b: &[u8], i: usize, high: &mut u8) -> usize {
    blocks(b, i, high)
}

/// From `i`, byte by byte, the first byte that ends a plain run (or `b.len()`).
#[inline(always)]
fn plain_run_end(b: &[u8], mut i: usize, high: &mut u8) -> usize {
    while let Some(&c) = b.get(i) {
        if c < 0x20 || c == b'"' || c == b'\\' {
            return i;
        }
        *high |= c;
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json makes of `line` (the old path of `Message::parse`), in [`Top`]'s
    /// terms.
    fn oracle(line: &[u8]) -> Option<Top<'_>> {
        crate::wire::message::serde_members(line).ok()
    }

    #[test]
    fn agrees_with_serde_json() {
        let long = "x".repeat(100);
        let cases: Vec<String> = vec![
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"t":[1,2.5e-3,-0,true,false,null,"\u00e9\n"]}}}"#.into(),
            r#" { "id" : "x" , "result" : { } , "jsonrpc" : "2.0" } "#.into(),
            format!(r#"{{"jsonrpc":"2.0","id":2,"result":{{"content":[{{"type":"text","text":"{long}"}}]}}}}"#),
            r#"{"a":{"b":[[],{},[{}]]},"id":-12}"#.into(),
            r#"{"id":null,"method":"x"}"#.into(),
            "{}".into(),
            r#"{"id":1,}"#.into(),
            r#"{"id":01}"#.into(),
            r#"{"id":1.}"#.into(),
            r#"{"id":1e}"#.into(),
            r#"{"id":-}"#.into(),
            r#"{"id":"a"} x"#.into(),
            r#"{"id":"a\q"}"#.into(),
            r#"{"x":"\u12G4"}"#.into(),
            "{\"x\":\"tab\there\"}".into(),
            r#"{"x":[1,]}"#.into(),
            r#"{"x":[1 2]}"#.into(),
            r#"{"x":{"a" 1}}"#.into(),
            r#"{"x":{1:2}}"#.into(),
            r#"{"x":tru}"#.into(),
            r#"{"x":"unterminated}"#.into(),
            r#"{"x":[[[["#.into(),
            "[1]".into(),
            "\"text\"".into(),
            "".into(),
        ];
        for case in &cases {
            let ours = top(case.as_bytes()).ok();
            let theirs = oracle(case.as_bytes());
            match ours {
                Some(t) => assert_eq!(Some(t), theirs, "{case}"),
                None => assert!(
                    theirs.is_none() || case.starts_with('['),
                    "refused what serde_json takes: {case}"
                ),
            }
        }
    }

    #[test]
    fn refusals_left_to_serde_json_are_the_rare_ones() {
        // Accepted by serde_json, refused here: the caller asks serde_json.
        assert_eq!(top(br#"{"\u0069d":1}"#), Err(Refused));
        assert_eq!(top(br#"{"id":1,"id":2}"#), Err(Refused));
        assert!(oracle(br#"{"\u0069d":1}"#).is_some());
    }

    #[test]
    fn a_member_that_is_not_utf8_is_refused_as_serde_json_does() {
        let mut line = br#"{"params":"xx"}"#.to_vec();
        line[11] = 0xff;
        assert_eq!(top(&line), Err(Refused));
        assert!(oracle(&line).is_none());
        // An ignored member is not checked by serde_json, nor here.
        let mut line = br#"{"other":"xx"}"#.to_vec();
        line[10] = 0xff;
        assert!(top(&line).is_ok() && oracle(&line).is_some());
    }

    #[test]
    fn long_strings_are_skipped_block_by_block_up_to_the_quote() {
        for n in [0, 1, 31, 32, 33, 64, 1000] {
            let body = "a".repeat(n);
            let line = format!(r#"{{"params":"{body}","id":1}}"#);
            let t = top(line.as_bytes()).expect("valid");
            assert_eq!(t.params, Some(format!("\"{body}\"").as_str()));
            let bad = format!("{{\"params\":\"{body}\u{1}\"}}");
            assert_eq!(
                top(bad.as_bytes()),
                Err(Refused),
                "control character after {n}"
            );
        }
    }

    #[test]
    fn the_avx2_and_baseline_block_skips_agree() {
        // Every stop byte at every offset of a few blocks, with and without a high byte.
        for len in [0, 63, 64, 65, 200] {
            for stop in [None, Some(b'"'), Some(b'\\'), Some(0x1f)] {
                for at in 0..len {
                    let mut text = vec![b'a'; len];
                    text[at / 2] = 0xc3;
                    if let Some(c) = stop {
                        text[at] = c;
                    }
                    let (mut h1, mut h2) = (0, 0);
                    let plain = blocks(&text, 0, &mut h1);
                    #[cfg(target_arch = "x86_64")]
                    if std::is_x86_feature_detected!("avx2") {
                        // SAFETY: checked just above.
                        assert_eq!(unsafe { blocks_avx2(&text, 0, &mut h2) }, plain);
                        assert_eq!(h1 & 0x80, h2 & 0x80);
                    }
                    let end = plain_run_end(&text, plain, &mut h1);
                    assert_eq!(special(&text, 0, &mut h2), end);
                    assert_eq!(end, stop.map_or(len, |_| at));
                    // The high byte counts when it comes before the stop.
                    assert_eq!(h1 & 0x80 != 0, at / 2 < end);
                }
            }
        }
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let deep = format!("{{\"params\":{}{}}}", "[".repeat(2000), "]".repeat(2000));
        assert_eq!(top(deep.as_bytes()), Err(Refused));
        let ok = format!("{{\"params\":{}{}}}", "[".repeat(1000), "]".repeat(1000));
        assert!(top(ok.as_bytes()).is_ok());
        assert!(is_value(b" [1, {\"a\": null}] "));
        assert!(!is_value(b"[1, {\"a\": nul}]"));
    }
}
