//! The ready-made policy for Weir's topics: each node under its own terminal, the gateway
//! everywhere.

use std::fmt;

use weir_contract::topic::{self, Channel};
use weir_contract::TerminalId;

use crate::policy::{Identity, Policy, Refusal};

/// Checks a terminal's password; supplied by the gateway from its terminal registry.
pub type TerminalCredentials = dyn Fn(&TerminalId, &[u8]) -> bool + Send + Sync;

/// Weir's ACL.
///
/// * A client logging in as the service username with the service password is
///   [`Identity::Service`] and may publish and subscribe anywhere.
/// * Any other username must be a valid terminal id whose password the gateway's check
///   accepts; it is [`Identity::Terminal`]. Terminal `HY-001` may publish only to
///   `{prefix}/terminals/HY-001/telemetry` and `.../status`, and subscribe only to
///   `{prefix}/terminals/HY-001/ack` and `.../config` (exact topics, no wildcards).
/// * Clients without a username are refused as not authorized; a wrong password, an unknown
///   terminal or a username that is not a terminal id as bad credentials.
/// * The client id `weir-node-{id}`, which the node firmware and the simulator use, is
///   terminal `{id}`'s: another terminal asking for it is refused as not authorized. Any
///   other client id may be used by anyone; the broker keeps each identity's sessions apart.
pub struct WeirPolicy {
    prefix: String,
    service_username: String,
    service_password: Vec<u8>,
    terminal_credentials: Box<TerminalCredentials>,
}

impl fmt::Debug for WeirPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeirPolicy")
            .field("prefix", &self.prefix)
            .field("service_username", &self.service_username)
            .finish_non_exhaustive()
    }
}

impl WeirPolicy {
    /// A policy for topics under `prefix` (see [`weir_contract::topic`]), with the gateway's
    /// own login and a check of terminal passwords.
    pub fn new(
        prefix: &str,
        service_username: &str,
        service_password: &[u8],
        terminal_credentials: impl Fn(&TerminalId, &[u8]) -> bool + Send + Sync + 'static,
    ) -> Result<Self, weir_contract::Error> {
        topic::check_prefix(prefix)?;
        Ok(WeirPolicy {
            prefix: prefix.to_owned(),
            service_username: service_username.to_owned(),
            service_password: service_password.to_owned(),
            terminal_credentials: Box::new(terminal_credentials),
        })
    }

    /// The terminal and channel of `topic` if it belongs to `who`.
    fn own_channel(&self, who: &TerminalId, topic: &str) -> Option<Channel> {
        match topic::parse(&self.prefix, topic) {
            Ok((id, channel)) if id == *who => Some(channel),
            _ => None,
        }
    }
}

/// How a node's client id starts; its terminal id follows.
const NODE_CLIENT_ID_PREFIX: &str = "weir-node-";

