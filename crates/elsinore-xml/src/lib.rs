//! Incremental XML for XMPP streams, over `rxml`.
#![no_std]
extern crate alloc;

mod tree;

pub use tree::{Attr, Element, Node, XML_NS};
