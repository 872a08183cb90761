//! Typed parse errors: the stream layer maps each kind to a stream error condition.

use alloc::string::String;
use core::fmt;

/// Which limit of [`XmlLimits`](crate::XmlLimits) was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// A top-level element (or the stream header) is larger than
    /// `max_element_bytes`.
    ElementBytes,
    /// Elements nest deeper than `max_depth`.
    Depth,
    /// An element carries more than `max_attributes` attributes (namespace
    /// declarations included).
    Attributes,
    /// A name, attribute value or reference is longer than `max_token_length`.
    TokenLength,
}

impl Limit {
    /// Short name for logs and error texts.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::ElementBytes => "element size",
            Limit::Depth => "nesting depth",
            Limit::Attributes => "attribute count",
            Limit::TokenLength => "token length",
        }
    }
}

/// Why the input was rejected. Errors are sticky: once a parser reported
/// one, it keeps reporting the same error.
///
/// Suggested RFC 6120 stream error conditions: `NotWellFormed` and
/// `InvalidNamespace` → `not-well-formed` (an undeclared prefix violates
/// XML-Names; `invalid-namespace` is about the *stream* namespace, which the
/// stream layer judges from [`StreamHeader`](crate::StreamHeader)),
/// `RestrictedXml` → `restricted-xml`, `LimitExceeded` → `policy-violation`
/// (or `resource-constraint`), `UnexpectedEof` → close without a stream error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlError {
    /// Syntax error, invalid UTF-8, invalid character, mismatched tags,
    /// duplicate attributes, text outside of elements.
    NotWellFormed(String),
    /// A construct XMPP forbids: comments, processing instructions,
    /// DOCTYPE / DTD declarations, XML versions other than 1.0, encodings
    /// other than UTF-8.
    RestrictedXml(&'static str),
    /// One of the configured limits was exceeded.
    LimitExceeded(Limit),
    /// Namespace well-formedness: undeclared prefix, reserved prefix or
    /// namespace name misused.
    InvalidNamespace(String),
    /// The input ended before the stream (or element) was closed.
    UnexpectedEof,
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XmlError::NotWellFormed(m) => write!(f, "not well-formed: {m}"),
            XmlError::RestrictedXml(m) => write!(f, "restricted XML: {m}"),
            XmlError::LimitExceeded(l) => write!(f, "limit exceeded: {}", l.as_str()),
            XmlError::InvalidNamespace(m) => write!(f, "invalid namespace: {m}"),
            XmlError::UnexpectedEof => f.write_str("unexpected end of input"),
        }
    }
}

impl core::error::Error for XmlError {}
