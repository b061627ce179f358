//! The error every parser in this crate returns: what was expected, and where.

use std::fmt;

/// A line, or a part of it, that does not follow the grammar.
///
/// `column` counts bytes from 1 within the text that was parsed (the whole
/// line for envelopes, the message for vendor parsers), so an operator can
/// point at the place in the raw line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What the grammar wanted at that place, in words ("a month name").
    pub expected: &'static str,
    /// Where, in bytes from 1.
    pub column: usize,
    /// A short excerpt of what was there instead; empty at end of line.
    pub found: String,
}

impl ParseError {
    /// Builds the error for `rest`, the unparsed tail of `whole`.
    pub fn at(whole: &str, rest: &str, expected: &'static str) -> Self {
        let column = whole.len().saturating_sub(rest.len()) + 1;
        let found: String = rest.chars().take(24).collect();
        ParseError {
            expected,
            column,
            found,
        }
    }
}

impl ParseError {
    /// Builds the error for `part`, a slice of `whole` that is not its tail.
    pub fn at_slice(whole: &str, part: &str, expected: &'static str) -> Self {
        let offset = (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
        let column = offset.min(whole.len()) + 1;
        let found: String = part.chars().take(24).collect();
        ParseError {
            expected,
            column,
            found,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.found.is_empty() {
            write!(
                f,
                "expected {} at column {}, found end of line",
                self.expected, self.column
            )
        } else {
            write!(
                f,
                "expected {} at column {}, found {:?}",
                self.expected, self.column, self.found
            )
        }
    }
}

impl std::error::Error for ParseError {}

/// The nom error type of this crate's grammars: the input where a rule
/// failed and the name of that rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expected<'a> {
    pub input: &'a str,
    pub expected: &'static str,
}

impl<'a> nom::error::ParseError<&'a str> for Expected<'a> {
    fn from_error_kind(input: &'a str, _kind: nom::error::ErrorKind) -> Self {
        Expected {
            input,
            expected: "",
        }
    }

    fn append(_input: &'a str, _kind: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

impl<'a, E> nom::error::FromExternalError<&'a str, E> for Expected<'a> {
    fn from_external_error(input: &'a str, _kind: nom::error::ErrorKind, _e: E) -> Self {
        Expected {
            input,
            expected: "",
        }
    }
}

pub(crate) type PResult<'a, O> = nom::IResult<&'a str, O, Expected<'a>>;

/// Names a grammar rule, so that its failure says what was expected.
pub(crate) fn expect<'a, O, P>(
    what: &'static str,
    mut parser: P,
) -> impl FnMut(&'a str) -> PResult<'a, O>
where
    P: nom::Parser<&'a str, Output = O, Error = Expected<'a>>,
{
    move |input| {
        parser.parse(input).map_err(|e| {
            e.map(|mut inner| {
                // An unnamed inner step fails somewhere inside the rule:
                // report the rule, from where it started.
                if inner.expected.is_empty() {
                    inner.expected = what;
                    inner.input = input;
                }
                inner
            })
        })
    }
}

/// Turns a nom failure on `whole` into a [`ParseError`].
pub(crate) fn to_parse_error(whole: &str, err: nom::Err<Expected<'_>>) -> ParseError {
    match err {
        nom::Err::Incomplete(_) => ParseError::at(whole, "", "more input"),
        nom::Err::Error(e) | nom::Err::Failure(e) => {
            let expected = if e.expected.is_empty() {
                "valid input"
            } else {
                e.expected
            };
            ParseError::at(whole, e.input, expected)
        }
    }
}
