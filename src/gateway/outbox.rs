//! Output queues: the bytes the gateway has decided to send, which the runtime writes as
//! the pipes accept them.

/// A queue of bytes for one destination, written from the front as the peer accepts them.
#[derive(Debug, Default)]
pub struct OutBuf {
    data: Vec<u8>,
    pos: usize,
    /// Bytes written so far, ever: a peer that takes none for a while is stalled.
    written: u64,
}

/// Capacity kept when a drained queue had grown large, so one burst (a 16 MiB message)
/// does not pin its memory forever.
const KEEP_CAPACITY: usize = 64 * 1024;

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
            self.clear();
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

    /// Drops everything pending (the peer is gone).
    pub fn clear(&mut self) {
        self.data.clear();
        self.pos = 0;
        if self.data.capacity() > KEEP_CAPACITY {
            self.data.shrink_to(KEEP_CAPACITY);
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
        assert!(q.data.capacity() <= KEEP_CAPACITY);
    }
}
