//! The seam where the gateway decides who may connect, publish and subscribe.

use std::fmt;

use weir_contract::TerminalId;

/// Who a connected client is, as established by [`Policy::authenticate`].
///
/// The ACL is applied to this, never to the client id, which any client may choose.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A trusted service, such as the gateway's own MQTT client: may publish and subscribe
    /// anywhere.
    Service {
        /// The username it logged in with.
        username: String,
    },
    /// A sensor node or data logger, logged in with its terminal id as username.
    Terminal(TerminalId),
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Service { username } => write!(f, "service {username}"),
            Identity::Terminal(id) => write!(f, "terminal {id}"),
        }
    }
}

/// Why a CONNECT is refused; each maps to a CONNACK return code of MQTT 3.1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Return code 4: unknown username, wrong password, or a malformed username.
    BadCredentials,
    /// Return code 5: the client is known but may not connect (anonymous, disabled).
    NotAuthorized,
    /// Return code 3: the credentials could not be checked now (for example the registry is
    /// unavailable); the client should retry later.
    Unavailable,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::BadCredentials => "bad user name or password",
            Refusal::NotAuthorized => "not authorized",
            Refusal::Unavailable => "server unavailable",
        })
    }
}

/// Authentication and topic ACLs.
///
/// [`Policy::authenticate`] runs once per CONNECT on a blocking thread, so it may be slow (a
/// password hash such as argon2); the broker runs at most `max_concurrent_auth` at once and
/// none for an address or user name that failed too often lately. The ACL checks run for every PUBLISH and SUBSCRIBE on the
/// connection's task and must be quick.
pub trait Policy: Send + Sync + 'static {
    /// Checks credentials; returns the identity the ACL is applied to, or why not.
    fn authenticate(
        &self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<Identity, Refusal>;

    /// Whether `who` may use `client_id`; a client that may not is refused with CONNACK 5.
    ///
    /// The broker keeps sessions apart by identity whatever this says (a client id names a
    /// session only together with the identity that made it), so this is for client ids a
    /// policy reserves by name. Allows every client id unless implemented.
    fn may_use_client_id(&self, who: &Identity, client_id: &str) -> bool {
        let _ = (who, client_id);
        true
    }

    /// Whether `who` may publish to `topic` (a valid topic name, no wildcards).
    fn may_publish(&self, who: &Identity, topic: &str) -> bool;

    /// Whether `who` may subscribe to `filter` (a valid filter, wildcards possible).
    fn may_subscribe(&self, who: &Identity, filter: &str) -> bool;
}
