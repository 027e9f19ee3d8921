//! The client side of digest authentication (RFC 3261 section 22.2 and 22.3, RFC 7616
//! section 3.4, RFC 8760): the request to send again after a 401 or 407, and credentials
//! for later requests from the nonces kept.

use std::borrow::Cow;

use super::digest::{self, Algorithm, Challenge, Credentials, Hex, Qop, ResponseInput};
use super::AuthKind;
use crate::rng::push_random_token;
use crate::{BuildError, HeaderValue, Message, OwnedMessage, ParseError, Rng};

/// How many protection spaces (realm and header kind) a client keeps nonces for; the
/// oldest is forgotten past this (what a peer's challenges can make it hold is bounded).
const MAX_KEPT: usize = 8;

/// How many `stale=true` challenges in a row one request is retried for: a server that
/// calls every fresh nonce stale would otherwise be answered forever.
const MAX_STALE_RETRIES: u8 = 2;

/// Characters of a cnonce: 24 token characters of 5 random bits each (120 bits).
const CNONCE_CHARS: usize = 24;

/// Why [`DigestClient::retry`] or [`DigestClient::authorize`] has no request to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// The response holds no challenge this client can answer: no WWW-Authenticate or
    /// Proxy-Authenticate, only schemes other than Digest, algorithms or qop values this
    /// crate does not implement (RFC 7616 section 3.3: such challenges are ignored), or
    /// only realms other than the one the client is restricted to
    /// ([`DigestClient::with_realm`]).
    #[error("no digest challenge this client can answer")]
    NoChallenge,
    /// The server refused these credentials: it challenged again, without `stale=true`,
    /// a request that answered a fresh challenge of this realm, or sent a nonce that was
    /// answered already. The username or password is wrong; retrying would loop (RFC 3261
    /// section 22.2 asks for one retry per new challenge).
    #[error("credentials rejected in realm {realm:?}")]
    Rejected {
        /// The realm.
        realm: String,
    },
    /// The username or password holds CR, LF or NUL (they would end a header line).
    #[error("username or password contains CR, LF or NUL")]
    InvalidCredentials,
    /// The request or the response does not parse as a typed message.
    #[error("message does not parse: {0}")]
    Message(#[from] ParseError),
    /// The new request could not be written (for instance its CSeq is at its limit).
    #[error("request cannot be written: {0}")]
    Build(#[from] BuildError),
}

/// What is kept of one answered challenge, for the requests that follow (RFC 7616 section
/// 3.4: "the client ... may reuse the nonce ... with an incremented nonce-count").
#[derive(Debug, Clone)]
struct Kept {
    kind: AuthKind,
    realm: String,
    nonce: String,
    opaque: Option<String>,
    algorithm: Algorithm,
    qop: Option<Qop>,
    userhash: bool,
    /// The last nonce-count sent with this nonce.
    nc: u32,
    /// The cnonce A1 was computed with, for a `-sess` algorithm: a stateless server
    /// recomputes the session key from the cnonce of each request, so it stays the same.
    session_cnonce: Option<String>,
    /// `stale=true` challenges answered in a row.
    stale_retries: u8,
}

/// A user's credentials, answering digest challenges (RFC 3261 sections 22.2 and 22.3).
///
/// One client is one account: it keeps the nonces of the realms it answered (at most 8),
/// and [`authorize`](DigestClient::authorize) adds credentials for all of them.
///
/// ```
/// use sip_core::auth::DigestClient;
/// use sip_core::{OwnedMessage, SeededRng};
///
/// let register = OwnedMessage::parse(
///     b"REGISTER sip:example.com SIP/2.0\r\n\
///       From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\n\
///       Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n",
/// )?;
/// let unauthorized = OwnedMessage::parse(
///     b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
///       From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>;tag=2\r\n\
///       Call-ID: c1\r\nCSeq: 1 REGISTER\r\n\
///       WWW-Authenticate: Digest realm=\"example.com\", nonce=\"abc\", algorithm=SHA-256, qop=\"auth\"\r\n\
///       Content-Length: 0\r\n\r\n",
/// )?;
/// let mut rng = SeededRng::new([1; 32]); // seed from the OS in real use
/// let mut client = DigestClient::new("alice", "secret");
/// let again = client.retry(&register, &unauthorized, &mut rng)?;
/// let m = again.message()?;
/// assert_eq!(m.cseq().unwrap().seq, 2);
/// let text = std::str::from_utf8(again.as_bytes())?;
/// assert!(text.contains("Authorization: Digest username=\"alice\", realm=\"example.com\""));
/// assert!(text.contains("algorithm=SHA-256") && text.contains("nc=00000001"));
///
/// // a later request (a refresh) reuses the nonce with the next nonce-count
/// let refresh = client.authorize(&register, &mut rng)?;
/// assert!(std::str::from_utf8(refresh.as_bytes())?.contains("nc=00000002"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DigestClient {
    username: String,
    password: String,
    realm: Option<String>,
    kept: Vec<Kept>,
}

