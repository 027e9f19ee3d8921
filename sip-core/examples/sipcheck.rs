//! `sipcheck`: parse each file as one SIP message (a datagram) and say whether it is valid and
//! which response a UAS owes it.
//!
//! ```text
//! cargo run --release -p sip-core --example sipcheck -- [--canon] [--lf] [--role uas|proxy|registrar] FILE...
//! ```
//!
//! Prints `FILE: ok`, `FILE: ok, respond NNN Reason`, `FILE: ok, drop` or
//! `FILE: invalid: <error>`; exits 0 when every file is ok (with or without a response), 1
//! otherwise, 2 on a usage error.

#[path = "../tests/support/check.rs"]
mod check;

use std::process::ExitCode;

use sip_core::validate::{Policy, Role};
use sip_core::{Form, Message};

fn main() -> ExitCode {
    let mut canon = false;
    let mut lf = false;
    let mut policy = Policy::UAS;
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--canon" => canon = true,
            "--lf" => lf = true,
            "--role" => {
                let role = match args.next().as_deref() {
                    Some("uas") => Role::Uas,
                    Some("proxy") => Role::Proxy,
                    Some("registrar") => Role::Registrar,
                    other => {
                        eprintln!("sipcheck: --role takes uas, proxy or registrar, not {other:?}");
                        return ExitCode::from(2);
                    }
                };
                policy = policy.with_role(role);
            }
            "-h" | "--help" => {
                println!("usage: sipcheck [--canon] [--lf] [--role uas|proxy|registrar] FILE...");
                return ExitCode::SUCCESS;
            }
            _ => files.push(a),
        }
    }
    if files.is_empty() {
        eprintln!("usage: sipcheck [--canon] [--lf] [--role uas|proxy|registrar] FILE...");
        return ExitCode::from(2);
    }
    let mut all_ok = true;
    for f in &files {
        let data = match std::fs::read(f) {
            Ok(d) => d,
            Err(e) => {
                println!("{f}: invalid: cannot read: {e}");
                all_ok = false;
                continue;
            }
        };
        let data = if lf { check::lf_to_wire(&data) } else { data };
        let outcome = check::check(&data, &policy);
        println!("{f}: {}", outcome.describe());
        if matches!(outcome, check::Outcome::Invalid(_)) {
            all_ok = false;
        } else if canon {
            if let Ok(m) = Message::parse(&data) {
                let mut out = Vec::new();
                m.write_to(&mut out, Form::Canonical);
                println!("{}", String::from_utf8_lossy(&out));
            }
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
