//! Requests sent to URIs (RFC 3263): the endpoint's resolver, the DNS questions it hands
//! the driver, and failover between the targets of a lookup (section 4.3).

use std::time::Instant;

use super::{ClientTxId, Config, Endpoint, SendError};
use crate::resolve::{Answer, Query, QueryId, Resolver};
use crate::transport::FlowId;
use crate::{OwnedMessage, SeededRng};

/// The endpoint's RFC 3263 state.
#[derive(Debug)]
pub(super) struct Locator {
    pub(super) resolver: Resolver,
    /// Keep-alive jitter (RFC 5626 section 3.5.1).
    #[allow(dead_code)]
    pub(super) rng: SeededRng,
}

impl Locator {
    pub(super) fn new(config: &Config, seed: [u8; 32]) -> Locator {
        let (resolver_seed, rng) = crate::rng::resolver_seed(seed);
        Locator {
            resolver: Resolver::new(config.resolver.clone(), resolver_seed),
            rng,
        }
    }
}

impl Endpoint {
    /// The body of `send_request` / `send_request_with_branch` for a [`NextHop::Uri`].
    ///
    /// [`NextHop::Uri`]: super::NextHop::Uri
    pub(super) fn start_located(
        &mut self,
        now: Instant,
        request: &OwnedMessage,
        uri: &str,
        branch: Option<&str>,
    ) -> Result<ClientTxId, SendError> {
        let _ = (now, request, uri, branch);
        Err(SendError::Unresolvable(
            crate::resolve::ResolveError::InvalidName,
        ))
    }

    /// The body of `send_stateless` for a [`NextHop::Uri`].
    ///
    /// [`NextHop::Uri`]: super::NextHop::Uri
    pub(super) fn stateless_located(
        &mut self,
        now: Instant,
        request: &OwnedMessage,
        uri: &str,
        branch: &str,
    ) -> Result<(), SendError> {
        let _ = (now, request, uri, branch);
        Err(SendError::Unresolvable(
            crate::resolve::ResolveError::InvalidName,
        ))
    }

    /// The next DNS question for the driver to ask (drain it after [`Endpoint::poll_io`]),
    /// answered with [`Endpoint::handle_dns_answer`]. Every question must be answered, with
    /// [`Answer::Timeout`] when the servers do not reply. The driver flattens CNAME chains.
    pub fn poll_dns(&mut self) -> Option<Query> {
        let q = self.locator.resolver.poll_query()?;
        self.stats.dns_queries += 1;
        Some(q)
    }

    /// The answer to the DNS question `id` (from [`Endpoint::poll_dns`]).
    pub fn handle_dns_answer(&mut self, now: Instant, id: QueryId, answer: Answer) {
        self.locator.resolver.handle_answer(now, id, answer);
    }

    /// The resolver (cache size, open lookups) for summaries.
    pub fn resolver(&self) -> &Resolver {
        &self.locator.resolver
    }

    /// RFC 5922 section 4: the domain a TLS connection the endpoint asked for
    /// ([`IoRequest::Connect`](crate::IoRequest::Connect) with
    /// [`Transport::Tls`](crate::Transport::Tls)) must prove: the host of the URI that was
    /// resolved (not the SRV target). None for a connection to a [`Target`](crate::Target)
    /// given as an address (the driver then checks the IP address) and for accepted
    /// connections.
    pub fn tls_server_name(&self, flow: FlowId) -> Option<&str> {
        let _ = flow;
        None
    }
}
