//! Stream errors (RFC 6120 §4.9), reading the draft-ietf-xmpp-core-11 §4.5 forms too.

use alloc::string::String;

use core::fmt;

use elsinore_xml::{Element, Node, XML_NS};

use crate::ns::{NS_STREAM, NS_STREAMS};

/// A stream error condition: every RFC 6120 §4.9.3 condition.
///
/// Older names accepted when parsing (we always send the RFC 6120 names):
/// - `xml-not-well-formed` (draft-11 §4.5.3, RFC 3920) → [`NotWellFormed`](Self::NotWellFormed);
/// - `nonmatching-hosts` (draft-11, RFC 3920) → [`InvalidFrom`](Self::InvalidFrom), whose
///   RFC 6120 definition covers exactly "a 'from' that does not match the negotiated domain";
/// - `invalid-id` (draft-11, RFC 3920: a stream or dialback ID that does not match) →
///   [`NotAuthorized`](Self::NotAuthorized): RFC 6120 dropped it, and its only use was a failed
///   dialback verification, i.e. an authentication failure.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StreamErrorCondition {
    /// `bad-format`: XML that cannot be processed.
    BadFormat,
    /// `bad-namespace-prefix`: an unsupported or missing namespace prefix.
    BadNamespacePrefix,
    /// `conflict`: a new stream replaces this one.
    Conflict,
    /// `connection-timeout`: the peer was silent too long.
    ConnectionTimeout,
    /// `host-gone`: the `to` domain is no longer served here.
    HostGone,
    /// `host-unknown`: the `to` domain is not served here.
    HostUnknown,
    /// `improper-addressing`: a stanza lacks a required `to` or `from`.
    ImproperAddressing,
    /// `internal-server-error`: the server failed internally.
    InternalServerError,
    /// `invalid-from`: a `from` that does not match the authenticated identity.
    InvalidFrom,
    /// `invalid-namespace`: the stream or content namespace is wrong.
    InvalidNamespace,
    /// `invalid-xml`: XML that violates the schema.
    InvalidXml,
    /// `not-authorized`: a stanza was sent before authentication.
    NotAuthorized,
    /// `not-well-formed`: XML that is not well-formed.
    NotWellFormed,
    /// `policy-violation`: a local policy was violated (e.g. a size limit).
    PolicyViolation,
    /// `remote-connection-failed`: a required remote connection failed.
    RemoteConnectionFailed,
    /// `reset`: the stream must be reset (e.g. credentials changed).
    Reset,
    /// `resource-constraint`: the server lacks the resources to serve the stream.
    ResourceConstraint,
    /// `restricted-xml`: comments, processing instructions, DTDs, entity references….
    RestrictedXml,
    /// `see-other-host`: connect to this host instead (text content: host, or host:port).
    SeeOtherHost(String),
    /// `system-shutdown`: the server is going down.
    SystemShutdown,
    /// `undefined-condition`: none of the others (usually with an application element).
    UndefinedCondition,
    /// `unsupported-encoding`: an encoding other than UTF-8.
    UnsupportedEncoding,
    /// `unsupported-feature`: a required stream feature is not supported.
    UnsupportedFeature,
    /// `unsupported-stanza-type`: a top-level element that is not supported.
    UnsupportedStanzaType,
    /// `unsupported-version`: the stream `version` is not supported.
    UnsupportedVersion,
}

impl StreamErrorCondition {
    /// Every condition once (`see-other-host` with an empty host).
    pub const ALL: [StreamErrorCondition; 25] = {
        use StreamErrorCondition as C;
        [
            C::BadFormat,
            C::BadNamespacePrefix,
            C::Conflict,
            C::ConnectionTimeout,
            C::HostGone,
            C::HostUnknown,
            C::ImproperAddressing,
            C::InternalServerError,
            C::InvalidFrom,
            C::InvalidNamespace,
            C::InvalidXml,
            C::NotAuthorized,
            C::NotWellFormed,
            C::PolicyViolation,
            C::RemoteConnectionFailed,
            C::Reset,
            C::ResourceConstraint,
            C::RestrictedXml,
            C::SeeOtherHost(String::new()),
            C::SystemShutdown,
            C::UndefinedCondition,
            C::UnsupportedEncoding,
            C::UnsupportedFeature,
            C::UnsupportedStanzaType,
            C::UnsupportedVersion,
        ]
    };