impl std::fmt::Debug for DigestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the password
        f.debug_struct("DigestClient")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .field("kept", &self.kept.len())
            .finish_non_exhaustive()
    }
}

/// The challenge chosen for one protection space.
struct Chosen<'a> {
    kind: AuthKind,
    challenge: Challenge<'a>,
    algorithm: Algorithm,
    qop: Option<Qop>,
}

/// Forbids what would end a header line.
fn check_credential(s: &str) -> Result<(), DigestError> {
    if s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        Err(DigestError::InvalidCredentials)
    } else {
        Ok(())
    }
}

impl DigestClient {
    /// A client answering with this username and password, in any realm.
    pub fn new(username: &str, password: &str) -> DigestClient {
        DigestClient {
            username: username.to_owned(),
            password: password.to_owned(),
            realm: None,
            kept: Vec::new(),
        }
    }

    /// Answers only challenges of this realm (the credentials are not handed to whoever
    /// asks for them on the path).
    pub fn with_realm(mut self, realm: &str) -> DigestClient {
        self.realm = Some(realm.to_owned());
        self
    }

    /// The username.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Forgets the nonces kept (after the user changed, or on shutdown).
    pub fn forget(&mut self) {
        self.kept.clear();
    }

    /// The request to send again after `response` (a 401 or 407) challenged `request`.
    ///
    /// `request` is the request as the application gave it to
    /// [`Endpoint::send_request`](crate::Endpoint::send_request); any Via is removed (the
    /// endpoint writes a fresh one with a new branch, RFC 3261 section 8.1.3.5). The result
    /// has the CSeq plus one (section 22.2) and one Authorization per WWW-Authenticate
    /// realm and one Proxy-Authorization per Proxy-Authenticate realm answered: several
    /// challenges in one response (a forking proxy's aggregate, section 16.7 step 7) are
    /// answered together, and credentials the request already held for those realms are
    /// replaced.
    ///
    /// When a realm is offered with several algorithms, the topmost challenge this client
    /// implements is answered: RFC 8760 section 2.4 ("it SHOULD use the topmost header
    /// field that it supports") and RFC 7616 section 3.7 let the server order its
    /// challenges by preference, and the server knows which HA1 it holds. The qop is
    /// `auth`, or `auth-int` when only that is offered; a challenge without qop is
    /// answered in the RFC 2069 form (RFC 3261 section 22.4). The cnonce comes from `rng`,
    /// the nonce-count of a new nonce is 00000001, and the username is hashed when the
    /// challenge says `userhash=true` (RFC 7616 section 3.4.4).
    ///
    /// Errors: [`DigestError::NoChallenge`] when nothing can be answered;
    /// [`DigestError::Rejected`] when the server refused these credentials (see there):
    /// a request is retried once per new challenge, never in a loop.
    pub fn retry(
        &mut self,
        request: &OwnedMessage,
        response: &OwnedMessage,
        rng: &mut dyn Rng,
    ) -> Result<OwnedMessage, DigestError> {
        check_credential(&self.username)?;
        check_credential(&self.password)?;
        let resp = response.message()?;
        let req = request.message()?;
        let chosen = self.choose(&resp);
        if chosen.is_empty() {
            return Err(DigestError::NoChallenge);
        }
        // refuse before changing any state: a rejected realm rejects the whole retry
        for c in &chosen {
            self.check_not_rejected(&req, c)?;
        }
        let mut answers = Vec::with_capacity(chosen.len());
        for c in chosen {
            let stale_retries = match self.kept_index(c.kind, &c.challenge.realm) {
                Some(i) if c.challenge.stale => self.kept[i].stale_retries + 1,
                _ => 0,
            };
            let mut kept = Kept {
                kind: c.kind,
                realm: c.challenge.realm.clone().into_owned(),
                nonce: c.challenge.nonce.clone().into_owned(),
                opaque: c.challenge.opaque.clone().map(Cow::into_owned),
                algorithm: c.algorithm,
                qop: c.qop,
                userhash: c.challenge.userhash,
                nc: 0,
                session_cnonce: None,
                stale_retries,
            };
            answers.push((
                c.kind,
                kept.realm.clone(),
                self.answer(&req, &mut kept, rng),
            ));
            self.keep(kept);
        }
        let cseq = req.cseq().ok_or(BuildError::Missing("CSeq"))?;
        let seq = cseq.seq.checked_add(1).filter(|&s| s < 1 << 31).ok_or(
            // section 8.1.1.5: the sequence number stays below 2**31
            BuildError::NotApplicable("CSeq at its limit"),
        )?;
        let mut e = request.edit();
        e.remove("Via")?;
        e.set("CSeq", &format!("{seq} {}", cseq.method))?;
        write_credentials(&mut e, &req, &answers)?;
        Ok(e.finish()?)
    }

