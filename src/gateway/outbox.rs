//! Output queues: the bytes the gateway has decided to send, which the runtime writes as
//! the pipes accept them.

/// A queue of bytes for one destination, written from the front as the peer accepts them.
#[derive(Debug, Default)]
pub struct OutBuf {
    data: Vec<u8>,
    pos: usize,
    /// Bytes written so far, ever: a peer that takes none for a while is stalled.
    written: u64,
    /// Drains in a row that used less than half the capacity (see [`OutBuf::clear`]).
    small_drains: u8,
}

/// Capacity a drained queue always may keep.
const KEEP_CAPACITY: usize = 64 * 1024;
/// Capacity a drained queue keeps while its traffic needs it (so a run of 1 MiB messages
/// does not map, fault in and unmap its buffer for each one); more is given back at once,
/// so one burst (a 16 MiB message) does not pin its memory.
const KEEP_BUSY_CAPACITY: usize = 4 * 1024 * 1024;
/// Drains in a row that used less than half the capacity before it shrinks to
/// [`KEEP_CAPACITY`].
const SMALL_DRAINS: u8 = 16;

impl OutBuf {
    /// The bytes not yet written.
    pub fn pending(&self) -> &[u8] {
        &self.data[self.pos..]
    }

    /// How many bytes are not yet written.
    pub fn len(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Whether everything has been written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer to append whole lines to.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// Marks `n` more bytes as written (clamped to what is pending).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.data.len() - self.pos);
        self.written = self.written.wrapping_add(n as u64);
        self.pos += n;
        if self.pos == self.data.len() {
            self.drained();
        } else if self.pos > KEEP_CAPACITY && self.pos * 2 > self.data.len() {
            // Reclaim the written front once it is the larger part, keeping appends amortised.
            self.data.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// How many bytes were written (consumed) since the queue was made; it only grows.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Drops everything pending (the peer is gone), giving back all but
    /// [`KEEP_CAPACITY`].
    pub fn clear(&mut self) {
        self.data.clear();
        self.pos = 0;
        self.small_drains = 0;
        if self.data.capacity() > KEEP_CAPACITY {
            self.data.shrink_to(KEEP_CAPACITY);
        }
    }

    /// Everything was written: the buffer is kept for the next messages while they are
    /// as large (up to [`KEEP_BUSY_CAPACITY`]), and shrunk after a run of small ones.
    fn drained(&mut self) {
        let used = self.data.len();
        self.data.clear();
        self.pos = 0;
        let capacity = self.data.capacity();
        if capacity <= KEEP_CAPACITY {
            return;
        }
        if used * 2 >= capacity {
            self.small_drains = 0;
        } else {
            self.small_drains = self.small_drains.saturating_add(1);
        }
        if capacity > KEEP_BUSY_CAPACITY || self.small_drains >= SMALL_DRAINS {
            self.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumes_from_the_front_and_shrinks_after_a_burst() {
        let mut q = OutBuf::default();
        q.buf().extend_from_slice(b"hello\n");
        q.consume(2);
        assert_eq!(q.pending(), b"llo\n");
        q.consume(100);
        assert!(q.is_empty());
        q.buf().resize(1 << 20, b'x');
        q.consume(1 << 19);
        assert_eq!(q.len(), 1 << 19);
        q.consume(1 << 19);
        // Kept while messages are that large...
        assert!(q.data.capacity() >= 1 << 20);
        // ...and given back after a run of small ones.
        for _ in 0..SMALL_DRAINS {
            q.buf().extend_from_slice(b"small\n");
            q.consume(6);
        }
        assert!(q.data.capacity() <= KEEP_CAPACITY);
        // A burst past the busy bound is given back at once.
        q.buf().resize(KEEP_BUSY_CAPACITY + 1, b'x');
        q.consume(KEEP_BUSY_CAPACITY + 1);
        assert!(q.data.capacity() <= KEEP_CAPACITY);
    }
}
