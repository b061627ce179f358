//! The `key=value` messages of FortiGate and Stormshield, split into fields,
//! and the values both vendors write the same way (dates, UTC offsets).
//!
//! ```text
//! date=2024-03-19 time=14:02:33 devname="FGT-GRENOBLE" tz="+0100" user="CN=Martin\, J.,OU=Tech"
//! ```
//!
//! Keys are `[A-Za-z0-9_-]+`. A value is bare (up to the next blank) or
//! quoted; a quoted value may hold blanks, commas, `=` and the escapes `\"`
//! and `\\`. Values are returned as written between the quotes, escapes
//! included, so that they borrow from the line: [`unescape`] reads them for
//! a caller that needs the text itself.
//!
//! A backslash always takes the character after it, so a quoted value that
//! ends in a lone backslash (`path="C:\"`) has no closing quote: the writer
//! did not escape it, and we cannot tell where it ends.

use std::borrow::Cow;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use nom::{
    branch::alt,
    bytes::complete::{take_till, take_while, take_while1, take_while_m_n},
    character::complete::char,
    combinator::{all_consuming, eof, map_res, opt, value},
    sequence::preceded,
    Parser,
};

use crate::error::{expect, to_parse_error, Expected, PResult, ParseError};
use crate::time::LineTime;

/// The fields of one message, in the order it wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields<'a> {
    /// The message the pairs were read from, so that an error about one of
    /// its values can give that value's column.
    line: &'a str,
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Fields<'a> {
    /// The value of `key` as written (inside the quotes, escapes left as
    /// they are). When a key repeats, the first one counts.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(k, _)| *k == key).map(|&(_, v)| v)
    }

    /// The value of `key`, unless the gateway wrote it as absent: empty, or
    /// FortiGate's `N/A`.
    pub fn present(&self, key: &str) -> Option<&'a str> {
        self.get(key).filter(|v| !v.is_empty() && *v != "N/A")
    }

    /// The value of `key`, which the event needs: its absence is an error
    /// at the end of the line, saying what was `expected`.
    pub fn require(&self, key: &str, expected: &'static str) -> Result<&'a str, ParseError> {
        self.present(key).ok_or_else(|| self.missing(expected))
    }

    /// The value of `key` read as a `T` (a number, an address), `None` when
    /// absent; a value that does not read is an error at its column.
    pub fn parsed<T: FromStr>(
        &self,
        key: &str,
        expected: &'static str,
    ) -> Result<Option<T>, ParseError> {
        self.present(key)
            .map(|v| v.parse().map_err(|_| self.error_at(v, expected)))
            .transpose()
    }

    /// An address: absent when written `N/A`, empty or `0.0.0.0` (FortiGate's
    /// "none assigned").
    pub fn address(&self, key: &str, expected: &'static str) -> Result<Option<IpAddr>, ParseError> {
        Ok(self
            .parsed::<IpAddr>(key, expected)?
            .filter(|ip| !ip.is_unspecified()))
    }

    /// [`Fields::parsed`] for a value the event needs.
    pub fn required<T: FromStr>(&self, key: &str, expected: &'static str) -> Result<T, ParseError> {
        self.parsed(key, expected)?
            .ok_or_else(|| self.missing(expected))
    }

    /// [`Fields::address`] for an address the event needs.
    pub fn required_address(
        &self,
        key: &str,
        expected: &'static str,
    ) -> Result<IpAddr, ParseError> {
        self.address(key, expected)?
            .ok_or_else(|| self.missing(expected))
    }

    /// The error for a field the line lacks: at its end, where the field
    /// could have been.
    pub fn missing(&self, expected: &'static str) -> ParseError {
        ParseError::at(self.line, "", expected)
    }

    /// An error about `value`, one of this message's values.
    pub fn error_at(&self, value: &str, expected: &'static str) -> ParseError {
        ParseError::at_slice(self.line, value, expected)
    }

    /// Every pair, in the order of the line.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.pairs.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// Splits a whole message into its fields, in one pass.
///
/// ```text
/// logid="0101039947" tunnelid=1529032756 msg="SSL tunnel established"
/// ```
pub fn fields(line: &str) -> Result<Fields<'_>, ParseError> {
    let mut pairs = Vec::new();
    let (mut rest, _) = blanks(line).map_err(|e| to_parse_error(line, e))?;
    while !rest.is_empty() {
        let (after, found) = pair(rest).map_err(|e| to_parse_error(line, e))?;
        pairs.push(found);
        let (after, _) = pair_end(after).map_err(|e| to_parse_error(line, e))?;
        rest = after;
    }
    Ok(Fields { line, pairs })
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Blanks before, between and after pairs; possibly none.
fn blanks(input: &str) -> PResult<'_, &str> {
    take_while(is_blank).parse(input)
}

