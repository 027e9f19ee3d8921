//! Lexical building blocks of RFC 3261 section 25.1: character classes, LWS, tokens and
//! quoted strings, over a cursor that borrows the input.
//!
//! Typed parsers return `Option`: `None` means "does not match the grammar here", and the
//! caller reports the error at [`Cursor::pos`], which is left where the mismatch was seen.

/// `token` characters (RFC 3261 section 25.1).
pub(crate) const TOKEN: u16 = 1;
/// `word` characters: token plus `( ) < > : \ " / [ ] ? { }`.
pub(crate) const WORD: u16 = 2;
/// `unreserved` of RFC 3261 / RFC 2396: alphanum and `- _ . ! ~ * ' ( )`.
const UNRESERVED: u16 = 4;
/// Characters that may appear unescaped in a URI (reserved, unreserved and `%`).
pub(crate) const URIC: u16 = 8;
/// Host name characters: alphanumerics, `-`, `.`, `_`.
pub(crate) const HOST: u16 = 16;
/// Host characters that make a name rather than an IPv4 address: letters, `-`, `_`.
pub(crate) const HOST_NAME: u16 = 32;
/// Host characters other than `.` and `-` (alphanumerics and `_`).
pub(crate) const HOST_PLAIN: u16 = 64;
/// `user` characters of a SIP URI except `%` (unreserved, `user-unreserved`).
pub(crate) const USER: u16 = 128;
/// [`USER`] without `,`, `;` and `?`, which end an `addr-spec` written without brackets.
pub(crate) const USER_SPEC: u16 = 256;
/// `password` characters except `%`.
pub(crate) const PASSWORD: u16 = 512;
/// [`PASSWORD`] without `,`.
pub(crate) const PASSWORD_SPEC: u16 = 1024;
/// `paramchar` except `%` (`param-unreserved` and unreserved).
pub(crate) const PARAM: u16 = 2048;
/// ASCII digits.
pub(crate) const DIGIT: u16 = 4096;
/// Plain comment text: anything but `(`, `)`, a backslash and control characters.
pub(crate) const CTEXT: u16 = 8192;
/// Visible characters: anything above SP except DEL (bytes of UTF-8 sequences included).
pub(crate) const VISIBLE: u16 = 16384;
/// Plain quoted-string text: anything but `"`, a backslash and control characters.
pub(crate) const QDTEXT: u16 = 32768;

const fn class_table() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alnum = b.is_ascii_alphanumeric();
        let mut v = 0;
        if alnum
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            v |= TOKEN | WORD;
        }
        if matches!(
            b,
            b'(' | b')'
                | b'<'
                | b'>'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'{'
                | b'}'
        ) {
            v |= WORD;
        }
        if alnum
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            )
        {
            v |= UNRESERVED;
        }
        if alnum
            || matches!(
                b,
                b'-' | b'_'
                    | b'.'
                    | b'!'
                    | b'~'
                    | b'*'
                    | b'\''
                    | b'('
                    | b')'
                    | b'%'
                    | b';'
                    | b'/'
                    | b'?'
                    | b':'
                    | b'@'
                    | b'&'
                    | b'='
                    | b'+'
                    | b'$'
                    | b','
                    | b'['
                    | b']'
            )
        {
            v |= URIC;
        }
        if alnum || matches!(b, b'-' | b'.' | b'_') {
            v |= HOST;
        }
        if b.is_ascii_alphabetic() || matches!(b, b'-' | b'_') {
            v |= HOST_NAME;
        }
        if alnum || b == b'_' {
            v |= HOST_PLAIN;
        }
        let unreserved = v & UNRESERVED != 0;
        if unreserved || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/') {
            v |= USER;
        }
        if unreserved || matches!(b, b'&' | b'=' | b'+' | b'$' | b'/') {
            v |= USER_SPEC;
        }
        if unreserved || matches!(b, b'&' | b'=' | b'+' | b'$' | b',') {
            v |= PASSWORD;
        }
        if unreserved || matches!(b, b'&' | b'=' | b'+' | b'$') {
            v |= PASSWORD_SPEC;
        }
        if unreserved || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
            v |= PARAM;
        }
        if b.is_ascii_digit() {
            v |= DIGIT;
        }
        if b >= 0x20 && b != 0x7f && !matches!(b, b'(' | b')' | b'\\') {
            v |= CTEXT;
        }
        if b > 0x20 && b != 0x7f {
            v |= VISIBLE;
        }
        if b >= 0x20 && b != 0x7f && !matches!(b, b'"' | b'\\') {
            v |= QDTEXT;
        }
        t[c] = v;
        c += 1;
    }
    t
}