/// Compares secrets in time independent of where they first differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Policy for WeirPolicy {
    fn authenticate(
        &self,
        _client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<Identity, Refusal> {
        let Some(username) = username.filter(|u| !u.is_empty()) else {
            return Err(Refusal::NotAuthorized);
        };
        let password = password.unwrap_or_default();
        if username == self.service_username {
            return if same_secret(password, &self.service_password) {
                Ok(Identity::Service {
                    username: username.to_owned(),
                })
            } else {
                Err(Refusal::BadCredentials)
            };
        }
        let id = TerminalId::new(username).map_err(|_| Refusal::BadCredentials)?;
        if (self.terminal_credentials)(&id, password) {
            Ok(Identity::Terminal(id))
        } else {
            Err(Refusal::BadCredentials)
        }
    }

    fn may_use_client_id(&self, who: &Identity, client_id: &str) -> bool {
        match (who, client_id.strip_prefix(NODE_CLIENT_ID_PREFIX)) {
            (Identity::Terminal(id), Some(owner)) => owner == id.as_str(),
            _ => true,
        }
    }

    fn may_publish(&self, who: &Identity, topic: &str) -> bool {
        match who {
            Identity::Service { .. } => true,
            Identity::Terminal(id) => matches!(
                self.own_channel(id, topic),
                Some(Channel::Telemetry | Channel::Status | Channel::Update)
            ),
        }
    }

    fn may_subscribe(&self, who: &Identity, filter: &str) -> bool {
        match who {
            Identity::Service { .. } => true,
            // A filter with a wildcard never parses: the id or channel would contain `+`/`#`.
            Identity::Terminal(id) => matches!(
                self.own_channel(id, filter),
                Some(Channel::Ack | Channel::Config | Channel::Firmware | Channel::Chunk)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(prefix: &str) -> WeirPolicy {
        WeirPolicy::new(prefix, "weir-gateway", b"svc", |id, pw| {
            id.as_str() == "HY-001" && pw == b"pw1"
        })
        .unwrap()
    }

    fn node() -> Identity {
        Identity::Terminal(TerminalId::new("HY-001").unwrap())
    }

    #[test]
    fn nodes_and_the_service_log_in_with_their_own_passwords_only() {
        let p = policy("weir");
        assert_eq!(
            p.authenticate("c", Some("HY-001"), Some(b"pw1")),
            Ok(node())
        );
        assert_eq!(
            p.authenticate("c", Some("weir-gateway"), Some(b"svc")),
            Ok(Identity::Service {
                username: "weir-gateway".into()
            })
        );
        let refused = |u: Option<&str>, pw: Option<&[u8]>| p.authenticate("c", u, pw).unwrap_err();
        assert_eq!(refused(None, None), Refusal::NotAuthorized);
        assert_eq!(refused(Some(""), Some(b"pw1")), Refusal::NotAuthorized);
        assert_eq!(
            refused(Some("HY-001"), Some(b"pw2")),
            Refusal::BadCredentials
        );
        assert_eq!(refused(Some("HY-001"), None), Refusal::BadCredentials);
        assert_eq!(
            refused(Some("HY-002"), Some(b"pw1")),
            Refusal::BadCredentials
        );
        assert_eq!(
            refused(Some("weir-gateway"), Some(b"sv")),
            Refusal::BadCredentials
        );
        assert_eq!(
            refused(Some("HY 001"), Some(b"pw1")),
            Refusal::BadCredentials
        );
        assert_eq!(
            refused(Some("HY-001/#"), Some(b"pw1")),
            Refusal::BadCredentials
        );
    }

    #[test]
    fn a_node_publishes_only_telemetry_and_status_under_its_own_id() {
        let p = policy("zj/haiyan");
        let n = node();
        assert!(p.may_publish(&n, "zj/haiyan/terminals/HY-001/telemetry"));
        assert!(p.may_publish(&n, "zj/haiyan/terminals/HY-001/status"));
        assert!(!p.may_publish(&n, "zj/haiyan/terminals/HY-001/ack"));
        assert!(!p.may_publish(&n, "zj/haiyan/terminals/HY-001/config"));
        // Firmware updates: the node asks and reports; only the gateway offers and sends.
        assert!(p.may_publish(&n, "zj/haiyan/terminals/HY-001/update"));
        assert!(!p.may_publish(&n, "zj/haiyan/terminals/HY-001/firmware"));
        assert!(!p.may_publish(&n, "zj/haiyan/terminals/HY-001/chunk"));
        assert!(!p.may_publish(&n, "zj/haiyan/terminals/HY-002/update"));
        assert!(!p.may_publish(&n, "zj/haiyan/terminals/HY-002/telemetry"));
        assert!(!p.may_publish(&n, "weir/terminals/HY-001/telemetry"));
        assert!(!p.may_publish(&n, "zj/haiyan/terminals/HY-001/telemetry/x"));
        assert!(!p.may_publish(&n, "zj/haiyan/terminals/HY-001"));
        assert!(!p.may_publish(&n, "$SYS/x"));
    }

    #[test]
    fn a_node_subscribes_only_to_its_own_ack_and_config_without_wildcards() {
        let p = policy("weir");
        let n = node();
        assert!(p.may_subscribe(&n, "weir/terminals/HY-001/ack"));
        assert!(p.may_subscribe(&n, "weir/terminals/HY-001/config"));
        assert!(p.may_subscribe(&n, "weir/terminals/HY-001/firmware"));
        assert!(p.may_subscribe(&n, "weir/terminals/HY-001/chunk"));
        assert!(!p.may_subscribe(&n, "weir/terminals/HY-002/chunk"));
        assert!(!p.may_subscribe(&n, "weir/terminals/HY-001/update"));
        for f in [
            "weir/terminals/HY-001/telemetry",
            "weir/terminals/HY-002/ack",
            "weir/terminals/+/ack",
            "weir/terminals/HY-001/+",
            "weir/terminals/HY-001/#",
            "weir/#",
            "#",
        ] {
            assert!(!p.may_subscribe(&n, f), "{f}");
        }
    }

    #[test]
    fn a_nodes_own_client_id_is_reserved_to_its_terminal() {
        let p = policy("weir");
        let n = node();
        assert!(p.may_use_client_id(&n, "weir-node-HY-001"));
        assert!(!p.may_use_client_id(&n, "weir-node-HY-002"));
        assert!(!p.may_use_client_id(&n, "weir-node-HY-0011"));
        assert!(p.may_use_client_id(&n, "datalogger"));
        let s = Identity::Service {
            username: "weir-gateway".into(),
        };
        assert!(p.may_use_client_id(&s, "weir-node-HY-001"));
    }

    #[test]
    fn the_service_may_do_anything() {
        let p = policy("weir");
        let s = Identity::Service {
            username: "weir-gateway".into(),
        };
        assert!(p.may_publish(&s, "weir/terminals/HY-001/ack"));
        assert!(p.may_subscribe(&s, "#"));
    }

    #[test]
    fn a_prefix_with_wildcards_is_refused() {
        assert!(WeirPolicy::new("we+ir", "s", b"p", |_, _| true).is_err());
    }
}