/// After a value: blanks before the next pair, or the end of the line.
/// Only a quoted value can be followed by anything else (`a="x"y`).
fn pair_end(input: &str) -> PResult<'_, &str> {
    expect(
        "a blank or the end of the line after a quoted value",
        alt((take_while1(is_blank), eof)),
    )(input)
}

/// `key=value`
fn pair(input: &str) -> PResult<'_, (&str, &str)> {
    let (rest, k) = key(input)?;
    let (rest, _) = expect("'=' after the key", char('=')).parse(rest)?;
    let (rest, v) = alt((quoted, bare)).parse(rest)?;
    Ok((rest, (k, v)))
}

/// `devname`, `dst_host`, `log-id`: letters, digits, `_` and `-`.
fn key(input: &str) -> PResult<'_, &str> {
    expect(
        "a key of letters, digits, '_' or '-'",
        take_while1(is_key_char),
    )
    .parse(input)
}

/// `198.51.100.23`: everything up to the next blank, possibly nothing
/// (`MAC=`).
fn bare(input: &str) -> PResult<'_, &str> {
    take_till(is_blank).parse(input)
}

/// `"CN=Martin\, J.,OU=Tech"`: the raw text between the quotes.
///
/// An opening quote without its closing one is a failure, not a reason to
/// read the value as bare: the line is broken there.
fn quoted(input: &str) -> PResult<'_, &str> {
    let (body, _) = char('"').parse(input)?;
    let mut escaped = false;
    // `"` and `\` are ASCII, so a byte index where one stands is a char
    // boundary; an escape may take the first byte of a multibyte char, whose
    // other bytes are neither.
    for (i, b) in body.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return Ok((&body[i + 1..], &body[..i])),
            _ => {}
        }
    }
    Err(nom::Err::Failure(Expected {
        input,
        expected: "a closing '\"' for the quote opened here",
    }))
}

/// Reads a quoted value's escapes: `\"` is `"` and `\\` is `\`. Any other
/// backslash stays, as it belongs to the value: `CN=Martin\, J.` is an LDAP
/// DN's own escape. Borrows when there is nothing to undo.
pub fn unescape(raw: &str) -> Cow<'_, str> {
    if !raw.contains("\\\"") && !raw.contains("\\\\") {
        return Cow::Borrowed(raw);
    }
    let mut text = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        match chars.next() {
            Some(next @ ('"' | '\\')) => text.push(next),
            Some(other) => {
                text.push('\\');
                text.push(other);
            }
            None => text.push('\\'),
        }
    }
    Cow::Owned(text)
}

/// Whether `text` holds `needle`, ignoring ASCII case: gateways are not
/// consistent about the case of their words (`Idle timeout`, `idle-timeout`).
pub(crate) fn contains_ignoring_case(text: &str, needle: &str) -> bool {
    let needle = needle.as_bytes();
    needle.is_empty()
        || text
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

fn digits(n: usize) -> impl FnMut(&str) -> PResult<'_, &str> {
    move |input| take_while_m_n(n, n, |c: char| c.is_ascii_digit()).parse(input)
}

fn number<T: FromStr>(n: usize) -> impl FnMut(&str) -> PResult<'_, T> {
    move |input| map_res(digits(n), str::parse::<T>).parse(input)
}

/// `YYYY-MM-DD`, as both vendors write the date.
pub(crate) fn date(input: &str) -> PResult<'_, NaiveDate> {
    let (rest, (y, _, m, _, d)) = expect(
        "a date YYYY-MM-DD",
        (
            number::<i32>(4),
            char('-'),
            number::<u32>(2),
            char('-'),
            number::<u32>(2),
        ),
    )(input)?;
    match NaiveDate::from_ymd_opt(y, m, d) {
        Some(day) => Ok((rest, day)),
        None => Err(nom::Err::Error(Expected {
            input,
            expected: "a date that exists",
        })),
    }
}

