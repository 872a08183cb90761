//! `ServerSession` for each mechanism, driven by a fuzzer-chosen list of operations:
//! messages (raw, or well-formed PLAIN / SCRAM messages with fuzzer-chosen fields and
//! tampering), credentials (known, absent, corrupt) and aborts, in any order.
//!
//! Input (see `Reader` in fuzz/src/lib.rs and `seeds/make_seeds.py`): mech byte, server
//! nonce choice, optional decoy secret, optional initial message, then up to 16 ops:
//! `0 msg` response, `1 creds` credentials, `2` abort. msg: `0 bytes` raw, `1` PLAIN,
//! `2` SCRAM client-first, `3` SCRAM client-final built by the oracle (with tampering).
//!
//! Checks: never panics, and the steps stay consistent:
//! - after `Success` or `Failure` every step is a `Failure`;
//! - `NeedCredentials` only answers a client message, `Challenge`s from the first message
//!   on are server-first messages extending the client nonce with the server nonce;
//! - `Success` only after known credentials were provided for the same authcid, and only
//!   when an independent oracle (fuzz/src/lib.rs) confirms the password: PLAIN's password
//!   SASLpreps to the real one; SCRAM's proof is the real one and the `v=` the server sends
//!   is the real ServerSignature. Unknown accounts never succeed.
#![no_main]

use std::sync::OnceLock;

use elsinore_fuzz::{Hash, Reader, ServerFirst, attr, b64, client_final, credentials, unb64};
use elsinore_sasl::{Mechanism, ServerSession, ServerStep, StoredCredentials};
use libfuzzer_sys::fuzz_target;

const USER: &str = "user";
const PASSWORD: &str = "pencil";
/// Server nonces of the RFC 5802 and RFC 7677 examples.
const SERVER_NONCES: [&str; 2] = ["3rfcNHYJY1ZVvWVs7j", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"];
const SALT1: &[u8] = b"fuzz salt sha1";
const SALT256: &[u8] = b"fuzz salt sha256";
/// Real deployments use >= 4096; the session does not care, and 2 rounds keep PLAIN fast.
const ITERATIONS: u32 = 2;

fn rfc() -> &'static StoredCredentials {
    static C: OnceLock<StoredCredentials> = OnceLock::new();
    C.get_or_init(|| {
        // The example exchanges of RFC 5802 §5 and RFC 7677 §3.
        let s1 = unb64("QSXCR+Q6sek8bf92").unwrap_or_default();
        let s256 = unb64("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap_or_default();
        credentials(PASSWORD, &s1, &s256, 4096)
    })
}

fn known() -> &'static StoredCredentials {
    static C: OnceLock<StoredCredentials> = OnceLock::new();
    C.get_or_init(|| credentials(PASSWORD, SALT1, SALT256, ITERATIONS))
}

fn corrupt() -> &'static StoredCredentials {
    static C: OnceLock<StoredCredentials> = OnceLock::new();
    C.get_or_init(|| {
        let mut c = known().clone();
        c.sha256.stored_key.pop();
        c
    })
}

#[derive(Debug)]
enum Name {
    Real,
    Raw(String),
}

impl Name {
    fn text(&self) -> &str {
        match self {
            Name::Real => USER,
            Name::Raw(s) => s,
        }
    }
}

#[derive(Debug)]
enum Password {
    Real,
    Raw(String),
}

impl Password {
    fn text(&self) -> &str {
        match self {
            Password::Real => PASSWORD,
            Password::Raw(s) => s,
        }
    }
}

#[derive(Debug)]
enum Tamper {
    None,
    Nonce(String),
    Cbind(String),
    DropProof,
    Proof(Vec<u8>),
    Extension(String),
    Append(String),
}

