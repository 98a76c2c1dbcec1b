//! The connect shell: makes one real `connect()` (blocking, or non-blocking with select, poll or
//! epoll) and records every system call with its `CLOCK_REALTIME` time, the clock libpcap stamps
//! packets with.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use anyhow::Context as _;
use nix::errno::Errno as NixErrno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::select::{select, FdSet};
use nix::sys::socket::{
    self, sockopt, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrStorage,
};
use nix::sys::time::TimeVal;
use nix::time::{clock_gettime, ClockId};

use crate::event::{Call, Event, EventKind, KernelObservation, SyscallEvent, SyscallPhase, Timestamp};
use crate::flow::FlowKey;

/// How the attempt waits for the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A blocking `connect()` that returns when the kernel decides.
    Blocking,
    /// Non-blocking `connect()`, then `select()` for writability.
    Select,
    /// Non-blocking `connect()`, then `poll()`.
    Poll,
    /// Non-blocking `connect()`, then `epoll_wait()`.
    Epoll,
}

impl Mode {
    /// The mode's name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Blocking => "blocking",
            Mode::Select => "select",
            Mode::Poll => "poll",
            Mode::Epoll => "epoll",
        }
    }
}

/// What to connect to, and how.
#[derive(Clone, Debug)]
pub struct ConnectPlan {
    /// The server.
    pub server: SocketAddr,
    /// Source address to bind (port 0); the kernel's choice when `None`.
    pub source: Option<IpAddr>,
    /// How to wait.
    pub mode: Mode,
    /// For non-blocking modes: how long to wait in all before giving up (aborted).
    pub timeout: Option<Duration>,
    /// `TCP_SYNCNT`.
    pub syn_retries: Option<u32>,
    /// `TCP_USER_TIMEOUT`.
    pub user_timeout: Option<Duration>,
}

/// A socket bound before `connect()`, so that its 4-tuple is known and the capture can be armed for it.
#[derive(Debug)]
pub struct BoundSocket {
    fd: OwnedFd,
    /// The 4-tuple.
    pub flow: FlowKey,
}

/// The current `CLOCK_REALTIME` time.
pub fn now() -> Timestamp {
    match clock_gettime(ClockId::CLOCK_REALTIME) {
        Ok(t) => Timestamp::from_parts(t.tv_sec(), u32::try_from(t.tv_nsec()).unwrap_or(0)),
        Err(_) => Timestamp::default(),
    }
}

/// Creates the socket, applies the socket options and binds it to `source`:0, so the kernel picks
/// the ephemeral port before `connect()` (inet_bind → inet_csk_get_port).
pub fn bind(plan: &ConnectPlan) -> anyhow::Result<BoundSocket> {
    let family = match plan.server {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).context("socket()")?;
    if let Some(n) = plan.syn_retries {
        crate::sys::set_tcp_syncnt(fd.as_fd(), n).context("setsockopt(TCP_SYNCNT)")?;
    }
    if let Some(t) = plan.user_timeout {
        let ms = u32::try_from(t.as_millis()).unwrap_or(u32::MAX);
        socket::setsockopt(&fd, sockopt::TcpUserTimeout, &ms).context("setsockopt(TCP_USER_TIMEOUT)")?;
    }
    // IP_RECVERR/IPV6_RECVERR: ICMP errors for this socket are queued on its error queue, where
    // they can be read with the offender's address (ip(7)); it does not change how TCP reacts.
    let _ = match family {
        AddressFamily::Inet6 => socket::setsockopt(&fd, sockopt::Ipv6RecvErr, &true),
        _ => socket::setsockopt(&fd, sockopt::Ipv4RecvErr, &true),
    };
    let source = plan.source.unwrap_or(match family {
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    });
    let local = SockaddrStorage::from(SocketAddr::new(source, 0));
    socket::bind(fd.as_raw_fd(), &local).with_context(|| format!("bind({source}:0)"))?;
    let bound: SockaddrStorage = socket::getsockname(fd.as_raw_fd()).context("getsockname()")?;
    let port = bound
        .as_sockaddr_in()
        .map(|a| a.port())
        .or_else(|| bound.as_sockaddr_in6().map(|a| a.port()))
        .context("getsockname() gave no port")?;
    Ok(BoundSocket { fd, flow: FlowKey { client: SocketAddr::new(source, port), server: plan.server } })
}

