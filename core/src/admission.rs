//! Admission control: whether the server takes one more session.
//!
//! Four limits, checked when a session opens: the rate at which new sessions
//! arrive from one IP address (a quarter of the server's rate, so that no one
//! address can spend the budget every address shares), the total number of
//! sessions, the number from one address, and the rate at which new sessions
//! arrive in all (token buckets, so that a burst is absorbed and a storm is
//! not). The address's own rate is checked first ([`Admission::arrive`]),
//! before the session's token; the shared limits ([`Admission::admit`]) only
//! for a session that passed both, so that clients without a valid token
//! spend nobody's budget but their own address's.
//!
//! A refused client is told `OVERLOADED` with a retry hint spread at random,
//! so that clients turned away together do not come back together.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

use crate::token_bucket::TokenBucket;

/// The limits; zero turns a limit off.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct AdmissionLimits {
    /// Sessions open at once.
    pub max_connections: usize,
    /// Sessions open at once from one IP address.
    pub max_connections_per_ip: usize,
    /// New sessions per second, sustained; the burst is twice this.
    pub max_new_connections_per_sec: u32,
}

/// Why a session was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` sessions are open.
    Full,
    /// `max_connections_per_ip` sessions are open from this address.
    TooManyFromAddress,
    /// New sessions arrive faster than `max_new_connections_per_sec`.
    TooFast,
    /// New sessions arrive from one address faster than its share of
    /// `max_new_connections_per_sec`.
    AddressTooFast,
}

impl Refusal {
    /// A sentence for the closing notice.
    pub fn text(self) -> &'static str {
        match self {
            Self::Full => "the server is full; try again after the retry hint",
            Self::TooManyFromAddress => "too many sessions from this address; try again after the retry hint",
            Self::TooFast => "too many new sessions arrive at once; try again after the retry hint",
            Self::AddressTooFast => {
                "too many new sessions arrive from this address at once; try again after the retry hint"
            }
        }
    }

    /// The name used in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::TooManyFromAddress => "per_ip",
            Self::TooFast => "rate",
            Self::AddressTooFast => "per_ip_rate",
        }
    }
}

/// The admission state shared by every transport.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    /// Sessions admitted and not yet ended.
    open: AtomicUsize,
    /// Sessions per address; an entry goes when its count reaches zero, so
    /// the map holds only addresses with live sessions.
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// New sessions per second.
    arrivals: Mutex<TokenBucket>,
    /// New sessions per second from each address that arrived lately;
    /// an address whose bucket has refilled is forgotten.
    arrivals_per_address: Mutex<HashMap<IpAddr, TokenBucket>>,
    /// Refusals so far, by [`Refusal`] in declaration order.
    refused: [AtomicU64; 4],
}

/// The share of the server's arrival rate one address may use.
const ADDRESS_SHARE: u32 = 4;

/// How many addresses' arrival buckets are kept before the refilled ones
/// are forgotten; bounds the map under a flood from many addresses.
const REMEMBERED_ADDRESSES: usize = 4096;

/// A place taken by an admitted session; dropping it gives the place back.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    address: IpAddr,
}

impl Ticket {
    /// The address the place was taken for.
    pub fn address(&self) -> IpAddr {
        self.address
    }
}

impl Admission {
    /// Admission with these limits.
    pub fn new(limits: AdmissionLimits) -> Arc<Self> {
        let rate = limits.max_new_connections_per_sec;
        Arc::new(Self {
            limits,
            open: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
            arrivals: Mutex::new(TokenBucket::new(rate.saturating_mul(2), f64::from(rate), Instant::now())),
            arrivals_per_address: Mutex::new(HashMap::new()),
            refused: Default::default(),
        })
    }

