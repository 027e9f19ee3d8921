//! Parameter lists: `;name=value` after URIs (`uri-parameters`, RFC 3261 section 19.1.1) and
//! after header values (`generic-param`, section 25.1), and the comma-separated `auth-param`
//! lists of the authentication headers (section 25.1 / RFC 7616).
//!
//! A list is kept as the raw text it was received as, validated once when parsed, and read by
//! iterating: no allocation, and the text round-trips exactly.

use super::scan::{self, Cursor};
use super::uri;

/// Which grammar a parameter list follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ParamStyle {
    /// `uri-parameter`: no whitespace; names and values are `paramchar`s (escapes allowed).
    Uri,
    /// `generic-param` after a header value: LWS allowed around `;` and `=`; values are a
    /// token, a host (IPv6 references included) or a quoted string.
    Header,
    /// `auth-param` lists: comma-separated `name = (token / quoted-string)`.
    Auth,
}

/// A list of parameters, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Params<'a> {
    raw: &'a str,
    style: ParamStyle,
}

/// One parameter of a [`Params`] list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// The name as written (compare case-insensitively, RFC 3261 section 7.3.1).
    pub name: &'a str,
    /// The value as written: quoted strings keep their quotes (see [`Param::unquoted`]).
    pub value: Option<&'a str>,
}

impl<'a> Param<'a> {
    /// The value with the quotes of a quoted string removed (escapes are kept; see
    /// [`unquote`](crate::message::unquote)).
    pub fn unquoted(&self) -> Option<&'a str> {
        self.value.map(|v| {
            if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
                &v[1..v.len() - 1]
            } else {
                v
            }
        })
    }
}

/// [`Params::get`] over a validated `;`-separated list, up to the parameter asked for,
/// when each parameter there is `token [ "=" token ]` (`branch=z9hG4bK1;rport`, as almost
/// every list is written): what the general iterator reads there, in one run per name and
/// value. `None` at anything else (whitespace, a quoted string, a host or URI value): the
/// iterator decides.
#[inline]
fn plain_get<'a>(raw: &'a str, name: &str) -> Option<Option<Option<&'a str>>> {
    if raw.is_empty() || name.is_empty() {
        return None;
    }
    let b = raw.as_bytes();
    let mut i = 0;
    loop {
        let n = scan::run(b, i, scan::TOKEN);
        let (value, end) = if b.get(n) == Some(&b'=') {
            let v = scan::run(b, n + 1, scan::TOKEN);
            (Some(raw.get(n + 1..v)?), v)
        } else {
            (None, n)
        };
        if n == i || value == Some("") || !matches!(b.get(end), Some(b';') | None) {
            return None;
        }
        if raw.get(i..n)?.eq_ignore_ascii_case(name) {
            return Some(Some(value));
        }
        if end == b.len() {
            return Some(None);
        }
        i = end + 1;
    }
}

impl<'a> Params<'a> {
    /// An empty list.
    pub const fn empty() -> Params<'static> {
        Params {
            raw: "",
            style: ParamStyle::Header,
        }
    }

    pub(crate) fn from_raw(raw: &'a str, style: ParamStyle) -> Params<'a> {
        Params { raw, style }
    }

    /// The list as written, without the leading separator.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Is the list empty?
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The parameters in order.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            cur: Cursor::new(self.raw),
            style: self.style,
            first: true,
            name_start: 0,
        }
    }

    /// The first parameter with this name (case-insensitive). `Some(None)` for a parameter
    /// without a value (such as `lr` or `rport`).
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        if self.style != ParamStyle::Auth {
            if let Some(found) = plain_get(self.raw, name) {
                return found;
            }
        }
        self.iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }

    /// Is a parameter with this name present?
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Parses a list at the cursor. For `Uri` and `Header` styles the cursor is at the first
    /// `;` (or at whatever follows the element when there are none); for `Auth` at the first
    /// name. Returns `None` (cursor at the fault) when the text breaks the grammar.
    pub(crate) fn parse(cur: &mut Cursor<'a>, style: ParamStyle) -> Option<Params<'a>> {
        Self::parse_checked(cur, style, |_| true)
    }

    /// [`Params::parse`], also applying `check` to each parameter in the same pass (for
    /// parameters whose values have a stricter grammar, such as Via's `ttl` or `received`).
    pub(crate) fn parse_checked(
        cur: &mut Cursor<'a>,
        style: ParamStyle,
        check: impl Fn(&Param<'a>) -> bool,
    ) -> Option<Params<'a>> {
        let mut it = ParamIter {
            cur: *cur,
            style,
            first: true,
            name_start: 0,
        };
        let mut first_name = None;
        let mut end = cur.pos();
        loop {
            match it.step() {
                Step::Param(p) => {
                    if !check(&p) {
                        cur.set_pos(it.name_start);
                        return None;
                    }
                    first_name.get_or_insert(it.name_start);
                    end = it.cur.pos();
                }
                Step::End => break,
                Step::Error => {
                    cur.set_pos(it.cur.pos());
                    return None;
                }
            }
        }
        cur.set_pos(end);
        let raw = first_name.map_or("", |s| cur.slice(s, end));
        Some(Params { raw, style })
    }
}

impl<'a> IntoIterator for &Params<'a> {
    type Item = Param<'a>;
    type IntoIter = ParamIter<'a>;
    fn into_iter(self) -> ParamIter<'a> {
        self.iter()
    }
}

