//! Stanza errors (RFC 6120 §8.3) with the XEP-0086 legacy `code` mapping.

use alloc::string::String;
use alloc::string::ToString;

use core::fmt;

use elsinore_xml::{Element, Node, XML_NS};

use crate::ns::NS_STANZAS;

/// The `type` attribute of a stanza `<error/>`: what the sender should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// Retry after providing credentials.
    Auth,
    /// Do not retry: the error cannot be remedied.
    Cancel,
    /// Proceed: the condition was only a warning.
    Continue,
    /// Retry after changing the data sent.
    Modify,
    /// Retry after waiting: the error is temporary.
    Wait,
}

impl ErrorType {
    /// All error types, in attribute-value order.
    pub const ALL: [ErrorType; 5] = [
        ErrorType::Auth,
        ErrorType::Cancel,
        ErrorType::Continue,
        ErrorType::Modify,
        ErrorType::Wait,
    ];

    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Auth => "auth",
            ErrorType::Cancel => "cancel",
            ErrorType::Continue => "continue",
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
        }
    }

    /// Parse an attribute value (exact, case-sensitive, as the schema says).
    pub fn from_attr(value: &str) -> Option<ErrorType> {
        ErrorType::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A defined stanza error condition: every RFC 6120 §8.3.3 condition, plus the two legacy
/// conditions of XEP-0086 and the pre-RFC drafts (`payment-required`, `remote-server-error`).
///
/// Aliases accepted when parsing (we never send them):
/// - `jid-not-found` (draft-ietf-xmpp-core-11 §7.7.3) is read as [`ItemNotFound`](Self::ItemNotFound).
/// - `bad-format` (XEP-0049 listing 4) is not a stanza condition in any RFC (it is a stream
///   condition). It is only used when nothing better is present: a condition element from
///   this list wins, then the legacy `code` (XEP-0049 sends `code='406'`, so listing 4 reads
///   as [`NotAcceptable`](Self::NotAcceptable), which is also what XEP-0049 §2.3 requires the
///   server to send), and only a bare `<bad-format/>` becomes [`BadRequest`](Self::BadRequest),
///   its meaning in RFC 6120 terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DefinedCondition {
    /// `bad-request`: malformed or unprocessable XML. 400 / modify.
    BadRequest,
    /// `conflict`: a resource or session with that name already exists. 409 / cancel.
    Conflict,
    /// `feature-not-implemented`: the feature is not implemented. 501 / cancel.
    FeatureNotImplemented,
    /// `forbidden`: the requester lacks the permissions. 403 / auth.
    Forbidden,
    /// `gone`: the recipient is no longer at this address; the optional text is the new
    /// address (an XMPP URI). 302 / modify (XEP-0086).
    Gone(Option<String>),
    /// `internal-server-error`: misconfiguration or other internal failure. 500 / wait.
    InternalServerError,
    /// `item-not-found`: the addressed JID or item cannot be found. 404 / cancel.
    ItemNotFound,
    /// `jid-malformed`: an address does not follow the JID syntax. 400 / modify.
    JidMalformed,
    /// `not-acceptable`: the request does not meet the recipient's criteria. 406 / modify.
    NotAcceptable,
    /// `not-allowed`: nobody may perform this action. 405 / cancel.
    NotAllowed,
    /// `not-authorized`: the sender must authenticate first. 401 / auth.
    NotAuthorized,
    /// `payment-required` (legacy, XEP-0086; removed in RFC 6120). 402 / auth.
    PaymentRequired,
    /// `policy-violation`: a local service policy was violated. Not in XEP-0086 (it postdates
    /// it); we send 406 / modify, the closest legacy code (the request is not acceptable).
    PolicyViolation,
    /// `recipient-unavailable`: the recipient is temporarily unavailable. 404 / wait.
    RecipientUnavailable,
    /// `redirect`: the recipient is temporarily at another address, given as the optional
    /// text (an XMPP URI). 302 / modify.
    Redirect(Option<String>),
    /// `registration-required`: the requester must register first. 407 / auth.
    RegistrationRequired,
    /// `remote-server-error` (legacy, pre-RFC drafts; XEP-0086 maps its code 502 to
    /// `service-unavailable`). 502 / wait.
    RemoteServerError,
    /// `remote-server-not-found`: the remote server does not exist. 404 / cancel.
    RemoteServerNotFound,
    /// `remote-server-timeout`: the remote server could not be reached in time. 504 / wait.
    RemoteServerTimeout,
    /// `resource-constraint`: the server lacks the resources. 500 / wait.
    ResourceConstraint,
    /// `service-unavailable`: the service is not offered. 503 / cancel.
    ServiceUnavailable,
    /// `subscription-required`: a presence subscription is needed. 407 / auth.
    SubscriptionRequired,
    /// `undefined-condition`: none of the others (usually with an application element).
    /// 500 / cancel.
    UndefinedCondition,
    /// `unexpected-request`: the request is out of order. 400 / wait.
    UnexpectedRequest,
}

