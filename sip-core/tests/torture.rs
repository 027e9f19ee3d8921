//! The RFC 4475 and RFC 5118 torture messages, one test per message, named after it.
//!
//! The corpora are third-party data and are not in this repository: they are read from
//! `$SIP_TORTURE_DIR` (default `../shared/corpus`). Without them each test says so loudly and
//! passes, unless `SIP_REQUIRE_TORTURE=1` (set by `.ci/run`), which makes it fail instead.
//! `scripts/extract-torture-corpus.sh` explains how to get them from the RFCs.

#[path = "support/check.rs"]
mod check;

use check::{check, lf_to_wire, torture_dir, Outcome};
use sip_core::message::{Contact, Host, Uri};
use sip_core::validate::{Policy, Role};
use sip_core::{ErrorKind, HeaderName, Message};

fn load(path: &str) -> Option<Vec<u8>> {
    let Some(dir) = torture_dir() else {
        if std::env::var_os("SIP_REQUIRE_TORTURE").is_some_and(|v| v == "1") {
            panic!("torture corpus not found (set SIP_TORTURE_DIR); SIP_REQUIRE_TORTURE=1 forbids skipping");
        }
        eprintln!(
            "SKIPPED: torture corpus not found at $SIP_TORTURE_DIR or ../shared/corpus ({path})"
        );
        return None;
    };
    let full = dir.join(path);
    Some(std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display())))
}

fn rfc4475(name: &str) -> Option<Vec<u8>> {
    load(&format!("rfc4475/{name}.dat"))
}

fn rfc5118(name: &str) -> Option<Vec<u8>> {
    load(&format!("rfc5118/{name}")).map(|d| lf_to_wire(&d))
}

fn policy(role: Role) -> Policy<'static> {
    Policy::UAS.with_role(role)
}

/// Asserts the outcome for a role, and returns the parsed message's bytes for more checks.
fn expect(data: &[u8], role: Role, want: Outcome) {
    let got = check(data, &policy(role));
    assert_eq!(got, want, "as {role:?}: {}", got.describe());
}

fn expect_invalid(data: &[u8], kind: ErrorKind, status: Option<u16>) {
    match Message::parse(data) {
        Ok(_) => panic!("parsed, but must be rejected with {kind:?}"),
        Err(e) => {
            assert_eq!(e.kind, kind, "{e}");
            assert_eq!(e.response_status(), status, "{e}");
        }
    }
}

// ---- RFC 4475 section 3.1.1: valid messages -------------------------------------------------

