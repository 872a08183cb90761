#!/usr/bin/env python3
"""Writes the seed corpora of the jid, stanza, sasl_server, sasl_client and
server_connection targets (xml_stream's seeds are hand-written files).

Inputs come from the specifications: RFC 6120 / draft-ietf-xmpp-core examples, the
XEP-0049 listings, the RFC 5802 and RFC 7677 SCRAM example exchanges. Run from anywhere:
    python3 fuzz/seeds/make_seeds.py
"""

import base64
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- jid ------------------------------------------------------------------------------
JIDS = {
    "full": "juliet@example.com/balcony",
    "bare": "romeo@example.net",
    "domain": "example.com",
    "resource-with-at-slash": "juliet@example.com/foo@bar/baz",
    "upper": "Juliet@EXAMPLE.com/Balcony",
    "ipv6": "juliet@[::1]/x",
    "ipv4": "romeo@127.0.0.1",
    "nonascii-node": "\u00e9lise@ex\u00e4mple.de/\u00c9t\u00e9",
    "greek": "\u03a3\u0391\u03a3@example.com",
    "ligature": "\ufb00@example.com",
    "emoji-resource": "juliet@example.com/\U0001f600",
    "space-resource": "juliet@example.com/ balcony ",
    "empty-node": "@example.com",
    "empty-resource": "juliet@example.com/",
    "empty-domain": "juliet@",
    "two-at": "a@b@example.com",
    "trailing-dot": "juliet@example.com.",
    "long-node": "a" * 1024 + "@example.com",
    "max-node": "a" * 1023 + "@example.com",
    "prohibited": "jul\"iet@example.com",
    "hamlet": "hamlet@shakespeare.lit/denmark",
}
for name, j in JIDS.items():
    write("jid", name, j)

# ---- stanza ---------------------------------------------------------------------------
C = "xmlns='jabber:client'"
STANZAS = {
    "message-chat": f"<message {C} from='juliet@example.com/balcony' to='romeo@example.net' "
    "type='chat' id='m1' xml:lang='en'><body>Wherefore art thou, Romeo?</body>"
    "<thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread></message>",
    "message-error": f"<message {C} from='romeo@example.net' to='juliet@example.com/balcony' "
    "type='error' id='m2'><error type='cancel'><item-not-found "
    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "
    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>gone</text></error></message>",
    "message-legacy-code": f"<message {C} type='error' id='m3'><error code='404'/></message>",
    "presence": f"<presence {C} from='juliet@example.com/balcony'><show>away</show>"
    "<status>at the ball</status><priority>1</priority></presence>",
    "presence-subscribe": f"<presence {C} to='romeo@example.net' type='subscribe'/>",
    "presence-bad-type": f"<presence {C} type='bogus'/>",
    "iq-get-roster": f"<iq {C} from='juliet@example.com/balcony' id='rr' type='get'>"
    "<query xmlns='jabber:iq:roster'/></iq>",
    "iq-result-empty": f"<iq {C} to='juliet@example.com/balcony' id='rr' type='result'/>",
    "iq-error": f"<iq {C} id='e1' type='error'><query xmlns='jabber:iq:private'/>"
    "<error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
    "</error></iq>",
    "iq-no-id": f"<iq {C} type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
    "iq-two-children": f"<iq {C} type='set' id='x'><a xmlns='urn:a'/><b xmlns='urn:b'/></iq>",
    "iq-bad-jid": f"<iq {C} type='get' id='j' to='@@'><ping xmlns='urn:xmpp:ping'/></iq>",
    "server-ns": "<message xmlns='jabber:server' from='a@b' to='c@d' type='normal'>"
    "<body>s2s</body></message>",
    "not-a-stanza": "<foo xmlns='jabber:client'/>",
    "xep0049-1": "<iq type='set' id='1001' xmlns='jabber:client'><query "
    "xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'><defaultnick>Hamlet"
    "</defaultnick></exodus></query></iq>",
    "xep0049-2": "<iq type='get' id='1002' xmlns='jabber:client'><query "
    "xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>",
    "xep0049-3": "<iq type='set' to='macbeth@shakespeare.lit' id='1003' "
    "xmlns='jabber:client'><query xmlns='jabber:iq:private'><exodus "
    "xmlns='exodus:prefs'><defaultnick>Macbeth</defaultnick></exodus></query></iq>",
    "xep0049-4": "<iq type='get' id='1004' xmlns='jabber:client'><query "
    "xmlns='jabber:iq:private'><jabber:client/></query></iq>",
}
for name, s in STANZAS.items():
    write("stanza", name, s)


