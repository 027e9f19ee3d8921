//! What `sipcheck` and the torture tests do with one message: parse it as a datagram, type
//! every header, and run the semantic checks for a role. Shared by `examples/sipcheck.rs` and
//! `tests/torture.rs` through `#[path]`, so the tool and the tests cannot drift apart.
#![allow(dead_code)]

use std::path::PathBuf;

use sip_core::validate::{self, Policy, Verdict};
use sip_core::{reason_phrase, Message, ParseError};

/// The outcome for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Parses and passes the checks.
    Ok,
    /// Parses; a UAS (or the chosen role) owes this response.
    Respond(u16),
    /// Parses; a response that must be discarded (or an ACK that gets no answer).
    Drop,
    /// Does not parse.
    Invalid(ParseError),
}

impl Outcome {
    /// The line `sipcheck` prints after `FILE: `.
    pub(crate) fn describe(&self) -> String {
        match self {
            Outcome::Ok => "ok".to_owned(),
            Outcome::Respond(code) => format!("ok, respond {code} {}", reason_phrase(*code)),
            Outcome::Drop => "ok, drop".to_owned(),
            Outcome::Invalid(e) => format!("invalid: {e}"),
        }
    }
}

/// Parses and checks one datagram.
pub(crate) fn check(data: &[u8], policy: &Policy<'_>) -> Outcome {
    match Message::parse(data) {
        Err(e) => Outcome::Invalid(e),
        Ok(m) => verdict(&m, policy),
    }
}

/// The outcome of the semantic checks on a parsed message.
pub(crate) fn verdict(m: &Message<'_>, policy: &Policy<'_>) -> Outcome {
    let v = if m.is_request() {
        validate::request(m, policy)
    } else {
        let policy = if policy.role == validate::Role::Proxy {
            *policy
        } else {
            policy.with_role(validate::Role::Uac)
        };
        validate::response(m, &policy)
    };
    match v {
        Verdict::Accept => Outcome::Ok,
        Verdict::Respond(r) => Outcome::Respond(r.status),
        _ => Outcome::Drop,
    }
}

/// Turns the RFC 5118 archive's bare-LF text into wire bytes, as the corpus README says:
/// LF becomes CRLF, a missing empty line closing the headers is added, and Content-Length is
/// set to the body actually present (the archive's values match neither line ending).
pub(crate) fn lf_to_wire(data: &[u8]) -> Vec<u8> {
    let mut crlf = Vec::with_capacity(data.len() + data.len() / 20);
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' && (i == 0 || data[i - 1] != b'\r') {
            crlf.push(b'\r');
        }
        crlf.push(b);
    }
    let Some(split) = crlf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if !crlf.ends_with(b"\r\n") {
            crlf.extend_from_slice(b"\r\n");
        }
        crlf.extend_from_slice(b"\r\n");
        return crlf;
    };
    let (head, body) = crlf.split_at(split + 4);
    let head = String::from_utf8_lossy(head);
    let mut out = Vec::with_capacity(crlf.len());
    for line in head.split_inclusive("\r\n") {
        let name = line.split(':').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        } else {
            out.extend_from_slice(line.as_bytes());
        }
    }
    out.extend_from_slice(body);
    out
}

/// Where the torture corpora are: `$SIP_TORTURE_DIR`, else `../shared/corpus` beside the
/// workspace. `None` when absent.
pub(crate) fn torture_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SIP_TORTURE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    };
    dir.join("rfc4475").is_dir().then_some(dir)
}