// RFC 4475 3.1.1.1: folding, LWS around colons and semicolons, compact names, odd case.
#[test]
fn wsinv() {
    let Some(d) = rfc4475("wsinv") else { return };
    expect(&d, Role::Uas, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    assert_eq!(m.max_forwards(), Some(68));
    assert_eq!(m.cseq().unwrap().seq, 9);
    assert_eq!(m.vias().count(), 3);
    assert_eq!(m.to().unwrap().tag(), Some("1918181833n"));
    assert_eq!(m.from().unwrap().tag(), Some("98asjd8"));
    assert_eq!(m.body().len(), 150);
    // proxies forward the unknown header unchanged
    assert_eq!(
        m.view().extension_header("UnknownHeaderWithUnusualValue"),
        Some(";;,,;;,;")
    );
    let Some(Contact::Addr(c)) = m.contacts().next() else {
        panic!()
    };
    assert_eq!(c.q(), Some(330));
}

// RFC 4475 3.1.1.2: unusual token characters; an endpoint answers the unknown method with 501.
#[test]
fn intmeth() {
    let Some(d) = rfc4475("intmeth") else { return };
    expect(&d, Role::Uas, Outcome::Respond(501));
    let m = Message::parse(&d).unwrap();
    let Some(Uri::Sip(u)) = m.request_uri() else {
        panic!()
    };
    assert_eq!(
        u.user,
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        u.password,
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(
        m.call_id(),
        Some("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
    );
}

// RFC 4475 3.1.1.3: %HH equals the character; never unescape twice.
#[test]
fn esc01() {
    let Some(d) = rfc4475("esc01") else { return };
    expect(&d, Role::Uas, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    let to = Uri::parse("sip:user@example.com").unwrap();
    assert!(m.to().unwrap().uri.equivalent(&to));
    let Some(Contact::Addr(c)) = m.contacts().next() else {
        panic!()
    };
    let contact = c.uri.as_sip().unwrap();
    assert_eq!(contact.params.get("name"), None);
    assert!(c
        .uri
        .equivalent(&Uri::parse("sip:caller@host5.example.net;lr;name=value%25%34%31").unwrap()));
    assert!(!c
        .uri
        .equivalent(&Uri::parse("sip:caller@host5.example.net;lr;name=valueA").unwrap()));
}

// RFC 4475 3.1.1.4: %00 in user parts; two distinct contacts.
#[test]
fn escnull() {
    let Some(d) = rfc4475("escnull") else { return };
    expect(&d, Role::Registrar, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    let c: Vec<_> = m.contacts().collect();
    assert_eq!(c.len(), 2);
    let (Contact::Addr(a), Contact::Addr(b)) = (c[0], c[1]) else {
        panic!()
    };
    assert!(!a.uri.equivalent(&b.uri));
}

// RFC 4475 3.1.1.5: RE%47IST%45R is an unknown method; C%6Fntact is an extension header.
#[test]
fn esc02() {
    let Some(d) = rfc4475("esc02") else { return };
    expect(&d, Role::Uas, Outcome::Respond(501));
    let m = Message::parse(&d).unwrap();
    assert_eq!(m.contacts().count(), 2);
    assert_eq!(
        m.view().extension_header("C%6Fntact"),
        Some("<sip:alias2@host2.example.com>")
    );
}

// RFC 4475 3.1.1.6: no LWS between a token display name and '<'.
#[test]
fn lwsdisp() {
    let Some(d) = rfc4475("lwsdisp") else { return };
    expect(&d, Role::Uas, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    assert_eq!(m.from().unwrap().display_name.unwrap().text(), "caller");
}

// RFC 4475 3.1.1.7: very long values.
#[test]
fn longreq() {
    let Some(d) = rfc4475("longreq") else { return };
    expect(&d, Role::Uas, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    assert!(m.vias().count() >= 20);
}

// RFC 4475 3.1.1.8 / RFC 3261 18.3: octets after Content-Length in a datagram are ignored.
#[test]
fn dblreq() {
    let Some(d) = rfc4475("dblreq") else { return };
    expect(&d, Role::Registrar, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    assert!(m.body().is_empty());
    assert!(m.view().as_bytes().len() < d.len());
}

// RFC 4475 3.1.1.9: ';' in the user part of the Request-URI.
#[test]
fn semiuri() {
    let Some(d) = rfc4475("semiuri") else { return };
    expect(&d, Role::Uas, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    let u = m.request_uri().unwrap().as_sip().unwrap();
    assert_eq!(u.user, Some("user;par=u%40example.net"));
    assert_eq!(u.host, Host::Domain("example.com"));
    assert_eq!(m.accepts().count(), 6);
}

// RFC 4475 3.1.1.10: unknown transports in Via are parsed like known ones.
#[test]
fn transports() {
    let Some(d) = rfc4475("transports") else {
        return;
    };
    expect(&d, Role::Uas, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    let t: Vec<_> = m.vias().map(|v| v.transport).collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
}

// RFC 4475 3.1.1.11: a binary multipart body framed by Content-Length; this UAS only
// understands SDP, so it answers 415 (RFC 3261 8.2.3).
#[test]
fn mpart01() {
    let Some(d) = rfc4475("mpart01") else { return };
    expect(&d, Role::Uas, Outcome::Respond(415));
    let m = Message::parse(&d).unwrap();
    assert_eq!(m.body().len() as u32, m.content_length().unwrap());
    assert!(m.body().contains(&0));
}

// RFC 4475 3.1.1.12: a UTF-8 reason phrase.
#[test]
fn unreason() {
    let Some(d) = rfc4475("unreason") else { return };
    expect(&d, Role::Uac, Outcome::Ok);
    assert_eq!(Message::parse(&d).unwrap().status(), Some(200));
}

// RFC 4475 3.1.1.13: an empty reason phrase.
#[test]
fn noreason() {
    let Some(d) = rfc4475("noreason") else { return };
    expect(&d, Role::Uac, Outcome::Ok);
    assert_eq!(Message::parse(&d).unwrap().status(), Some(100));
}

// ---- RFC 4475 section 3.1.2: invalid messages -----------------------------------------------

// RFC 4475 3.1.2.1: empty Via and Contact parameters.
#[test]
fn badinv01() {
    let Some(d) = rfc4475("badinv01") else { return };
    expect_invalid(&d, ErrorKind::InvalidHeader(HeaderName::Via), Some(400));
}

// RFC 4475 3.1.2.2: Content-Length larger than the datagram's body: 400.
#[test]
fn clerr() {
    let Some(d) = rfc4475("clerr") else { return };
    expect_invalid(&d, ErrorKind::BodyTruncated, Some(400));
}

// RFC 4475 3.1.2.3: negative Content-Length.
#[test]
fn ncl() {
    let Some(d) = rfc4475("ncl") else { return };
    expect_invalid(&d, ErrorKind::InvalidContentLength, Some(400));
}

// RFC 4475 3.1.2.4: CSeq beyond 2^32-1 (also Max-Forwards > 255 and huge Expires).
#[test]
fn scalar02() {
    let Some(d) = rfc4475("scalar02") else { return };
    expect_invalid(&d, ErrorKind::InvalidHeader(HeaderName::CSeq), Some(400));
}

// RFC 4475 3.1.2.5: a response with out-of-range scalars is discarded (never parsed).
#[test]
fn scalarlg() {
    let Some(d) = rfc4475("scalarlg") else { return };
    expect_invalid(&d, ErrorKind::InvalidHeader(HeaderName::CSeq), Some(400));
}

// RFC 4475 3.1.2.6: unterminated quoted display name.
#[test]
fn quotbal() {
    let Some(d) = rfc4475("quotbal") else { return };
    expect_invalid(&d, ErrorKind::InvalidHeader(HeaderName::To), Some(400));
}

// RFC 4475 3.1.2.7: Request-URI in angle brackets.
#[test]
fn ltgtruri() {
    let Some(d) = rfc4475("ltgtruri") else { return };
    expect_invalid(&d, ErrorKind::InvalidRequestUri, Some(400));
}

// RFC 4475 3.1.2.8: LWS inside the Request-URI.
#[test]
fn lwsruri() {
    let Some(d) = rfc4475("lwsruri") else { return };
    expect_invalid(&d, ErrorKind::InvalidRequestUri, Some(400));
}

// RFC 4475 3.1.2.9: several SP between Request-Line elements.
#[test]
fn lwsstart() {
    let Some(d) = rfc4475("lwsstart") else { return };
    expect_invalid(&d, ErrorKind::InvalidRequestUri, Some(400));
}

// RFC 4475 3.1.2.10: SP between the version and CRLF.
#[test]
fn trws() {
    let Some(d) = rfc4475("trws") else { return };
    assert!(Message::parse(&d).is_err());
    expect_invalid(&d, ErrorKind::InvalidStartLine, None);
}

// RFC 4475 3.1.2.11: escaped headers in the Request-URI: 400, never real headers.
#[test]
fn escruri() {
    let Some(d) = rfc4475("escruri") else { return };
    expect(&d, Role::Uas, Outcome::Respond(400));
    expect(&d, Role::Proxy, Outcome::Respond(400));
}

// RFC 4475 3.1.2.12: a Date not in GMT.
#[test]
fn baddate() {
    let Some(d) = rfc4475("baddate") else { return };
    expect_invalid(&d, ErrorKind::InvalidHeader(HeaderName::Date), Some(400));
}

// RFC 4475 3.1.2.13: a Contact addr-spec with an escaped header needs brackets.
#[test]
fn regbadct() {
    let Some(d) = rfc4475("regbadct") else { return };
    expect_invalid(&d, ErrorKind::InvalidHeader(HeaderName::Contact), Some(400));
}

// RFC 4475 3.1.2.14: spaces inside '<' '>'.
#[test]
fn badaspec() {
    let Some(d) = rfc4475("badaspec") else { return };
    expect_invalid(&d, ErrorKind::InvalidHeader(HeaderName::To), Some(400));
}

// RFC 4475 3.1.2.15: unquoted display names with commas. The archive copy also lacks the
// empty line ending its headers; the fixed copy fails on the display name itself.
#[test]
fn baddn() {
    let Some(d) = rfc4475("baddn") else { return };
    expect_invalid(&d, ErrorKind::UnterminatedHeaders, Some(400));
    let Some(fixed) = load("rfc4475/extra/baddn.with-terminating-crlf.dat") else {
        return;
    };
    expect_invalid(
        &fixed,
        ErrorKind::InvalidHeader(HeaderName::From),
        Some(400),
    );
}

// RFC 4475 3.1.2.16: SIP/7.0 gets 505.
#[test]
fn badvers() {
    let Some(d) = rfc4475("badvers") else { return };
    expect_invalid(&d, ErrorKind::UnsupportedVersion, Some(505));
    // the view still frames it, so an endpoint can build the 505
    assert!(!sip_core::MessageView::parse(&d).unwrap().is_sip_2_0());
}

// RFC 4475 3.1.2.17: CSeq method differs from the request method: 400.
#[test]
fn mismatch01() {
    let Some(d) = rfc4475("mismatch01") else {
        return;
    };
    expect(&d, Role::Uas, Outcome::Respond(400));
}

// RFC 4475 3.1.2.18: unknown method with a mismatching CSeq: 501 preferred.
#[test]
fn mismatch02() {
    let Some(d) = rfc4475("mismatch02") else {
        return;
    };
    expect(&d, Role::Uas, Outcome::Respond(501));
}

// RFC 4475 3.1.2.19: a status code above 699 is never processed.
#[test]
fn bigcode() {
    let Some(d) = rfc4475("bigcode") else { return };
    expect_invalid(&d, ErrorKind::InvalidStatusCode, Some(400));
    // a three-digit code above 699 parses but is dropped
    let d = String::from_utf8_lossy(&d).replacen("4294967301", "701", 1);
    expect(d.as_bytes(), Role::Uac, Outcome::Drop);
}

// ---- RFC 4475 sections 3.2-3.4: valid but unusual -------------------------------------------

// RFC 4475 3.2.1: branch is exactly the magic cookie: 400.
#[test]
fn badbranch() {
    let Some(d) = rfc4475("badbranch") else {
        return;
    };
    expect(&d, Role::Uas, Outcome::Respond(400));
}

// RFC 4475 3.3.1: missing Call-ID, From and To: 400.
#[test]
fn insuf() {
    let Some(d) = rfc4475("insuf") else { return };
    expect(&d, Role::Uas, Outcome::Respond(400));
}

// RFC 4475 3.3.2: unknown Request-URI scheme: 416.
#[test]
fn unkscm() {
    let Some(d) = rfc4475("unkscm") else { return };
    expect(&d, Role::Uas, Outcome::Respond(416));
    let m = Message::parse(&d).unwrap();
    assert_eq!(m.request_uri().unwrap().scheme(), "nobodyKnowsThisScheme");
}

// RFC 4475 3.3.3: a registered but unsupported scheme: 416.
#[test]
fn novelsc() {
    let Some(d) = rfc4475("novelsc") else { return };
    expect(&d, Role::Uas, Outcome::Respond(416));
}

// RFC 4475 3.3.4: non-SIP URIs in To, From, Contact parse; a registrar answers 400.
#[test]
fn unksm2() {
    let Some(d) = rfc4475("unksm2") else { return };
    expect(&d, Role::Registrar, Outcome::Respond(400));
    let m = Message::parse(&d).unwrap();
    assert_eq!(m.to().unwrap().uri.scheme(), "isbn");
    assert_eq!(m.from().unwrap().uri.scheme(), "http");
}

// RFC 4475 3.3.5: unknown Require (UAS) and Proxy-Require (proxy) tags: 420 with Unsupported.
#[test]
fn bext01() {
    let Some(d) = rfc4475("bext01") else { return };
    expect(&d, Role::Uas, Outcome::Respond(420));
    expect(&d, Role::Proxy, Outcome::Respond(420));
    let m = Message::parse(&d).unwrap();
    let sip_core::validate::Verdict::Respond(r) = sip_core::validate::request(&m, &Policy::UAS)
    else {
        panic!()
    };
    assert_eq!(
        r.unsupported.as_slice(),
        ["nothingSupportsThis", "nothingSupportsThisEither"]
    );
    let sip_core::validate::Verdict::Respond(r) =
        sip_core::validate::request(&m, &policy(Role::Proxy))
    else {
        panic!()
    };
    assert_eq!(
        r.unsupported.as_slice(),
        ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
    );
}

// RFC 4475 3.3.6: body of an unknown type: 415.
#[test]
fn invut() {
    let Some(d) = rfc4475("invut") else { return };
    expect(&d, Role::Uas, Outcome::Respond(415));
}

// RFC 4475 3.3.7: credentials of an unknown scheme: the registrar challenges (401).
#[test]
fn regaut01() {
    let Some(d) = rfc4475("regaut01") else { return };
    let p = Policy {
        require_digest: true,
        ..policy(Role::Registrar)
    };
    let got = check(&d, &p);
    assert_eq!(got, Outcome::Respond(401), "{}", got.describe());
    let m = Message::parse(&d).unwrap();
    let Some(sip_core::HeaderValue::Auth(a)) = m.values(HeaderName::Authorization).next() else {
        panic!()
    };
    assert_eq!(a.scheme, "NoOneKnowsThisScheme");
}

// RFC 4475 3.3.8: several values in single-value headers: 400.
#[test]
fn multi01() {
    let Some(d) = rfc4475("multi01") else { return };
    expect(&d, Role::Uas, Outcome::Respond(400));
}

// RFC 4475 3.3.9: conflicting Content-Length values are a framing error.
#[test]
fn mcl01() {
    let Some(d) = rfc4475("mcl01") else { return };
    expect_invalid(&d, ErrorKind::ConflictingContentLength, Some(400));
}

// RFC 4475 3.3.10: a response with a broadcast second Via is discarded.
#[test]
fn bcast() {
    let Some(d) = rfc4475("bcast") else { return };
    expect(&d, Role::Uac, Outcome::Drop);
    expect(&d, Role::Proxy, Outcome::Drop);
}

// RFC 4475 3.3.11: Max-Forwards 0: a proxy answers 483; the target UAS may process it.
#[test]
fn zeromf() {
    let Some(d) = rfc4475("zeromf") else { return };
    expect(&d, Role::Uas, Outcome::Ok);
    expect(&d, Role::Proxy, Outcome::Respond(483));
}

// RFC 4475 3.3.12: an addr-spec Contact's ';unknownparam' is a contact-param.
#[test]
fn cparam01() {
    let Some(d) = rfc4475("cparam01") else { return };
    expect(&d, Role::Registrar, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    let Some(Contact::Addr(c)) = m.contacts().next() else {
        panic!()
    };
    assert!(c.params.contains("unknownparam"));
    assert!(c.uri.as_sip().unwrap().params.is_empty());
}

// RFC 4475 3.3.13: '<URI;unknownparam>' keeps the parameter in the URI.
#[test]
fn cparam02() {
    let Some(d) = rfc4475("cparam02") else { return };
    expect(&d, Role::Registrar, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    let Some(Contact::Addr(c)) = m.contacts().next() else {
        panic!()
    };
    assert!(c.params.is_empty());
    assert!(c.uri.as_sip().unwrap().params.contains("unknownparam"));
}

// RFC 4475 3.3.14: an escaped Route header inside a Contact URI stays intact.
#[test]
fn regescrt() {
    let Some(d) = rfc4475("regescrt") else { return };
    expect(&d, Role::Registrar, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    let Some(Contact::Addr(c)) = m.contacts().next() else {
        panic!()
    };
    assert_eq!(
        c.uri.as_sip().unwrap().headers,
        Some("Route=%3Csip:sip.example.com%3E")
    );
    let mut out = Vec::new();
    c.uri.write_to(&mut out);
    assert_eq!(out, b"sip:user@example.com?Route=%3Csip:sip.example.com%3E");
}

// RFC 4475 3.3.15: an INVITE whose Accept rules out SDP: 406.
#[test]
fn sdp01() {
    let Some(d) = rfc4475("sdp01") else { return };
    expect(&d, Role::Uas, Outcome::Respond(406));
}

// RFC 4475 3.4.1: RFC 2543 syntax (no branch, tag, Content-Length, Max-Forwards) is accepted.
#[test]
fn inv2543() {
    let Some(d) = rfc4475("inv2543") else { return };
    expect(&d, Role::Uas, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    assert!(m.top_via().unwrap().branch().is_none());
    assert_eq!(m.content_length(), None);
}

// Every message of the RFC 4475 manifest has a test above.
#[test]
fn rfc4475_manifest_is_covered() {
    let Some(manifest) = load("rfc4475/MANIFEST.tsv") else {
        return;
    };
    let this = include_str!("torture.rs");
    let names: Vec<String> = String::from_utf8_lossy(&manifest)
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next().map(str::to_owned))
        .collect();
    assert_eq!(names.len(), 49);
    for n in names {
        assert!(this.contains(&format!("fn {n}()")), "no test for {n}");
    }
}

// ---- RFC 5118 ------------------------------------------------------------------------------

// RFC 5118 4.1: bracketed IPv6 references everywhere.
#[test]
fn ipv6_good() {
    let Some(d) = rfc5118("ipv6-good") else {
        return;
    };
    expect(&d, Role::Registrar, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    assert_eq!(
        m.request_uri().unwrap().as_sip().unwrap().host,
        Host::Ipv6("2001:db8::10")
    );
}

// RFC 5118 4.2: an unbracketed IPv6 Request-URI host: 400.
#[test]
fn ipv6_bad() {
    let Some(d) = rfc5118("ipv6-bad") else { return };
    expect_invalid(&d, ErrorKind::InvalidRequestUri, Some(400));
}

// RFC 5118 4.3: [2001:db8::10:5070] is an address without a port.
#[test]
fn port_ambiguous() {
    let Some(d) = rfc5118("port-ambiguous") else {
        return;
    };
    expect(&d, Role::Registrar, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    let u = m.request_uri().unwrap().as_sip().unwrap();
    assert_eq!((u.host, u.port), (Host::Ipv6("2001:db8::10:5070"), None));
}

// RFC 5118 4.4: [2001:db8::10]:5070 has port 5070.
#[test]
fn port_unambiguous() {
    let Some(d) = rfc5118("port-unambiguous") else {
        return;
    };
    expect(&d, Role::Registrar, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    let u = m.request_uri().unwrap().as_sip().unwrap();
    assert_eq!((u.host, u.port), (Host::Ipv6("2001:db8::10"), Some(5070)));
}

// RFC 5118 4.5: received with brackets.
#[test]
fn via_received_param_with_delim() {
    let Some(d) = rfc5118("via-received-param-with-delim") else {
        return;
    };
    expect(&d, Role::Uas, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    assert_eq!(m.top_via().unwrap().received(), Some("[2001:db8::9:255]"));
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bKas3-111"));
}

// RFC 5118 4.5: received without brackets; later parameters still read.
#[test]
fn via_received_param_no_delim() {
    let Some(d) = rfc5118("via-received-param-no-delim") else {
        return;
    };
    expect(&d, Role::Uas, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    assert_eq!(m.top_via().unwrap().received(), Some("2001:db8::9:255"));
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bKas3"));
}

// RFC 5118 4.6: IPv6 in SDP.
#[test]
fn ipv6_in_sdp() {
    let Some(d) = rfc5118("ipv6-in-sdp") else {
        return;
    };
    expect(&d, Role::Uas, Outcome::Ok);
}

// RFC 5118 4.7: Vias mixing IPv6 and IPv4.
#[test]
fn mult_ip_in_header() {
    let Some(d) = rfc5118("mult-ip-in-header") else {
        return;
    };
    expect(&d, Role::Uas, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    let v: Vec<_> = m.vias().map(|v| (v.host, v.port)).collect();
    assert_eq!(
        v,
        [
            (Host::Ipv6("2001:db8::9:1"), Some(6050)),
            (Host::Ipv4("192.0.2.1"), None),
            (Host::Ipv6("2001:db8::9:255"), None)
        ]
    );
    assert_eq!(m.vias().nth(2).unwrap().received(), Some("192.0.2.200"));
}

// RFC 5118 4.8: per-media IPv4 and IPv6 c= lines.
#[test]
fn mult_ip_in_sdp() {
    let Some(d) = rfc5118("mult-ip-in-sdp") else {
        return;
    };
    expect(&d, Role::Uas, Outcome::Ok);
}

// RFC 5118 4.9: IPv4-mapped IPv6 addresses.
#[test]
fn ipv4_mapped_ipv6() {
    let Some(d) = rfc5118("ipv4-mapped-ipv6") else {
        return;
    };
    expect(&d, Role::Uas, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    assert!(m.top_via().unwrap().host.ip().is_some());
}

// RFC 5118 4.10: three colons (the RFC 3261 ABNF bug) are tolerated.
#[test]
fn ipv6_bug_abnf_3_colons() {
    let Some(d) = rfc5118("ipv6-bug-abnf-3-colons") else {
        return;
    };
    expect(&d, Role::Uas, Outcome::Ok);
}

// RFC 5118 4.10: the correct two-colon form.
#[test]
fn ipv6_correct_abnf_2_colons() {
    let Some(d) = rfc5118("ipv6-correct-abnf-2-colons") else {
        return;
    };
    expect(&d, Role::Uas, Outcome::Ok);
    let m = Message::parse(&d).unwrap();
    assert!(m
        .request_uri()
        .unwrap()
        .as_sip()
        .unwrap()
        .host
        .ip()
        .is_some());
}

// Every torture message, valid or not, re-serializes canonically into something that parses
// to the same outcome (RFC 3261 section 7.3.1: folding and compact forms are equivalent).
#[test]
fn canonical_form_keeps_the_outcome() {
    let Some(dir) = torture_dir() else { return };
    for entry in std::fs::read_dir(dir.join("rfc4475")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "dat") {
            continue;
        }
        let d = std::fs::read(&path).unwrap();
        let Ok(m) = Message::parse(&d) else { continue };
        let canon = m.to_bytes();
        let again = Message::parse(&canon).unwrap_or_else(|e| {
            panic!(
                "{}: canonical form does not parse: {e}\n{}",
                path.display(),
                String::from_utf8_lossy(&canon)
            )
        });
        assert_eq!(again.to_bytes(), canon, "{}", path.display());
        for role in [Role::Uas, Role::Proxy, Role::Registrar] {
            assert_eq!(
                check::verdict(&m, &policy(role)),
                check::verdict(&again, &policy(role)),
                "{}",
                path.display()
            );
        }
    }
}
