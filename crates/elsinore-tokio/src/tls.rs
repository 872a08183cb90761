//! TLS helpers.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The handshake-signature methods of a rustls `ServerCertVerifier` or `ClientCertVerifier`
/// (`verify_tls12_signature`, `verify_tls13_signature`, `supported_verify_schemes`), checked
/// with the verifier's `WebPkiSupportedAlgorithms` field named by the argument. Invoke it
/// inside the trait impl; the verifier's certificate policy stays its own.
macro_rules! handshake_signatures {
    ($algorithms:ident) => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &::rustls::pki_types::CertificateDer<'_>,
            dss: &::rustls::DigitallySignedStruct,
        ) -> Result<::rustls::client::danger::HandshakeSignatureValid, ::rustls::Error> {
            ::rustls::crypto::verify_tls12_signature(message, cert, dss, &self.$algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &::rustls::pki_types::CertificateDer<'_>,
            dss: &::rustls::DigitallySignedStruct,
        ) -> Result<::rustls::client::danger::HandshakeSignatureValid, ::rustls::Error> {
            ::rustls::crypto::verify_tls13_signature(message, cert, dss, &self.$algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<::rustls::SignatureScheme> {
            self.$algorithms.supported_schemes()
        }
    };
}
pub(crate) use handshake_signatures;

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

    handshake_signatures!(algorithms);
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

/// RFC 5929 §4.1 `tls-server-end-point` channel-binding data: the hash of the server's
/// end-entity certificate (DER), with the hash of the certificate's signature algorithm, and
/// SHA-256 where that is MD5 or SHA-1. `None` where RFC 5929 leaves the binding undefined
/// (a signature without a single hash, e.g. Ed25519) or the certificate does not parse.
pub(crate) fn server_end_point(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
    use x509_parser::prelude::{FromDer, X509Certificate};
    use x509_parser::signature_algorithm::SignatureAlgorithm;
    let der = cert.as_ref();
    let (_, parsed) = X509Certificate::from_der(der).ok()?;
    let alg = &parsed.signature_algorithm;
    let hash_oid = match SignatureAlgorithm::try_from(alg) {
        // RSASSA-PSS names its hash in the parameters (SHA-1 when absent).
        Ok(SignatureAlgorithm::RSASSA_PSS(params)) => params.hash_algorithm_oid().to_id_string(),
        _ => alg.algorithm.to_id_string(),
    };
    let hash = match hash_oid.as_str() {
        // md5WithRSAEncryption, sha1WithRSAEncryption (PKCS#1 and OIW), dsa-with-sha1,
        // ecdsa-with-SHA1, id-sha1 (PSS): MD5 and SHA-1 are replaced by SHA-256.
        "1.2.840.113549.1.1.4"
        | "1.2.840.113549.1.1.5"
        | "1.3.14.3.2.25"
        | "1.3.14.3.2.29"
        | "1.2.840.10040.4.3"
        | "1.2.840.10045.4.1"
        | "1.3.14.3.2.26" => Sha256::digest(der).to_vec(),
        // sha224WithRSAEncryption, ecdsa-with-SHA224, dsa-with-sha224, id-sha224
        "1.2.840.113549.1.1.14"
        | "1.2.840.10045.4.3.1"
        | "2.16.840.1.101.3.4.3.1"
        | "2.16.840.1.101.3.4.2.4" => Sha224::digest(der).to_vec(),
        // sha256WithRSAEncryption, ecdsa-with-SHA256, dsa-with-sha256, id-sha256
        "1.2.840.113549.1.1.11"
        | "1.2.840.10045.4.3.2"
        | "2.16.840.1.101.3.4.3.2"
        | "2.16.840.1.101.3.4.2.1" => Sha256::digest(der).to_vec(),
        // sha384WithRSAEncryption, ecdsa-with-SHA384, id-sha384
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" | "2.16.840.1.101.3.4.2.2" => {
            Sha384::digest(der).to_vec()
        }
        // sha512WithRSAEncryption, ecdsa-with-SHA512, id-sha512
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" | "2.16.840.1.101.3.4.2.3" => {
            Sha512::digest(der).to_vec()
        }
        _ => return None,
    };
    Some(hash)
}

/// Wraps a server configuration's certificate resolver to remember which certificate it
/// chose for one connection: rustls does not tell a server which certificate it sent, and
/// `tls-server-end-point` is the hash of exactly that one.
#[derive(Debug)]
pub(crate) struct ChosenCert {
    inner: Arc<dyn ResolvesServerCert>,
    chosen: Mutex<Option<Arc<CertifiedKey>>>,
}

impl ChosenCert {
    /// A per-connection copy of `base` whose resolver records its choice in the returned
    /// handle. The copy shares `base`'s session cache, ticketer and keys.
    pub(crate) fn wrap(base: &Arc<rustls::ServerConfig>) -> (Arc<rustls::ServerConfig>, Arc<Self>) {
        let recorder = Arc::new(ChosenCert {
            inner: Arc::clone(&base.cert_resolver),
            chosen: Mutex::new(None),
        });
        let mut config = rustls::ServerConfig::clone(base);
        config.cert_resolver = Arc::clone(&recorder) as Arc<dyn ResolvesServerCert>;
        (Arc::new(config), recorder)
    }

    /// The end-entity certificate the last resolution chose, if any.
    pub(crate) fn end_entity(&self) -> Option<CertificateDer<'static>> {
        let chosen = self.chosen.lock().ok()?;
        chosen.as_ref()?.cert.first().cloned()
    }
}

impl ResolvesServerCert for ChosenCert {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let key = self.inner.resolve(hello);
        // After a HelloRetryRequest rustls resolves again: the last choice is the one sent.
        if let Ok(mut chosen) = self.chosen.lock() {
            chosen.clone_from(&key);
        }
        key
    }

    fn only_raw_public_keys(&self) -> bool {
        self.inner.only_raw_public_keys()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256, Sha384};

    fn certificate(alg: &'static rcgen::SignatureAlgorithm) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn end_point_hash_follows_the_signature_algorithm() {
        let p256 = certificate(&rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(
            server_end_point(&p256).unwrap(),
            Sha256::digest(p256.as_ref()).to_vec()
        );
        let p384 = certificate(&rcgen::PKCS_ECDSA_P384_SHA384);
        let hash = server_end_point(&p384).unwrap();
        assert_eq!(hash.len(), 48);
        assert_eq!(hash, Sha384::digest(p384.as_ref()).to_vec());
    }

    #[test]
    fn end_point_is_undefined_without_a_single_hash() {
        // RFC 5929 §4.1: Ed25519 signs without a separate hash function.
        assert_eq!(server_end_point(&certificate(&rcgen::PKCS_ED25519)), None);
        assert_eq!(
            server_end_point(&CertificateDer::from(vec![0x30, 0x03])),
            None
        );
    }
}
