//! The shared end-to-end scenarios over the embedded driver: plaintext SASL (the server
//! allows it; see the crate docs on TLS), futures polled with `embassy_futures::block_on`
//! over a blocking std `TcpStream` exposed as `embedded-io-async` `Read + Write`.
#![allow(clippy::unwrap_used)]

#[path = "../../elsinore-client/tests/support/scenarios.rs"]
mod scenarios;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use elsinore_embedded::Client;
use elsinore_jid::Jid;
use elsinore_stream::Instant;
use elsinore_xml::Element;
use embassy_futures::block_on;
use embedded_io_async::ErrorKind;

/// A std socket as an async transport (each call completes at once: it blocks instead).
struct Tcp(TcpStream);

impl embedded_io_async::ErrorType for Tcp {
    type Error = ErrorKind;
}

impl embedded_io_async::Read for Tcp {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        self.0.read(buf).map_err(|_| ErrorKind::Other)
    }
}

impl embedded_io_async::Write for Tcp {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.0.write(buf).map_err(|_| ErrorKind::Other)
    }
    async fn flush(&mut self) -> Result<(), ErrorKind> {
        self.0.flush().map_err(|_| ErrorKind::Other)
    }
}

fn now() -> Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    let epoch = EPOCH.get_or_init(std::time::Instant::now);
    Instant::from_millis(epoch.elapsed().as_millis() as u64)
}

type Session = Client<'static, Tcp, fn() -> Instant>;

struct Embedded;

impl scenarios::Adapter for Embedded {
    type Session = Session;
    fn login(&mut self, addr: &str, jid: &str, password: &str) -> Result<Session, String> {
        let socket = TcpStream::connect(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        // Caller-supplied receive buffer; small on purpose (the core parses incrementally).
        let buf: &'static mut [u8] = Box::leak(vec![0u8; 512].into_boxed_slice());
        let clock: fn() -> Instant = now;
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&now().as_millis().to_le_bytes());
        let mut client = Client::new(
            Tcp(socket),
            buf,
            Jid::from_str(jid).unwrap(),
            password,
            seed,
            clock,
        );
        block_on(client.connect()).map_err(|e| e.to_string())?;
        Ok(client)
    }
    fn jid(&mut self, s: &Session) -> String {
        s.jid().unwrap().to_string()
    }
    fn private_set(&mut self, s: &mut Session, payload: Element) -> Result<(), String> {
        block_on(s.private_set(payload)).map_err(|e| e.to_string())
    }
    fn private_get(
        &mut self,
        s: &mut Session,
        name: &str,
        ns: &str,
    ) -> Result<Vec<Element>, String> {
        block_on(s.private_get(name, ns)).map_err(|e| e.to_string())
    }
    fn send(&mut self, s: &mut Session, stanza: Element) -> Result<(), String> {
        block_on(s.send(&stanza)).map_err(|e| e.to_string())
    }
    fn recv_message(&mut self, s: &mut Session, _wait: Duration) -> Option<Element> {
        // The socket's read timeout bounds the wait.
        loop {
            match block_on(s.recv()) {
                Ok(st) if st.name == "message" => return Some(st),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
    fn close(&mut self, s: Session) {
        block_on(s.close()).unwrap();
    }
}

#[test]
fn shared_scenarios_over_embedded() {
    scenarios::run_all(&mut Embedded);
}
