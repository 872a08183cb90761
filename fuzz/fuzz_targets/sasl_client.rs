//! `ClientSession` for every mechanism (PLAIN, SCRAM-SHA-1/256 and their -PLUS variants,
//! DIGEST-MD5, EXTERNAL, ANONYMOUS) fed fuzzer-chosen server messages: raw bytes, or
//! server-first / server-final / digest-challenge / rspauth messages built from the
//! exchange so far with fuzzer-chosen fields.
//!
//! Input (see `Reader` in fuzz/src/lib.rs): mech byte (low 3 bits the mechanism; bit 7 or a
//! -PLUS mechanism: a channel binding follows the nonce choice), authzid (opt string; the
//! trace for ANONYMOUS), nonce choice, [binding: data choice, type,] [DIGEST-MD5: digest-uri
//! override,] then up to 16 ops: `0` initial response, `1 msg` challenge, `2 flag msg`
//! success (with data when the flag is odd). msg: `0 bytes` raw; `1 nonce-ext salt-choice
//! iter-choice opt-ext` server-first; `2 tamper` server-final; `3` digest-challenge (realm,
//! nonce, qop, charset, algorithm choices, extra); `4 tamper` rspauth.
//!
//! Checks: never panics; a model of the exchange agrees with every result; the GS2 flag is
//! `p=<type>` for -PLUS, `y` with a binding and no -PLUS, `n` otherwise, and `c=` carries the
//! binding data for -PLUS; the client-final proof and the DIGEST-MD5 response are the ones
//! an independent oracle computes; and the client never reports success (`challenge`
//! accepting a server-final or rspauth, or `success`) unless the signature it accepted is
//! the real ServerSignature / rspauth for the exchange.
#![no_main]

use elsinore_fuzz::{
    DigestInput, Hash, Reader, ServerFirst, attr, b64, client_final_cb, digest_secret, directive,
    directives, quote, unb64,
};
use elsinore_sasl::{ChannelBinding, ClientSession, MAX_ITERATIONS, Mechanism};
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
/// Channel-binding data (tls-exporter gives 32 bytes).
const CB_A: &[u8] = b"tls-exporter data of 32 bytes!!!";
const REALM: &str = "example.com";
/// The nonce of the RFC 2831 example.
const DIGEST_NONCE: &str = "OA6MG9tEQGm2hh";

#[derive(Debug, Clone)]
enum Model {
    Start,
    PlainSent,
    FirstSent {
        gs2: String,
        bare: String,
        /// Channel-binding data `c=` carries after the GS2 header (-PLUS).
        cb: Vec<u8>,
    },
    FinalSent {
        sig: Vec<u8>,
    },
    Verified {
        sig: Vec<u8>,
    },
    DigestSent {
        rspauth: String,
    },
    DigestVerified {
        rspauth: String,
    },
    Failed,
}

fn hash_of(mech: Mechanism) -> Option<Hash> {
    match mech {
        Mechanism::ScramSha1 | Mechanism::ScramSha1Plus => Some(Hash::Sha1),
        Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => Some(Hash::Sha256),
        _ => None,
    }
}

/// The `rspauth` value of a message, if it parses and carries exactly one.
fn rspauth_in(data: &[u8]) -> Option<String> {
    let dirs = directives(std::str::from_utf8(data).ok()?)?;
    directive(&dirs, "rspauth").map(str::to_ascii_lowercase)
}

/// What the exchange needs besides the mechanism.
struct Setup {
    mech: Mechanism,
    nonce: String,
    authzid: Option<String>,
    binding: ChannelBinding,
    /// DIGEST-MD5 `with_digest_uri(service, host)`.
    digest_uri: Option<(String, String)>,
}

/// Checks an accepted digest-response against the oracle; returns the expected rspauth.
fn check_digest(setup: &Setup, challenge: &[u8], out: &[u8]) -> String {
    let ch = std::str::from_utf8(challenge).expect("accepted digest-challenge is text");
    let ch = directives(ch).expect("accepted digest-challenge parses");
    let text = std::str::from_utf8(out).expect("digest-response is text");
    let dirs = directives(text).expect("digest-response parses");
    let get = |n: &str| directive(&dirs, n).unwrap_or_else(|| panic!("{n} missing: {text:?}"));
    assert_eq!(get("username"), USER);
    assert_eq!(
        Some(get("nonce")),
        directive(&ch, "nonce"),
        "answered another nonce"
    );
    assert_eq!(get("cnonce"), setup.nonce);
    assert_eq!(get("nc"), "00000001");
    assert_eq!(get("qop"), "auth");
    let realm = get("realm");
    let offered: Vec<&str> = ch
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("realm"))
        .map(|(_, v)| v.as_str())
        .collect();
    let host = setup.digest_uri.as_ref().map(|(_, h)| h.as_str());
    assert!(
        offered.contains(&realm) || host == Some(realm),
        "realm {realm:?} neither offered nor configured"
    );
    let uri = match &setup.digest_uri {
        Some((service, host)) => format!("{service}/{host}"),
        None => format!("xmpp/{realm}"),
    };
    assert_eq!(get("digest-uri"), uri);
    assert_eq!(directive(&dirs, "authzid"), setup.authzid.as_deref());
    let secret = digest_secret(USER, realm, PASSWORD);
    let input = DigestInput {
        secret: &secret,
        nonce: get("nonce"),
        cnonce: get("cnonce"),
        nc: "00000001",
        digest_uri: &uri,
        authzid: setup.authzid.as_deref(),
    };
    assert_eq!(
        get("response"),
        input.response(),
        "digest response differs from the oracle's"
    );
    input.rspauth()
}

