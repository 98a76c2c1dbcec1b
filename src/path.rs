//! `--path`: where does the SYN die? Probes hop by hop as TCP traceroute does: the same kind of
//! non-blocking connect() with `IP_TTL`/`IPV6_UNICAST_HOPS` = 1, 2, 3 ... Each router whose hop
//! count runs out answers ICMP time exceeded; with `IP_RECVERR` Linux fails the probe and its error
//! queue names that router (`SO_EE_OFFENDER`), so no capture privilege is needed.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno as NixErrno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};

use crate::event::KernelObservation;
use crate::timeline::{HopAnswer, PathHop, PathReport};

/// How many hops at most: traceroute's default (`-m 30`). Paths across the Internet are often
/// longer than 16 hops.
pub const MAX_HOPS: u8 = 30;
/// How long each probe waits for an answer.
const PROBE_WAIT: Duration = Duration::from_millis(1500);
/// Consecutive silent hops after which probing stops.
const SILENT_HOPS: usize = 3;

/// Probes the path to `server` from `source`, one hop more each time, until the server or an
/// unreachable answers, `SILENT_HOPS` hops in a row say nothing, or the hops go round a routing
/// loop (its routers would only repeat, and their ICMP rate limits, `icmp_ratelimit`, would soon
/// leave probes unanswered).
pub fn probe(server: SocketAddr, source: Option<IpAddr>) -> anyhow::Result<PathReport> {
    let mut hops = Vec::new();
    let mut routing_loop = None;
    for ttl in 1..=MAX_HOPS {
        let hop = probe_hop(server, source, ttl)?;
        let last = !matches!(hop.answer, HopAnswer::TimeExceeded { .. } | HopAnswer::NoAnswer);
        hops.push(hop);
        let silent = hops.iter().rev().take_while(|h| h.answer == HopAnswer::NoAnswer).count();
        routing_loop = crate::timeline::routing_loop(&hops);
        if last || silent >= SILENT_HOPS || routing_loop.is_some() {
            break;
        }
    }
    let verdict = crate::timeline::path_verdict(&hops, routing_loop.as_ref(), server.ip());
    Ok(PathReport { hops, routing_loop, verdict })
}

fn probe_hop(server: SocketAddr, source: Option<IpAddr>, ttl: u8) -> anyhow::Result<PathHop> {
    let family = if server.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)?;
    let hops = nix::libc::c_int::from(ttl);
    match family {
        AddressFamily::Inet => {
            socket::setsockopt(&fd, sockopt::Ipv4Ttl, &hops)?;
            socket::setsockopt(&fd, sockopt::Ipv4RecvErr, &true)?;
        }
        _ => {
            socket::setsockopt(&fd, sockopt::Ipv6Ttl, &hops)?;
            socket::setsockopt(&fd, sockopt::Ipv6RecvErr, &true)?;
        }
    }
    if let Some(src) = source {
        socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(SocketAddr::new(src, 0)))?;
    }
    let start = Instant::now();
    let answer = match socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(server)) {
        Ok(()) => HopAnswer::Server,
        Err(NixErrno::EINPROGRESS) => wait_for_answer(&fd),
        Err(e) => HopAnswer::LocalError { error: e.desc().to_string() },
    };
    let rtt_ms = (!matches!(answer, HopAnswer::NoAnswer)).then(|| start.elapsed().as_secs_f64() * 1e3);
    Ok(PathHop { ttl, answer, rtt_ms: rtt_ms.map(|r| (r * 1000.0).round() / 1000.0) })
}

/// Waits for the probe's fate: the error queue's ICMP (who and what), or the server's answer.
fn wait_for_answer(fd: &OwnedFd) -> HopAnswer {
    let deadline = Instant::now() + PROBE_WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
        let ready = poll(&mut fds, PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO)).unwrap_or(0);
        if ready == 0 {
            return HopAnswer::NoAnswer;
        }
        if let Some(answer) = error_queue_answer(fd) {
            return answer;
        }
        match socket::getsockopt(fd, sockopt::SocketError) {
            Ok(0) if socket::getpeername::<SockaddrStorage>(fd.as_raw_fd()).is_ok() => return HopAnswer::Server,
            Ok(n) if n == NixErrno::ECONNREFUSED as i32 => return HopAnswer::Refused,
            Ok(0) => {}
            Ok(n) => return HopAnswer::LocalError { error: NixErrno::from_raw(n).desc().to_string() },
            Err(e) => return HopAnswer::LocalError { error: e.desc().to_string() },
        }
        if left.is_zero() {
            return HopAnswer::NoAnswer;
        }
    }
}

/// The first ICMP error on the socket's error queue, as the kernel recorded it.
fn error_queue_answer(fd: &OwnedFd) -> Option<HopAnswer> {
    crate::connect::read_error_queue(fd).into_iter().find_map(|entry| match entry {
        KernelObservation::ErrorQueue { origin, icmp_type, code, offender: Some(from), .. } => {
            // ICMP time exceeded is type 11, ICMPv6 type 3 (ee_origin 2 and 3).
            let time_exceeded = (origin == 2 && icmp_type == 11) || (origin == 3 && icmp_type == 3);
            Some(if time_exceeded {
                HopAnswer::TimeExceeded { from }
            } else {
                HopAnswer::Unreachable { from, icmp_type, code }
            })
        }
        _ => None,
    })
}
