//! Channel-binding data handed in by the TLS adapter (RFC 5056, RFC 5929, RFC 9266).

use alloc::vec::Vec;

/// Largest channel-binding data accepted (tls-exporter gives 32 bytes, tls-server-end-point
/// a certificate hash of at most 64): bounds the `c=` attribute.
pub const MAX_CHANNEL_BINDING_BYTES: usize = 256;

/// Channel-binding data of the TLS connection, computed by the adapter (the core never sees
/// TLS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ChannelBinding {
    /// No binding available (no TLS, or the TLS library cannot export one).
    #[default]
    None,
    /// `tls-exporter` (RFC 9266): 32 bytes exported with the label
    /// `EXPORTER-Channel-Binding` and an empty context (TLS 1.3).
    TlsExporter(Vec<u8>),
    /// `tls-server-end-point` (RFC 5929 §4): the hash of the server certificate.
    TlsServerEndPoint(Vec<u8>),
}

impl ChannelBinding {
    /// The binding type name used in the GS2 header (`p=<name>`), or `None`.
    pub fn type_name(&self) -> Option<&'static str> {
        match self {
            ChannelBinding::None => None,
            ChannelBinding::TlsExporter(_) => Some("tls-exporter"),
            ChannelBinding::TlsServerEndPoint(_) => Some("tls-server-end-point"),
        }
    }

    /// The binding data (empty for [`ChannelBinding::None`]).
    pub fn data(&self) -> &[u8] {
        match self {
            ChannelBinding::None => &[],
            ChannelBinding::TlsExporter(d) | ChannelBinding::TlsServerEndPoint(d) => d,
        }
    }

    /// Whether a binding is present with usable data (1..=[`MAX_CHANNEL_BINDING_BYTES`]).
    pub fn is_available(&self) -> bool {
        let d = self.data();
        self.type_name().is_some() && !d.is_empty() && d.len() <= MAX_CHANNEL_BINDING_BYTES
    }
}