    /// The element name in the `urn:ietf:params:xml:ns:xmpp-streams` namespace.
    pub fn name(&self) -> &'static str {
        use StreamErrorCondition as C;
        match self {
            C::BadFormat => "bad-format",
            C::BadNamespacePrefix => "bad-namespace-prefix",
            C::Conflict => "conflict",
            C::ConnectionTimeout => "connection-timeout",
            C::HostGone => "host-gone",
            C::HostUnknown => "host-unknown",
            C::ImproperAddressing => "improper-addressing",
            C::InternalServerError => "internal-server-error",
            C::InvalidFrom => "invalid-from",
            C::InvalidNamespace => "invalid-namespace",
            C::InvalidXml => "invalid-xml",
            C::NotAuthorized => "not-authorized",
            C::NotWellFormed => "not-well-formed",
            C::PolicyViolation => "policy-violation",
            C::RemoteConnectionFailed => "remote-connection-failed",
            C::Reset => "reset",
            C::ResourceConstraint => "resource-constraint",
            C::RestrictedXml => "restricted-xml",
            C::SeeOtherHost(_) => "see-other-host",
            C::SystemShutdown => "system-shutdown",
            C::UndefinedCondition => "undefined-condition",
            C::UnsupportedEncoding => "unsupported-encoding",
            C::UnsupportedFeature => "unsupported-feature",
            C::UnsupportedStanzaType => "unsupported-stanza-type",
            C::UnsupportedVersion => "unsupported-version",
        }
    }

    /// The condition for an element name, with the draft-era aliases (see the type docs).
    /// `text` is the element's character data, used by `see-other-host`.
    pub fn from_name(name: &str, text: &str) -> Option<StreamErrorCondition> {
        use StreamErrorCondition as C;
        Some(match name {
            "see-other-host" => C::SeeOtherHost(text.trim().into()),
            "xml-not-well-formed" => C::NotWellFormed,
            "nonmatching-hosts" => C::InvalidFrom,
            "invalid-id" => C::NotAuthorized,
            _ => C::ALL.into_iter().find(|c| c.name() == name)?,
        })
    }
}

impl fmt::Display for StreamErrorCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A stream error: `<stream:error>` (name `error` in [`NS_STREAM`]) with the condition in
/// [`NS_STREAMS`]. Fatal: the stream is closed after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    /// The defined condition.
    pub condition: StreamErrorCondition,
    /// Descriptive text (`<text/>`).
    pub text: Option<String>,
    /// Application-specific condition element.
    pub app: Option<Element>,
}

/// Why an element is not a readable stream error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamErrorParseError {
    /// The element is not `error` in the `http://etherx.jabber.org/streams` namespace.
    NotStreamError,
}

impl fmt::Display for StreamErrorParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamErrorParseError::NotStreamError => f.write_str("not a <stream:error/> element"),
        }
    }
}

impl core::error::Error for StreamErrorParseError {}

impl StreamError {
    /// A stream error with only a condition.
    pub fn new(condition: StreamErrorCondition) -> StreamError {
        StreamError {
            condition,
            text: None,
            app: None,
        }
    }

    /// Builder: set the descriptive text.
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> StreamError {
        self.text = Some(text.into());
        self
    }

    /// Builder: attach an application-specific condition element.
    #[must_use]
    pub fn with_app(mut self, app: Element) -> StreamError {
        self.app = Some(app);
        self
    }

    /// `<stream:error><condition xmlns='…xmpp-streams'/>[<text xml:lang='en'>…</text>][app]</stream:error>`.
    pub fn to_element(&self) -> Element {
        let mut el = Element::new("error", NS_STREAM);
        let mut cond = Element::new(self.condition.name(), NS_STREAMS);
        if let StreamErrorCondition::SeeOtherHost(host) = &self.condition {
            cond.children.push(Node::Text(host.clone()));
        }
        el.children.push(Node::Element(cond));
        if let Some(text) = &self.text {
            let mut t = Element::new("text", NS_STREAMS).with_text(text.as_str());
            // Our texts are written in English; RFC 6120 §4.9.2 recommends saying so.
            t.set_attr_ns(XML_NS, "lang", "en");
            el.children.push(Node::Element(t));
        }
        if let Some(app) = &self.app {
            el.children.push(Node::Element(app.clone()));
        }
        el
    }

    /// Read a `<stream:error/>`. Tolerant inside it: an unknown or missing condition reads
    /// as `undefined-condition`; the draft-11 `<condition xmlns='…xmpp-streams'>` wrapper
    /// and `class` attribute are accepted (the class is ignored).
    pub fn from_element(el: &Element) -> Result<StreamError, StreamErrorParseError> {
        if !el.is("error", NS_STREAM) {
            return Err(StreamErrorParseError::NotStreamError);
        }
        let mut out = StreamError::new(StreamErrorCondition::UndefinedCondition);
        let mut have_condition = false;
        scan(el, 0, &mut out, &mut have_condition);
        Ok(out)
    }
}

/// First occurrence wins; `depth` bounds the draft wrapper to one level.
fn scan(el: &Element, depth: u8, out: &mut StreamError, have_condition: &mut bool) {
    for child in el.elements() {
        if child.ns != NS_STREAMS {
            if out.app.is_none() {
                out.app = Some(child.clone());
            }
            continue;
        }
        match child.name.as_str() {
            "text" => {
                if out.text.is_none() {
                    out.text = Some(child.text());
                }
            }
            "condition" if depth == 0 => scan(child, 1, out, have_condition),
            name => {
                if !*have_condition
                    && let Some(c) = StreamErrorCondition::from_name(name, &child.text())
                {
                    out.condition = c;
                    *have_condition = true;
                }
            }
        }
    }
}

impl TryFrom<&Element> for StreamError {
    type Error = StreamErrorParseError;

    fn try_from(el: &Element) -> Result<StreamError, StreamErrorParseError> {
        StreamError::from_element(el)
    }
}

impl From<StreamErrorCondition> for StreamError {
    fn from(condition: StreamErrorCondition) -> StreamError {
        StreamError::new(condition)
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream error {}", self.condition)?;
        if let StreamErrorCondition::SeeOtherHost(host) = &self.condition {
            write!(f, " ({host})")?;
        }
        if let Some(text) = &self.text {
            write!(f, ": {text}")?;
        }
        Ok(())
    }
}

impl core::error::Error for StreamError {}
