#!/usr/bin/env python3
"""SASL interop check: slixmpp logs in with one forced mechanism.

The mechanism is forced through slixmpp's own configuration (the `sasl_mech`
argument of ClientXMPP, i.e. feature_mechanisms' `use_mech`), so slixmpp may
not fall back to another one. Checks, one [PASS]/[FAIL] line each:

  --expect login    the server offers MECH, slixmpp authenticates with exactly
                    MECH (SCRAM: slixmpp also checks the server signature), the
                    session starts and the bound JID is right (ANONYMOUS: a
                    server-assigned localpart at the server's domain)
  --expect refused  the server does not offer MECH and the login fails
  --expect plus     for a -PLUS mechanism: the server offers it; when this
                    Python's ssl module can produce the binding slixmpp uses
                    (tls-exporter on TLS 1.3, tls-unique below) and elsinore
                    binds the same type (tls-exporter on TLS 1.3,
                    tls-server-end-point on TLS 1.2) the login must succeed;
                    when the types differ the server must refuse the login;
                    when Python cannot produce the binding, slixmpp must
                    decline to log in (no silent downgrade); the check says
                    which case applied

--max-tls 1.2 caps the TLS version (a non-PLUS SCRAM then sends the gs2 flag
'n', as the server offers -PLUS there too).

Exit 0 only when every check passed. Run by `cargo xtask interop`; by hand:

  python3 slixmpp_mechanisms.py --port 5222 --jid alice@localhost --password pw \
      --mech SCRAM-SHA-256 --expect login --insecure
"""

import argparse
import asyncio
import logging
import ssl
import sys

from interop_common import Report, use_starttls
from slixmpp import ClientXMPP


class Client(ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid, args.password or "", sasl_mech=args.mech)
        use_starttls(self, args.cafile, args.insecure)
        if args.certfile:
            # A client certificate, for EXTERNAL.
            self.ssl_context.load_cert_chain(args.certfile, args.keyfile)
        if args.max_tls == "1.2":
            self.ssl_context.maximum_version = ssl.TLSVersion.TLSv1_2
        self.used_mech = None
        self.tls_version = None
        self.done = asyncio.get_event_loop().create_future()
        self.add_event_handler("auth_success", self.on_auth)
        self.add_event_handler("session_start", self.on_start)
        for ev in ("failed_all_auth", "no_auth", "connection_failed", "disconnected"):
            self.add_event_handler(ev, self.make_end(ev))

    def make_end(self, ev):
        def handler(*_):
            if not self.done.done():
                self.done.set_result(("ended", ev))

        return handler

    def on_auth(self, _):
        self.used_mech = self.plugin["feature_mechanisms"].mech.name
        sock = self.socket
        if isinstance(sock, (ssl.SSLSocket, ssl.SSLObject)):
            self.tls_version = sock.version()

    def on_start(self, _):
        if not self.done.done():
            self.done.set_result(("session", str(self.boundjid)))

    def offered(self):
        return sorted(self.plugin["feature_mechanisms"].mech_list)


def slixmpp_binding(tls_version):
    """The channel-binding type slixmpp uses on this TLS version."""
    return "tls-exporter" if tls_version == "TLSv1.3" else "tls-unique"


def elsinore_binding(tls_version):
    """The channel-binding type elsinore's tokio adapter computes on this TLS version."""
    return "tls-exporter" if tls_version == "TLSv1.3" else "tls-server-end-point"


async def main_async(args):
    c = Client(args)
    c.connect(host=args.host, port=args.port)
    try:
        outcome, value = await asyncio.wait_for(c.done, args.timeout)
    except asyncio.TimeoutError:
        outcome, value = "timeout", f"no outcome within {args.timeout}s"
    offered = c.offered()
    mech = args.mech
    name = f"SASL {mech}"
    report = Report()
    if args.expect == "login":
        report.check(f"{name} offered", mech in offered, f"offered {offered}")
        good = outcome == "session" and c.used_mech == mech
        if good and mech == "ANONYMOUS":
            bound = c.boundjid
            good = bool(bound.user) and bound.domain == c.requested_jid.domain
        if good and mech == "EXTERNAL":
            # The identity comes from the certificate: it must be the one asked for.
            good = c.boundjid.bare == c.requested_jid.bare
        report.check(
            f"{name} login",
            good,
            f"outcome {outcome} {value}, authenticated with {c.used_mech}, TLS {c.tls_version}",
        )
    elif args.expect == "refused":
        report.check(
            f"{name} not offered and refused",
            mech not in offered and outcome != "session",
            f"offered {offered}, outcome {outcome} {value}",
        )
    else:  # plus
        tls = c.tls_version or (c.socket.version() if isinstance(c.socket, (ssl.SSLSocket, ssl.SSLObject)) else None)
        report.check(f"{name} offered (TLS {tls})", mech in offered, f"offered {offered}")
        ours, theirs = elsinore_binding(tls), slixmpp_binding(tls)
        if theirs not in ssl.CHANNEL_BINDING_TYPES:
            report.check(
                f"{name} declined by slixmpp (no {theirs} in Python ssl on {tls})",
                outcome != "session" and c.used_mech is None,
                f"Python ssl channel bindings {ssl.CHANNEL_BINDING_TYPES}; outcome {outcome} {value}",
            )
        elif ours == theirs:
            report.check(
                f"{name} login",
                outcome == "session" and c.used_mech == mech,
                f"outcome {outcome} {value}, authenticated with {c.used_mech}",
            )
        else:
            report.check(
                f"{name} with {theirs} refused (elsinore binds {ours} on {tls})",
                outcome != "session" and c.used_mech is None,
                f"outcome {outcome} {value}",
            )
    c.disconnect()
    await asyncio.sleep(0.2)
    return 0 if report.all_passed() else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5222)
    p.add_argument("--jid", required=True, help="user@domain, or the bare domain for ANONYMOUS")
    p.add_argument("--password", default="")
    p.add_argument("--mech", required=True)
    p.add_argument("--expect", choices=["login", "refused", "plus"], default="login")
    p.add_argument("--max-tls", choices=["1.2", "1.3"], default="1.3")
    p.add_argument("--cafile")
    p.add_argument("--certfile", help="client certificate (PEM) for EXTERNAL")
    p.add_argument("--keyfile", help="its private key (PEM)")
    p.add_argument("--insecure", action="store_true")
    p.add_argument("--timeout", type=float, default=20.0)
    args = p.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