/// Where a connect thread records its events as they happen, so that a trace interrupted while
/// `connect()` still blocks can show the calls made so far.
pub type EventLog = std::sync::Arc<std::sync::Mutex<Vec<Event>>>;

/// A copy of what `log` holds now.
pub fn snapshot(log: &EventLog) -> Vec<Event> {
    log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

/// Records the syscalls of one attempt, and the kernel's view of the socket.
struct Recorder {
    flow: FlowKey,
    events: EventLog,
    last_tcp_info: Option<crate::sys::TcpInfo>,
}

impl Recorder {
    fn push(&self, event: Event) {
        self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(event);
    }

    fn kernel(&mut self, observation: KernelObservation) {
        self.push(Event { ts: now(), kind: EventKind::Kernel { flow: self.flow, observation } });
    }

    /// What the kernel says at the end: TCP_INFO (when it changed) and every entry of the error queue.
    fn observe(&mut self, fd: &OwnedFd) {
        self.observe_tcp_info(fd);
        self.observe_error_queue(fd);
    }

    /// TCP_INFO after a wake-up or at the end, when it changed; and the socket's TCP state.
    fn observe_tcp_info(&mut self, fd: &OwnedFd) -> Option<u8> {
        let info = crate::sys::tcp_info(fd.as_fd()).ok()?;
        if self.last_tcp_info != Some(info) {
            self.last_tcp_info = Some(info);
            self.kernel(KernelObservation::TcpInfo {
                state: info.state,
                retransmits: info.retransmits,
                backoff: info.backoff,
                rto_us: info.rto_us,
                total_retrans: info.total_retrans,
            });
        }
        Some(info.state)
    }

    /// Every entry of the error queue. After a wake-up, only once the application has read
    /// `SO_ERROR`: taking the last ICMP error off the queue clears the socket's pending error
    /// (`sock_dequeue_err_skb` sets `sk_err` to 0), so that `SO_ERROR` read after it says 0 for a
    /// connect that failed, and the application waits again on a socket that is closed.
    fn observe_error_queue(&mut self, fd: &OwnedFd) {
        for entry in read_error_queue(fd) {
            self.kernel(entry);
        }
    }

    fn enter(&mut self, call: Call, args: String) {
        let event = SyscallEvent { flow: self.flow, call, phase: SyscallPhase::Enter { args } };
        self.push(Event { ts: now(), kind: EventKind::Syscall(event) });
    }

    fn ret(&mut self, call: Call, result: Result<i64, NixErrno>, so_error: Option<i32>, detail: String) {
        let ts = now();
        let (ret, errno) = match result {
            Ok(v) => (v, None),
            Err(e) => (-1, Some(e as i32)),
        };
        let event =
            SyscallEvent { flow: self.flow, call, phase: SyscallPhase::Return { ret, errno, so_error, detail } };
        self.push(Event { ts, kind: EventKind::Syscall(event) });
    }
}

/// Makes the attempt, recording its syscall and kernel events into `log` as they happen, and
/// returns the socket, kept open (a trace that lingers must not close the connection it watches).
/// Errors are failures of the tool itself; a failed `connect()` is data in the events.
pub fn run(sock: BoundSocket, plan: &ConnectPlan, log: EventLog) -> anyhow::Result<OwnedFd> {
    let mut rec = Recorder { flow: sock.flow, events: log, last_tcp_info: None };
    let fd = sock.fd;
    let before = crate::probe::counters();
    let result = attempt(&mut rec, &fd, plan);
    rec.observe(&fd);
    rec.kernel(KernelObservation::CounterDeltas(crate::probe::counter_deltas(&before, &crate::probe::counters())));
    result.map(|()| fd)
}

/// Drains the socket's error queue (`recvmsg(MSG_ERRQUEUE)`): each ICMP error as the kernel
/// recorded it, with the offender (`SO_EE_OFFENDER`).
pub fn read_error_queue(fd: &OwnedFd) -> Vec<KernelObservation> {
    let mut entries = Vec::new();
    // A bounded drain: the queue holds one entry per ICMP error at most, and it is not refilled here.
    for _ in 0..16 {
        let mut data = [0u8; 512];
        let mut iov = [std::io::IoSliceMut::new(&mut data)];
        let mut space = nix::cmsg_space!(nix::libc::sock_extended_err, nix::libc::sockaddr_in6);
        let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
        let Ok(msg) = socket::recvmsg::<SockaddrStorage>(fd.as_raw_fd(), &mut iov, Some(&mut space), flags) else {
            break;
        };
        let Ok(cmsgs) = msg.cmsgs() else { break };
        for cmsg in cmsgs {
            let (err, offender) = match cmsg {
                ControlMessageOwned::Ipv4RecvErr(err, addr) => {
                    (err, addr.map(|a| IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)))))
                }
                ControlMessageOwned::Ipv6RecvErr(err, addr) => {
                    (err, addr.map(|a| IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr))))
                }
                _ => continue,
            };
            entries.push(KernelObservation::ErrorQueue {
                origin: err.ee_origin,
                errno: i32::try_from(err.ee_errno).unwrap_or(0),
                icmp_type: err.ee_type,
                code: err.ee_code,
                info: err.ee_info,
                offender,
            });
        }
    }
    entries
}