    fn per_address(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Every update is a single insert or decrement: still consistent
        // after a panic elsewhere.
        self.per_address.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn refuse<T>(&self, refusal: Refusal) -> Result<T, Refusal> {
        self.refused[refusal as usize].fetch_add(1, Ordering::Relaxed);
        Err(refusal)
    }

    /// Charges a new session to its address's share of the arrival rate,
    /// before anything else is looked at (its token included), so that one
    /// address churning sessions is turned away at its own limit.
    pub fn arrive(&self, address: IpAddr, now: Instant) -> Result<(), Refusal> {
        if self.limits.max_new_connections_per_sec == 0 {
            return Ok(());
        }
        let rate = (self.limits.max_new_connections_per_sec / ADDRESS_SHARE).max(1);
        let mut buckets = self.arrivals_per_address.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= REMEMBERED_ADDRESSES {
            buckets.retain(|_, bucket| !bucket.is_full(now));
        }
        let bucket = buckets
            .entry(address.to_canonical())
            .or_insert_with(|| TokenBucket::new(rate.saturating_mul(2), f64::from(rate), now));
        if bucket.try_take(now) { Ok(()) } else { self.refuse(Refusal::AddressTooFast) }
    }

    /// Admits a session from `address` under the limits every address
    /// shares (the arrival rate, then a place), or says why not.
    pub fn admit(self: &Arc<Self>, address: IpAddr, now: Instant) -> Result<Ticket, Refusal> {
        self.charge_rate(now)?;
        self.hold(address)
    }

    /// Charges one arrival to the rate every address shares.
    pub fn charge_rate(&self, now: Instant) -> Result<(), Refusal> {
        if self.limits.max_new_connections_per_sec > 0 {
            let mut arrivals = self.arrivals.lock().unwrap_or_else(PoisonError::into_inner);
            if !arrivals.try_take(now) {
                drop(arrivals);
                return self.refuse(Refusal::TooFast);
            }
        }
        Ok(())
    }

    /// Takes a place for a connection from `address`, under the total and
    /// per-address limits; the ticket gives it back when dropped.
    pub fn hold(self: &Arc<Self>, address: IpAddr) -> Result<Ticket, Refusal> {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d;
        // it is the same client as a.b.c.d.
        let address = address.to_canonical();
        let limits = self.limits;
        // Take the place first and give it back if over: two racing arrivals
        // cannot both take the last place.
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        if limits.max_connections > 0 && open > limits.max_connections {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return self.refuse(Refusal::Full);
        }
        let mut per_address = self.per_address();
        let count = per_address.entry(address).or_insert(0);
        if limits.max_connections_per_ip > 0 && *count >= limits.max_connections_per_ip {
            drop(per_address);
            self.open.fetch_sub(1, Ordering::AcqRel);
            return self.refuse(Refusal::TooManyFromAddress);
        }
        *count += 1;
        Ok(Ticket { admission: self.clone(), address })
    }

    /// Sessions admitted and still open.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Addresses with at least one open session.
    pub fn addresses(&self) -> usize {
        self.per_address().len()
    }

    /// Refusals so far, with each refusal's name.
    pub fn refusals(&self) -> [(&'static str, u64); 4] {
        [Refusal::Full, Refusal::TooManyFromAddress, Refusal::TooFast, Refusal::AddressTooFast]
            .map(|refusal| (refusal.name(), self.refused[refusal as usize].load(Ordering::Relaxed)))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut per_address = self.admission.per_address();
        if let Some(count) = per_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                per_address.remove(&self.address);
            }
        }
        drop(per_address);
        self.admission.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_ip: usize, rate: u32) -> AdmissionLimits {
        AdmissionLimits {
            max_connections: total,
            max_connections_per_ip: per_ip,
            max_new_connections_per_sec: rate,
        }
    }

    #[test]
    fn places_are_limited_in_total_and_per_address_and_given_back() {
        let admission = Admission::new(limits(3, 2, 0));
        let now = Instant::now();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = admission.admit(a, now).unwrap();
        let _second = admission.admit(a, now).unwrap();
        assert_eq!(admission.admit(a, now).unwrap_err(), Refusal::TooManyFromAddress);
        let _third = admission.admit(b, now).unwrap();
        assert_eq!(admission.admit(b, now).unwrap_err(), Refusal::Full);
        assert_eq!(admission.open(), 3);
        drop(first);
        assert_eq!(admission.open(), 2);
        assert!(admission.admit(a, now).is_ok(), "a place given back is taken again");
        assert_eq!(admission.refusals().map(|(_, n)| n), [1, 1, 0, 0]);
    }

    #[test]
    fn the_arrival_rate_allows_a_burst_then_refills() {
        let admission = Admission::new(limits(0, 0, 5));
        let start = Instant::now();
        let mut tickets = Vec::new();
        for _ in 0..10 {
            tickets.push(admission.admit([10, 0, 0, 1].into(), start).unwrap());
        }
        assert_eq!(admission.admit([10, 0, 0, 1].into(), start).unwrap_err(), Refusal::TooFast);
        assert!(admission.admit([10, 0, 0, 1].into(), start + std::time::Duration::from_millis(250)).is_ok());
        assert_eq!((admission.open(), admission.addresses()), (10, 1));
        drop(tickets);
        assert_eq!((admission.open(), admission.addresses()), (0, 0), "every place is given back");
    }

    #[test]
    fn one_address_spends_only_its_share_of_the_arrival_rate() {
        let admission = Admission::new(limits(0, 0, 40));
        let start = Instant::now();
        let churner: IpAddr = [10, 0, 0, 1].into();
        // A quarter of 40 per second, with bursts of twice that.
        assert!((0..20).all(|_| admission.arrive(churner, start).is_ok()));
        assert_eq!(admission.arrive(churner, start), Err(Refusal::AddressTooFast));
        // Another address still has its own share, and the shared bucket
        // was not touched by the churner's refused arrivals.
        assert!(admission.arrive([10, 0, 0, 2].into(), start).is_ok());
        let admitted = (0..80).filter(|_| admission.admit([10, 0, 0, 2].into(), start).is_ok()).count();
        assert_eq!(admitted, 80);
        assert_eq!(admission.refusals().map(|(_, n)| n), [0, 0, 0, 1]);
    }

    #[test]
    fn addresses_whose_buckets_refilled_are_forgotten() {
        let admission = Admission::new(limits(0, 0, 40));
        let start = Instant::now();
        for n in 0..REMEMBERED_ADDRESSES as u32 {
            admission.arrive(std::net::Ipv4Addr::from(n).into(), start).unwrap();
        }
        let later = start + std::time::Duration::from_secs(10);
        admission.arrive([192, 168, 0, 1].into(), later).unwrap();
        assert_eq!(admission.arrivals_per_address.lock().unwrap().len(), 1);
    }
}
