//! The few socket options nix does not wrap, as small audited `unsafe` calls.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::libc;

/// `setsockopt(fd, IPPROTO_TCP, TCP_SYNCNT, n)`: SYN retransmits before the connect gives up (tcp(7)).
pub fn set_tcp_syncnt(fd: BorrowedFd<'_>, n: u32) -> nix::Result<()> {
    let value = libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fd` is an open socket for the duration of the borrow; `value` is a live c_int and
    // its exact size is passed, as setsockopt(2) requires.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_SYNCNT,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    Errno::result(rc).map(drop)
}

/// The fields of `struct tcp_info` synscope reports (`getsockopt(TCP_INFO)`, tcp(7)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    /// `tcpi_state`: [`crate::event::TCP_SYN_SENT`] while connecting.
    pub state: u8,
    /// `tcpi_retransmits`: retransmits of the current segment (the SYN).
    pub retransmits: u8,
    /// `tcpi_backoff`: exponential backoffs so far.
    pub backoff: u8,
    /// `tcpi_rto`: the retransmission timeout, in microseconds.
    pub rto_us: u32,
    /// `tcpi_total_retrans`: every retransmit of the connection.
    pub total_retrans: u32,
}

/// `getsockopt(fd, IPPROTO_TCP, TCP_INFO)`.
pub fn tcp_info(fd: BorrowedFd<'_>) -> nix::Result<TcpInfo> {
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a zeroed, writable tcp_info and `len` its size; the kernel writes at most
    // `len` bytes and updates `len`. Zeroed memory is a valid tcp_info (plain integers).
    let rc = unsafe {
        libc::getsockopt(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_INFO, info.as_mut_ptr().cast(), &mut len)
    };
    Errno::result(rc)?;
    // SAFETY: initialised by zeroing, and partly by the kernel.
    let info = unsafe { info.assume_init() };
    Ok(TcpInfo {
        state: info.tcpi_state,
        retransmits: info.tcpi_retransmits,
        backoff: info.tcpi_backoff,
        rto_us: info.tcpi_rto,
        total_retrans: info.tcpi_total_retrans,
    })
}
