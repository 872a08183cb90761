//! `ServerSession` for every mechanism (PLAIN, SCRAM-SHA-1/256 and their -PLUS variants,
//! DIGEST-MD5, EXTERNAL, ANONYMOUS), driven by a fuzzer-chosen connection context and list
//! of operations: messages (raw, or well-formed PLAIN / SCRAM / DIGEST-MD5 / authzid
//! messages with fuzzer-chosen fields and tampering), credentials (known, absent, corrupt,
//! without a DIGEST-MD5 secret) and aborts, in any order.
//!
//! Input (see `Reader` in fuzz/src/lib.rs and `seeds/make_seeds.py`): mech byte (low 3 bits
//! the mechanism; bit 7 or a mechanism other than PLAIN / SCRAM-SHA-1 / SCRAM-SHA-256: a
//! context follows), server nonce choice, [context,] optional decoy secret, optional initial
//! message, then up to 16 ops: `0 msg` response, `1 creds` credentials, `2` abort.
//! context: plus_offered, up to two channel bindings (data, type), EXTERNAL identity, realm,
//! service. msg: `0 bytes` raw, `1` PLAIN, `2` SCRAM client-first (GS2 flag `n`, `y`, `p=`
//! tls-unique / tls-exporter / tls-server-end-point, junk), `3` SCRAM client-final built by
//! the oracle (for -PLUS with the connection's binding data, another one's, or junk; with
//! tampering), `4` DIGEST-MD5 digest-response built by the oracle (with tampering), `5`
//! EXTERNAL authzid (the identity, upper-cased, or another).
//!
//! Checks: never panics, and the steps stay consistent:
//! - after `Success` or `Failure` every step is a `Failure`;
//! - `NeedCredentials` only answers a client message of a credentials mechanism,
//!   `Challenge`s from the first message on are server-first messages extending the client
//!   nonce with the server nonce (SCRAM) or the real `rspauth` (DIGEST-MD5);
//! - `Success` only after known credentials were provided for the same authcid, and only
//!   when an independent oracle (fuzz/src/lib.rs) confirms the password: PLAIN's password
//!   SASLpreps to the real one; SCRAM's proof is the real one and the `v=` the server sends
//!   is the real ServerSignature; DIGEST-MD5's `response` is the one computed from the
//!   stored secret with the server's nonce, `nc=00000001` and realm. Unknown accounts never
//!   succeed.
//! - SCRAM channel binding: success only with `p=` on -PLUS naming a binding of the
//!   connection and `c=` carrying exactly its data; without -PLUS only `n`, or `y` when no
//!   -PLUS was offered (downgrade).
//! - EXTERNAL succeeds only with a verified identity, as that identity, for an empty authzid
//!   or the identity itself; ANONYMOUS only for short control-free UTF-8 trace data.
#![no_main]

use std::sync::OnceLock;

use elsinore_fuzz::{
    DigestInput, Hash, Reader, ServerFirst, attr, b64, client_final_cb, credentials, digest_secret,
    directive, directives, quote, unb64,
};
use elsinore_sasl::{
    ChannelBinding, Mechanism, ServerContext, ServerSession, ServerStep, StoredCredentials,
};
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

/// Channel-binding data offered by the fuzzer (tls-exporter gives 32 bytes).
const CB_A: &[u8] = b"tls-exporter data of 32 bytes!!!";
const CB_B: &[u8] = b"certificate hash";
const REALM: &str = "example.com";
const IDENTITY: &str = "juliet@example.com";

/// What a client-final claims for the binding data after the GS2 header (-PLUS only).
#[derive(Debug)]
enum CbData {
    /// The data of the connection's binding whose type the GS2 header names.
    Matching,
    /// The data of the connection's binding at this index (may be the other type).
    Index(u8),
    Raw(Vec<u8>),
}

#[derive(Debug)]
enum DigestTamper {
    None,
    /// Flip one hex digit of `response`.
    FlipResponse(u8),
    Response(String),
    Append(String),
    /// Upper-case `response` (allowed: hex is case-insensitive).
    Upper,
}

/// The value the exchange expects, or another.
#[derive(Debug)]
enum Choice {
    Real,
    Raw(String),
}

