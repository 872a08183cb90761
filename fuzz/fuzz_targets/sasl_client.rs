//! `ClientSession` fed fuzzer-chosen server messages: raw bytes, or server-first / server-final
//! messages built from the exchange so far with fuzzer-chosen fields.
//!
//! Input (see `Reader` in fuzz/src/lib.rs): mech byte, authzid (opt string), nonce choice,
//! then up to 16 ops: `0` initial response, `1 msg` challenge, `2 flag msg` success (with
//! data when the flag is odd). msg: `0 bytes` raw; `1 nonce-ext salt-choice iter-choice
//! opt-ext` server-first; `2 tamper` server-final.
//!
//! Checks: never panics; a model of the exchange agrees with every result; the client-final
//! proof is the one an independent oracle computes; and the client never reports success
//! (`challenge` accepting a server-final, or `success`) unless the signature it accepted is
//! the real ServerSignature for the exchange.
#![no_main]

use elsinore_fuzz::{Hash, Reader, ServerFirst, attr, b64, client_final, unb64};
use elsinore_sasl::{ClientSession, MAX_ITERATIONS, Mechanism};
use libfuzzer_sys::fuzz_target;

const USER: &str = "user";
const PASSWORD: &str = "pencil";
/// Client nonces of the RFC 5802 and RFC 7677 examples.
const NONCES: [&str; 2] = ["fyko+d2lbbFgONRv9qkxdawL", "rOprNGfwEbeRWgbNEkqO"];
/// Salts the oracle caches (base64): the two RFC examples and one of our own.
const SALTS: [&str; 3] = [
    "QSXCR+Q6sek8bf92",
    "W22ZaJ0SNY7soEsUEjb6gQ==",
    "ZnV6eiBzYWx0",
];
/// Iteration counts offered by built server-first messages: the valid minimum, boundaries.
const ITERS: [&str; 6] = ["4096", "4095", "0", "1000001", "4294967296", "x"];

#[derive(Debug, Clone)]
enum Model {
    Start,
    PlainSent,
    FirstSent { gs2: String, bare: String },
    FinalSent { sig: Vec<u8> },
    Verified { sig: Vec<u8> },
    Failed,
}

fn hash_of(mech: Mechanism) -> Option<Hash> {
    match mech {
        Mechanism::Plain => None,
        Mechanism::ScramSha1 => Some(Hash::Sha1),
        Mechanism::ScramSha256 => Some(Hash::Sha256),
        // This target drives only the password mechanisms above; the others
        // (DIGEST-MD5, -PLUS, EXTERNAL, ANONYMOUS) are covered by elsinore-sasl's proptests.
        _ => None,
    }
}

/// `Some(signature)` if `data` is a server-final carrying it (`v=` first).
fn signature_in(data: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(data).ok()?;
    let first = text.split(',').next()?;
    unb64(first.strip_prefix("v=")?)
}

/// Builds a server message from the input and the exchange so far.
fn read_msg(r: &mut Reader, model: &Model, nonce: &str) -> Vec<u8> {
    match r.byte() % 3 {
        0 => r.long_bytes().to_vec(),
        1 => {
            let ext = match r.byte() % 3 {
                0 => "3rfcNHYJY1ZVvWVs7j".to_string(),
                _ => r.string(),
            };
            let salt = match r.byte() % 4 {
                n @ 0..=2 => SALTS[usize::from(n)].to_string(),
                _ => r.string(),
            };
            let iters = ITERS[usize::from(r.byte() % 6)];
            let mut m = format!("r={nonce}{ext},s={salt},i={iters}");
            if let Some(e) = r.opt_string() {
                m.push(',');
                m.push_str(&e);
            }
            m.into_bytes()
        }
        _ => {
            let sig = match model {
                Model::FinalSent { sig } | Model::Verified { sig } => sig.clone(),
                _ => vec![0; 32],
            };
            match r.byte() % 5 {
                0 => format!("v={}", b64(&sig)).into_bytes(),
                1 => {
                    let mut bad = sig;
                    let i = usize::from(r.byte()) % bad.len().max(1);
                    if let Some(b) = bad.get_mut(i) {
                        *b ^= 1 << (r.byte() % 8);
                    }
                    format!("v={}", b64(&bad)).into_bytes()
                }
                2 => format!("e={}", r.string()).into_bytes(),
                3 => format!("v={},{}", b64(&sig), r.string()).into_bytes(),
                _ => format!("v={}", r.string()).into_bytes(),
            }
        }
    }
}