    /// Adds credentials for the nonces kept from earlier challenges to a new request (a
    /// registration refresh, a later request in the same realm), with the nonce-count
    /// incremented (RFC 7616 section 3.4); credentials the request held for those realms
    /// are replaced. Returns the request unchanged when nothing is kept. When the server
    /// no longer accepts a nonce it challenges again (`stale=true`, or a new nonce), and
    /// [`retry`](DigestClient::retry) answers that.
    pub fn authorize(
        &mut self,
        request: &OwnedMessage,
        rng: &mut dyn Rng,
    ) -> Result<OwnedMessage, DigestError> {
        if self.kept.is_empty() {
            return Ok(request.clone());
        }
        check_credential(&self.username)?;
        check_credential(&self.password)?;
        let req = request.message()?;
        let mut kept = std::mem::take(&mut self.kept);
        let mut answers = Vec::with_capacity(kept.len());
        for k in &mut kept {
            k.stale_retries = 0;
            answers.push((k.kind, k.realm.clone(), self.answer(&req, k, rng)));
        }
        self.kept = kept;
        let mut e = request.edit();
        write_credentials(&mut e, &req, &answers)?;
        Ok(e.finish()?)
    }

    /// The challenge answered per protection space, in the order of the response.
    fn choose<'a>(&self, resp: &Message<'a>) -> Vec<Chosen<'a>> {
        let mut chosen: Vec<Chosen<'a>> = Vec::new();
        for h in resp.headers() {
            let kind = match h.name {
                crate::HeaderName::WwwAuthenticate => AuthKind::Www,
                crate::HeaderName::ProxyAuthenticate => AuthKind::Proxy,
                _ => continue,
            };
            let HeaderValue::Auth(auth) = h.value else {
                continue;
            };
            let Some(challenge) = Challenge::parse(&auth) else {
                continue;
            };
            let Some(algorithm) = challenge.algorithm else {
                continue;
            };
            let qop = match challenge.qop {
                Some(options) => match options.preferred() {
                    Some(q) => Some(q),
                    // only qop values this crate does not know
                    None => continue,
                },
                None => None,
            };
            if self.realm.as_deref().is_some_and(|r| r != challenge.realm) {
                continue;
            }
            // RFC 8760 section 2.4: the topmost supported challenge of a realm
            if chosen
                .iter()
                .any(|c| c.kind == kind && c.challenge.realm == challenge.realm)
            {
                continue;
            }
            chosen.push(Chosen {
                kind,
                challenge,
                algorithm,
                qop,
            });
        }
        chosen
    }

    fn kept_index(&self, kind: AuthKind, realm: &str) -> Option<usize> {
        self.kept
            .iter()
            .position(|k| k.kind == kind && k.realm == realm)
    }

    /// [`DigestError::Rejected`] when answering `c` would repeat a refused answer.
    fn check_not_rejected(&self, req: &Message<'_>, c: &Chosen<'_>) -> Result<(), DigestError> {
        let realm = &c.challenge.realm;
        let rejected = || DigestError::Rejected {
            realm: realm.clone().into_owned(),
        };
        // what the challenged request carried for this realm
        let sent = req
            .values(c.kind.credentials_header())
            .filter_map(|v| match v {
                HeaderValue::Auth(a) => Credentials::parse(&a).ok(),
                _ => None,
            })
            .find(|cr| cr.realm == *realm);
        let kept = self.kept_index(c.kind, realm).map(|i| &self.kept[i]);
        if c.challenge.stale {
            // a nonce called stale in the very challenge that issues it, or stale
            // challenges without end
            let same_nonce = sent.as_ref().is_some_and(|s| s.nonce == c.challenge.nonce);
            if same_nonce || kept.is_some_and(|k| k.stale_retries >= MAX_STALE_RETRIES) {
                return Err(rejected());
            }
            return Ok(());
        }
        // a nonce answered before, challenged again: the answer was wrong
        if kept.is_some_and(|k| k.nonce == c.challenge.nonce) {
            return Err(rejected());
        }
        // the request answered a fresh challenge of this realm (nonce-count 1, or the
        // RFC 2069 form) and the server wants new credentials: they were wrong. A request
        // that reused a kept nonce (nonce-count above 1) is retried once with the new one.
        // Without qop there is no nonce-count: the kept nonce tells whether it was reused
        // since (a nonce we do not keep any more counts as fresh).
        let fresh = |s: &Credentials<'_>| match s.nc {
            Some(n) => n <= 1,
            None => kept.is_none_or(|k| k.nonce != s.nonce || k.nc <= 1),
        };
        if sent.as_ref().is_some_and(fresh) {
            return Err(rejected());
        }
        Ok(())
    }

    /// The credentials for `req` with the nonce of `kept`, its nonce-count advanced.
    fn answer(&self, req: &Message<'_>, kept: &mut Kept, rng: &mut dyn Rng) -> String {
        kept.nc = kept.nc.saturating_add(1);
        let mut cnonce = String::new();
        match &kept.session_cnonce {
            Some(c) => cnonce.push_str(c),
            None if kept.qop.is_some() => {
                push_random_token(&mut cnonce, rng, CNONCE_CHARS);
                if kept.algorithm.is_session() {
                    kept.session_cnonce = Some(cnonce.clone());
                }
            }
            None => {}
        }
        let ha1 = digest::ha1(kept.algorithm, &self.username, &kept.realm, &self.password);
        let method = req.method().map_or("", |m| m.as_str());
        let uri = request_uri(req);
        let response = digest::response(
            kept.algorithm,
            ha1.as_str(),
            &ResponseInput {
                nonce: &kept.nonce,
                nc: kept.nc,
                cnonce: &cnonce,
                qop: kept.qop,
                method,
                uri,
                body: req.body(),
            },
        );
        let username: Cow<'_, str> = if kept.userhash {
            let h: Hex = digest::userhash(kept.algorithm, &self.username, &kept.realm);
            Cow::Owned(h.as_str().to_owned())
        } else {
            Cow::Borrowed(&self.username)
        };
        Credentials {
            username,
            realm: Cow::Borrowed(&kept.realm),
            nonce: Cow::Borrowed(&kept.nonce),
            uri: Cow::Borrowed(uri),
            response: Cow::Borrowed(response.as_str()),
            algorithm: Some(kept.algorithm),
            cnonce: kept.qop.map(|_| Cow::Borrowed(cnonce.as_str())),
            opaque: kept.opaque.as_deref().map(Cow::Borrowed),
            qop: kept.qop,
            nc: kept.qop.map(|_| kept.nc),
            userhash: kept.userhash,
        }
        .to_string()
    }

    /// Keeps (or replaces) the nonce of one protection space, forgetting the oldest past
    /// [`MAX_KEPT`].
    fn keep(&mut self, kept: Kept) {
        if let Some(i) = self.kept_index(kept.kind, &kept.realm) {
            self.kept.remove(i);
        }
        if self.kept.len() >= MAX_KEPT {
            self.kept.remove(0);
        }
        self.kept.push(kept);
    }
}

