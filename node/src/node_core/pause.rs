//! When a validator may sign: the pause of a home that may have signed
//! before (restored, copied or wiped), and how the network's height is
//! learned from status reports.

use tally_consensus::Output;

use super::{CoreEnv, Effect, NodeCore, Notice};

/// How far above its own tip the network's reported height may extend a
/// signing pause.
pub const PAUSE_AHEAD_MAX: u64 = 10_000;
/// A home waiting to hear the network, told by a member that the chain is
/// past genesis but not by enough power to be sure, waits this long for
/// block sync to bring a block (which a liar cannot) before it takes the
/// network for new.
pub const NEW_NETWORK_GRACE_MS: u64 = 10_000;

/// A validator whose signer state is missing or older than its chain (a
/// home restored from an old backup, a lost record) may already have
/// signed at the heights ahead of it. It signs nothing until the network
/// has decided a height past everything it knows of: its tip, and the
/// network's height as validators report it meanwhile ([`quorum_height`]:
/// what validators holding more than 1/3 of the power report, so that
/// liars holding less can neither raise nor hide it). Its earlier self
/// cannot have signed beyond the height after the network's, so nothing it
/// signs from then on can conflict.
///
/// A home with no signer state and no blocks is either new or wiped, and
/// only the network can tell which: such a validator first waits to hear
/// validators holding, with its own, more than 2/3 of the power (at least
/// one other, if the set has others). If validators holding more than 1/3
/// report a height above genesis, or block sync brings it a block, the
/// chain has moved on without this home, and it pauses until the network
/// decides past that height. If a member says so but not enough power,
/// it gives block sync [`NEW_NETWORK_GRACE_MS`] to bring a block before it
/// takes the network for new and signs. A home wiped before the network's
/// first block may still sign twice at height 1: nothing yet tells it
/// apart from a new one (ADR 18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningPause {
    /// Signing resumes once a block above this height is committed.
    pub until_past: u64,
    /// Still waiting to hear the heights of validators holding more than
    /// 2/3 of the power (a home with no signer state and no blocks).
    pub awaiting_peers: bool,
    pub reason: String,
}

/// Whether a validator whose signer accounts for heights up to `accounted`
/// (signed at, or committed without signing) may sign over a chain whose
/// tip is `tip`.
pub fn signing_pause(accounted: Option<u64>, tip: u64) -> Option<SigningPause> {
    let (reason, awaiting_peers) = match accounted {
        None if tip == 0 => (
            "it has no signer state and no blocks (a new home, or a wiped one?)".to_string(),
            true,
        ),
        None => (
            format!(
                "its signer state is missing but the chain is at height {tip} (a restored or copied home?)"
            ),
            false,
        ),
        Some(h) if h < tip => (
            format!(
                "its signer state ends at height {h}, older than the chain's tip {tip} (a home restored from an old backup?)"
            ),
            false,
        ),
        _ => return None,
    };
    let wait = if awaiting_peers {
        "it waits to hear the heights of validators holding more than 2/3 of the power, and then until the network decides past any height it may have signed"
    } else {
        "it waits until the network decides a height past every one it may have signed"
    };
    Some(SigningPause {
        until_past: tip,
        awaiting_peers,
        reason: format!("{reason}; {wait}"),
    })
}

/// The height the network has reached, as a validator that lost its home
/// learns it from status reports: `None` until validators holding more
/// than 2/3 of `total` power have reported (`own` power included, this
/// validator being one of them); then the highest height that validators
/// holding more than 1/3 report (0 if none do), so that validators holding
/// less than 1/3, the most that may lie, can neither raise nor hide it.
/// `heard` holds each other validator's power and reported height.
pub fn quorum_height(own: u64, total: u64, heard: &[(u64, u64)]) -> Option<u64> {
    let total = u128::from(total);
    let heard_power: u128 = heard.iter().map(|(p, _)| u128::from(*p)).sum();
    if 3 * (heard_power + u128::from(own)) <= 2 * total {
        return None;
    }
    let mut by_height: Vec<(u64, u64)> = heard.to_vec();
    by_height.sort_unstable_by_key(|&(_, height)| std::cmp::Reverse(height));
    let mut power = 0u128;
    for (p, height) in by_height {
        power += u128::from(p);
        if 3 * power > total {
            return Some(height);
        }
    }
    Some(0)
}

impl NodeCore {
    /// The network's height as validators report it ([`Event::PeersHeard`]):
    /// it extends the pause, never past [`PAUSE_AHEAD_MAX`] above the tip.
    /// For a home that waited to hear the network, a block of its own (block
    /// sync brought it, certificate checked) proves the chain moved on;
    /// with none, and nobody holding more than 1/3 past genesis, the
    /// network is new: the pause lifts, and what the machine asked to sign
    /// at its round is signed.
    ///
    /// [`Event::PeersHeard`]: super::Event::PeersHeard
    pub(super) fn on_peers_heard<E: CoreEnv>(
        &mut self,
        h: u64,
        env: &E,
        fx: &mut Vec<Effect>,
    ) -> Vec<Output> {
        let tip = env.tip().height;
        let held = std::mem::take(&mut self.held);
        let Some(p) = self.pause.as_mut() else {
            return Vec::new();
        };
        let waited = std::mem::replace(&mut p.awaiting_peers, false);
        p.until_past = p.until_past.max(h.min(tip.saturating_add(PAUSE_AHEAD_MAX)));
        if !waited || tip > 0 || p.until_past > 0 {
            p.until_past = p.until_past.max(tip);
            return Vec::new();
        }
        self.pause = None;
        fx.push(Effect::Notice(Notice::SigningResumed { height: tip }));
        let at = (self.machine.height(), self.machine.round());
        held.into_iter()
            .filter(|o| match o {
                Output::Propose(p) => (p.height, p.round) == at,
                Output::Vote(v) => (v.height, v.round) == at,
                _ => false,
            })
            .collect()
    }

    pub(super) fn check_pause(&mut self, tip: u64, fx: &mut Vec<Effect>) {
        if self
            .pause
            .as_ref()
            .is_some_and(|p| !p.awaiting_peers && tip > p.until_past)
        {
            self.pause = None;
            fx.push(Effect::Notice(Notice::SigningResumed { height: tip }));
        }
    }

    /// Keeps what the machine asked to sign while the pause waits to hear
    /// the network (a proposal and two votes of a round at most).
    pub(super) fn hold(&mut self, output: Output) {
        if self.pause.as_ref().is_some_and(|p| p.awaiting_peers) && self.me().is_some() {
            if self.held.len() >= 3 {
                self.held.remove(0);
            }
            self.held.push(output);
        }
    }
}
