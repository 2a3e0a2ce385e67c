//! gangway's own stdin and stdout, made non-blocking and watched by mio when they are
//! pipes or terminals, and used directly when they are regular files (which epoll refuses,
//! and which never block anyway).

use crate::wire::frame::LineFramer;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

/// Makes `fd` non-blocking and registers it; returns the flags to restore at exit, and
/// whether it could be registered (false for regular files and /dev/null).
fn watch(
    fd: BorrowedFd<'_>,
    registry: &Registry,
    token: Token,
    interest: Interest,
) -> io::Result<(Option<OFlag>, bool)> {
    let raw = fd.as_raw_fd();
    let original =
        OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?);
    fcntl(fd, FcntlArg::F_SETFL(original | OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    match registry.register(&mut SourceFd(&raw), token, interest) {
        Ok(()) => Ok((Some(original), true)),
        Err(e) if e.raw_os_error() == Some(nix::libc::EPERM) => {
            // Not pollable: a regular file. Blocking I/O on it is instant, so restore it.
            fcntl(fd, FcntlArg::F_SETFL(original)).map_err(io::Error::from)?;
            Ok((None, false))
        }
        Err(e) => Err(e),
    }
}

fn restore(fd: BorrowedFd<'_>, flags: Option<OFlag>) {
    if let Some(flags) = flags {
        // The file description may be shared with the parent (a terminal): leave it as found.
        let _ = fcntl(fd, FcntlArg::F_SETFL(flags));
    }
}

/// gangway's stdin: where the client's messages come from.
#[derive(Debug)]
pub struct ClientIn {
    /// Whether a read may find data (always true for a file until EOF).
    pub readable: bool,
    /// Whether stdin is watched by epoll (false for a regular file).
    pub pollable: bool,
    /// Whether epoll reported the writer gone: read to EOF then, past short reads.
    pub closed: bool,
    /// Whether stdin is a pipe or a socket, where a short read means it was emptied (a
    /// terminal returns one line per read however much is waiting).
    pub stream: bool,
    open: bool,
    original: Option<OFlag>,
}

impl ClientIn {
    /// Prepares stdin and registers it with `token` when it can be polled.
    pub fn new(registry: &Registry, token: Token) -> io::Result<ClientIn> {
        let (original, pollable) = watch(io::stdin().as_fd(), registry, token, Interest::READABLE)?;
        Ok(ClientIn {
            readable: true,
            pollable,
            closed: false,
            stream: is_pipe_or_socket(io::stdin().as_fd()),
            open: true,
            original,
        })
    }

    /// Reads once into `framer` (Ok(0) at EOF, WouldBlock when drained).
    pub fn read_into(&mut self, framer: &mut LineFramer) -> io::Result<usize> {
        if !self.open {
            return Ok(0);
        }
        framer.read_from(&mut StdinReader)
    }

    /// Stops watching stdin (after EOF).
    pub fn close(&mut self, registry: &Registry) {
        if self.open && self.pollable {
            let _ = registry.deregister(&mut SourceFd(&io::stdin().as_raw_fd()));
        }
        self.open = false;
        self.readable = false;
    }
}

impl Drop for ClientIn {
    fn drop(&mut self) {
        restore(io::stdin().as_fd(), self.original);
    }
}

struct StdinReader;

/// Whether `fd` is a pipe (FIFO) or a socket.
fn is_pipe_or_socket(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use nix::sys::stat::{fstat, SFlag};
    fstat(fd).is_ok_and(|st| {
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        kind == SFlag::S_IFIFO || kind == SFlag::S_IFSOCK
    })
}

impl io::Read for StdinReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        nix::unistd::read(io::stdin().as_fd(), buf).map_err(io::Error::from)
    }
}

/// gangway's stdout: the protocol channel to the client. Nothing else is ever written to it.
#[derive(Debug)]
pub struct ClientOut {
    /// Whether a write may succeed (always true for a file).
    pub writable: bool,
    original: Option<OFlag>,
}

impl ClientOut {
    /// Prepares stdout and registers it with `token` when it can be polled.
    pub fn new(registry: &Registry, token: Token) -> io::Result<ClientOut> {
        let (original, _) = watch(io::stdout().as_fd(), registry, token, Interest::WRITABLE)?;
        Ok(ClientOut {
            writable: true,
            original,
        })
    }
}

impl io::Write for ClientOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        nix::unistd::write(io::stdout().as_fd(), buf).map_err(io::Error::from)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ClientOut {
    fn drop(&mut self) {
        restore(io::stdout().as_fd(), self.original);
    }
}
