//! The element tree: what a complete top-level element of a stream becomes.
//!
//! Names are stored resolved: every element carries its namespace URI, every
//! attribute its namespace URI (empty for the usual unqualified attributes).
//! Prefixes from the wire are not kept; the serializer invents what it needs.

use alloc::string::String;
use alloc::vec::Vec;

/// The XML namespace (`xml:` prefix), bound by definition.
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// An attribute with its resolved namespace (`""` for unqualified attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Namespace URI, `""` when the attribute has no prefix.
    pub ns: String,
    /// Local name.
    pub name: String,
    /// Unescaped value.
    pub value: String,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data, unescaped.
    Text(String),
}

/// An XML element with resolved namespaces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Local name.
    pub name: String,
    /// Namespace URI (`""` if the element is in no namespace).
    pub ns: String,
    /// Attributes in document order.
    pub attrs: Vec<Attr>,
    /// Children in document order.
    pub children: Vec<Node>,
}

impl Element {
    /// A new empty element.
    pub fn new(name: impl Into<String>, ns: impl Into<String>) -> Self {
        Element {
            name: name.into(),
            ns: ns.into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Builder: set an unqualified attribute.
    #[must_use]
    pub fn with_attr(
        mut self,
        name: impl AsRef<str> + Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder: append a child element.
    #[must_use]
    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder: append character data.
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.children.push(Node::Text(text.into()));
        self
    }

    /// Whether this element has the given local name and namespace.
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }

    /// Value of an unqualified attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attr_ns("", name)
    }

    /// Value of a namespaced attribute (`ns` = `""` for unqualified).
    pub fn attr_ns(&self, ns: &str, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns == ns && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// The `xml:lang` attribute, if present.
    pub fn lang(&self) -> Option<&str> {
        self.attr_ns(XML_NS, "lang")
    }

    /// Set (or replace) an unqualified attribute.
    pub fn set_attr(&mut self, name: impl AsRef<str> + Into<String>, value: impl Into<String>) {
        self.set_attr_ns("", name, value);
    }

    /// Set (or replace) a namespaced attribute.
    pub fn set_attr_ns(
        &mut self,
        ns: impl AsRef<str> + Into<String>,
        name: impl AsRef<str> + Into<String>,
        value: impl Into<String>,
    ) {
        // Replacing (the server restamping `from`) allocates no name.
        let found = self
            .attrs
            .iter_mut()
            .find(|a| same(&a.name, name.as_ref()) && same(&a.ns, ns.as_ref()));
        match found {
            Some(a) => a.value = value.into(),
            None => self.attrs.push(Attr {
                ns: ns.into(),
                name: name.into(),
                value: value.into(),
            }),
        }
    }

    /// Remove an unqualified attribute, returning its value.
    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let pos = self
            .attrs
            .iter()
            .position(|a| a.ns.is_empty() && a.name == name)?;
        Some(self.attrs.remove(pos).value)
    }

    /// Child elements (text nodes skipped).
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// Child elements, mutable.
    pub fn elements_mut(&mut self) -> impl Iterator<Item = &mut Element> {
        self.children.iter_mut().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// First child element with this name and namespace.
    pub fn get_child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(name, ns))
    }

    /// First child element with this name and namespace, mutable.
    pub fn get_child_mut(&mut self, name: &str, ns: &str) -> Option<&mut Element> {
        self.elements_mut().find(|e| e.is(name, ns))
    }

    /// Remove and return the first child element with this name and namespace.
    pub fn take_child(&mut self, name: &str, ns: &str) -> Option<Element> {
        let pos = self
            .children
            .iter()
            .position(|n| matches!(n, Node::Element(e) if e.is(name, ns)))?;
        match self.children.remove(pos) {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        }
    }

    /// Concatenation of the direct text children.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                out.push_str(t);
            }
        }
        out
    }

    /// Whether the element has no children at all (text or element).
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }
}

/// String equality for the short names and namespaces of attributes: a byte loop, as the
/// call into `memcmp` that `==` makes costs more than the comparison itself here.
#[inline]
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}
