//! Least privilege: once its capture is armed, a trace needs no privilege at all, so it gives up
//! what it has before the first SYN leaves, as `tcpdump -Z` does. Started through sudo, it becomes
//! the invoking user (`SUDO_UID`/`SUDO_GID`) and the `--write` file becomes theirs; started as root
//! otherwise, or from a binary with file capabilities, it clears every capability.

use std::path::Path;

use anyhow::Context as _;
use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid};

/// What arming a live capture takes: `CAP_NET_RAW` to open the packet socket, `CAP_NET_ADMIN` for
/// what libpcap sets on some devices.
const CAPTURE_CAPABILITIES: [Capability; 2] = [Capability::CAP_NET_RAW, Capability::CAP_NET_ADMIN];

/// What a process holds: its effective user and the capabilities it can use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// Effective user id.
    pub uid: u32,
    /// Effective capabilities, by name.
    pub capabilities: Vec<String>,
}

impl Held {
    /// What the calling thread holds now.
    pub fn now() -> Held {
        let mut capabilities: Vec<String> = caps::read(None, CapSet::Effective)
            .map(|set| set.iter().map(|c| c.to_string().to_lowercase()).collect())
            .unwrap_or_default();
        capabilities.sort();
        Held { uid: Uid::effective().as_raw(), capabilities }
    }

    /// `uid 1000 with no capabilities`, `uid 0 with cap_net_admin, cap_net_raw`, `uid 0 with 40 capabilities`.
    pub fn describe(&self) -> String {
        match self.capabilities.as_slice() {
            [] => format!("uid {} with no capabilities", self.uid),
            few if few.len() <= 3 => format!("uid {} with {}", self.uid, few.join(", ")),
            many => format!("uid {} with {} capabilities", self.uid, many.len()),
        }
    }
}

/// The invoking user's ids when started through sudo (`SUDO_UID`, `SUDO_GID`), unless that user is root.
fn sudo_ids() -> Option<(Uid, Gid)> {
    let id = |name: &str| std::env::var(name).ok()?.parse::<u32>().ok();
    let (uid, gid) = (id("SUDO_UID")?, id("SUDO_GID")?);
    (uid != 0).then(|| (Uid::from_raw(uid), Gid::from_raw(gid)))
}

/// Keeps only the privilege to arm captures, for runs that arm one per attempt (`--count`,
/// `--all-addresses`): started through sudo, becomes the invoking user keeping just
/// `CAP_NET_RAW` and `CAP_NET_ADMIN` (`PR_SET_KEEPCAPS` across the switch); otherwise drops every
/// other capability. Call it before any thread starts. Returns what was given up, in words.
pub fn keep_only_capture() -> anyhow::Result<Option<String>> {
    let before = Held::now();
    let keep: CapsHashSet = CAPTURE_CAPABILITIES.into_iter().collect();
    let permitted = caps::read(None, CapSet::Permitted).context("cannot read the capabilities")?;
    let keep: CapsHashSet = keep.intersection(&permitted).copied().collect();
    let switched = match sudo_ids() {
        Some((uid, gid)) if Uid::effective().is_root() => {
            caps::securebits::set_keepcaps(true).context("PR_SET_KEEPCAPS")?;
            nix::unistd::setgroups(&[gid]).context("setgroups")?;
            nix::unistd::setresgid(gid, gid, gid).context("setresgid")?;
            nix::unistd::setresuid(uid, uid, uid).context("setresuid")?;
            caps::securebits::set_keepcaps(false).context("PR_SET_KEEPCAPS")?;
            true
        }
        _ => false,
    };
    if !switched && permitted.len() == keep.len() {
        return Ok(None);
    }
    // Effective before permitted: capset(2) refuses an effective set larger than the permitted one.
    // (After the switch the effective set is empty; raising within the kept permitted set is allowed.)
    let effective = caps::read(None, CapSet::Effective).context("cannot read the capabilities")?;
    caps::set(None, CapSet::Effective, &keep.intersection(&effective).copied().collect())
        .context("cannot limit the effective capabilities")?;
    caps::set(None, CapSet::Permitted, &keep).context("cannot limit the permitted capabilities")?;
    caps::set(None, CapSet::Effective, &keep).context("cannot set the effective capabilities")?;
    for set in [CapSet::Inheritable, CapSet::Ambient] {
        caps::clear(None, set).with_context(|| format!("cannot clear the {set:?} capabilities"))?;
    }
    let to = if switched { " to the invoking user (SUDO_UID/SUDO_GID)" } else { "" };
    Ok(Some(format!("switched from {}{to}, keeping only what a capture needs", before.describe())))
}

/// Gives up every privilege; call it once the capture is active and before any other thread starts
/// (capabilities belong to threads: threads started later inherit the cleared sets). `written` is
/// the `--write` file, handed to the invoking user first. Returns what was given up, in words, or
/// `None` when there was nothing to give up.
pub fn drop_after_capture(written: Option<&Path>) -> anyhow::Result<Option<String>> {
    let before = Held::now();
    if Uid::effective().is_root() {
        if let Some((uid, gid)) = sudo_ids() {
            if let Some(path) = written {
                nix::unistd::chown(path, Some(uid), Some(gid))
                    .with_context(|| format!("cannot give {} to uid {uid}", path.display()))?;
            }
            // Groups first, while still root; then the user: setresuid from root to another user
            // clears the permitted and effective capabilities (capabilities(7), "Effect of user ID
            // changes on capabilities").
            nix::unistd::setgroups(&[gid]).context("setgroups")?;
            nix::unistd::setresgid(gid, gid, gid).context("setresgid")?;
            nix::unistd::setresuid(uid, uid, uid).context("setresuid")?;
            anyhow::ensure!(nix::unistd::setuid(Uid::from_raw(0)).is_err(), "could still become root again");
            return Ok(Some(format!("switched from {} to the invoking user (SUDO_UID/SUDO_GID)", before.describe())));
        }
    }
    let permitted = caps::read(None, CapSet::Permitted).context("cannot read the capabilities")?;
    if permitted.is_empty() {
        return Ok(None);
    }
    for set in [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable, CapSet::Ambient] {
        caps::clear(None, set).with_context(|| format!("cannot clear the {set:?} capabilities"))?;
    }
    Ok(Some(format!("cleared {} capabilities", permitted.len())))
}
