//! QUIC handshakes under way, and what to do with a new one.
//!
//! A QUIC server commits memory (about 37 KB) to every Initial packet it
//! answers, before it knows whether the client's address is real, and its
//! first answer is larger than the packet that asked (a certificate). So
//! the server counts handshakes from their first packet to their end, in
//! total and per address. Below a low mark it answers at once, as any
//! server would. Above it, an address it has not validated is asked to
//! prove itself first with a stateless QUIC Retry (RFC 9000, section 8.1),
//! which costs the server nothing and is smaller than the client's packet,
//! so it amplifies nothing. Above a high mark, new handshakes are refused
//! until some finish.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A TLS handshake, on the TCP listener or in QUIC, must finish within
/// this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes under way in total past which unvalidated clients are asked
/// to prove their address.
pub const RETRY_ABOVE: usize = 128;
/// The same, from one address.
pub const RETRY_ABOVE_PER_ADDRESS: usize = 8;
/// Handshakes under way in total past which new ones are refused.
pub const REFUSE_ABOVE: usize = 2048;
/// The same, from one address.
pub const REFUSE_ABOVE_PER_ADDRESS: usize = 64;

/// What to do with a new handshake.
#[derive(Debug)]
pub enum Decision {
    /// Answer it; the guard counts it until dropped.
    Accept(HandshakeGuard),
    /// Ask the client to prove its address first (a Retry).
    Validate,
    /// Refuse it.
    Refuse,
}

/// The handshakes under way.
#[derive(Debug, Default)]
pub struct Handshakes {
    total: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

/// One handshake under way; dropping it ends its count.
#[derive(Debug)]
pub struct HandshakeGuard {
    handshakes: Arc<Handshakes>,
    address: IpAddr,
}

impl Handshakes {
    /// No handshakes yet.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Handshakes under way now.
    pub fn in_progress(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Decides on a new handshake from `address`; `validated` says whether
    /// the client already proved its address (it echoed a Retry token).
    pub fn decide(self: &Arc<Self>, address: IpAddr, validated: bool) -> Decision {
        let address = address.to_canonical();
        let mut per_address = self.per_address.lock().unwrap_or_else(PoisonError::into_inner);
        let from_address = per_address.get(&address).copied().unwrap_or(0);
        let total = self.total.load(Ordering::Acquire);
        if total >= REFUSE_ABOVE || from_address >= REFUSE_ABOVE_PER_ADDRESS {
            return if validated { Decision::Refuse } else { Decision::Validate };
        }
        if !validated && (total >= RETRY_ABOVE || from_address >= RETRY_ABOVE_PER_ADDRESS) {
            return Decision::Validate;
        }
        *per_address.entry(address).or_insert(0) += 1;
        self.total.fetch_add(1, Ordering::AcqRel);
        Decision::Accept(HandshakeGuard { handshakes: self.clone(), address })
    }
}

impl Drop for HandshakeGuard {
    fn drop(&mut self) {
        let mut per_address = self.handshakes.per_address.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = per_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                per_address.remove(&self.address);
            }
        }
        self.handshakes.total.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(decision: Decision) -> HandshakeGuard {
        match decision {
            Decision::Accept(guard) => guard,
            other => panic!("expected to accept, got {other:?}"),
        }
    }

    #[test]
    fn one_address_is_asked_to_validate_then_refused_and_others_go_on() {
        let handshakes = Handshakes::new();
        let busy: IpAddr = [10, 0, 0, 1].into();
        let mut guards: Vec<_> =
            (0..RETRY_ABOVE_PER_ADDRESS).map(|_| accepted(handshakes.decide(busy, false))).collect();
        assert!(matches!(handshakes.decide(busy, false), Decision::Validate));
        // A client that proved its address is answered, up to the hard cap.
        while guards.len() < REFUSE_ABOVE_PER_ADDRESS {
            guards.push(accepted(handshakes.decide(busy, true)));
        }
        assert!(matches!(handshakes.decide(busy, true), Decision::Refuse));
        assert!(matches!(handshakes.decide(busy, false), Decision::Validate));
        // Another address is not held up by the busy one.
        let _other = accepted(handshakes.decide([10, 0, 0, 2].into(), false));
        assert_eq!(handshakes.in_progress(), REFUSE_ABOVE_PER_ADDRESS + 1);
        drop(guards);
        assert_eq!(handshakes.in_progress(), 1);
        assert!(matches!(handshakes.decide(busy, false), Decision::Accept(_)));
    }

    #[test]
    fn many_addresses_at_once_are_asked_to_validate_then_refused() {
        let handshakes = Handshakes::new();
        let address = |n: usize| IpAddr::from(std::net::Ipv4Addr::from(n as u32));
        let guards: Vec<_> =
            (0..RETRY_ABOVE).map(|n| accepted(handshakes.decide(address(n), false))).collect();
        assert!(matches!(handshakes.decide(address(RETRY_ABOVE), false), Decision::Validate));
        let more: Vec<_> =
            (RETRY_ABOVE..REFUSE_ABOVE).map(|n| accepted(handshakes.decide(address(n), true))).collect();
        assert!(matches!(handshakes.decide(address(REFUSE_ABOVE), true), Decision::Refuse));
        drop((guards, more));
        assert_eq!(handshakes.in_progress(), 0);
        assert!(handshakes.per_address.lock().unwrap().is_empty());
    }
}