/// Iterator over a [`Params`] list.
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    cur: Cursor<'a>,
    style: ParamStyle,
    first: bool,
    /// Where the name of the parameter last returned starts.
    name_start: usize,
}

enum Step<'a> {
    Param(Param<'a>),
    End,
    Error,
}

impl<'a> ParamIter<'a> {
    fn step(&mut self) -> Step<'a> {
        let c = &mut self.cur;
        match self.style {
            ParamStyle::Uri => {
                // the raw text of a stored list starts at the first name, without ';'
                let at_stored_start =
                    self.first && c.pos() == 0 && !c.at_end() && c.peek() != Some(b';');
                if !at_stored_start && !c.eat(b';') {
                    return Step::End;
                }
                self.first = false;
                self.name_start = c.pos();
                let name = c.take_while(uri::is_paramchar);
                if name.is_empty() || !uri::escapes_ok(name) {
                    return Step::Error;
                }
                let value = if c.eat(b'=') {
                    let v = c.take_while(uri::is_paramchar);
                    if v.is_empty() || !uri::escapes_ok(v) {
                        return Step::Error;
                    }
                    Some(v)
                } else {
                    None
                };
                Step::Param(Param { name, value })
            }
            ParamStyle::Header => {
                let at_stored_start =
                    self.first && c.pos() == 0 && c.peek().is_some_and(scan::is_token);
                self.first = false;
                if !at_stored_start && !c.sep(b';') {
                    return Step::End;
                }
                self.name_start = c.pos();
                let Some(name) = c.token() else {
                    return Step::Error;
                };
                let value = if c.sep(b'=') {
                    match header_value(c) {
                        Some(v) => Some(v),
                        None => return Step::Error,
                    }
                } else {
                    None
                };
                Step::Param(Param { name, value })
            }
            ParamStyle::Auth => {
                if self.first {
                    self.first = false;
                    c.skip_ws();
                    if c.at_end() {
                        return Step::End;
                    }
                } else if !c.sep(b',') {
                    return Step::End;
                }
                self.name_start = c.pos();
                let Some(name) = c.token() else {
                    return Step::Error;
                };
                if !c.sep(b'=') {
                    return Step::Error;
                }
                match header_value(c) {
                    Some(v) => Step::Param(Param {
                        name,
                        value: Some(v),
                    }),
                    None => Step::Error,
                }
            }
        }
    }
}

/// `gen-value = token / host / quoted-string`, returned as written.
fn header_value<'a>(c: &mut Cursor<'a>) -> Option<&'a str> {
    let start = c.pos();
    if c.peek() == Some(b'"') {
        c.quoted_string()?;
        return Some(c.since(start));
    }
    // token, or a host: IPv6 references with or without brackets (RFC 5118 section 4.5)
    let v = c.take_while(|b| scan::is_token(b) || matches!(b, b':' | b'[' | b']'));
    (!v.is_empty()).then_some(v)
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = Param<'a>;
    fn next(&mut self) -> Option<Param<'a>> {
        match self.step() {
            Step::Param(p) => Some(p),
            Step::End | Step::Error => None,
        }
    }
}

/// Writes a parameter list back: each parameter as `;name=value` (or, for `Auth`, as
/// `name=value` separated by `, `).
pub(crate) fn write_params(out: &mut Vec<u8>, params: &Params<'_>) {
    match params.style {
        ParamStyle::Uri | ParamStyle::Header => {
            for p in params.iter() {
                out.push(b';');
                out.extend_from_slice(p.name.as_bytes());
                if let Some(v) = p.value {
                    out.push(b'=');
                    out.extend_from_slice(v.as_bytes());
                }
            }
        }
        ParamStyle::Auth => {
            for (i, p) in params.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(p.name.as_bytes());
                if let Some(v) = p.value {
                    out.push(b'=');
                    out.extend_from_slice(v.as_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_params_allow_lws_around_separators() {
        // RFC 4475 section 3.1.1.1 (wsinv): "; newparam =\r\n      newvalue ;\r\n  secondparam"
        let s = " ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33";
        let mut c = Cursor::new(s);
        let p = Params::parse(&mut c, ParamStyle::Header).unwrap();
        let v: Vec<_> = p.iter().map(|p| (p.name, p.value)).collect();
        assert_eq!(
            v,
            [
                ("newparam", Some("newvalue")),
                ("secondparam", None),
                ("q", Some("0.33"))
            ]
        );
        assert!(c.at_end());
    }

    #[test]
    fn empty_params_are_rejected() {
        // RFC 4475 section 3.1.2.1 (badinv01): ";;,;,," is not a parameter list
        let mut c = Cursor::new(";;,;,,");
        assert!(Params::parse(&mut c, ParamStyle::Header).is_none());
        let mut c = Cursor::new(";a;;b");
        assert!(Params::parse(&mut c, ParamStyle::Uri).is_none());
    }

    #[test]
    fn auth_params_are_comma_separated() {
        let s = r#"username="bob", realm="x,y", nc=00000001"#;
        let mut c = Cursor::new(s);
        let p = Params::parse(&mut c, ParamStyle::Auth).unwrap();
        assert_eq!(p.get("realm"), Some(Some("\"x,y\"")));
        assert_eq!(p.get("NC"), Some(Some("00000001")));
        assert_eq!(p.iter().count(), 3);
    }
}