/// `+0100`, `+01:00`, `-0500`: the offset from UTC of the times beside it.
pub(crate) fn utc_offset(input: &str) -> PResult<'_, FixedOffset> {
    let (rest, (sign, h, _, m)) = expect(
        "a UTC offset such as +0100",
        (
            alt((value(1, char('+')), value(-1, char('-')))),
            number::<i32>(2),
            opt(char(':')),
            number::<i32>(2),
        ),
    )(input)?;
    match FixedOffset::east_opt(sign * (h * 3600 + m * 60)) {
        Some(offset) if m < 60 => Ok((rest, offset)),
        _ => Err(nom::Err::Error(Expected {
            input,
            expected: "a UTC offset within a day",
        })),
    }
}

/// `2024-04-09 10:20:41`: a date and a time in one value (Stormshield).
pub(crate) fn date_time(input: &str) -> PResult<'_, NaiveDateTime> {
    let (rest, (day, time)) =
        (date, preceded(char(' '), crate::syslog::time_of_day)).parse(input)?;
    Ok((rest, day.and_time(time)))
}

/// Reads a whole value with `rule`; an error names the field and points at
/// the value.
pub(crate) fn read_value<'a, O>(
    fields: &Fields<'a>,
    value: &'a str,
    rule: impl FnMut(&'a str) -> PResult<'a, O>,
    expected: &'static str,
) -> Result<O, ParseError> {
    all_consuming(rule)
        .parse(value)
        .map(|(_, out)| out)
        .map_err(|_| fields.error_at(value, expected))
}