static CLASS: [u16; 256] = class_table();

/// The end of the run of bytes of class `mask` from `i`. Eight bytes at a time where the
/// input has them (one bounds check for eight), then byte by byte.
#[inline]
pub(crate) fn run(b: &[u8], mut i: usize, mask: u16) -> usize {
    let is = |c: u8| CLASS[c as usize] & mask != 0;
    while let Some(w) = b.get(i..i + 8) {
        let w: &[u8; 8] = match w.try_into() {
            Ok(w) => w,
            Err(_) => break,
        };
        if !is(w[0]) {
            return i;
        }
        if !is(w[1]) {
            return i + 1;
        }
        if !is(w[2]) {
            return i + 2;
        }
        if !is(w[3]) {
            return i + 3;
        }
        if !is(w[4]) {
            return i + 4;
        }
        if !is(w[5]) {
            return i + 5;
        }
        if !is(w[6]) {
            return i + 6;
        }
        if !is(w[7]) {
            return i + 7;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if !is(c) {
            break;
        }
        i += 1;
    }
    i
}

/// Like [`run`], also stepping over `%HH` escapes (for classes that leave out `%`).
#[inline]
pub(crate) fn run_escaped(b: &[u8], mut i: usize, mask: u16) -> usize {
    loop {
        i = run(b, i, mask);
        match (b.get(i), b.get(i + 1), b.get(i + 2)) {
            (Some(b'%'), Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                i += 3
            }
            _ => return i,
        }
    }
}

/// Skips `SWS` (spaces, tabs, line folds) from `i`.
#[inline]
pub(crate) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    loop {
        match b.get(i) {
            Some(b' ' | b'\t') => i += 1,
            Some(b'\r')
                if b.get(i + 1) == Some(&b'\n') && matches!(b.get(i + 2), Some(b' ' | b'\t')) =>
            {
                i += 3
            }
            _ => return i,
        }
    }
}

/// Is `b` a `token` character?
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    CLASS[b as usize] & TOKEN != 0
}

/// Is `b` a `word` character (Call-ID)?
#[inline]
pub(crate) fn is_word(b: u8) -> bool {
    CLASS[b as usize] & WORD != 0
}

/// Is `b` an `unreserved` URI character?
#[inline]
pub(crate) fn is_unreserved(b: u8) -> bool {
    CLASS[b as usize] & UNRESERVED != 0
}

/// May `b` appear in a URI at all (before looking at which component)?
#[inline]
pub(crate) fn is_uric(b: u8) -> bool {
    CLASS[b as usize] & URIC != 0
}

/// Is the whole string a non-empty token?
pub(crate) fn all_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token)
}

