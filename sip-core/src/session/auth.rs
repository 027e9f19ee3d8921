//! Digest credentials of a call we place (RFC 3261 sections 8.1.3.5, 22.2 and 13.2.2.4):
//! the INVITE challenged with 401 or 407 is sent again with credentials, once per new
//! challenge; the ACK of a 2xx carries the credentials of the INVITE it acknowledges;
//! requests inside the dialog reuse the kept nonce and answer a challenge once.

use std::time::Instant;

use super::*;
use crate::auth::DigestClient;

/// The credentials of one dialog of a call placed with [`Invite::credentials`].
#[derive(Debug, Clone)]
pub(super) struct LegAuth {
    client: DigestClient,
    /// The Authorization and Proxy-Authorization of the last INVITE sent on the dialog
    /// (initial or re-INVITE), for its ACK (section 13.2.2.4).
    invite_creds: Vec<(&'static str, String)>,
    /// The request sent again after a challenge: a challenge to it is not answered again.
    retried: Option<ClientTxId>,
}

/// The credential header lines of `request`, as written.
fn credentials_of(request: &OwnedMessage) -> Vec<(&'static str, String)> {
    let view = request.view();
    let mut out = Vec::new();
    for (name, h) in [
        ("Authorization", HeaderName::Authorization),
        ("Proxy-Authorization", HeaderName::ProxyAuthorization),
    ] {
        out.extend(view.header_all(h).map(|v| (name, one_line(v))));
    }
    out
}

impl LegAuth {
    /// The credentials of a dialog made by a response to `invite`.
    pub(super) fn new(client: &DigestClient, invite: &OwnedMessage) -> LegAuth {
        LegAuth {
            client: client.clone(),
            invite_creds: credentials_of(invite),
            retried: None,
        }
    }
}

impl Sessions {
    /// Adds credentials to `req`, built inside dialog `k`: the ACK gets those of the INVITE
    /// it acknowledges (section 13.2.2.4: the same credentials, the nonce-count unchanged);
    /// other requests reuse the kept nonces with the next nonce-count (RFC 7616 section
    /// 3.4). An INVITE's credentials are kept for its ACK.
    pub(super) fn auth_outgoing(
        &mut self,
        k: DialogKey,
        method: Method<'_>,
        req: OwnedMessage,
    ) -> OwnedMessage {
        let Some(a) = self.legs.get_mut(k).and_then(|l| l.auth.as_mut()) else {
            return req;
        };
        if method == Method::Ack {
            if a.invite_creds.is_empty() {
                return req;
            }
            let mut e = req.edit();
            for (n, v) in &a.invite_creds {
                if e.append(n, v).is_err() {
                    return req;
                }
            }
            return e.finish().unwrap_or(req);
        }
        let req = a.client.authorize(&req, &mut self.rng).unwrap_or(req);
        if method == Method::Invite {
            a.invite_creds = credentials_of(&req);
        }
        req
    }

    /// A 401 or 407 to our initial INVITE `tx`: the INVITE goes again with credentials
    /// (section 22.2: the same Call-ID, From tag, To, body and Route, CSeq plus one, a new
    /// branch), unless there are none, the call is being cancelled, or the server refused
    /// them (the same nonce challenged again, or fresh credentials challenged). The
    /// transaction ACKs the 401/407 itself (section 17.1.1.3).
    pub(super) fn auth_retry_invite(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ClientTxId,
        response: &OwnedMessage,
    ) -> bool {
        let Some(ctx) = self.invites.get_mut(&tx) else {
            return false;
        };
        let pending = ctx
            .call
            .and_then(|c| self.calls.get(c))
            .is_some_and(|c| c.state == CallState::Pending);
        let Some(client) = ctx.auth.as_mut().filter(|_| pending) else {
            return false;
        };
        let Ok(request) = client.retry(&ctx.request, response, &mut self.rng) else {
            return false;
        };
        if self.resend_invite(now, ep, tx, request).is_none() {
            return false;
        }
        self.stats.auth_retries += 1;
        true
    }

    /// A 401 or 407 to our BYE or re-INVITE `tx` on a dialog with credentials: the request
    /// goes again once, with the next CSeq and credentials for the challenge (section
    /// 22.2). False when it is not answered (the response is then handled as any other).
    pub(super) fn auth_retry_in_dialog(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ClientTxId,
        pending: Pending,
        response: &OwnedMessage,
    ) -> bool {
        let (k, method) = match pending {
            Pending::Bye(k) => (k, Method::Bye),
            Pending::ReInvite(k) => (k, Method::Invite),
            Pending::Update(_) | Pending::Prack(_) => return false,
        };
        let Some(leg) = self.legs.get(k) else {
            return false;
        };
        if leg.auth.as_ref().is_none_or(|a| a.retried == Some(tx)) {
            return false;
        }
        let body = match pending {
            Pending::ReInvite(_) => leg.x.as_ref().and_then(|x| x.offer_out.clone()),
            _ => None,
        };
        let Ok((fresh, target)) = self.dialog_request(ep, k, method, None, body.as_deref()) else {
            return false;
        };
        let Some(seq) = fresh.message().ok().and_then(|m| m.cseq()).map(|c| c.seq) else {
            return false;
        };
        let Some(a) = self.legs.get_mut(k).and_then(|l| l.auth.as_mut()) else {
            return false;
        };
        // `retry` writes the challenged CSeq plus one; the dialog's next one is kept.
        let again = a
            .client
            .retry(&fresh, response, &mut self.rng)
            .ok()
            .and_then(|r| {
                let mut e = r.edit();
                e.set("CSeq", &format!("{seq} {method}")).ok()?;
                e.finish().ok()
            });
        let Some(again) = again else {
            return false;
        };
        if method == Method::Invite {
            a.invite_creds = credentials_of(&again);
        }
        let Ok(new_tx) = ep.send_request(now, &again, target) else {
            return false;
        };
        a.retried = Some(new_tx);
        self.clients.remove(&tx);
        self.clients.insert(new_tx, pending);
        if let Some(leg) = self.legs.get_mut(k) {
            match pending {
                Pending::Bye(_) => leg.bye = Some(new_tx),
                _ => leg.invite_out = Some(new_tx),
            }
        }
        self.stats.auth_retries += 1;
        true
    }
}
