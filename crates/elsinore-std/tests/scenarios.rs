//! The shared end-to-end scenarios over the blocking std client (STARTTLS + SCRAM), and the
//! check that the std adapter pulls in no async runtime.
#![allow(clippy::unwrap_used)]

#[path = "../../elsinore-client/tests/support/scenarios.rs"]
mod scenarios;

use std::str::FromStr;
use std::time::Duration;

use elsinore_jid::Jid;
use elsinore_std::{Client, ClientOptions};
use elsinore_xml::Element;

struct Std;

/// Test-only verifier: accepts the self-signed test certificate.
fn insecure() -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    #[derive(Debug)]
    struct Any(rustls::crypto::CryptoProvider);
    impl ServerCertVerifier for Any {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = rustls::crypto::ring::default_provider();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider.clone()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(Any(provider)))
        .with_no_client_auth();
    std::sync::Arc::new(config)
}

impl scenarios::Adapter for Std {
    type Session = Client;
    fn login(&mut self, addr: &str, jid: &str, password: &str) -> Result<Client, String> {
        let mut opts = ClientOptions::new(addr, Jid::from_str(jid).unwrap(), password);
        opts.tls_config = Some(insecure());
        opts.timeout = Duration::from_secs(20);
        Client::connect(opts).map_err(|e| e.to_string())
    }
    fn jid(&mut self, s: &Client) -> String {
        s.jid().unwrap().to_string()
    }
    fn private_set(&mut self, s: &mut Client, payload: Element) -> Result<(), String> {
        s.private_set(payload).map_err(|e| e.to_string())
    }
    fn private_get(
        &mut self,
        s: &mut Client,
        name: &str,
        ns: &str,
    ) -> Result<Vec<Element>, String> {
        s.private_get(name, ns).map_err(|e| e.to_string())
    }
    fn send(&mut self, s: &mut Client, stanza: Element) -> Result<(), String> {
        s.send(&stanza).map_err(|e| e.to_string())
    }
    fn recv_message(&mut self, s: &mut Client, wait: Duration) -> Option<Element> {
        let end = std::time::Instant::now() + wait;
        while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
            match s.recv(left) {
                Ok(Some(st)) if st.name == "message" => return Some(st),
                Ok(Some(_)) => {}
                _ => return None,
            }
        }
        None
    }
    fn close(&mut self, s: Client) {
        s.close().unwrap();
    }
}

#[test]
fn shared_scenarios_over_std() {
    scenarios::run_all(&mut Std);
}

#[test]
fn annotations_over_std() {
    let server = scenarios::start_server();
    let mut client = scenarios::Adapter::login(
        &mut Std,
        &server.local_addr().to_string(),
        "hamlet@localhost",
        "s3cret",
    )
    .unwrap();
    let yorick: elsinore_jid::BareJid = "yorick@elsinore.lit".parse().unwrap();
    client
        .annotations_set_note(&yorick, "a fellow of infinite jest")
        .unwrap();
    client.annotations_set_note(&yorick, "alas").unwrap();
    let notes = client.annotations_get().unwrap();
    assert_eq!(notes.notes().len(), 1);
    assert_eq!(notes.get(&yorick).unwrap().text, "alas");
    assert!(client.annotations_remove_note(&yorick).unwrap());
    assert!(client.annotations_get().unwrap().notes().is_empty());
    client.close().unwrap();
    server.shutdown();
}

/// The promise: `cargo tree` of the std adapter shows no tokio.
#[test]
fn no_tokio_in_the_dependency_tree() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "-p",
            "elsinore-std",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(
        tree.contains("elsinore-client"),
        "the tree was listed: {tree}"
    );
    let async_runtimes: Vec<&str> = tree
        .lines()
        .filter(|l| l.starts_with("tokio") || l.starts_with("async-std") || l.starts_with("smol"))
        .collect();
    assert!(async_runtimes.is_empty(), "{async_runtimes:?}");
}