fn attempt(rec: &mut Recorder, fd: &OwnedFd, plan: &ConnectPlan) -> anyhow::Result<()> {
    let server = SockaddrStorage::from(plan.server);
    let args = format!("fd {}, {}", fd.as_raw_fd(), plan.server);
    if plan.mode != Mode::Blocking {
        let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).context("fcntl(F_GETFL)")?);
        fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).context("fcntl(F_SETFL, O_NONBLOCK)")?;
    }
    rec.enter(Call::Connect, args);
    let result = socket::connect(fd.as_raw_fd(), &server);
    rec.ret(Call::Connect, result.map(|()| 0), None, String::new());
    if plan.mode == Mode::Blocking || result != Err(NixErrno::EINPROGRESS) {
        return Ok(());
    }
    let deadline = plan.timeout.map(|t| std::time::Instant::now() + t);
    let epoll = match plan.mode {
        Mode::Epoll => {
            let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).context("epoll_create1()")?;
            let interest = EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT | EpollFlags::EPOLLRDHUP;
            epoll.add(fd, EpollEvent::new(interest, 0)).context("epoll_ctl(EPOLL_CTL_ADD)")?;
            Some(epoll)
        }
        _ => None,
    };
    loop {
        let remaining = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let ready = match plan.mode {
            Mode::Select => wait_select(rec, fd, remaining)?,
            Mode::Poll => wait_poll(rec, fd, remaining)?,
            Mode::Epoll => match &epoll {
                Some(epoll) => wait_epoll(rec, epoll, fd, remaining)?,
                None => false,
            },
            Mode::Blocking => false,
        };
        let state = rec.observe_tcp_info(fd);
        if !ready {
            // The wait timed out: the application gives up (outcome `aborted`).
            rec.observe_error_queue(fd);
            return Ok(());
        }
        rec.enter(Call::GetsockoptSoError, format!("fd {}, SOL_SOCKET, SO_ERROR", fd.as_raw_fd()));
        let so_error = socket::getsockopt(fd, sockopt::SocketError);
        rec.observe_error_queue(fd);
        match so_error {
            Ok(value) => {
                let detail = match value {
                    0 => "SO_ERROR = 0".to_string(),
                    n => {
                        let e = crate::linux::Errno::from_number(n);
                        format!("SO_ERROR = {n} ({}: {})", e.name(), e.strerror())
                    }
                };
                rec.ret(Call::GetsockoptSoError, Ok(0), Some(value), detail);
                // SO_ERROR 0 after a wake-up is success only if the socket is connected: an ICMP
                // error queued on the error queue wakes waiters while the socket is still in SYN-SENT.
                if value != 0 || socket::getpeername::<SockaddrStorage>(fd.as_raw_fd()).is_ok() {
                    return Ok(());
                }
                // Neither connected nor connecting (closed, its error taken by something else):
                // nothing more will happen, and every wait would return at once.
                if state.is_some_and(|state| state != crate::event::TCP_SYN_SENT) {
                    return Ok(());
                }
            }
            Err(e) => {
                rec.ret(Call::GetsockoptSoError, Err(e), None, String::new());
                return Ok(());
            }
        }
    }
}

fn millis(timeout: Option<Duration>) -> String {
    timeout.map_or("no timeout".to_string(), |t| format!("timeout {} ms", t.as_millis()))
}

