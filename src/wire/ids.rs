//! The id-rewriting table.
//!
//! Every request gangway sends to a peer carries a gangway-allocated numeric id, so that
//! requests from many origins (the client, several backends, gangway itself) never collide
//! on one connection. The table maps that id back to who asked and the exact bytes of the
//! id they used, so the answer can be returned to them byte for byte. A reverse index finds
//! an entry from the origin's own id, which `notifications/cancelled` needs.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A hasher for gateway ids: gangway hands them out in sequence, so no client chooses
/// them and a multiply spreads them well; SipHash's keyed mixing (which `by_origin`
/// keeps, since clients choose those keys) is not needed here.
#[derive(Default)]
pub struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Who sent a request that gangway forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A client session of the gateway (by its number).
    Session(u32),
    /// The backend with this index.
    Backend(usize),
}

/// The raw JSON text of an id as its origin wrote it. Short ids (almost all of them) are
/// stored inline so tracking a request does not allocate.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum RawId {
    /// Up to 22 bytes, stored inline; the `u8` is the length.
    Inline([u8; 22], u8),
    /// Longer ids.
    Heap(Box<[u8]>),
}

impl RawId {
    /// Copies `raw` (the id's JSON text).
    pub fn new(raw: &[u8]) -> RawId {
        if raw.len() <= 22 {
            let mut buf = [0u8; 22];
            buf[..raw.len()].copy_from_slice(raw);
            RawId::Inline(buf, raw.len() as u8)
        } else {
            RawId::Heap(raw.into())
        }
    }

    /// The id's JSON text, exactly as the origin wrote it.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            RawId::Inline(buf, len) => &buf[..usize::from(*len)],
            RawId::Heap(b) => b,
        }
    }
}

impl std::fmt::Debug for RawId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// One tracked request: its origin (if it came from a peer) and the caller's data.
#[derive(Debug)]
pub struct Entry<T> {
    /// Who asked, and the id they used; `None` for gangway's own requests.
    pub origin: Option<(Peer, RawId)>,
    /// What the caller needs to finish the request.
    pub data: T,
}

/// The origin already has a request in flight with that id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateId;

/// Gateway id -> (origin, original id, data), with a reverse index by origin id.
#[derive(Debug)]
pub struct IdTable<T> {
    next: u64,
    entries: HashMap<u64, Entry<T>, BuildHasherDefault<SeqHasher>>,
    by_origin: HashMap<(Peer, RawId), u64>,
}

impl<T> Default for IdTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> IdTable<T> {
    /// An empty table; the first id handed out is 1.
    pub fn new() -> Self {
        IdTable {
            next: 1,
            entries: HashMap::default(),
            by_origin: HashMap::new(),
        }
    }

    /// Tracks a new request and returns its gateway id (never reused while the process
    /// lives). Fails when `origin` already has a request in flight with the same id: a
    /// second request under one id would make both answers ambiguous.
    pub fn insert(&mut self, origin: Option<(Peer, &[u8])>, data: T) -> Result<u64, DuplicateId> {
        let origin = origin.map(|(peer, raw)| (peer, RawId::new(raw)));
        if let Some(key) = &origin {
            if self.by_origin.contains_key(key) {
                return Err(DuplicateId);
            }
        }
        let id = self.next;
        self.next += 1;
        if let Some(key) = &origin {
            self.by_origin.insert(key.clone(), id);
        }
        self.entries.insert(id, Entry { origin, data });
        Ok(id)
    }

    /// The entry for a gateway id.
    pub fn get(&self, id: u64) -> Option<&Entry<T>> {
        self.entries.get(&id)
    }

    /// The entry for a gateway id, mutably.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Entry<T>> {
        self.entries.get_mut(&id)
    }

    /// Stops tracking a gateway id and returns its entry.
    pub fn remove(&mut self, id: u64) -> Option<Entry<T>> {
        let entry = self.entries.remove(&id)?;
        if let Some(key) = &entry.origin {
            self.by_origin.remove(key);
        }
        Some(entry)
    }

    /// Gives tracked request `id` a new origin (its client will know it by another id from
    /// now on). Fails, changing nothing, when that origin already has a request in flight
    /// with that id, or `id` is not tracked.
    pub fn rekey(&mut self, id: u64, origin: (Peer, &[u8])) -> Result<(), DuplicateId> {
        let key = (origin.0, RawId::new(origin.1));
        if self.by_origin.contains_key(&key) || !self.entries.contains_key(&id) {
            return Err(DuplicateId);
        }
        let Some(entry) = self.entries.get_mut(&id) else {
            return Err(DuplicateId);
        };
        if let Some(old) = entry.origin.take() {
            self.by_origin.remove(&old);
        }
        self.by_origin.insert(key.clone(), id);
        entry.origin = Some(key);
        Ok(())
    }

    /// The gateway id of the request `peer` sent with id `raw`, if it is still tracked.
    pub fn find(&self, peer: Peer, raw: &[u8]) -> Option<u64> {
        self.by_origin.get(&(peer, RawId::new(raw))).copied()
    }

    /// The gateway ids whose entries satisfy `pred`, for sweeping (a backend exited).
    pub fn ids_where(&self, mut pred: impl FnMut(&Entry<T>) -> bool) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| pred(e))
            .map(|(id, _)| *id)
            .collect();
        // Oldest first, so answers to a sweep go out in the order the requests came in.
        ids.sort_unstable();
        ids
    }

    /// How many requests are tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A gateway id as the decimal text written on the wire, formatted on the stack so that