/// Whether the client would derive keys with a huge iteration count (slow, not a finding).
fn too_slow(model: &Model, data: &[u8]) -> bool {
    matches!(model, Model::FirstSent { .. })
        && std::str::from_utf8(data)
            .ok()
            .and_then(|t| attr(t, 'i'))
            .and_then(|i| i.parse::<u32>().ok())
            .is_some_and(|i| i > 5000 && i <= MAX_ITERATIONS)
}

/// The model after the client sent its first message `out`.
fn after_initial(model: &Model, mech: Mechanism, nonce: &str, out: Vec<u8>) -> Model {
    if !matches!(model, Model::Start) {
        return model.clone();
    }
    match mech {
        Mechanism::Plain => {
            assert!(out.ends_with(b"\0user\0pencil"), "{out:?}");
            Model::PlainSent
        }
        _ => {
            let text = String::from_utf8(out).expect("client-first is text");
            let first = text.find(',').expect("gs2 header");
            let second = first + 1 + text[first + 1..].find(',').expect("gs2 header");
            let bare = text[second + 1..].to_string();
            assert_eq!(attr(&bare, 'r'), Some(nonce));
            Model::FirstSent {
                gs2: text[..=second].to_string(),
                bare,
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mech = match r.byte() % 3 {
        0 => Mechanism::Plain,
        1 => Mechanism::ScramSha1,
        _ => Mechanism::ScramSha256,
    };
    let authzid = r.opt_string();
    let nonce = match r.byte() % 3 {
        n @ (0 | 1) => NONCES[usize::from(n)].to_string(),
        _ => r.string(),
    };
    let Ok(mut client) = ClientSession::new(mech, USER, PASSWORD, authzid.as_deref(), &nonce)
    else {
        return;
    };
    assert_eq!(client.mechanism(), mech);
    let mut model = Model::Start;

    for _ in 0..16 {
        if r.is_empty() {
            break;
        }
        match r.byte() % 3 {
            0 => {
                let out = client.initial_response();
                model = after_initial(&model, mech, &nonce, out);
            }
            1 => {
                let msg = read_msg(&mut r, &model, &nonce);
                if too_slow(&model, &msg) {
                    return;
                }
                let result = client.challenge(&msg);
                let Ok(out) = result else {
                    model = Model::Failed;
                    continue;
                };
                match model.clone() {
                    Model::Start => {
                        assert!(msg.is_empty(), "answered a non-empty first challenge");
                        model = after_initial(&model, mech, &nonce, out);
                    }
                    Model::FirstSent { gs2, bare } => {
                        let h = hash_of(mech).expect("SCRAM");
                        let sf = std::str::from_utf8(&msg).expect("accepted server-first");
                        let parsed = ServerFirst::parse(sf).expect("accepted server-first");
                        assert!(parsed.nonce.len() > nonce.len());
                        assert!(parsed.nonce.starts_with(&nonce));
                        assert!((4096..=MAX_ITERATIONS).contains(&parsed.iterations));
                        let want = client_final(h, PASSWORD, &gs2, &bare, sf)
                            .expect("oracle reads an accepted server-first");
                        assert_eq!(
                            std::str::from_utf8(&out).ok(),
                            Some(want.message.as_str()),
                            "client-final differs from the oracle's"
                        );
                        model = Model::FinalSent {
                            sig: want.server_signature,
                        };
                    }
                    Model::FinalSent { sig } => {
                        assert_eq!(
                            signature_in(&msg).as_ref(),
                            Some(&sig),
                            "accepted a server-final that does not verify"
                        );
                        assert!(out.is_empty());
                        model = Model::Verified { sig };
                    }
                    m => panic!("challenge accepted in state {m:?}"),
                }
            }
            _ => {
                let with_data = r.byte() % 2 == 1;
                let msg = with_data.then(|| read_msg(&mut r, &model, &nonce));
                let result = client.success(msg.as_deref());
                let given = msg.filter(|m| !m.is_empty());
                if result.is_err() {
                    model = Model::Failed;
                    continue;
                }
                match (&model, given) {
                    (Model::PlainSent, _) => {}
                    (Model::FinalSent { sig } | Model::Verified { sig }, Some(d)) => {
                        assert_eq!(
                            signature_in(&d).as_ref(),
                            Some(sig),
                            "success with a signature that does not verify"
                        );
                    }
                    (Model::Verified { .. }, None) => {}
                    (m, d) => panic!("success accepted in state {m:?} with {d:?}"),
                }
            }
        }
    }
});