fn wait_select(rec: &mut Recorder, fd: &OwnedFd, timeout: Option<Duration>) -> anyhow::Result<bool> {
    let mut read = FdSet::new();
    let mut write = FdSet::new();
    let mut except = FdSet::new();
    for set in [&mut read, &mut write, &mut except] {
        set.insert(fd.as_fd());
    }
    let mut tv = timeout.map(|t| TimeVal::new(t.as_secs() as _, t.subsec_micros() as _));
    rec.enter(
        Call::Select,
        format!("nfds {}, read+write+except {{fd {}}}, {}", fd.as_raw_fd() + 1, fd.as_raw_fd(), millis(timeout)),
    );
    let result = select(None, &mut read, &mut write, &mut except, tv.as_mut());
    let mut sets = Vec::new();
    for (name, set) in [("readable", &read), ("writable", &write), ("exception", &except)] {
        if result.is_ok_and(|n| n > 0) && set.contains(fd.as_fd()) {
            sets.push(name);
        }
    }
    let detail =
        if sets.is_empty() { "nothing ready: timed out".to_string() } else { format!("fd {}", sets.join(" + ")) };
    rec.ret(Call::Select, result.map(i64::from), None, detail);
    Ok(result.context("select()")? > 0)
}

fn wait_poll(rec: &mut Recorder, fd: &OwnedFd, timeout: Option<Duration>) -> anyhow::Result<bool> {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT | PollFlags::POLLIN)];
    let t = timeout.map_or(PollTimeout::NONE, |t| PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX));
    rec.enter(Call::Poll, format!("[{{fd {}, POLLIN|POLLOUT}}], {}", fd.as_raw_fd(), millis(timeout)));
    let result = poll(&mut fds, t);
    let revents = fds[0].revents().unwrap_or(PollFlags::empty());
    let detail = if revents.is_empty() {
        "nothing ready: timed out".to_string()
    } else {
        format!("revents {}", poll_flag_names(revents))
    };
    rec.ret(Call::Poll, result.map(i64::from), None, detail);
    Ok(result.context("poll()")? > 0)
}

fn wait_epoll(rec: &mut Recorder, epoll: &Epoll, fd: &OwnedFd, timeout: Option<Duration>) -> anyhow::Result<bool> {
    let mut events = [EpollEvent::empty()];
    let t = timeout.map_or(EpollTimeout::NONE, |t| EpollTimeout::try_from(t).unwrap_or(EpollTimeout::MAX));
    rec.enter(
        Call::EpollWait,
        format!(
            "epfd {}, {{fd {}: EPOLLIN|EPOLLOUT|EPOLLRDHUP}}, {}",
            epoll.0.as_raw_fd(),
            fd.as_raw_fd(),
            millis(timeout)
        ),
    );
    let result = epoll.wait(&mut events, t);
    let detail = match result {
        Ok(n) if n > 0 => format!("events {}", epoll_flag_names(events[0].events())),
        _ => "nothing ready: timed out".to_string(),
    };
    rec.ret(Call::EpollWait, result.map(|n| n as i64), None, detail);
    Ok(result.context("epoll_wait()")? > 0)
}

/// The poll(2) bits that are set, as `POLLOUT|POLLERR`.
fn poll_flag_names(flags: PollFlags) -> String {
    set_names(
        &[
            (PollFlags::POLLIN, "POLLIN"),
            (PollFlags::POLLPRI, "POLLPRI"),
            (PollFlags::POLLOUT, "POLLOUT"),
            (PollFlags::POLLERR, "POLLERR"),
            (PollFlags::POLLHUP, "POLLHUP"),
            (PollFlags::POLLNVAL, "POLLNVAL"),
        ],
        |f| flags.contains(f),
    )
}

/// The epoll(7) bits that are set, as `EPOLLIN|EPOLLOUT|EPOLLERR`.
fn epoll_flag_names(flags: EpollFlags) -> String {
    set_names(
        &[
            (EpollFlags::EPOLLIN, "EPOLLIN"),
            (EpollFlags::EPOLLPRI, "EPOLLPRI"),
            (EpollFlags::EPOLLOUT, "EPOLLOUT"),
            (EpollFlags::EPOLLERR, "EPOLLERR"),
            (EpollFlags::EPOLLHUP, "EPOLLHUP"),
            (EpollFlags::EPOLLRDHUP, "EPOLLRDHUP"),
        ],
        |f| flags.contains(f),
    )
}

/// The names of the flags `is_set` says are set, joined with `|`.
fn set_names<F: Copy>(table: &[(F, &str)], is_set: impl Fn(F) -> bool) -> String {
    table.iter().filter(|(flag, _)| is_set(*flag)).map(|(_, name)| *name).collect::<Vec<_>>().join("|")
}