/// forwarding a message does not allocate.
#[derive(Clone, Copy)]
pub struct IdText {
    buf: [u8; 20],
    start: u8,
}

impl IdText {
    /// The decimal text of `id`.
    pub fn new(mut id: u64) -> IdText {
        let mut buf = [0u8; 20];
        let mut at = buf.len();
        loop {
            at -= 1;
            buf[at] = b'0' + (id % 10) as u8;
            id /= 10;
            if id == 0 {
                break;
            }
        }
        IdText {
            buf,
            start: at as u8,
        }
    }

    /// The digits.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[usize::from(self.start)..]
    }
}

/// Reads a gateway id back from the raw id of a response (gangway writes its ids as
/// plain decimal integers, and peers echo ids verbatim).
pub fn parse_gateway_id(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || raw.len() > 20 || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rekeyed_request_is_found_by_its_new_origin_only() {
        let mut t: IdTable<()> = IdTable::new();
        let a = t.insert(Some((Peer::Session(0), b"1")), ()).unwrap();
        let b = t.insert(Some((Peer::Session(0), b"2")), ()).unwrap();
        assert_eq!(t.rekey(a, (Peer::Session(0), b"2")), Err(DuplicateId));
        assert_eq!(
            t.find(Peer::Session(0), b"1"),
            Some(a),
            "unchanged on failure"
        );
        t.rekey(a, (Peer::Session(0), b"3")).unwrap();
        assert_eq!(t.find(Peer::Session(0), b"1"), None);
        assert_eq!(t.find(Peer::Session(0), b"3"), Some(a));
        assert_eq!(t.find(Peer::Session(0), b"2"), Some(b));
        assert_eq!(t.rekey(99, (Peer::Session(0), b"4")), Err(DuplicateId));
        t.remove(a);
        assert_eq!(t.find(Peer::Session(0), b"3"), None);
    }

    #[test]
    fn maps_back_to_origin_bytes() {
        let mut t = IdTable::new();
        let a = t.insert(Some((Peer::Session(0), b"\"abc\"")), 'a').unwrap();
        let b = t.insert(Some((Peer::Session(0), b"1")), 'b').unwrap();
        let c = t.insert(None, 'c').unwrap();
        assert!(a != b && b != c && a != c);
        assert_eq!(t.find(Peer::Session(0), b"\"abc\""), Some(a));
        assert_eq!(
            t.find(Peer::Session(0), b"abc"),
            None,
            "string and bare text differ"
        );
        let e = t.remove(a).unwrap();
        assert_eq!(e.origin.unwrap().1.as_bytes(), b"\"abc\"");
        assert_eq!(t.find(Peer::Session(0), b"\"abc\""), None);
        assert_eq!(t.get(b).unwrap().data, 'b');
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn same_raw_id_from_two_backends_does_not_collide() {
        let mut t = IdTable::new();
        let x = t.insert(Some((Peer::Backend(0), b"0")), 1).unwrap();
        let y = t.insert(Some((Peer::Backend(1), b"0")), 2).unwrap();
        assert_ne!(x, y);
        assert_eq!(t.find(Peer::Backend(1), b"0"), Some(y));
        assert_eq!(
            t.insert(Some((Peer::Backend(1), b"0")), 3),
            Err(DuplicateId)
        );
        t.remove(y);
        assert!(t.insert(Some((Peer::Backend(1), b"0")), 3).is_ok());
    }

    #[test]
    fn long_ids_are_kept_whole() {
        let long = vec![b'7'; 100];
        let mut t = IdTable::new();
        let id = t.insert(Some((Peer::Session(0), &long)), ()).unwrap();
        assert_eq!(
            t.get(id).unwrap().origin.as_ref().unwrap().1.as_bytes(),
            &long[..]
        );
    }

    #[test]
    fn id_text_matches_decimal_formatting_and_parses_back() {
        for id in [0, 1, 9, 10, 4_294_967_296, u64::MAX] {
            let text = IdText::new(id);
            assert_eq!(text.as_bytes(), id.to_string().as_bytes());
            assert_eq!(parse_gateway_id(text.as_bytes()), Some(id));
        }
    }

    #[test]
    fn parses_only_plain_integers() {
        assert_eq!(parse_gateway_id(b"42"), Some(42));
        assert_eq!(parse_gateway_id(b"\"42\""), None);
        assert_eq!(parse_gateway_id(b"-1"), None);
        assert_eq!(parse_gateway_id(b"99999999999999999999999"), None);
        assert_eq!(parse_gateway_id(b""), None);
    }

    #[test]
    fn sweep_lists_oldest_first() {
        let mut t = IdTable::new();
        for i in 0..10 {
            t.insert(None, i % 2).unwrap();
        }
        let odd = t.ids_where(|e| e.data == 1);
        assert_eq!(odd, vec![2, 4, 6, 8, 10]);
    }
}