#[derive(Debug)]
enum Msg {
    Raw(Vec<u8>),
    Plain {
        authzid: Option<String>,
        authcid: Name,
        password: Password,
    },
    ScramFirst {
        flag: u8,
        authzid: Option<String>,
        authcid: Name,
        nonce: Option<String>,
        ext: Option<String>,
    },
    ScramFinal {
        password: Password,
        tamper: Tamper,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Creds {
    /// RFC 5802 / RFC 7677 example credentials (4096 rounds).
    Rfc,
    /// Same password, 2 rounds.
    Known,
    Absent,
    Corrupt,
}

fn read_name(r: &mut Reader) -> Name {
    match r.byte() % 2 {
        0 => Name::Real,
        _ => Name::Raw(r.string()),
    }
}

fn read_password(r: &mut Reader) -> Password {
    match r.byte() % 2 {
        0 => Password::Real,
        _ => Password::Raw(r.string()),
    }
}

fn read_msg(r: &mut Reader) -> Msg {
    match r.byte() % 4 {
        0 => Msg::Raw(r.long_bytes().to_vec()),
        1 => Msg::Plain {
            authzid: r.opt_string(),
            authcid: read_name(r),
            password: read_password(r),
        },
        2 => Msg::ScramFirst {
            flag: r.byte(),
            authzid: r.opt_string(),
            authcid: read_name(r),
            nonce: r.opt_string(),
            ext: r.opt_string(),
        },
        _ => Msg::ScramFinal {
            password: read_password(r),
            tamper: match r.byte() % 7 {
                0 => Tamper::None,
                1 => Tamper::Nonce(r.string()),
                2 => Tamper::Cbind(r.string()),
                3 => Tamper::DropProof,
                4 => Tamper::Proof(r.bytes().to_vec()),
                5 => Tamper::Extension(r.string()),
                _ => Tamper::Append(r.string()),
            },
        },
    }
}

/// What the harness knows about the exchange so far.
#[derive(Default)]
struct Track {
    ended: bool,
    /// The authcid of the last `NeedCredentials`, while credentials are awaited.
    awaiting: Option<String>,
    /// Authcid and credentials last provided.
    provided: Option<(String, Creds)>,
    /// Raw text of the last SCRAM client-first (for the GS2 header and the nonce).
    client_first: Option<String>,
    /// Last non-empty challenge.
    server_first: Option<String>,
    /// The last message sent (start or response).
    last_msg: Vec<u8>,
    /// The server nonce the session was started with.
    server_nonce: String,
}

impl Track {
    /// `(gs2 header, client-first-bare)` of the last client-first message.
    fn split_first(&self) -> Option<(&str, &str)> {
        let cf = self.client_first.as_deref()?;
        let first = cf.find(',')?;
        let second = first + 1 + cf[first + 1..].find(',')?;
        Some((&cf[..=second], &cf[second + 1..]))
    }
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

fn build(msg: &Msg, mech: Mechanism, t: &Track) -> Vec<u8> {
    match msg {
        Msg::Raw(b) => b.clone(),
        Msg::Plain {
            authzid,
            authcid,
            password,
        } => {
            let mut out = Vec::new();
            if let Some(a) = authzid {
                out.extend_from_slice(a.as_bytes());
            }
            out.push(0);
            out.extend_from_slice(authcid.text().as_bytes());
            out.push(0);
            out.extend_from_slice(password.text().as_bytes());
            out
        }
        Msg::ScramFirst {
            flag,
            authzid,
            authcid,
            nonce,
            ext,
        } => {
            let flag = match flag % 4 {
                0 => "n",
                1 => "y",
                2 => "p=tls-unique",
                _ => "x",
            };
            let esc = |s: &str| s.replace('=', "=3D").replace(',', "=2C");
            let a = authzid.as_deref().map(|a| format!("a={}", esc(a)));
            let nonce = nonce.as_deref().unwrap_or("fyko+d2lbbFgONRv9qkxdawL");
            let mut s = format!(
                "{flag},{},n={},r={nonce}",
                a.unwrap_or_default(),
                esc(authcid.text())
            );
            if let Some(e) = ext {
                s.push(',');
                s.push_str(e);
            }
            s.into_bytes()
        }
        Msg::ScramFinal { password, tamper } => {
            let (Some(h), Some((gs2, bare)), Some(sf)) =
                (hash_of(mech), t.split_first(), t.server_first.as_deref())
            else {
                return b"c=biws,r=x,p=AAAA".to_vec();
            };
            let Some(cf) = client_final(h, password.text(), gs2, bare, sf) else {
                return b"c=biws,r=x,p=AAAA".to_vec();
            };
            let m = cf.message;
            let (head, proof) = m.rsplit_once(",p=").unwrap_or((&m, ""));
            let out = match tamper {
                Tamper::None => m.clone(),
                Tamper::Nonce(n) => format!("c={},r={n},p={proof}", b64(gs2.as_bytes())),
                Tamper::Cbind(c) => {
                    let r = attr(head, 'r').unwrap_or_default();
                    format!("c={},r={r},p={proof}", b64(c.as_bytes()))
                }
                Tamper::DropProof => head.to_string(),
                Tamper::Proof(p) => format!("{head},p={}", b64(p)),
                Tamper::Extension(e) => format!("{head},{e},p={proof}"),
                Tamper::Append(e) => format!("{m}{e}"),
            };
            out.into_bytes()
        }
    }
}

enum Call {
    Start { with_initial: bool },
    Response,
    Credentials,
}

fn check(step: &ServerStep, call: &Call, mech: Mechanism, t: &mut Track) {
    if t.ended {
        assert!(
            matches!(step, ServerStep::Failure(_)),
            "{step:?} after the end"
        );
        return;
    }
    match step {
        ServerStep::NeedCredentials { authcid, .. } => {
            assert!(!matches!(call, Call::Credentials), "asked twice");
            assert!(!authcid.is_empty());
            t.awaiting = Some(authcid.clone());
        }
        ServerStep::Challenge(data) => match call {
            Call::Start {
                with_initial: false,
            } => assert!(data.is_empty()),
            Call::Credentials => {
                assert!(hash_of(mech).is_some(), "PLAIN has no server-first");
                let text = std::str::from_utf8(data).expect("server-first is text");
                let sf = ServerFirst::parse(text).expect("server-first parses");
                let (_, bare) = t.split_first().expect("client-first was sent");
                let cnonce = attr(bare, 'r').expect("client nonce");
                assert_eq!(sf.nonce, format!("{cnonce}{}", t.server_nonce));
                assert!(!sf.salt.is_empty() && sf.iterations >= 1);
                t.server_first = Some(text.to_string());
            }
            _ => panic!("unexpected challenge {data:?}"),
        },
        ServerStep::Success {
            authcid,
            additional,
            ..
        } => {
            t.ended = true;
            let Some((who, creds)) = &t.provided else {
                panic!("success without credentials");
            };
            assert!(
                matches!(creds, Creds::Known | Creds::Rfc),
                "success without known credentials"
            );
            assert_eq!(who, authcid);
            match hash_of(mech) {
                None => {
                    assert_eq!(additional, &None);
                    let text = std::str::from_utf8(&t.last_msg).expect("PLAIN is UTF-8");
                    let pw = text.rsplit('\0').next().expect("three parts");
                    let prepped = stringprep::saslprep(pw).expect("password prepares");
                    assert_eq!(prepped, PASSWORD, "PLAIN success with another password");
                }
                Some(h) => verify_scram(h, t, additional.as_deref()),
            }
        }
        ServerStep::Failure(_) => t.ended = true,
    }
}

/// Recomputes the proof and the server signature of a successful SCRAM exchange.
fn verify_scram(h: Hash, t: &Track, additional: Option<&[u8]>) {
    let (gs2, bare) = t.split_first().expect("client-first sent");
    let sf_text = t.server_first.as_deref().expect("server-first sent");
    let sf = ServerFirst::parse(sf_text).expect("server-first parses");
    let creds = match &t.provided {
        Some((_, Creds::Rfc)) => rfc(),
        _ => known(),
    };
    let expected_salt = match h {
        Hash::Sha1 => &creds.sha1.salt,
        Hash::Sha256 => &creds.sha256.salt,
    };
    assert_eq!(&sf.salt, expected_salt);
    let final_text = std::str::from_utf8(&t.last_msg).expect("client-final is text");
    let (without_proof, proof) = final_text.rsplit_once(",p=").expect("proof present");
    assert_eq!(attr(without_proof, 'r'), Some(sf.nonce.as_str()));
    let cbind = unb64(attr(without_proof, 'c').expect("c=")).expect("c= is base64");
    assert_eq!(cbind, gs2.as_bytes());
    let keys = h.keys(PASSWORD.as_bytes(), &sf.salt, sf.iterations);
    let auth = format!("{bare},{sf_text},{without_proof}");
    let sig = h.hmac(&keys.stored_key, auth.as_bytes());
    let want: Vec<u8> = keys
        .client_key
        .iter()
        .zip(&sig)
        .map(|(a, b)| a ^ b)
        .collect();
    assert_eq!(unb64(proof), Some(want), "accepted a wrong proof");
    let v = format!("v={}", b64(&h.hmac(&keys.server_key, auth.as_bytes())));
    assert_eq!(additional, Some(v.as_bytes()));
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mech = match r.byte() % 3 {
        0 => Mechanism::Plain,
        1 => Mechanism::ScramSha1,
        _ => Mechanism::ScramSha256,
    };
    let nonce = match r.byte() % 3 {
        n @ (0 | 1) => SERVER_NONCES[usize::from(n)].to_string(),
        _ => r.string(),
    };
    let decoy_secret = r.opt_string();
    let initial_msg = (r.byte() % 2 == 1).then(|| read_msg(&mut r));

    let mut t = Track::default();
    let initial = initial_msg.as_ref().map(|m| build(m, mech, &t));
    if mech != Mechanism::Plain {
        t.client_first = initial
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_owned);
    }
    t.last_msg = initial.clone().unwrap_or_default();
    t.server_nonce = nonce.clone();
    let (mut session, step) = ServerSession::start(mech, initial.as_deref(), &nonce);
    // Unknown accounts: cheap decoy (the default is 4096 rounds for PLAIN).
    session.set_unknown_user_decoy(decoy_secret.as_deref().unwrap_or_default().as_bytes(), 1);
    assert_eq!(session.mechanism(), mech);
    let call = Call::Start {
        with_initial: initial.is_some(),
    };
    check(&step, &call, mech, &mut t);

    for _ in 0..16 {
        if r.is_empty() {
            break;
        }
        let (step, call) = match r.byte() % 3 {
            0 => {
                let msg = read_msg(&mut r);
                let bytes = build(&msg, mech, &t);
                // A client-first arrives as the response to the empty challenge.
                if mech != Mechanism::Plain && t.client_first.is_none() {
                    t.client_first = std::str::from_utf8(&bytes).ok().map(str::to_owned);
                }
                t.last_msg = bytes;
                (session.response(&t.last_msg), Call::Response)
            }
            1 => {
                let c = match r.byte() % 4 {
                    0 => Creds::Rfc,
                    1 => Creds::Known,
                    2 => Creds::Absent,
                    _ => Creds::Corrupt,
                };
                let creds = match c {
                    Creds::Rfc => Some(rfc()),
                    Creds::Known => Some(known()),
                    Creds::Absent => None,
                    Creds::Corrupt => Some(corrupt()),
                };
                if let Some(who) = t.awaiting.take() {
                    t.provided = Some((who, c));
                }
                (session.provide_credentials(creds), Call::Credentials)
            }
            _ => {
                session.abort();
                t.ended = true;
                continue;
            }
        };
        check(&step, &call, mech, &mut t);
    }
});