/// The time a message wrote: with its `tz=` offset an instant, without it a
/// local time for the source's zone to settle.
pub(crate) fn line_time(at: NaiveDateTime, offset: Option<FixedOffset>) -> LineTime {
    match offset.map(|o| o.from_local_datetime(&at).single()) {
        Some(Some(at)) => LineTime::Absolute { at },
        _ => LineTime::Local { at },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs<'a>(f: &Fields<'a>) -> Vec<(&'a str, &'a str)> {
        f.iter().collect()
    }

    #[test]
    fn bare_and_quoted_values() {
        let f = fields(r#"date=2024-03-19 devname="FGT-GRENOBLE" tunnelid=1529032756"#).unwrap();
        assert_eq!(
            pairs(&f),
            [
                ("date", "2024-03-19"),
                ("devname", "FGT-GRENOBLE"),
                ("tunnelid", "1529032756"),
            ]
        );
        assert_eq!(f.get("devname"), Some("FGT-GRENOBLE"));
        assert_eq!(f.get("remip"), None);
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn quoted_values_keep_blanks_commas_and_equals() {
        let f = fields(
            r#"reason="User requested termination of service" msg="a, b=c" user="CN=Martin\, J.,OU=Tech" x=1"#,
        )
        .unwrap();
        assert_eq!(
            pairs(&f),
            [
                ("reason", "User requested termination of service"),
                ("msg", "a, b=c"),
                ("user", r"CN=Martin\, J.,OU=Tech"),
                ("x", "1"),
            ]
        );
    }

    #[test]
    fn escaped_quotes_stay_inside_the_value() {
        let f = fields(r#"msg="say \"hi\" now" path="C:\\tmp\\" next=2"#).unwrap();
        assert_eq!(
            pairs(&f),
            [
                ("msg", r#"say \"hi\" now"#),
                ("path", r"C:\\tmp\\"),
                ("next", "2"),
            ]
        );
        assert_eq!(unescape(r#"say \"hi\" now"#), r#"say "hi" now"#);
        assert_eq!(unescape(r"C:\\tmp\\"), r"C:\tmp\");
    }

    #[test]
    fn unescape_leaves_other_backslashes_and_borrows_when_it_can() {
        assert!(matches!(
            unescape(r"CN=Martin\, J."),
            Cow::Borrowed(r"CN=Martin\, J.")
        ));
        assert_eq!(unescape(r#"a\,b\"c\"#), r#"a\,b"c\"#);
    }

    #[test]
    fn empty_values_and_extra_blanks() {
        let f = fields("  a= b=\"\"\tc=N/A  \r").unwrap();
        assert_eq!(pairs(&f), [("a", ""), ("b", ""), ("c", "N/A")]);
        assert_eq!(f.get("a"), Some(""));
        assert_eq!(f.present("a"), None);
        assert_eq!(f.present("c"), None);
        assert!(fields("").unwrap().is_empty());
    }

    #[test]
    fn bare_value_may_hold_equals_and_quotes() {
        let f = fields(r#"a=b=c d=x"y"#).unwrap();
        assert_eq!(pairs(&f), [("a", "b=c"), ("d", "x\"y")]);
    }

    #[test]
    fn first_of_a_repeated_key_counts() {
        let f = fields("user=a user=b").unwrap();
        assert_eq!(f.get("user"), Some("a"));
    }

    #[test]
    fn unterminated_quote_is_an_error_at_the_quote() {
        let err = fields(r#"a=1 msg="no end here"#).unwrap_err();
        assert_eq!(err.expected, "a closing '\"' for the quote opened here");
        assert_eq!(err.column, 9);
        assert_eq!(err.found, "\"no end here");
        // An escaped last quote does not close the value.
        let err = fields(r#"msg="ends with \""#).unwrap_err();
        assert_eq!(err.column, 5);
    }

    #[test]
    fn missing_equals_is_an_error_after_the_key() {
        let err = fields("a=1 lonely b=2").unwrap_err();
        assert_eq!(err.expected, "'=' after the key");
        assert_eq!(err.column, 11);
        assert_eq!(err.found, " b=2");
    }

    #[test]
    fn text_where_a_key_should_be_is_an_error() {
        let err = fields(r#"a=1 "b"=2"#).unwrap_err();
        assert_eq!(err.expected, "a key of letters, digits, '_' or '-'");
        assert_eq!(err.column, 5);
    }

    #[test]
    fn quoted_value_glued_to_the_next_is_an_error() {
        let err = fields(r#"a="x"b=2"#).unwrap_err();
        assert_eq!(
            err.expected,
            "a blank or the end of the line after a quoted value"
        );
        assert_eq!(err.column, 6);
    }

    #[test]
    fn typed_values_give_their_column() {
        let f = fields("remip=198.51.100.300 port=61003 ip=0.0.0.0").unwrap();
        let err = f.address("remip", "remip=<ip address>").unwrap_err();
        assert_eq!(err.expected, "remip=<ip address>");
        assert_eq!(err.column, 7);
        assert_eq!(f.parsed::<u16>("port", "port=<port>"), Ok(Some(61003)));
        assert_eq!(f.address("ip", "ip=<ip address>"), Ok(None));
        let err = f.require("user", "user=<name>").unwrap_err();
        assert_eq!(err.column, 43);
        assert_eq!(err.found, "");
    }

    #[test]
    fn dates_and_offsets() {
        assert_eq!(
            date("2024-03-19").unwrap().1,
            NaiveDate::from_ymd_opt(2024, 3, 19).unwrap()
        );
        assert!(date("2024-02-30").is_err());
        let plus_one = FixedOffset::east_opt(3600).unwrap();
        assert_eq!(utc_offset("+0100").unwrap().1, plus_one);
        assert_eq!(utc_offset("+01:00").unwrap().1, plus_one);
        assert_eq!(
            utc_offset("-0530").unwrap().1,
            FixedOffset::west_opt(5 * 3600 + 30 * 60).unwrap()
        );
        assert!(utc_offset("+0175").is_err());
        assert!(utc_offset("CET").is_err());
    }

    #[test]
    fn case_blind_search() {
        assert!(contains_ignoring_case("Idle Timeout reached", "idle"));
        assert!(contains_ignoring_case("SSL tunnel CLOSED", "closed"));
        assert!(!contains_ignoring_case("tunnel", "tunnels"));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(line in any::<String>()) {
            let _ = fields(&line);
        }

        #[test]
        fn text_made_of_the_grammar_never_panics(line in r#"[a-z=" \\,é]{0,40}"#) {
            if let Ok(f) = fields(&line) {
                // Every value borrows from the line.
                let range = line.as_ptr() as usize..=line.as_ptr() as usize + line.len();
                for (k, v) in f.iter() {
                    prop_assert!(range.contains(&(k.as_ptr() as usize)));
                    prop_assert!(range.contains(&(v.as_ptr() as usize)));
                }
            }
            let _ = unescape(&line);
        }

        #[test]
        fn written_pairs_read_back(
            written in proptest::collection::vec(("[a-z_-]{1,8}", r#"([^"\\]|\\["\\])*"#), 0..6)
        ) {
            let line: Vec<String> = written.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            let line = line.join(" ");
            let f = fields(&line).unwrap();
            let got: Vec<(&str, &str)> = f.iter().collect();
            let want: Vec<(&str, &str)> =
                written.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(got, want);
        }
    }
}