/// A position in a string being parsed. Cheap to copy, so a parser can try an alternative by
/// saving and restoring it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    /// Offset of the cursor from the start of the string it was made from.
    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    pub(crate) fn set_pos(&mut self, pos: usize) {
        self.pos = pos;
    }

    #[inline]
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.s.as_bytes()
    }

    /// The unread rest.
    #[inline]
    pub(crate) fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    /// `s[from..self.pos]`, empty if that is not a valid slice (it always is when `from` came
    /// from `pos()` and only ASCII delimiters were consumed since).
    #[inline]
    pub(crate) fn since(&self, from: usize) -> &'a str {
        self.s.get(from..self.pos).unwrap_or("")
    }

    /// `s[from..to]` of the underlying string, empty if out of range.
    #[inline]
    pub(crate) fn slice(&self, from: usize, to: usize) -> &'a str {
        self.s.get(from..to).unwrap_or("")
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    #[inline]
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    /// Consumes `b` if it is next.
    #[inline]
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `b` or fails.
    #[inline]
    pub(crate) fn expect(&mut self, b: u8) -> Option<()> {
        self.eat(b).then_some(())
    }

    /// Consumes `word` case-insensitively if it is next.
    pub(crate) fn eat_ignore_case(&mut self, word: &str) -> bool {
        let end = self.pos + word.len();
        match self.bytes().get(self.pos..end) {
            Some(b) if b.eq_ignore_ascii_case(word.as_bytes()) => {
                self.pos = end;
                true
            }
            _ => false,
        }
    }

    /// Skips `SWS`: spaces, tabs and line folds (CRLF followed by SP or HTAB). Returns whether
    /// anything was skipped.
    #[inline]
    pub(crate) fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        let b = self.bytes();
        loop {
            match b.get(self.pos) {
                Some(b' ' | b'\t') => self.pos += 1,
                Some(b'\r')
                    if b.get(self.pos + 1) == Some(&b'\n')
                        && matches!(b.get(self.pos + 2), Some(b' ' | b'\t')) =>
                {
                    self.pos += 3
                }
                _ => break,
            }
        }
        self.pos != start
    }

    /// `SWS c SWS`: a separator such as SEMI, COMMA, EQUAL, SLASH or COLON. Leaves the cursor
    /// unmoved when `c` is not there.
    #[inline]
    pub(crate) fn sep(&mut self, c: u8) -> bool {
        let save = self.pos;
        self.skip_ws();
        if self.eat(c) {
            self.skip_ws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// Consumes bytes while `f` holds and returns them.
    #[inline]
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        let b = self.bytes();
        while self.pos < b.len() && f(b[self.pos]) {
            self.pos += 1;
        }
        self.since(start)
    }

    /// A non-empty `token`.
    #[inline]
    pub(crate) fn token(&mut self) -> Option<&'a str> {
        let t = self.take_while(is_token);
        (!t.is_empty()).then_some(t)
    }

    /// A non-empty `word`.
    pub(crate) fn word(&mut self) -> Option<&'a str> {
        let t = self.take_while(is_word);
        (!t.is_empty()).then_some(t)
    }

    /// A `quoted-string`; returns the text between the quotes with quoted-pairs left as they
    /// are (see [`unquote`]). The cursor must be at the opening quote.
    pub(crate) fn quoted_string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.pos;
        let b = self.bytes();
        loop {
            match *b.get(self.pos)? {
                b'"' => {
                    let inner = self.since(start);
                    self.pos += 1;
                    return Some(inner);
                }
                b'\\' => {
                    // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                    match *b.get(self.pos + 1)? {
                        b'\n' | b'\r' | 0x80..=0xff => return None,
                        _ => self.pos += 2,
                    }
                }
                b'\r' => {
                    // only a fold (LWS) may break a line inside quotes
                    if b.get(self.pos + 1) == Some(&b'\n')
                        && matches!(b.get(self.pos + 2), Some(b' ' | b'\t'))
                    {
                        self.pos += 3;
                    } else {
                        return None;
                    }
                }
                0x00..=0x08 | 0x0a..=0x1f | 0x7f => return None,
                _ => self.pos += 1,
            }
        }
    }

    /// A decimal number of at most `max` (no sign), allowing leading zeros.
    pub(crate) fn number(&mut self, max: u64) -> Option<u64> {
        let digits = self.take_while(|b| b.is_ascii_digit());
        parse_decimal(digits, max)
    }
}

/// Parses a non-empty run of ASCII digits into a number no larger than `max`.
pub(crate) fn parse_decimal(digits: &str, max: u64) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        if v > max {
            return None;
        }
    }
    Some(v)
}

/// Removes the quoted-pair escapes from the inside of a quoted string and collapses line
/// folds to a single space. Borrows when there is nothing to change.
pub fn unquote(inner: &str) -> std::borrow::Cow<'_, str> {
    if !inner.bytes().any(|b| b == b'\\' || b == b'\r') {
        return std::borrow::Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '\r' => {
                // CRLF 1*WSP: a fold, equivalent to one SP together with the whitespace
                // around it (RFC 3261 section 7.3.1)
                chars.next();
                while out.ends_with([' ', '\t']) {
                    out.pop();
                }
                out.push(' ');
                let rest = chars.as_str();
                let trimmed = rest.trim_start_matches([' ', '\t']);
                chars = trimmed.chars();
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sws_skips_folds_but_not_blank_lines() {
        let mut c = Cursor::new(" \t\r\n  x");
        assert!(c.skip_ws());
        assert_eq!(c.peek(), Some(b'x'));
        let mut c = Cursor::new("\r\n\r\n");
        assert!(!c.skip_ws());
    }

    #[test]
    fn quoted_string_keeps_escapes_and_rejects_unterminated() {
        let mut c = Cursor::new(r#""a \"b\" c" rest"#);
        assert_eq!(c.quoted_string(), Some(r#"a \"b\" c"#));
        assert_eq!(unquote(r#"a \"b\" c"#), "a \"b\" c");
        assert_eq!(Cursor::new("\"abc").quoted_string(), None);
    }

    #[test]
    fn decimal_overflow_is_rejected() {
        assert_eq!(
            parse_decimal("4294967295", u32::MAX as u64),
            Some(4294967295)
        );
        assert_eq!(parse_decimal("4294967296", u32::MAX as u64), None);
        assert_eq!(parse_decimal("36893488147419103232", u64::MAX), None);
        assert_eq!(parse_decimal("0068", 255), Some(68));
    }
}
