//! The shared end-to-end scenarios (crates/elsinore-client/tests/support) over the tokio
//! client (STARTTLS + SCRAM), blocking on a runtime of its own.
#![allow(clippy::unwrap_used)]

#[path = "../../elsinore-client/tests/support/scenarios.rs"]
mod scenarios;

use std::str::FromStr;
use std::time::Duration;

use elsinore_jid::Jid;
use elsinore_tokio::{Client, ClientOptions};
use elsinore_xml::Element;

struct Tokio(tokio::runtime::Runtime);

impl scenarios::Adapter for Tokio {
    type Session = Client;
    fn login(&mut self, addr: &str, jid: &str, password: &str) -> Result<Client, String> {
        let mut opts = ClientOptions::new(addr.to_string(), Jid::from_str(jid).unwrap(), password)
            .insecure_tls();
        opts.timeout = Duration::from_secs(20);
        self.0
            .block_on(Client::connect(opts))
            .map_err(|e| e.to_string())
    }
    fn jid(&mut self, s: &Client) -> String {
        s.jid().to_string()
    }
    fn private_set(&mut self, s: &mut Client, payload: Element) -> Result<(), String> {
        self.0
            .block_on(s.private_set(payload))
            .map_err(|e| e.to_string())
    }
    fn private_get(
        &mut self,
        s: &mut Client,
        name: &str,
        ns: &str,
    ) -> Result<Vec<Element>, String> {
        self.0
            .block_on(s.private_get(name, ns))
            .map_err(|e| e.to_string())
    }
    fn send(&mut self, s: &mut Client, stanza: Element) -> Result<(), String> {
        self.0.block_on(s.send(stanza)).map_err(|e| e.to_string())
    }
    fn recv_message(&mut self, s: &mut Client, wait: Duration) -> Option<Element> {
        self.0.block_on(async {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                match tokio::time::timeout_at(deadline, s.recv()).await {
                    Ok(Some(st)) if st.name == "message" => return Some(st),
                    Ok(Some(_)) => {}
                    _ => return None,
                }
            }
        })
    }
    fn close(&mut self, s: Client) {
        self.0.block_on(s.close()).unwrap();
    }
}

#[test]
fn shared_scenarios_over_tokio() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    scenarios::run_all(&mut Tokio(rt));
}
