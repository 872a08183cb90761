//! TLS helpers.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// A certificate verifier that accepts **any** server certificate.
///
/// It still checks that the server holds the key of the certificate it presented (the
/// handshake signatures), but not who the certificate belongs to, so it gives no protection
/// against an active attacker. For tests against self-signed servers only.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A rustls client configuration (ring provider) that accepts any server certificate.
///
/// **Test-only**: it makes TLS worthless against an active attacker. Use it to talk to a
/// server with a self-signed certificate in tests and local experiments.
pub fn insecure_client_config() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = AcceptAnyCertificate {
        algorithms: provider.signature_verification_algorithms,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // Invariant: the ring provider supports rustls's default protocol versions.
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Arc::new(config)
}

/// `id-on-xmppAddr` (RFC 6120 13.7.1.4): an otherName SAN holding a JID as UTF8String.
const ID_ON_XMPP_ADDR: &str = "1.3.6.1.5.5.7.8.5";
/// Most subjectAltName entries looked at in one certificate.
const MAX_SAN_ENTRIES: usize = 64;
/// Longest identity accepted (a bare JID is at most 2047 bytes).
const MAX_IDENTITY_BYTES: usize = 2047;

/// The XMPP address a client certificate claims (XEP-0178 §3): its first `id-on-xmppAddr`
/// otherName, else its first rfc822Name (`user@domain`). `None` if it has neither or does
/// not parse. The caller must have verified the certificate chain.
pub(crate) fn client_identity(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::der_parser::asn1_rs::{Any, FromDer};
    use x509_parser::prelude::{GeneralName, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
    let san = parsed.subject_alternative_name().ok()??;
    let names = san.value.general_names.iter().take(MAX_SAN_ENTRIES);
    let mut email = None;
    for name in names {
        match name {
            GeneralName::OtherName(oid, value) if oid.to_id_string() == ID_ON_XMPP_ADDR => {
                // value = [0] EXPLICIT UTF8String
                let Ok((_, tagged)) = Any::from_der(value) else {
                    continue;
                };
                let Ok((_, jid)) = <&str>::from_der(tagged.data) else {
                    continue;
                };
                if !jid.is_empty() && jid.len() <= MAX_IDENTITY_BYTES {
                    return Some(jid.to_string());
                }
            }
            GeneralName::RFC822Name(addr)
                if email.is_none() && addr.contains('@') && addr.len() <= MAX_IDENTITY_BYTES =>
            {
                email = Some(addr.to_string());
            }
            _ => {}
        }
    }
    email
}