# ---- sasl: the Reader format of fuzz/src/lib.rs ----------------------------------------
def b(n):
    return bytes([n])


def s(text):
    data = text.encode() if isinstance(text, str) else text
    assert len(data) < 256
    return b(len(data)) + data


def long(text):
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("<H", len(data)) + data


def opt(text):
    return b(0) if text is None else b(1) + s(text)


def raw(text):
    return b(0) + long(text)


# sasl_server messages
def plain(authzid=None, name=None, password=None):
    return (
        b(1)
        + opt(authzid)
        + (b(0) if name is None else b(1) + s(name))
        + (b(0) if password is None else b(1) + s(password))
    )


def scram_first(flag=0, authzid=None, name=None, nonce=None, ext=None):
    return (
        b(2)
        + b(flag)
        + opt(authzid)
        + (b(0) if name is None else b(1) + s(name))
        + opt(nonce)
        + opt(ext)
    )


def scram_final(password=None, tamper=0, payload=b"", cb=None):
    """cb (-PLUS mechanisms only): "match", ("index", i) or raw bytes."""
    out = b(3) + (b(0) if password is None else b(1) + s(password)) + b(tamper)
    if tamper in (1, 2, 4, 5, 6):
        out += s(payload)
    if cb == "match":
        out += b(0)
    elif isinstance(cb, tuple):
        out += b(1) + b(cb[1])
    elif cb is not None:
        out += b(2) + s(cb)
    return out


def digest(password=None, authzid=None, tamper=0, payload=b"", utf8=True, nonce=None):
    """A DIGEST-MD5 digest-response built by the target (real fields unless given)."""
    out = b(4) + b(1 if utf8 else 0) + b(0) + b(0)
    out += b(0) if nonce is None else b(1) + s(nonce)
    out += b(0) + b(0) + b(0) + opt(authzid) + b(0)
    out += (b(0) if password is None else b(1) + s(password)) + b(tamper)
    if tamper == 1:
        out += b(payload)
    elif tamper in (2, 3):
        out += s(payload)
    return out


def authzid(value=None, upper=False):
    """An EXTERNAL authzid: the verified identity unless given."""
    return b(5) + (b(0) if value is None else b(1) + s(value)) + b(1 if upper else 0)


def ctx(plus=0, bindings=(), identity=1, realm=0, service=0):
    """Connection context: bindings are (data choice, type) with data 0 = 32-byte
    tls-exporter data, 1 = a certificate hash, 2 = empty, bytes = raw; type 0 none,
    1 tls-exporter, 2 tls-server-end-point. identity 0 none, 1 juliet@example.com."""
    out = b(plus) + b(len(bindings))
    for data, typ in bindings:
        out += (b(3) + s(data)) if isinstance(data, bytes) else b(data)
        out += b(typ)
    return out + b(identity) + b(realm) + b(service)


RESPONSE, CREDS, ABORT = 0, 1, 2
RFC, KNOWN, ABSENT, CORRUPT, NO_DIGEST = 0, 1, 2, 3, 4