/// The Request-URI as written: the digest-uri (RFC 3261 section 22.4).
pub(crate) fn request_uri<'a>(m: &Message<'a>) -> &'a str {
    match m.start_line() {
        crate::message::StartLine::Request { uri, .. } => uri,
        crate::message::StartLine::Response { .. } => "",
    }
}

/// Replaces the credentials of the answered realms: the other credentials of each header
/// kind are written back (unfolded) and the new ones appended after them.
fn write_credentials(
    e: &mut crate::MessageEditor,
    req: &Message<'_>,
    answers: &[(AuthKind, String, String)],
) -> Result<(), BuildError> {
    for kind in [AuthKind::Www, AuthKind::Proxy] {
        if !answers.iter().any(|a| a.0 == kind) {
            continue;
        }
        let name = kind.credentials_header().as_str();
        let mut keep = Vec::new();
        for v in req.values(kind.credentials_header()) {
            let HeaderValue::Auth(a) = v else { continue };
            let realm = Credentials::parse(&a).ok().map(|c| c.realm.into_owned());
            if realm.is_some_and(|r| answers.iter().any(|x| x.0 == kind && x.1 == r)) {
                continue;
            }
            let params: String = a
                .params
                .as_str()
                .chars()
                .map(|c| if matches!(c, '\r' | '\n') { ' ' } else { c })
                .collect();
            keep.push(format!("{} {params}", a.scheme));
        }
        e.remove(name)?;
        for v in keep
            .iter()
            .chain(answers.iter().filter(|a| a.0 == kind).map(|a| &a.2))
        {
            e.append(name, v)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRng;

    const REQUEST: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
        Max-Forwards: 70\r\nTo: Bob <sip:bob@biloxi.example.com>\r\n\
        From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\nCSeq: 314159 INVITE\r\n\
        Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n";

    fn request() -> OwnedMessage {
        OwnedMessage::parse(REQUEST.as_bytes()).expect("request parses")
    }

    /// A response to [`REQUEST`] with these challenge lines (`Name: value`).
    fn response(status: u16, challenges: &[&str]) -> OwnedMessage {
        let mut s = format!(
            "SIP/2.0 {status} Challenge\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
             To: Bob <sip:bob@biloxi.example.com>;tag=x\r\n\
             From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\nCSeq: 314159 INVITE\r\n"
        );
        for c in challenges {
            s.push_str(c);
            s.push_str("\r\n");
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        OwnedMessage::parse(s.as_bytes()).expect("response parses")
    }

    fn rng() -> SeededRng {
        SeededRng::new([3; 32])
    }

    /// The credentials of `kind` in `m`, each checked against the password by recomputing
    /// the response.
    fn answers(m: &OwnedMessage, kind: AuthKind, password: &str) -> Vec<Credentials<'static>> {
        let msg = m.message().expect("typed");
        let method = msg.method().expect("request").as_str();
        let uri = request_uri(&msg);
        msg.values(kind.credentials_header())
            .map(|v| {
                let HeaderValue::Auth(a) = v else {
                    panic!("not an auth value")
                };
                let c = Credentials::parse(&a).expect("credentials parse");
                let alg = c.algorithm.expect("known algorithm");
                let ha1 = digest::ha1(alg, "alice", &c.realm, password);
                let expect = digest::response(
                    alg,
                    ha1.as_str(),
                    &ResponseInput {
                        nonce: &c.nonce,
                        nc: c.nc.unwrap_or(0),
                        cnonce: c.cnonce.as_deref().unwrap_or(""),
                        qop: c.qop,
                        method,
                        uri: &c.uri,
                        body: msg.body(),
                    },
                );
                assert_eq!(c.uri, uri, "digest-uri is the Request-URI");
                assert_eq!(c.response, expect.as_str(), "response verifies");
                Credentials {
                    username: Cow::Owned(c.username.into_owned()),
                    realm: Cow::Owned(c.realm.into_owned()),
                    nonce: Cow::Owned(c.nonce.into_owned()),
                    uri: Cow::Owned(c.uri.into_owned()),
                    response: Cow::Owned(c.response.into_owned()),
                    algorithm: c.algorithm,
                    cnonce: c.cnonce.map(|x| Cow::Owned(x.into_owned())),
                    opaque: c.opaque.map(|x| Cow::Owned(x.into_owned())),
                    qop: c.qop,
                    nc: c.nc,
                    userhash: c.userhash,
                }
            })
            .collect()
    }

    const SHA256: &str =
        "WWW-Authenticate: Digest realm=\"biloxi.example.com\", nonce=\"n1\", algorithm=SHA-256, qop=\"auth,auth-int\", opaque=\"o1\"";

    #[test]
    fn retry_answers_401_with_authorization_and_cseq_plus_one() {
        // RFC 3261 22.2 (CSeq incremented), 8.1.3.5 (new Via from the endpoint)
        let mut c = DigestClient::new("alice", "secret");
        let again = c
            .retry(&request(), &response(401, &[SHA256]), &mut rng())
            .expect("answered");
        let m = again.message().expect("typed");
        assert_eq!(m.cseq().expect("CSeq").seq, 314160);
        assert_eq!(m.vias().count(), 0, "the endpoint writes a fresh Via");
        let a = answers(&again, AuthKind::Www, "secret");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].username, "alice");
        assert_eq!(a[0].algorithm, Some(Algorithm::Sha256));
        assert_eq!((a[0].qop, a[0].nc), (Some(Qop::Auth), Some(1)));
        assert_eq!(a[0].opaque.as_deref(), Some("o1"));
        assert_eq!(m.body(), b"v=0\n");
    }

    #[test]
    fn retry_answers_407_with_proxy_authorization() {
        // RFC 3261 22.3
        let mut c = DigestClient::new("alice", "secret");
        let again = c
            .retry(
                &request(),
                &response(
                    407,
                    &["Proxy-Authenticate: Digest realm=\"atlanta.example.com\", nonce=\"p\", qop=\"auth\""],
                ),
                &mut rng(),
            )
            .expect("answered");
        assert!(answers(&again, AuthKind::Www, "secret").is_empty());
        let a = answers(&again, AuthKind::Proxy, "secret");
        assert_eq!(a.len(), 1);
        // RFC 7616 3.3: no algorithm directive means MD5
        assert_eq!(a[0].algorithm, Some(Algorithm::Md5));
    }

    #[test]
    fn several_challenges_in_one_response_are_answered_together() {
        // RFC 3261 16.7 step 7 (a forking proxy's aggregate) and 22.3
        let mut c = DigestClient::new("alice", "secret");
        let again = c
            .retry(
                &request(),
                &response(
                    407,
                    &[
                        "Proxy-Authenticate: Digest realm=\"p1.example.com\", nonce=\"a\", qop=\"auth\", algorithm=SHA-256",
                        "Proxy-Authenticate: Digest realm=\"p2.example.com\", nonce=\"b\", qop=\"auth\", algorithm=MD5",
                        SHA256,
                    ],
                ),
                &mut rng(),
            )
            .expect("answered");
        let p = answers(&again, AuthKind::Proxy, "secret");
        let realms: Vec<_> = p.iter().map(|c| c.realm.as_ref()).collect();
        assert_eq!(realms, ["p1.example.com", "p2.example.com"]);
        assert_eq!(answers(&again, AuthKind::Www, "secret").len(), 1);
    }

    #[test]
    fn topmost_supported_challenge_of_a_realm_is_answered() {
        // RFC 8760 2.4, RFC 7616 3.7: the server lists its algorithms in preference order
        let mut c = DigestClient::new("alice", "secret");
        let again = c
            .retry(
                &request(),
                &response(
                    401,
                    &[
                        "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", algorithm=SHA-3-512, qop=\"auth\"",
                        "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256, qop=\"auth\", userhash=true",
                        "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256, qop=\"auth\"",
                        "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", algorithm=MD5, qop=\"auth\"",
                    ],
                ),
                &mut rng(),
            )
            .expect("answered");
        let a = answers(&again, AuthKind::Www, "secret");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].algorithm, Some(Algorithm::Sha512_256));
        // RFC 7616 3.4.4: the username hashed on request
        assert!(a[0].userhash);
        assert_eq!(
            a[0].username,
            digest::userhash(Algorithm::Sha512_256, "alice", "r").as_str()
        );
    }

    #[test]
    fn algorithm_the_client_does_not_know_is_no_challenge() {
        // RFC 7616 3.3: a challenge with an unknown algorithm is ignored
        let mut c = DigestClient::new("alice", "secret");
        let r = response(
            401,
            &[
                "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", algorithm=SHA-1, qop=\"auth\"",
                "WWW-Authenticate: Basic realm=\"r\"",
                "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth-conf\"",
            ],
        );
        assert_eq!(
            c.retry(&request(), &r, &mut rng()).err(),
            Some(DigestError::NoChallenge)
        );
    }

    #[test]
    fn challenge_of_another_realm_is_not_answered_when_restricted() {
        // RFC 3261 22.1: credentials belong to a realm (protection space)
        let mut c = DigestClient::new("alice", "secret").with_realm("atlanta.example.com");
        assert_eq!(
            c.retry(&request(), &response(401, &[SHA256]), &mut rng())
                .err(),
            Some(DigestError::NoChallenge)
        );
    }

    #[test]
    fn only_auth_int_offered_answers_auth_int_over_the_body() {
        // RFC 7616 3.4.3, RFC 3261 22.4
        let mut c = DigestClient::new("alice", "secret");
        let again = c
            .retry(
                &request(),
                &response(
                    401,
                    &["WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""],
                ),
                &mut rng(),
            )
            .expect("answered");
        assert_eq!(
            answers(&again, AuthKind::Www, "secret")[0].qop,
            Some(Qop::AuthInt)
        );
    }

    #[test]
    fn challenge_without_qop_is_answered_in_rfc2069_form() {
        // RFC 3261 22.4 (backward compatibility with RFC 2069): no cnonce, no nc
        let mut c = DigestClient::new("alice", "secret");
        let again = c
            .retry(
                &request(),
                &response(401, &["WWW-Authenticate: Digest realm=\"r\", nonce=\"n\""]),
                &mut rng(),
            )
            .expect("answered");
        let a = &answers(&again, AuthKind::Www, "secret")[0];
        assert_eq!((a.qop, a.nc, a.cnonce.is_none()), (None, None, true));
    }

    #[test]
    fn request_is_retried_once_per_new_challenge() {
        // RFC 3261 22.2: a rejected answer is not retried in a loop
        let mut c = DigestClient::new("alice", "wrong");
        let first = c
            .retry(&request(), &response(401, &[SHA256]), &mut rng())
            .expect("answered");
        // the server challenges the answer again, even with a new nonce
        let fresh = SHA256.replace("n1", "n2");
        assert_eq!(
            c.retry(&first, &response(401, &[&fresh]), &mut rng()).err(),
            Some(DigestError::Rejected {
                realm: "biloxi.example.com".into()
            })
        );
        // and a nonce already answered is refused whatever the request
        assert_eq!(
            c.retry(&request(), &response(401, &[SHA256]), &mut rng())
                .err(),
            Some(DigestError::Rejected {
                realm: "biloxi.example.com".into()
            })
        );
    }

    #[test]
    fn stale_challenge_is_answered_with_the_new_nonce() {
        // RFC 7616 3.3 (stale): retry without asking the user again
        let mut c = DigestClient::new("alice", "secret");
        let first = c
            .retry(&request(), &response(401, &[SHA256]), &mut rng())
            .expect("answered");
        let stale = format!("{}, stale=true", SHA256.replace("n1", "n2"));
        let second = c
            .retry(&first, &response(401, &[&stale]), &mut rng())
            .expect("a stale nonce is retried");
        let a = answers(&second, AuthKind::Www, "secret");
        assert_eq!((a.len(), a[0].nonce.as_ref(), a[0].nc), (1, "n2", Some(1)));
        assert_eq!(second.message().unwrap().cseq().unwrap().seq, 314161);
        // stale again and again is not followed for ever
        let stale3 = format!("{}, stale=true", SHA256.replace("n1", "n3"));
        let third = c
            .retry(&second, &response(401, &[&stale3]), &mut rng())
            .expect("second stale retry");
        let stale4 = format!("{}, stale=true", SHA256.replace("n1", "n4"));
        assert!(matches!(
            c.retry(&third, &response(401, &[&stale4]), &mut rng()),
            Err(DigestError::Rejected { .. })
        ));
    }

    #[test]
    fn authorize_reuses_the_nonce_with_the_next_nonce_count() {
        // RFC 7616 3.4 (nc incremented for each request with the same nonce)
        let mut c = DigestClient::new("alice", "secret");
        assert_eq!(
            c.authorize(&request(), &mut rng()).unwrap().as_bytes(),
            request().as_bytes(),
            "nothing kept: unchanged"
        );
        c.retry(&request(), &response(401, &[SHA256]), &mut rng())
            .expect("answered");
        let mut rng = rng();
        let r2 = c.authorize(&request(), &mut rng).expect("authorized");
        let r3 = c.authorize(&r2, &mut rng).expect("authorized");
        let a2 = answers(&r2, AuthKind::Www, "secret");
        let a3 = answers(&r3, AuthKind::Www, "secret");
        assert_eq!((a2[0].nc, a3[0].nc), (Some(2), Some(3)));
        assert_eq!(a3.len(), 1, "the credentials of the realm are replaced");
        assert_ne!(a2[0].cnonce, a3[0].cnonce, "a fresh cnonce per request");
        assert_eq!(r3.message().unwrap().cseq().unwrap().seq, 314159);
        // a server that lost the nonce challenges afresh: one retry with the new nonce
        let fresh = SHA256.replace("n1", "n9");
        assert!(c.retry(&r3, &response(401, &[&fresh]), &mut rng).is_ok());
    }

    #[test]
    fn reused_nonce_without_qop_is_retried_once_with_the_new_nonce() {
        // RFC 3261 22.2 and 22.4 (RFC 2069 form: no nonce-count to tell a reuse by)
        let plain = "WWW-Authenticate: Digest realm=\"r\", nonce=\"n1\"";
        let mut c = DigestClient::new("alice", "secret");
        let mut rng = rng();
        c.retry(&request(), &response(401, &[plain]), &mut rng)
            .expect("answered");
        let reused = c.authorize(&request(), &mut rng).expect("authorized");
        let fresh = plain.replace("n1", "n2");
        let again = c
            .retry(&reused, &response(401, &[&fresh]), &mut rng)
            .expect("a reused nonce refused: one retry with the new one");
        let newer = plain.replace("n1", "n3");
        assert!(matches!(
            c.retry(&again, &response(401, &[&newer]), &mut rng),
            Err(DigestError::Rejected { .. })
        ));
    }

    #[test]
    fn credentials_of_other_realms_are_kept() {
        // RFC 3261 22.3: one credential per realm; only the challenged realm's is replaced
        let mut c = DigestClient::new("alice", "secret");
        let mut e = request().edit();
        e.append(
            "Authorization",
            "Digest username=\"alice\", realm=\"other\", nonce=\"x\", uri=\"sip:bob@biloxi.example.com\", response=\"00\"",
        )
        .unwrap();
        e.append(
            "Authorization",
            "Digest username=\"alice\", realm=\"biloxi.example.com\", nonce=\"old\", uri=\"sip:bob@biloxi.example.com\", response=\"00\", qop=auth, cnonce=\"c\", nc=00000005",
        )
        .unwrap();
        let req = e.finish().unwrap();
        let again = c
            .retry(&req, &response(401, &[SHA256]), &mut rng())
            .expect("answered");
        let m = again.message().unwrap();
        let realms: Vec<String> = m
            .values(crate::HeaderName::Authorization)
            .filter_map(|v| match v {
                HeaderValue::Auth(a) => Credentials::parse(&a).ok().map(|c| c.realm.into_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(realms, ["other", "biloxi.example.com"]);
    }

    #[test]
    fn username_with_line_break_is_refused_and_quotes_are_escaped() {
        // RFC 3261 7.3.1 (no header injection), 25.1 (quoted-pair)
        let mut c = DigestClient::new("alice\r\nX-Evil: 1", "secret");
        assert_eq!(
            c.retry(&request(), &response(401, &[SHA256]), &mut rng())
                .err(),
            Some(DigestError::InvalidCredentials)
        );
        let mut c = DigestClient::new("al\"ice\\", "secret");
        let again = c
            .retry(&request(), &response(401, &[SHA256]), &mut rng())
            .expect("answered");
        let m = again.message().unwrap();
        let HeaderValue::Auth(a) = m.values(crate::HeaderName::Authorization).next().unwrap()
        else {
            panic!()
        };
        assert_eq!(Credentials::parse(&a).unwrap().username, "al\"ice\\");
    }
}
