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