/// `Some(signature)` if `data` is a server-final carrying it (`v=` first).
fn signature_in(data: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(data).ok()?;
    let first = text.split(',').next()?;
    unb64(first.strip_prefix("v=")?)
}

/// Builds a server message from the input and the exchange so far.
fn read_msg(r: &mut Reader, model: &Model, nonce: &str) -> Vec<u8> {
    match r.byte() % 5 {
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
        3 => {
            let mut m = String::new();
            match r.byte() % 4 {
                0 => m.push_str(&format!("realm={},", quote(REALM))),
                1 => m.push_str(&format!("realm={},", quote(&r.string()))),
                2 => m.push_str(&format!("realm={},realm={},", quote(&r.string()), REALM)),
                _ => {}
            }
            let n = match r.byte() % 2 {
                0 => DIGEST_NONCE.to_string(),
                _ => r.string(),
            };
            m.push_str(&format!("nonce={}", quote(&n)));
            match r.byte() % 4 {
                0 => m.push_str(",qop=\"auth\""),
                1 => m.push_str(",qop=\"auth-int,auth-conf\""),
                2 => m.push_str(",qop=\"auth-int, auth\""),
                _ => {}
            }
            if r.byte().is_multiple_of(2) {
                m.push_str(",charset=utf-8");
            }
            match r.byte() % 3 {
                0 => m.push_str(",algorithm=md5-sess"),
                1 => m.push_str(&format!(",algorithm={}", quote(&r.string()))),
                _ => {}
            }
            if let Some(e) = r.opt_string() {
                m.push_str(&e);
            }
            m.into_bytes()
        }
        4 => {
            let want = match model {
                Model::DigestSent { rspauth } | Model::DigestVerified { rspauth } => {
                    rspauth.clone()
                }
                _ => "0".repeat(32),
            };
            match r.byte() % 4 {
                0 => format!("rspauth={want}").into_bytes(),
                1 => {
                    let mut bad = want.into_bytes();
                    let i = usize::from(r.byte()) % bad.len().max(1);
                    if let Some(b) = bad.get_mut(i) {
                        *b = if *b == b'0' { b'1' } else { b'0' };
                    }
                    let mut out = b"rspauth=".to_vec();
                    out.extend_from_slice(&bad);
                    out
                }
                2 => format!("rspauth=\"{}\"", want.to_ascii_uppercase()).into_bytes(),
                _ => format!("rspauth={}", r.string()).into_bytes(),
            }
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
fn after_initial(model: &Model, setup: &Setup, out: Vec<u8>) -> Model {
    if !matches!(model, Model::Start) {
        return model.clone();
    }
    match setup.mech {
        Mechanism::Plain => {
            assert!(out.ends_with(b"\0user\0pencil"), "{out:?}");
            Model::PlainSent
        }
        Mechanism::External | Mechanism::Anonymous => {
            // The authzid (EXTERNAL) or trace (ANONYMOUS) as given; none is empty.
            assert_eq!(out, setup.authzid.clone().unwrap_or_default().into_bytes());
            Model::PlainSent
        }
        Mechanism::DigestMd5 => {
            assert!(out.is_empty(), "DIGEST-MD5 has no initial response");
            Model::Start
        }
        mech => {
            let text = String::from_utf8(out).expect("client-first is text");
            let first = text.find(',').expect("gs2 header");
            let second = first + 1 + text[first + 1..].find(',').expect("gs2 header");
            let bare = text[second + 1..].to_string();
            assert_eq!(attr(&bare, 'r'), Some(setup.nonce.as_str()));
            let flag = match setup.binding.type_name() {
                _ if !setup.binding.is_available() => "n".to_string(),
                Some(name) if mech.is_plus() => format!("p={name}"),
                _ => "y".to_string(),
            };
            assert_eq!(&text[..first], flag, "GS2 flag");
            let cb = if mech.is_plus() {
                setup.binding.data().to_vec()
            } else {
                Vec::new()
            };
            Model::FirstSent {
                gs2: text[..=second].to_string(),
                bare,
                cb,
            }
        }
    }
}

fn read_binding(r: &mut Reader) -> ChannelBinding {
    let data = match r.byte() % 3 {
        0 => CB_A.to_vec(),
        1 => Vec::new(),
        _ => r.bytes().to_vec(),
    };
    match r.byte() % 3 {
        0 => ChannelBinding::None,
        1 => ChannelBinding::TlsExporter(data),
        _ => ChannelBinding::TlsServerEndPoint(data),
    }
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
    let authzid = r.opt_string();
    let nonce = match r.byte() % 3 {
        n @ (0 | 1) => NONCES[usize::from(n)].to_string(),
        _ => r.string(),
    };
    let binding = if mech_byte & 0x80 != 0 || mech.is_plus() {
        read_binding(&mut r)
    } else {
        ChannelBinding::None
    };
    let digest_uri = (mech == Mechanism::DigestMd5 && r.byte() % 2 == 1).then(|| {
        let service = match r.byte() % 2 {
            0 => "xmpp".to_string(),
            _ => r.string(),
        };
        (service, r.string())
    });
    let client = match mech {
        Mechanism::External => ClientSession::external(authzid.as_deref()),
        Mechanism::Anonymous => ClientSession::anonymous(authzid.as_deref()),
        _ => ClientSession::new_with_binding(
            mech,
            USER,
            PASSWORD,
            authzid.as_deref(),
            &nonce,
            binding.clone(),
        ),
    };
    if mech.is_plus() && !binding.is_available() {
        assert!(client.is_err(), "-PLUS without a usable binding");
    }
    let Ok(mut client) = client else {
        return;
    };
    let setup = Setup {
        mech,
        nonce,
        // Password mechanisms send the SASLprep'd authzid; one that prepares to nothing is
        // none (EXTERNAL and ANONYMOUS send theirs as given).
        authzid: match mech {
            Mechanism::External | Mechanism::Anonymous => authzid,
            _ => authzid.and_then(|a| stringprep::saslprep(&a).ok().map(|p| p.into_owned())),
        }
        .filter(|a| !a.is_empty()),
        binding,
        digest_uri: digest_uri.filter(|(s, h)| s.len() + h.len() <= 1024),
    };
    if let Some((service, host)) = &setup.digest_uri {
        client = client.with_digest_uri(service, host);
    }
    assert_eq!(client.mechanism(), mech);
    assert_eq!(client.has_initial_response(), mech != Mechanism::DigestMd5);
    let nonce = setup.nonce.as_str();
    let mut model = Model::Start;

    for _ in 0..16 {
        if r.is_empty() {
            break;
        }
        match r.byte() % 3 {
            0 => {
                let out = client.initial_response();
                model = after_initial(&model, &setup, out);
            }
            1 => {
                let msg = read_msg(&mut r, &model, nonce);
                if too_slow(&model, &msg) {
                    return;
                }
                let result = client.challenge(&msg);
                let Ok(out) = result else {
                    model = Model::Failed;
                    continue;
                };
                match model.clone() {
                    Model::Start if mech == Mechanism::DigestMd5 => {
                        let rspauth = check_digest(&setup, &msg, &out);
                        model = Model::DigestSent { rspauth };
                    }
                    Model::Start => {
                        assert!(msg.is_empty(), "answered a non-empty first challenge");
                        model = after_initial(&model, &setup, out);
                    }
                    Model::FirstSent { gs2, bare, cb } => {
                        let h = hash_of(mech).expect("SCRAM");
                        let sf = std::str::from_utf8(&msg).expect("accepted server-first");
                        let parsed = ServerFirst::parse(sf).expect("accepted server-first");
                        assert!(parsed.nonce.len() > nonce.len());
                        assert!(parsed.nonce.starts_with(nonce));
                        assert!((4096..=MAX_ITERATIONS).contains(&parsed.iterations));
                        let mut cbind = gs2.into_bytes();
                        cbind.extend_from_slice(&cb);
                        let want = client_final_cb(h, PASSWORD, &cbind, &bare, sf)
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
                    Model::DigestSent { rspauth } => {
                        assert_eq!(
                            rspauth_in(&msg).as_ref(),
                            Some(&rspauth),
                            "accepted an rspauth that does not verify"
                        );
                        assert!(out.is_empty());
                        model = Model::DigestVerified { rspauth };
                    }
                    m => panic!("challenge accepted in state {m:?}"),
                }
            }
            _ => {
                let with_data = r.byte() % 2 == 1;
                let msg = with_data.then(|| read_msg(&mut r, &model, nonce));
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
                    (Model::Verified { .. } | Model::DigestVerified { .. }, None) => {}
                    (
                        Model::DigestSent { rspauth } | Model::DigestVerified { rspauth },
                        Some(d),
                    ) => {
                        assert_eq!(
                            rspauth_in(&d).as_ref(),
                            Some(rspauth),
                            "success with an rspauth that does not verify"
                        );
                    }
                    (m, d) => panic!("success accepted in state {m:?} with {d:?}"),
                }
            }
        }
    }
});
