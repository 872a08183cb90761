//! Incremental XML for XMPP streams, with our own parser for the XML subset
//! XMPP uses (checked differentially against `rxml` in the tests).
//!
//! - [`StreamParser`]: bytes in, [`XmlEvent`]s out (stream header, complete
//!   top-level elements as [`Element`] trees, stream close), with
//!   [`XmlLimits`] enforced while parsing and typed [`XmlError`]s.
//! - [`Element::write_to`] / [`Element::to_bytes`] / [`StreamHeader::write_to`]:
//!   the serializer; [`Element::parse`] reads one standalone element.
//!
//! `no_std` + `alloc`; no I/O.
#![no_std]
#![warn(missing_docs)]
extern crate alloc;
#[cfg(test)]
extern crate std;
// Lets `oracle.rs` name this crate the way the fuzz target (which includes
// it by path) does.
#[cfg(test)]
extern crate self as elsinore_xml;

#[cfg(test)]
mod differential;
mod error;
#[cfg(test)]
mod oracle;
mod parser;
mod raw;
#[cfg(test)]
mod raw_tests;
mod stream;
mod tree;
mod writer;

pub use error::{Limit, XmlError};
pub use parser::{RawSpec, Scratch};
pub use raw::RawElement;
pub use stream::{STREAM_NS, StreamHeader, StreamParser, XmlEvent, XmlLimits, write_stream_close};
pub use tree::{Attr, Element, Node, XML_NS};