impl Choice {
    fn or<'a>(&'a self, real: &'a str) -> &'a str {
        match self {
            Choice::Real => real,
            Choice::Raw(s) => s,
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
        cb: Option<CbData>,
    },
    Digest {
        utf8: bool,
        username: Name,
        realm: Choice,
        nonce: Choice,
        cnonce: Choice,
        nc: Choice,
        digest_uri: Choice,
        authzid: Option<String>,
        qop: bool,
        password: Password,
        tamper: DigestTamper,
    },
    /// EXTERNAL authzid; upper-cased when the flag is set.
    Authzid(Choice, bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Creds {
    /// RFC 5802 / RFC 7677 example credentials (4096 rounds).
    Rfc,
    /// Same password, 2 rounds.
    Known,
    Absent,
    Corrupt,
    /// Known, but without a DIGEST-MD5 secret (only DIGEST-MD5 cares).
    NoDigest,
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

fn read_choice(r: &mut Reader) -> Choice {
    match r.byte() % 2 {
        0 => Choice::Real,
        _ => Choice::Raw(r.string()),
    }
}

fn read_msg(r: &mut Reader, mech: Mechanism) -> Msg {
    match r.byte() % 6 {
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
        3 => Msg::ScramFinal {
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
            cb: mech.is_plus().then(|| match r.byte() % 3 {
                0 => CbData::Matching,
                1 => CbData::Index(r.byte()),
                _ => CbData::Raw(r.bytes().to_vec()),
            }),
        },
        4 => Msg::Digest {
            utf8: r.byte() % 2 == 1,
            username: read_name(r),
            realm: read_choice(r),
            nonce: read_choice(r),
            cnonce: read_choice(r),
            nc: read_choice(r),
            digest_uri: read_choice(r),
            authzid: r.opt_string(),
            qop: r.byte().is_multiple_of(2),
            password: read_password(r),
            tamper: match r.byte() % 5 {
                0 => DigestTamper::None,
                1 => DigestTamper::FlipResponse(r.byte()),
                2 => DigestTamper::Response(r.string()),
                3 => DigestTamper::Append(r.string()),
                _ => DigestTamper::Upper,
            },
        },
        _ => Msg::Authzid(read_choice(r), r.byte() % 2 == 1),
    }
}

fn read_binding(r: &mut Reader) -> ChannelBinding {
    let data = match r.byte() % 4 {
        0 => CB_A.to_vec(),
        1 => CB_B.to_vec(),
        2 => Vec::new(),
        _ => r.bytes().to_vec(),
    };
    match r.byte() % 3 {
        0 => ChannelBinding::None,
        1 => ChannelBinding::TlsExporter(data),
        _ => ChannelBinding::TlsServerEndPoint(data),
    }
}

fn read_context(r: &mut Reader, nonce: &str) -> ServerContext {
    let plus_offered = r.byte() % 2 == 1;
    let n = r.byte() % 3;
    let channel_bindings = (0..n).map(|_| read_binding(r)).collect();
    let external_identity = match r.byte() % 3 {
        0 => None,
        1 => Some(IDENTITY.to_string()),
        _ => Some(r.string()),
    };
    let realm = match r.byte() % 3 {
        0 => REALM.to_string(),
        1 => String::new(),
        _ => r.string(),
    };
    let service = match r.byte() % 3 {
        0 => String::new(),
        1 => "xmpp".to_string(),
        _ => r.string(),
    };
    ServerContext {
        nonce: nonce.to_string(),
        channel_bindings,
        plus_offered,
        external_identity,
        realm,
        service,
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
    /// The connection context the session was started with.
    ctx: ServerContext,
    /// DIGEST-MD5: the digest-response behind the last `NeedCredentials`.
    digest_response: Option<Vec<u8>>,
    /// DIGEST-MD5: the `rspauth` challenge was checked (only an empty response may follow).
    rspauth_sent: bool,
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
        Mechanism::ScramSha1 | Mechanism::ScramSha1Plus => Some(Hash::Sha1),
        Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => Some(Hash::Sha256),
        _ => None,
    }
}

/// The connection's usable binding of the type a `p=<name>` GS2 header names.
fn binding_named<'c>(ctx: &'c ServerContext, gs2: &str) -> Option<&'c ChannelBinding> {
    let name = gs2.strip_prefix("p=")?.split(',').next()?;
    ctx.channel_bindings
        .iter()
        .find(|b| b.is_available() && b.type_name() == Some(name))
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
            let flag = match flag % 6 {
                0 => "n",
                1 => "y",
                2 => "p=tls-unique",
                3 => "x",
                4 => "p=tls-exporter",
                _ => "p=tls-server-end-point",
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
        Msg::ScramFinal {
            password,
            tamper,
            cb,
        } => {
            let (Some(h), Some((gs2, bare)), Some(sf)) =
                (hash_of(mech), t.split_first(), t.server_first.as_deref())
            else {
                return b"c=biws,r=x,p=AAAA".to_vec();
            };
            let mut cbind = gs2.as_bytes().to_vec();
            match cb {
                None => {}
                Some(CbData::Matching) => {
                    if let Some(b) = binding_named(&t.ctx, gs2) {
                        cbind.extend_from_slice(b.data());
                    }
                }
                Some(CbData::Index(i)) => {
                    let n = t.ctx.channel_bindings.len().max(1);
                    if let Some(b) = t.ctx.channel_bindings.get(usize::from(*i) % n) {
                        cbind.extend_from_slice(b.data());
                    }
                }
                Some(CbData::Raw(d)) => cbind.extend_from_slice(d),
            }
            let Some(cf) = client_final_cb(h, password.text(), &cbind, bare, sf) else {
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
        Msg::Digest {
            utf8,
            username,
            realm,
            nonce,
            cnonce,
            nc,
            digest_uri,
            authzid,
            qop,
            password,
            tamper,
        } => {
            let realm = realm.or(&t.ctx.realm);
            let nonce = nonce.or(&t.server_nonce);
            let cnonce = cnonce.or("OA6MHXh6VqTrRk");
            let nc = nc.or("00000001");
            let real_uri = format!("xmpp/{}", t.ctx.realm);
            let digest_uri = digest_uri.or(&real_uri);
            let secret = digest_secret(username.text(), realm, password.text());
            let input = DigestInput {
                secret: &secret,
                nonce,
                cnonce,
                nc,
                digest_uri,
                authzid: authzid.as_deref(),
            };
            let mut response = input.response();
            match tamper {
                DigestTamper::FlipResponse(i) => {
                    let i = usize::from(*i) % response.len();
                    let c = if &response[i..=i] == "0" { "1" } else { "0" };
                    response.replace_range(i..=i, c);
                }
                DigestTamper::Response(s) => response = s.clone(),
                DigestTamper::Upper => response.make_ascii_uppercase(),
                DigestTamper::None | DigestTamper::Append(_) => {}
            }
            let mut out = String::new();
            if *utf8 {
                out.push_str("charset=utf-8,");
            }
            out.push_str(&format!(
                "username={},realm={},nonce={},cnonce={},nc={nc},digest-uri={},response={response}",
                quote(username.text()),
                quote(realm),
                quote(nonce),
                quote(cnonce),
                quote(digest_uri),
            ));
            if *qop {
                out.push_str(",qop=auth");
            }
            if let Some(z) = authzid {
                out.push_str(&format!(",authzid={}", quote(z)));
            }
            if let DigestTamper::Append(e) = tamper {
                out.push_str(e);
            }
            out.into_bytes()
        }
        Msg::Authzid(choice, upper) => {
            let id = t.ctx.external_identity.as_deref().unwrap_or(IDENTITY);
            let mut a = choice.or(id).to_string();
            if *upper {
                a.make_ascii_uppercase();
            }
            a.into_bytes()
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
            assert!(mech.uses_credentials(), "{mech:?} asked for credentials");
            assert!(!authcid.is_empty());
            t.awaiting = Some(authcid.clone());
            if mech == Mechanism::DigestMd5 {
                t.digest_response = Some(t.last_msg.clone());
            }
        }
        ServerStep::Challenge(data) if mech == Mechanism::DigestMd5 => match call {
            Call::Start { .. } => {
                assert!(
                    t.last_msg.is_empty(),
                    "digest-challenge after a non-empty <auth/>"
                );
                let text = std::str::from_utf8(data).expect("digest-challenge is text");
                let dirs = directives(text).expect("digest-challenge parses");
                assert_eq!(directive(&dirs, "nonce"), Some(t.server_nonce.as_str()));
                assert_eq!(directive(&dirs, "realm"), Some(t.ctx.realm.as_str()));
                assert_eq!(directive(&dirs, "algorithm"), Some("md5-sess"));
            }
            Call::Credentials => {
                let rspauth = verify_digest(t);
                assert_eq!(data, &format!("rspauth={rspauth}").into_bytes());
                t.rspauth_sent = true;
            }
            Call::Response => panic!("unexpected DIGEST-MD5 challenge {data:?}"),
        },
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
            authzid,
            additional,
        } if !mech.uses_credentials() => {
            t.ended = true;
            assert_eq!(additional, &None);
            assert_eq!(authzid, &None);
            if mech == Mechanism::External {
                let id = t.ctx.external_identity.as_deref();
                assert_eq!(Some(authcid.as_str()), id, "EXTERNAL as another identity");
                let a = std::str::from_utf8(&t.last_msg).expect("EXTERNAL authzid is text");
                assert!(
                    a.is_empty() || a.eq_ignore_ascii_case(authcid),
                    "EXTERNAL accepted authzid {a:?} for {authcid:?}"
                );
            } else {
                assert!(authcid.is_empty(), "ANONYMOUS with an identity");
                let trace = std::str::from_utf8(&t.last_msg).expect("ANONYMOUS trace is text");
                assert!(trace.chars().count() <= 255 && !trace.chars().any(char::is_control));
            }
        }
        ServerStep::Success {
            authcid,
            additional,
            ..
        } => {
            t.ended = true;
            if mech == Mechanism::DigestMd5 {
                assert!(t.rspauth_sent, "DIGEST-MD5 success before rspauth");
                assert!(
                    t.last_msg.is_empty(),
                    "DIGEST-MD5 success on a non-empty response"
                );
            }
            let Some((who, creds)) = &t.provided else {
                panic!("success without credentials");
            };
            assert!(
                matches!(creds, Creds::Known | Creds::Rfc)
                    || (*creds == Creds::NoDigest && mech != Mechanism::DigestMd5),
                "success without known credentials"
            );
            assert_eq!(who, authcid);
            match hash_of(mech) {
                None if mech == Mechanism::DigestMd5 => assert_eq!(additional, &None),
                None => {
                    assert_eq!(additional, &None);
                    let text = std::str::from_utf8(&t.last_msg).expect("PLAIN is UTF-8");
                    let pw = text.rsplit('\0').next().expect("three parts");
                    let prepped = stringprep::saslprep(pw).expect("password prepares");
                    assert_eq!(prepped, PASSWORD, "PLAIN success with another password");
                }
                Some(h) => verify_scram(h, mech, t, additional.as_deref()),
            }
        }
        ServerStep::Failure(_) => t.ended = true,
    }
}

/// Checks the digest-response behind the credentials against the stored secret and returns
/// the `rspauth` the server must send.
fn verify_digest(t: &Track) -> String {
    assert!(
        matches!(t.provided, Some((_, Creds::Known | Creds::Rfc))),
        "rspauth without known credentials"
    );
    let resp = t
        .digest_response
        .as_deref()
        .expect("a digest-response was sent");
    let text = std::str::from_utf8(resp).expect("accepted digest-response is text");
    let dirs = directives(text).expect("accepted digest-response parses");
    let get = |n: &str| directive(&dirs, n).unwrap_or_else(|| panic!("{n} missing: {text:?}"));
    assert_eq!(get("nonce"), t.server_nonce, "accepted another nonce");
    assert_eq!(get("nc"), "00000001", "accepted another nc");
    assert_eq!(get("realm"), t.ctx.realm, "accepted another realm");
    let secret = digest_secret(USER, &t.ctx.realm, PASSWORD);
    let input = DigestInput {
        secret: &secret,
        nonce: get("nonce"),
        cnonce: get("cnonce"),
        nc: get("nc"),
        digest_uri: get("digest-uri"),
        authzid: directive(&dirs, "authzid").filter(|z| !z.is_empty()),
    };
    assert_eq!(
        get("response").to_ascii_lowercase(),
        input.response(),
        "accepted a wrong digest response"
    );
    input.rspauth()
}

/// Recomputes the proof and the server signature of a successful SCRAM exchange, and checks
/// the channel binding against the connection's.
fn verify_scram(h: Hash, mech: Mechanism, t: &Track, additional: Option<&[u8]>) {
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
    let mut want_cbind = gs2.as_bytes().to_vec();
    if mech.is_plus() {
        let b = binding_named(&t.ctx, gs2).expect("-PLUS success without a matching binding");
        want_cbind.extend_from_slice(b.data());
    } else {
        assert!(!gs2.starts_with("p="), "p= accepted without -PLUS");
        assert!(
            !(gs2.starts_with("y,") && t.ctx.plus_offered),
            "y accepted although -PLUS was offered (downgrade)"
        );
        assert!(
            gs2.starts_with("n,") || gs2.starts_with("y,"),
            "GS2 flag {gs2:?}"
        );
    }
    assert_eq!(cbind, want_cbind, "c= does not carry the binding");
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
    let mech_byte = r.byte();
    let mech = match mech_byte % 8 {
        0 => Mechanism::Plain,
        1 => Mechanism::ScramSha1,
        2 => Mechanism::ScramSha256,
        3 => Mechanism::ScramSha1Plus,
        4 => Mechanism::ScramSha256Plus,
        5 => Mechanism::DigestMd5,
        6 => Mechanism::External,
        _ => Mechanism::Anonymous,
    };
    let nonce = match r.byte() % 3 {
        n @ (0 | 1) => SERVER_NONCES[usize::from(n)].to_string(),
        _ => r.string(),
    };
    // The password-only seeds (mech 0..=2) carry no context: plain `start`, as before.
    let ctx = (mech_byte & 0x80 != 0 || mech_byte % 8 > 2).then(|| read_context(&mut r, &nonce));
    let decoy_secret = r.opt_string();
    let mut t = Track {
        server_nonce: nonce.clone(),
        ctx: ctx.clone().unwrap_or_else(|| ServerContext::new(&nonce)),
        ..Track::default()
    };
    let initial_msg = (r.byte() % 2 == 1).then(|| read_msg(&mut r, mech));
    let initial = initial_msg.as_ref().map(|m| build(m, mech, &t));
    if hash_of(mech).is_some() {
        t.client_first = initial
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_owned);
    }
    t.last_msg = initial.clone().unwrap_or_default();
    let (mut session, step) = match ctx {
        Some(ctx) => ServerSession::start_with(mech, initial.as_deref(), ctx),
        None => ServerSession::start(mech, initial.as_deref(), &nonce),
    };
    // Unknown accounts: cheap decoy (the default is 4096 rounds for PLAIN).
    session.set_unknown_user_decoy(decoy_secret.as_deref().unwrap_or_default().as_bytes(), 1);
    assert_eq!(session.mechanism(), mech);
    let call = Call::Start {
        with_initial: initial.is_some(),
    };
    check(&step, &call, mech, &mut t);
    assert_eq!(
        session.is_anonymous(),
        mech == Mechanism::Anonymous && matches!(step, ServerStep::Success { .. })
    );

    // DIGEST-MD5 secrets are stored per realm: the account's, in this connection's realm.
    let with_digest = |c: &StoredCredentials| {
        let mut c = c.clone();
        c.digest_md5 = Some(digest_secret(USER, &t.ctx.realm, PASSWORD));
        c
    };
    let digest_known = (mech == Mechanism::DigestMd5).then(|| with_digest(known()));
    let digest_rfc = (mech == Mechanism::DigestMd5).then(|| with_digest(rfc()));

    for _ in 0..16 {
        if r.is_empty() {
            break;
        }
        let (step, call) = match r.byte() % 3 {
            0 => {
                let msg = read_msg(&mut r, mech);
                let bytes = build(&msg, mech, &t);
                // A client-first arrives as the response to the empty challenge.
                if hash_of(mech).is_some() && t.client_first.is_none() {
                    t.client_first = std::str::from_utf8(&bytes).ok().map(str::to_owned);
                }
                t.last_msg = bytes;
                (session.response(&t.last_msg), Call::Response)
            }
            1 => {
                let c = match r.byte() % 5 {
                    0 => Creds::Rfc,
                    1 => Creds::Known,
                    2 => Creds::Absent,
                    3 => Creds::Corrupt,
                    _ => Creds::NoDigest,
                };
                let creds = match c {
                    Creds::Rfc => Some(digest_rfc.as_ref().unwrap_or(rfc())),
                    Creds::Known => Some(digest_known.as_ref().unwrap_or(known())),
                    Creds::NoDigest => Some(known()),
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
        let ok = matches!(step, ServerStep::Success { .. });
        check(&step, &call, mech, &mut t);
        if ok {
            assert_eq!(session.is_anonymous(), mech == Mechanism::Anonymous);
        }
    }
});