impl DefinedCondition {
    /// Every condition once (address-carrying ones without text).
    pub const ALL: [DefinedCondition; 24] = [
        DefinedCondition::BadRequest,
        DefinedCondition::Conflict,
        DefinedCondition::FeatureNotImplemented,
        DefinedCondition::Forbidden,
        DefinedCondition::Gone(None),
        DefinedCondition::InternalServerError,
        DefinedCondition::ItemNotFound,
        DefinedCondition::JidMalformed,
        DefinedCondition::NotAcceptable,
        DefinedCondition::NotAllowed,
        DefinedCondition::NotAuthorized,
        DefinedCondition::PaymentRequired,
        DefinedCondition::PolicyViolation,
        DefinedCondition::RecipientUnavailable,
        DefinedCondition::Redirect(None),
        DefinedCondition::RegistrationRequired,
        DefinedCondition::RemoteServerError,
        DefinedCondition::RemoteServerNotFound,
        DefinedCondition::RemoteServerTimeout,
        DefinedCondition::ResourceConstraint,
        DefinedCondition::ServiceUnavailable,
        DefinedCondition::SubscriptionRequired,
        DefinedCondition::UndefinedCondition,
        DefinedCondition::UnexpectedRequest,
    ];

    /// The element name in the `urn:ietf:params:xml:ns:xmpp-stanzas` namespace.
    pub fn name(&self) -> &'static str {
        use DefinedCondition as C;
        match self {
            C::BadRequest => "bad-request",
            C::Conflict => "conflict",
            C::FeatureNotImplemented => "feature-not-implemented",
            C::Forbidden => "forbidden",
            C::Gone(_) => "gone",
            C::InternalServerError => "internal-server-error",
            C::ItemNotFound => "item-not-found",
            C::JidMalformed => "jid-malformed",
            C::NotAcceptable => "not-acceptable",
            C::NotAllowed => "not-allowed",
            C::NotAuthorized => "not-authorized",
            C::PaymentRequired => "payment-required",
            C::PolicyViolation => "policy-violation",
            C::RecipientUnavailable => "recipient-unavailable",
            C::Redirect(_) => "redirect",
            C::RegistrationRequired => "registration-required",
            C::RemoteServerError => "remote-server-error",
            C::RemoteServerNotFound => "remote-server-not-found",
            C::RemoteServerTimeout => "remote-server-timeout",
            C::ResourceConstraint => "resource-constraint",
            C::ServiceUnavailable => "service-unavailable",
            C::SubscriptionRequired => "subscription-required",
            C::UndefinedCondition => "undefined-condition",
            C::UnexpectedRequest => "unexpected-request",
        }
    }

    /// The condition named by an element in the stanzas namespace; `text` is the element's
    /// character data, kept for `gone` and `redirect`. Accepts the draft alias
    /// `jid-not-found`; `None` for anything else (including `bad-format`, see the type docs).
    pub fn from_name(name: &str, text: Option<String>) -> Option<DefinedCondition> {
        use DefinedCondition as C;
        Some(match name {
            "gone" => C::Gone(text),
            "redirect" => C::Redirect(text),
            "jid-not-found" => C::ItemNotFound,
            _ => C::ALL.into_iter().find(|c| c.name() == name)?,
        })
    }

    /// The error type to send with this condition when the caller has no better idea
    /// (XEP-0086 §3, RFC 6120 §8.3.3 where XEP-0086 is silent).
    pub fn default_type(&self) -> ErrorType {
        use DefinedCondition as C;
        use ErrorType as T;
        match self {
            C::BadRequest | C::JidMalformed | C::NotAcceptable | C::PolicyViolation => T::Modify,
            C::Gone(_) | C::Redirect(_) => T::Modify,
            C::Conflict
            | C::FeatureNotImplemented
            | C::ItemNotFound
            | C::NotAllowed
            | C::RemoteServerNotFound
            | C::ServiceUnavailable
            | C::UndefinedCondition => T::Cancel,
            C::Forbidden
            | C::NotAuthorized
            | C::PaymentRequired
            | C::RegistrationRequired
            | C::SubscriptionRequired => T::Auth,
            C::InternalServerError
            | C::RecipientUnavailable
            | C::RemoteServerError
            | C::RemoteServerTimeout
            | C::ResourceConstraint
            | C::UnexpectedRequest => T::Wait,
        }
    }

    /// The legacy numeric `code` attribute for pre-XMPP clients (XEP-0086 §3).
    pub fn legacy_code(&self) -> u16 {
        use DefinedCondition as C;
        match self {
            C::Gone(_) | C::Redirect(_) => 302,
            C::BadRequest | C::JidMalformed | C::UnexpectedRequest => 400,
            C::NotAuthorized => 401,
            C::PaymentRequired => 402,
            C::Forbidden => 403,
            C::ItemNotFound | C::RecipientUnavailable | C::RemoteServerNotFound => 404,
            C::NotAllowed => 405,
            C::NotAcceptable | C::PolicyViolation => 406,
            C::RegistrationRequired | C::SubscriptionRequired => 407,
            C::Conflict => 409,
            C::InternalServerError | C::ResourceConstraint | C::UndefinedCondition => 500,
            C::FeatureNotImplemented => 501,
            C::RemoteServerError => 502,
            C::ServiceUnavailable => 503,
            C::RemoteServerTimeout => 504,
        }
    }

    /// Condition and type for an error that carries only a legacy `code` (XEP-0086 §4).
    /// Codes outside the table map by class: other 3xx → `redirect`, other 4xx →
    /// `bad-request`, other 5xx → `undefined-condition`; anything else gives `None`.
    pub fn from_legacy_code(code: u16) -> Option<(DefinedCondition, ErrorType)> {
        use DefinedCondition as C;
        use ErrorType as T;
        let exact = match code {
            302 => Some((C::Redirect(None), T::Modify)),
            400 => Some((C::BadRequest, T::Modify)),
            401 => Some((C::NotAuthorized, T::Auth)),
            402 => Some((C::PaymentRequired, T::Auth)),
            403 => Some((C::Forbidden, T::Auth)),
            404 => Some((C::ItemNotFound, T::Cancel)),
            405 => Some((C::NotAllowed, T::Cancel)),
            406 => Some((C::NotAcceptable, T::Modify)),
            407 => Some((C::RegistrationRequired, T::Auth)),
            408 => Some((C::RemoteServerTimeout, T::Wait)),
            409 => Some((C::Conflict, T::Cancel)),
            500 => Some((C::InternalServerError, T::Wait)),
            501 => Some((C::FeatureNotImplemented, T::Cancel)),
            502 => Some((C::ServiceUnavailable, T::Wait)),
            503 => Some((C::ServiceUnavailable, T::Cancel)),
            504 => Some((C::RemoteServerTimeout, T::Wait)),
            510 => Some((C::ServiceUnavailable, T::Cancel)),
            _ => None,
        };
        exact.or(match code / 100 {
            3 => Some((C::Redirect(None), T::Modify)),
            4 => Some((C::BadRequest, T::Modify)),
            5 => Some((C::UndefinedCondition, T::Cancel)),
            _ => None,
        })
    }

    /// The address carried by `gone` / `redirect`, if any.
    pub fn address(&self) -> Option<&str> {
        match self {
            DefinedCondition::Gone(a) | DefinedCondition::Redirect(a) => a.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for DefinedCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A stanza error: the `<error/>` child of a stanza of type `error`.
///
/// Written as
/// `<error type='cancel' code='503'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='…' xml:lang='en'>…</text>[app]</error>`
/// (the `<error/>` element itself in the stanza's namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError {
    /// What the sender should do next.
    pub type_: ErrorType,
    /// The defined condition.
    pub condition: DefinedCondition,
    /// Human-readable description (never for end users' eyes only; may be logged).
    pub text: Option<String>,
    /// The `xml:lang` of `text`.
    pub text_lang: Option<String>,
    /// Application-specific condition element (any namespace but the stanzas one).
    pub app: Option<Element>,
    /// The entity that generated the error (`by` attribute, RFC 6120 §8.3.2).
    pub by: Option<String>,
}

impl StanzaError {
    /// An error with the condition's default type and nothing else.
    pub fn new(condition: DefinedCondition) -> StanzaError {
        StanzaError {
            type_: condition.default_type(),
            condition,
            text: None,
            text_lang: None,
            app: None,
            by: None,
        }
    }

    /// Builder: set the descriptive text (no language tag).
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> StanzaError {
        self.text = Some(text.into());
        self
    }

    /// Builder: set the descriptive text with its `xml:lang`.
    #[must_use]
    pub fn with_text_lang(mut self, text: impl Into<String>, lang: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self.text_lang = Some(lang.into());
        self
    }

    /// Builder: override the error type.
    #[must_use]
    pub fn with_type(mut self, type_: ErrorType) -> StanzaError {
        self.type_ = type_;
        self
    }

    /// Builder: attach an application-specific condition element.
    #[must_use]
    pub fn with_app(mut self, app: Element) -> StanzaError {
        self.app = Some(app);
        self
    }

    /// Builder: set the `by` attribute.
    #[must_use]
    pub fn with_by(mut self, by: impl Into<String>) -> StanzaError {
        self.by = Some(by.into());
        self
    }

    /// The `<error/>` element, in namespace `ns` (the stanza's: `jabber:client` or
    /// `jabber:server`), with the legacy `code` attribute.
    pub fn to_element(&self, ns: &str) -> Element {
        let mut el = Element::new("error", ns);
        el.set_attr("type", self.type_.as_str());
        el.set_attr("code", self.condition.legacy_code().to_string());
        if let Some(by) = &self.by {
            el.set_attr("by", by.as_str());
        }
        let mut cond = Element::new(self.condition.name(), NS_STANZAS);
        if let Some(addr) = self.condition.address() {
            cond.children.push(Node::Text(addr.into()));
        }
        el.children.push(Node::Element(cond));
        if let Some(text) = &self.text {
            let mut t = Element::new("text", NS_STANZAS).with_text(text.as_str());
            if let Some(lang) = &self.text_lang {
                t.set_attr_ns(XML_NS, "lang", lang.as_str());
            }
            el.children.push(Node::Element(t));
        }
        if let Some(app) = &self.app {
            el.children.push(Node::Element(app.clone()));
        }
        el
    }

    /// Read an `<error/>` element (its own name and namespace are the caller's business).
    ///
    /// Never fails: every peer error must be deliverable. Resolution order for the
    /// condition: a defined condition element (also inside a draft-era
    /// `<condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>` wrapper), then the legacy
    /// `code` (XEP-0086 §4), then a bare `bad-format` (→ `bad-request`), then
    /// `undefined-condition`. The type is the `type` attribute if valid, else the code's,
    /// else the condition's default. Old `<error code='404'>Not Found</error>` character
    /// data becomes `text`. The stanzas namespace is matched ignoring ASCII case, since URN
    /// namespace identifiers are case-insensitive (RFC 8141) and XEP-0049 listing 5 writes
    /// `urn:iETF:…`.
    pub fn from_element(el: &Element) -> StanzaError {
        let mut found = Found::default();
        found.scan(el, 0);
        let code = el.attr("code").and_then(|c| c.trim().parse::<u16>().ok());
        let from_code = code.and_then(DefinedCondition::from_legacy_code);
        let (condition, code_type) = match (found.condition, from_code) {
            (Some(c), _) => (c, None),
            (None, Some((c, t))) => (c, Some(t)),
            (None, None) if found.bad_format => (DefinedCondition::BadRequest, None),
            (None, None) => (DefinedCondition::UndefinedCondition, None),
        };
        let type_ = el
            .attr("type")
            .and_then(ErrorType::from_attr)
            .or(code_type)
            .unwrap_or_else(|| condition.default_type());
        let (text, text_lang) = match found.text {
            Some((t, l)) => (Some(t), l),
            None => {
                let legacy = el.text();
                let legacy = legacy.trim();
                ((!legacy.is_empty()).then(|| legacy.into()), None)
            }
        };
        StanzaError {
            type_,
            condition,
            text,
            text_lang,
            app: found.app,
            by: el.attr("by").map(Into::into),
        }
    }
}

impl fmt::Display for StanzaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.condition, self.type_)?;
        if let Some(text) = &self.text {
            write!(f, ": {text}")?;
        }
        Ok(())
    }
}

impl core::error::Error for StanzaError {}

/// What a scan of an `<error/>` element found; first occurrence wins.
#[derive(Default)]
struct Found {
    condition: Option<DefinedCondition>,
    text: Option<(String, Option<String>)>,
    app: Option<Element>,
    bad_format: bool,
}

impl Found {
    /// `depth` is 0 for the `<error/>` element, 1 inside a draft `<condition/>` wrapper;
    /// wrappers are not followed further, so the recursion is bounded.
    fn scan(&mut self, el: &Element, depth: u8) {
        for child in el.elements() {
            if !child.ns.eq_ignore_ascii_case(NS_STANZAS) {
                if self.app.is_none() {
                    self.app = Some(child.clone());
                }
                continue;
            }
            match child.name.as_str() {
                "text" => {
                    if self.text.is_none() {
                        self.text = Some((child.text(), child.lang().map(Into::into)));
                    }
                }
                "condition" if depth == 0 => self.scan(child, 1),
                "bad-format" => self.bad_format = true,
                name => {
                    if self.condition.is_none() {
                        let text = child.text();
                        let text = (!text.trim().is_empty()).then_some(text);
                        self.condition = DefinedCondition::from_name(name, text);
                    }
                }
            }
        }
    }
}
