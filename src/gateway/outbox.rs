//! Output queues: the bytes the gateway has decided to send, which the runtime writes as
//! the pipes accept them.

use crate::wire::message;
use std::io::IoSlice;
use std::ops::Range;
use std::os::fd::{BorrowedFd, RawFd};

/// A queue of bytes for one destination, written from the front as the peer accepts them.
#[derive(Debug, Default)]
pub struct OutBuf {
    data: Vec<u8>,
    pos: usize,
    /// Bytes written so far, ever: a peer that takes none for a while is stalled.
    written: u64,
    /// Drains in a row that used less than half the capacity (see [`OutBuf::clear`]).
    small_drains: u8,
    /// While armed (see [`OutBuf::arm`]): the destination, written to at once while
    /// nothing waits here.
    direct: Option<RawFd>,
    /// Whether a write to `direct` found it full.
    blocked: bool,
}

/// Most pieces a spliced line is written in at once (its edits and the text between).
const DIRECT_PIECES: usize = 12;

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

    /// Lets [`OutBuf::splice`] write to `fd` at once while nothing waits in the queue, so a
    /// forwarded message is not copied into the queue first (only what `fd` does not take
    /// is). The runtime arms a queue around handing a read's lines to the gateway, while it
    /// knows the destination is writable.
    ///
    /// # Safety
    ///
    /// `fd` must be this queue's destination and stay open until [`OutBuf::disarm`].
    pub unsafe fn arm(&mut self, fd: RawFd) {
        self.direct = Some(fd);
        self.blocked = false;
    }

    /// Ends what [`OutBuf::arm`] began. Returns whether a write found the destination full,
    /// so the runtime waits for it to be writable again.
    pub fn disarm(&mut self) -> bool {
        self.direct = None;
        std::mem::take(&mut self.blocked)
    }

    /// Appends `line` with `edits` applied and a newline, as [`message::splice`] does. While
    /// armed with nothing waiting, the pieces are written to the destination with one
    /// `writev`, and only what it did not take is queued; a write that fails for any reason
    /// queues everything, and the runtime's own write meets the error.
    pub fn splice(&mut self, line: &[u8], edits: &[(Range<usize>, &[u8])]) {
        let Some(fd) = self.direct.filter(|_| self.is_empty() && !self.blocked) else {
            return message::splice(&mut self.data, line, edits);
        };
        let mut pieces = [IoSlice::new(&[]); DIRECT_PIECES];
        let mut n = 0;
        let mut at = 0;
        for (range, replacement) in edits {
            // The same edits message::splice skips.
            if range.start < at || range.end < range.start || range.end > line.len() {
                continue;
            }
            if n + 2 > DIRECT_PIECES - 2 {
                return message::splice(&mut self.data, line, edits);
            }
            pieces[n] = IoSlice::new(&line[at..range.start]);
            pieces[n + 1] = IoSlice::new(replacement);
            n += 2;
            at = range.end;
        }
        pieces[n] = IoSlice::new(&line[at..]);
        pieces[n + 1] = IoSlice::new(b"\n");
        n += 2;
        let pieces = &pieces[..n];
        // SAFETY: `arm`'s contract keeps `fd` open while it is set.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let mut taken = match nix::sys::uio::writev(fd, pieces) {
            Ok(taken) => taken,
            Err(e) => {
                self.blocked = e == nix::errno::Errno::EAGAIN;
                0
            }
        };
        self.written = self.written.wrapping_add(taken as u64);
        let wrote = taken > 0;
        for piece in pieces {
            let skip = taken.min(piece.len());
            taken -= skip;
            self.data.extend_from_slice(&piece[skip..]);
        }
        // A short write means the destination is full.
        self.blocked |= wrote && !self.is_empty();
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
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::os::fd::{AsFd, AsRawFd};

    #[test]
    fn an_armed_queue_writes_through_and_keeps_only_what_the_pipe_did_not_take() {
        let (rx, tx) = nix::unistd::pipe().unwrap();
        fcntl(tx.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
        let mut q = OutBuf::default();
        // SAFETY: `tx` outlives the queue's use of it (disarmed below).
        unsafe { q.arm(tx.as_raw_fd()) };
        let line = br#"{"jsonrpc":"2.0","id":"abc","result":{}}"#;
        q.splice(line, &[(22..27, b"7")]);
        assert!(q.is_empty(), "written through");
        assert_eq!(q.written(), 37);
        let mut got = [0u8; 64];
        let n = nix::unistd::read(rx.as_fd(), &mut got).unwrap();
        assert_eq!(&got[..n], b"{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n");
        // More than the pipe holds: the rest waits, and so does everything after it.
        let big = vec![b'x'; 100 * 1024];
        q.splice(&big, &[]);
        assert!(!q.is_empty() && q.len() < big.len() + 1);
        let first = big.len() + 1 - q.len();
        q.splice(b"next", &[]);
        assert_eq!(
            &q.pending()[q.len() - 5..],
            b"next\n",
            "queued behind, in order"
        );
        assert!(q.disarm(), "the pipe was found full");
        assert!(!q.disarm());
        // Disarmed, a splice only queues.
        let mut drained = vec![0u8; 128 * 1024];
        let n = nix::unistd::read(rx.as_fd(), &mut drained).unwrap();
        assert_eq!(n, first);
        let before = q.len();
        q.splice(b"later", &[]);
        assert_eq!(q.len(), before + 6);
        assert_eq!(q.written(), 37 + first as u64);
    }

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
