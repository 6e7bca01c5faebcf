//! Who a limit across sessions applies to: a token's user, or, without
//! authentication, the client's address.
//!
//! Limits that live in a session (publish rate, error budget) start afresh
//! with every session; a few live longer and span a party's sessions: the
//! cool-down after flooding and the rooms a party may have opened. An
//! authenticated user is one party from any address; anonymous clients
//! behind one address (a NAT) share theirs.

use std::net::IpAddr;

/// A user or an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Party {
    /// An authenticated user, by their token's subject.
    User(String),
    /// An anonymous client, by its address.
    Address(IpAddr),
}

impl Party {
    /// The user if there is one, else the address.
    pub fn of(user: Option<&str>, address: IpAddr) -> Self {
        match user {
            Some(user) => Self::User(user.to_owned()),
            None => Self::Address(address.to_canonical()),
        }
    }
}