def server(mech, nonce, initial, ops, decoy=None, context=None):
    """mech 0..7 (PLAIN, SCRAM-SHA-1, -256, -1-PLUS, -256-PLUS, DIGEST-MD5, EXTERNAL,
    ANONYMOUS); a context is read for 3..7 and when bit 7 is set."""
    if context is None and (mech & 0x80 or mech % 8 > 2):
        context = ctx()
    out = b(mech) + (b(nonce) if isinstance(nonce, int) else b(2) + s(nonce))
    out += (context or b"") + opt(decoy)
    out += b(0) if initial is None else b(1) + initial
    for op in ops:
        out += op
    return out


def resp(msg):
    return b(RESPONSE) + msg


def creds(c):
    return b(CREDS) + b(c)


SS = {
    "rfc5802": server(
        1,
        0,
        raw("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"),
        [
            creds(RFC),
            resp(raw("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                     "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=")),
        ],
    ),
    "rfc7677": server(
        2,
        1,
        raw("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"),
        [
            creds(RFC),
            resp(raw("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                     "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")),
        ],
    ),
    "plain-ok": server(0, 0, plain(), [creds(KNOWN)]),
    "plain-authzid": server(0, 0, plain(authzid="user@example.com"), [creds(KNOWN)]),
    "plain-wrong": server(0, 0, plain(password="pencil2"), [creds(KNOWN)]),
    "plain-unknown": server(0, 0, plain(name="nobody"), [creds(ABSENT)], decoy="secret"),
    "plain-no-initial": server(0, 0, None, [resp(plain()), creds(KNOWN)]),
    "plain-raw": server(0, 0, raw("\0user\0pencil"), [creds(KNOWN), resp(raw(""))]),
    "scram256-built": server(2, 0, scram_first(), [creds(KNOWN), resp(scram_final())]),
    "scram1-built": server(1, 1, scram_first(), [creds(KNOWN), resp(scram_final())]),
    "scram-no-initial": server(2, 0, None, [resp(scram_first()), creds(KNOWN),
                                            resp(scram_final())]),
    "scram-authzid-y": server(2, 0, scram_first(flag=1, authzid="admin,=x"),
                              [creds(KNOWN), resp(scram_final())]),
    "scram-p-flag": server(1, 0, scram_first(flag=2), [creds(KNOWN)]),
    "scram-ext": server(2, 0, scram_first(ext="x=ext"), [creds(KNOWN),
                                                        resp(scram_final(tamper=5,
                                                                         payload="y=1"))]),
    "scram-wrong-pw": server(2, 0, scram_first(), [creds(KNOWN),
                                                  resp(scram_final(password="x"))]),
    "scram-bad-nonce": server(2, 0, scram_first(), [creds(KNOWN),
                                                   resp(scram_final(tamper=1, payload="abc"))]),
    "scram-unknown": server(2, 0, scram_first(name="nobody"),
                            [creds(ABSENT), resp(scram_final())], decoy="k"),
    "scram-corrupt": server(1, 0, scram_first(), [creds(CORRUPT), resp(scram_final())]),
    "scram-abort": server(2, 0, scram_first(), [creds(KNOWN), b(ABORT), resp(scram_final())]),
    "scram-after-success": server(2, 0, scram_first(), [creds(KNOWN), resp(scram_final()),
                                                       resp(scram_final()), creds(KNOWN)]),
    "scram-saslname": server(2, 0, scram_first(name="us=er,x"), [creds(KNOWN)]),
    "bad-server-nonce": server(2, "bad,nonce", scram_first(), [creds(KNOWN)]),
}
EXPORTER = ctx(plus=1, bindings=[(0, 1)])
BOTH = ctx(plus=1, bindings=[(0, 1), (1, 2)])
NEW_SS = {
    "plus256-exporter": server(4, 0, scram_first(flag=4), [creds(KNOWN),
                               resp(scram_final(cb="match"))], context=EXPORTER),
    "plus1-endpoint": server(3, 1, scram_first(flag=5), [creds(KNOWN),
                             resp(scram_final(cb="match"))], context=BOTH),
    "plus-other-binding": server(4, 0, scram_first(flag=4), [creds(KNOWN),
                                 resp(scram_final(cb=("index", 1)))], context=BOTH),
    "plus-raw-binding": server(4, 0, scram_first(flag=4), [creds(KNOWN),
                               resp(scram_final(cb=b"forged"))], context=EXPORTER),
    "plus-type-missing": server(4, 0, scram_first(flag=5), [creds(KNOWN),
                                resp(scram_final(cb="match"))], context=EXPORTER),
    "plus-n-flag": server(4, 0, scram_first(flag=0), [creds(KNOWN)], context=EXPORTER),
    "plus-y-flag": server(3, 0, scram_first(flag=1), [creds(KNOWN)], context=EXPORTER),
    "plus-empty-binding": server(4, 0, scram_first(flag=4), [creds(KNOWN)],
                                 context=ctx(bindings=[(2, 1)])),
    "scram-y-downgrade": server(0x82, 0, scram_first(flag=1), [creds(KNOWN),
                                resp(scram_final())], context=EXPORTER),
    "scram-y-no-plus": server(0x82, 0, scram_first(flag=1), [creds(KNOWN),
                              resp(scram_final())], context=ctx(bindings=[(0, 1)])),
    "scram-p-no-plus": server(0x81, 0, scram_first(flag=4), [creds(KNOWN),
                              resp(scram_final())], context=EXPORTER),
    "digest-ok": server(5, 0, None, [resp(digest()), creds(KNOWN), resp(raw(""))]),
    "digest-initial-empty": server(5, 0, raw(""), [resp(digest()), creds(RFC)]),
    "digest-initial-data": server(5, 0, raw("x"), [resp(digest())]),
    "digest-authzid": server(5, 0, None, [resp(digest(authzid="admin@example.com")),
                                          creds(KNOWN), resp(raw(""))]),
    "digest-latin1": server(5, 0, None, [resp(digest(utf8=False)), creds(KNOWN),
                                         resp(raw(""))]),
    "digest-flip": server(5, 0, None, [resp(digest(tamper=1, payload=7)), creds(KNOWN)]),
    "digest-upper": server(5, 0, None, [resp(digest(tamper=4)), creds(KNOWN),
                                        resp(raw(""))]),
    "digest-append": server(5, 0, None, [resp(digest(tamper=3, payload=",maxbuf=65536")),
                                         creds(KNOWN), resp(raw(""))]),
    "digest-wrong-pw": server(5, 0, None, [resp(digest(password="pencil2")), creds(KNOWN)]),
    "digest-no-secret": server(5, 0, None, [resp(digest()), creds(NO_DIGEST)]),
    "digest-unknown": server(5, 0, None, [resp(digest()), creds(ABSENT)]),
    "digest-bad-nonce": server(5, 0, None, [resp(digest(nonce="other")), creds(KNOWN)]),
    "digest-ack-data": server(5, 0, None, [resp(digest()), creds(KNOWN), resp(raw("x"))]),
    "digest-no-realm": server(5, 0, None, [resp(digest())], context=ctx(realm=1)),
    "digest-raw-rfc2831": server(5, 0, None, [resp(raw(
        'charset=utf-8,username="chris",realm="elwood.innosoft.com",'
        'nonce="OA6MG9tEQGm2hh",nc=00000001,cnonce="OA6MHXh6VqTrRk",'
        'digest-uri="imap/elwood.innosoft.com",response=d388dad90d4bbd760a152321f2143af7,'
        'qop=auth')), creds(KNOWN)]),
    "external-ok": server(6, 0, authzid(), []),
    "external-empty": server(6, 0, raw(""), []),
    "external-upper": server(6, 0, authzid(upper=True), []),
    "external-other": server(6, 0, authzid("romeo@example.net"), []),
    "external-no-identity": server(6, 0, raw(""), [], context=ctx(identity=0)),
    "external-no-initial": server(6, 0, None, [resp(authzid())]),
    "external-nul": server(6, 0, raw("juliet@example.com\0x"), []),
    "anonymous": server(7, 0, raw("sirhc"), []),
    "anonymous-empty": server(7, 0, None, [resp(raw(""))]),
    "anonymous-control": server(7, 0, raw("a\x01b"), []),
    "anonymous-creds": server(7, 0, raw(""), [creds(KNOWN), resp(raw(""))]),
}
SS.update(NEW_SS)
for name, data in SS.items():
    write("sasl_server", name, data)


# sasl_client: mech, authzid, nonce choice, ops
def client(mech, nonce, ops, authzid=None, binding=None, uri=None):
    """mech 0..7 as for sasl_server; a binding (data choice 0 = 32 bytes, 1 = empty,
    bytes = raw; type 0 none, 1 tls-exporter, 2 tls-server-end-point) is read for -PLUS
    (3, 4) and when bit 7 is set; a digest-uri override (None or (service, host)) for
    DIGEST-MD5 (5). authzid is the trace for ANONYMOUS."""
    out = b(mech) + opt(authzid) + (b(nonce) if isinstance(nonce, int) else b(2) + s(nonce))
    if mech & 0x80 or mech % 8 in (3, 4):
        data, typ = binding or (0, 1)
        out += (b(2) + s(data)) if isinstance(data, bytes) else b(data)
        out += b(typ)
    if mech % 8 == 5:
        out += b(0) if uri is None else b(1) + b(1) + s(uri[0]) + s(uri[1])
    for op in ops:
        out += op
    return out


INITIAL = b(0)


def challenge(msg):
    return b(1) + msg


def success(msg=None):
    return b(2) + (b(0) if msg is None else b(1) + msg)


def server_first(ext=0, salt=0, iters=0, extra=None):
    out = b(1) + (b(0) if ext == 0 else b(1) + s(ext)) + b(salt) + (s("c2FsdA==") if salt == 3 else b"")
    return out + b(iters) + opt(extra)


def server_final(tamper=0, payload=None):
    out = b(2) + b(tamper)
    if tamper == 1:
        out += b(3) + b(5)
    elif tamper in (2, 3, 4):
        out += s(payload or "")
    return out


CS = {
    "rfc5802": client(1, 0, [
        INITIAL,
        challenge(raw("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")),
        success(raw("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")),
    ]),
    "rfc7677": client(2, 1, [
        INITIAL,
        challenge(raw("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                      "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")),
        challenge(raw("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")),
        success(),
    ]),
    "built-256": client(2, 0, [INITIAL, challenge(server_first(salt=2)),
                               challenge(server_final()), success()]),
    "built-1": client(1, 0, [INITIAL, challenge(server_first()), success(server_final())]),
    "bad-signature": client(2, 1, [INITIAL, challenge(server_first(salt=1)),
                                   success(server_final(tamper=1))]),
    "server-error": client(2, 0, [INITIAL, challenge(server_first()),
                                  success(server_final(tamper=2, payload="invalid-proof"))]),
    "no-signature": client(2, 0, [INITIAL, challenge(server_first()), success()]),
    "low-iterations": client(1, 0, [INITIAL, challenge(server_first(iters=1))]),
    "empty-challenge-first": client(2, 0, [challenge(raw("")), challenge(server_first())]),
    "plain": client(0, 0, [INITIAL, success()], authzid="admin@example.com"),
    "plain-challenge": client(0, 0, [challenge(raw("")), success(raw("junk"))]),
    "success-early": client(2, 0, [INITIAL, success(raw("v=AAAA"))]),
    "nonce-ext": client(2, 0, [INITIAL, challenge(server_first(ext="%,x", extra="m=1"))]),
}


def digest_challenge(realm="example.com", nonce=None, qop=0, charset=True, alg=0, extra=None):
    """realm None: no realm; qop 0 auth, 1 auth-int/auth-conf, 2 "auth-int, auth", 3 none;
    alg 0 md5-sess, 1 raw (not supported), 2 none."""
    out = b(3)
    out += b(3) if realm is None else (b(0) if realm == "example.com" else b(1) + s(realm))
    out += b(0) if nonce is None else b(1) + s(nonce)
    out += b(qop) + b(0 if charset else 1)
    out += b(alg) + (s("md5") if alg == 1 else b"")
    return out + opt(extra)


def rspauth(tamper=0, payload=None):
    """tamper 0 real, 1 one digit changed, 2 upper case quoted, 3 raw."""
    out = b(4) + b(tamper)
    if tamper == 1:
        out += b(payload or 0)
    elif tamper == 3:
        out += s(payload or "")
    return out


NEW_CS = {
    "plus256-exporter": client(4, 0, [INITIAL, challenge(server_first(salt=2)),
                                      challenge(server_final()), success()]),
    "plus1-endpoint": client(3, 1, [INITIAL, challenge(server_first()),
                                    success(server_final())], binding=(b"cert hash", 2)),
    "plus-empty-binding": client(4, 0, [INITIAL], binding=(1, 1)),
    "plus-no-type": client(3, 0, [INITIAL], binding=(0, 0)),
    "plus-bad-signature": client(4, 0, [INITIAL, challenge(server_first()),
                                        success(server_final(tamper=1))]),
    "scram-y": client(0x82, 0, [INITIAL, challenge(server_first()),
                                success(server_final())], binding=(0, 1)),
    "scram-n-empty-binding": client(0x81, 0, [INITIAL], binding=(1, 2)),
    "digest": client(5, 0, [challenge(digest_challenge()), challenge(rspauth()), success()]),
    "digest-rspauth-in-success": client(5, 0, [challenge(digest_challenge()),
                                               success(rspauth(2))]),
    "digest-bad-rspauth": client(5, 0, [challenge(digest_challenge()),
                                        success(rspauth(1, 5))]),
    "digest-no-rspauth": client(5, 0, [challenge(digest_challenge()), success()]),
    "digest-authzid": client(5, 0, [INITIAL, challenge(digest_challenge()),
                                    challenge(rspauth())], authzid="admin@example.com"),
    "digest-latin1": client(5, 0, [challenge(digest_challenge(realm="\u00e9x.com",
                                                              charset=False))]),
    "digest-utf8-realm": client(5, 0, [challenge(digest_challenge(realm="\u00e9x.com")),
                                       challenge(rspauth())]),
    "digest-uri": client(5, 0, [challenge(digest_challenge(realm="other.example")),
                                challenge(rspauth())], uri=("xmpp", "example.com")),
    "digest-qop": client(5, 0, [challenge(digest_challenge(qop=2)),
                                challenge(digest_challenge(qop=1))]),
    "digest-no-algorithm": client(5, 0, [challenge(digest_challenge(alg=2))]),
    "digest-rfc2831": client(5, 0, [challenge(raw(
        'realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",'
        'algorithm=md5-sess,charset=utf-8'))]),
    # Found by the fuzzer: an authzid that SASLprep maps to nothing.
    "regression-digest-authzid-prepares-to-nothing": client(
        5, 0, [challenge(digest_challenge()), challenge(rspauth()), success()],
        authzid="\u00ad"),
    "external": client(6, 0, [INITIAL, success()], authzid="juliet@example.com"),
    "external-challenge": client(6, 0, [challenge(raw("")), challenge(raw("x")), success()]),
    "anonymous": client(7, 0, [challenge(raw("")), success()], authzid="sirhc"),
    "anonymous-control": client(7, 0, [INITIAL, success()], authzid="a\x01"),
}
CS.update(NEW_CS)
for name, data in CS.items():
    write("sasl_client", name, data)

# ---- server_connection ----------------------------------------------------------------
HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='shakespeare.lit' version='1.0'>")
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


def auth(user, pw, mech="PLAIN"):
    ir = base64.b64encode(f"\0{user}\0{pw}".encode()).decode()
    return f"<auth xmlns='{SASL}' mechanism='{mech}'>{ir}</auth>"


BIND = ("<iq type='set' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        "<resource>denmark</resource></bind></iq>")


def conn(mode, doc, cuts=()):
    out = b(mode) + b(len(cuts))
    for c in cuts:
        out += struct.pack("<H", c)
    return out + doc.encode()


SC = {
    "xep0049": conn(0, STANZAS["xep0049-1"] + STANZAS["xep0049-2"] + STANZAS["xep0049-3"]
                    + STANZAS["xep0049-4"], cuts=(10, 200, 201)),
    "message-to-ophelia": conn(0, "<message to='ophelia@shakespeare.lit/grave' type='chat' "
                                  "id='m'><body>Get thee to a nunnery</body></message>"),
    "iq-to-ophelia": conn(0, "<iq to='ophelia@shakespeare.lit/grave' type='get' id='q'>"
                             "<ping xmlns='urn:xmpp:ping'/></iq>"),
    "private-ophelia": conn(0, "<iq type='set' to='ophelia@shakespeare.lit' id='p'><query "
                               "xmlns='jabber:iq:private'><health xmlns='urn:example:fuzz'>"
                               "<n>0</n></health></query></iq>"),
    "ping-disco": conn(0, "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"
                          "<iq type='get' id='d1' to='shakespeare.lit'><query "
                          "xmlns='http://jabber.org/protocol/disco#info'/></iq>"),
    "presence": conn(4, "<presence><show>dnd</show></presence><presence type='unavailable'/>"),
    "rebind": conn(0, BIND.replace("denmark", "grave")),
    "remote": conn(0, "<message to='claudius@elsinore.dk'><body>x</body></message>"),
    "bad-from": conn(0, "<message from='ophelia@shakespeare.lit/grave' to='@'/>"),
    "error-reply": conn(0, "<iq type='error' id='x' to='ophelia@shakespeare.lit/grave'/>"),
    "close": conn(0, "</stream:stream>"),
    "garbage": conn(0, "<a><b></a>"),
    "deep": conn(0, "<iq type='set' id='d'><query xmlns='jabber:iq:private'>"
                    + "<x xmlns='urn:d'>" * 300 + "</x>" * 300 + "</query></iq>"),
    "restart-late": conn(0, HEADER),
    "auth-again": conn(0, auth("hamlet", "to-be")),
    "starttls-late": conn(0, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
    "negotiate": conn(2, auth("hamlet", "to-be") + HEADER + BIND
                      + STANZAS["xep0049-1"], cuts=(5, 77)),
    # The cut after <starttls/> lets the TLS upgrade happen before the next header (data
    # in the same read as <starttls/> is refused: STARTTLS command injection).
    "negotiate-tls": conn(2, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" + HEADER
                          + auth("hamlet", "to-be") + HEADER + BIND, cuts=(51,)),
    "starttls-injection": conn(2, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                               + auth("hamlet", "to-be")),
    "negotiate-wrong-pw": conn(2, auth("hamlet", "not-to-be") + auth("hamlet", "to-be")),
    "negotiate-scram": conn(2, f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256'>"
                            + base64.b64encode(b"n,,n=hamlet,r=abcdefgh").decode()
                            + "</auth><abort xmlns='" + SASL + "'/>"),
    "register": conn(2, "<iq type='set' id='r'><query xmlns='jabber:iq:register'>"
                        "<username>x</username><password>y</password></query></iq>"),
    "from-scratch": conn(7, HEADER + auth("hamlet", "to-be") + HEADER + BIND
                         + "<presence/></stream:stream>", cuts=(1, 2, 3)),
    "bad-header": conn(3, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                          "xmlns:stream='http://etherx.jabber.org/streams' to='elsewhere'>"),
}
for name, data in SC.items():
    write("server_connection", name, data)
