#!/usr/bin/env python3
"""XEP-0049 (Private XML Storage) interop check driven by slixmpp.

Logs in over STARTTLS with SCRAM (PLAIN is refused by configuration), then
replays the XEP's listings against the server:

  1. store <exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus>
     (stock xep_0049 plugin)
  2. read it back (stock plugin) and compare
  3. set private data with to= another user's bare JID: expect an error,
     forbidden (what the XEP shows) or service-unavailable (what RFC 6120
     servers answer for an unhandled iq to a bare JID)
     ... and check our own data was not overwritten by that request
  4. set / get with an empty <query/>: expect an error, bad-format (what
     the XEP shows), not-acceptable (what it says some servers send) or
     bad-request

Prints one line per check and exits 0 only when every check passed.
Run by `cargo xtask interop`; usable by hand:

  python3 slixmpp_private.py --host 127.0.0.1 --port 5222 \
      --jid alice@localhost --password pw --other bob@localhost --insecure
"""

import asyncio
import xml.etree.ElementTree as ET

from interop_common import base_parser, finish, parse_args, run_until_done, use_starttls
from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream import ElementBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatcherId

STANZAS_NS = "urn:ietf:params:xml:ns:xmpp-stanzas"
PRIVATE_NS = "jabber:iq:private"
EXODUS_NS = "exodus:prefs"

# Mechanisms we allow: SCRAM only, so a server that offers only PLAIN fails
# the login check instead of silently passing with a weaker mechanism.
SCRAM_MECHS = {"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"}

LISTING3_OK = ("forbidden", "service-unavailable")
LISTING4_OK = ("bad-format", "not-acceptable", "bad-request")


class Exodus(ElementBase):
    """The listing 1 payload, registered with the stock xep_0049 plugin."""

    name = "exodus"
    namespace = EXODUS_NS
    plugin_attrib = "exodus"
    interfaces = {"defaultnick"}
    sub_interfaces = interfaces




def stanza_error_condition(iq):
    """The defined condition of an error iq, read from the raw XML.

    slixmpp's Error stanza only knows RFC 6120 conditions and reports '' for
    others (e.g. the XEP's own bad-format), so read the element name directly.
    """
    err = iq.xml.find("{jabber:client}error")
    if err is None:
        return None, None
    for child in err:
        if child.tag.startswith("{" + STANZAS_NS + "}") and not child.tag.endswith("}text"):
            return child.tag.split("}", 1)[1], err.get("type")
    return "", err.get("type")


class PrivateCheck(ClientXMPP):
    def __init__(self, args, report):
        super().__init__(
            args.jid,
            args.password,
            plugin_config={"feature_mechanisms": {"use_mechs": set(SCRAM_MECHS)}},
        )
        self.args = args
        self.report = report
        self.mech_used = None
        self.done = asyncio.get_event_loop().create_future()

        use_starttls(self, args.cafile, args.insecure)

        self.register_plugin("xep_0049")
        self.plugin["xep_0049"].register(Exodus)

        self.add_event_handler("auth_success", self.on_auth_success)
        self.add_event_handler("session_start", self.on_session_start)
        for ev in ("failed_all_auth", "no_auth", "ssl_invalid_chain", "connection_failed"):
            self.add_event_handler(ev, self.make_failure(ev))
        self.add_event_handler("disconnected", self.on_disconnected)

    def finish(self):
        if not self.done.done():
            self.done.set_result(None)

    def make_failure(self, event):
        def handler(*_):
            self.report.check("login (STARTTLS + SCRAM)", False, f"event {event}")
            self.finish()

        return handler

    def on_disconnected(self, *_):
        if not self.done.done():
            self.report.check("stream stayed up", False, "disconnected before the checks finished")
            self.finish()

    def on_auth_success(self, *_):
        mech = self.plugin["feature_mechanisms"].mech
        self.mech_used = mech.name if mech is not None else None

    async def on_session_start(self, _):
        try:
            await self.run_checks()
        except Exception as e:  # report, never hang
            self.report.check("unexpected exception", False, repr(e))
        finally:
            self.finish()

    def tls_in_use(self):
        transport = self.transport
        return transport is not None and transport.get_extra_info("ssl_object") is not None

    async def run_checks(self):
        r = self.report
        t = self.args.timeout
        tls = self.tls_in_use()
        ok = tls and self.mech_used in SCRAM_MECHS
        r.check("login (STARTTLS + SCRAM)", ok, f"tls={tls} mechanism={self.mech_used} jid={self.boundjid}")
        if not ok:
            return

        # Listing 1: store with the stock plugin.
        payload = Exodus()
        payload["defaultnick"] = "Hamlet"
        try:
            await self.plugin["xep_0049"].store(payload, timeout=t)
            r.check("listing 1: store exodus:prefs", True, "type=result")
        except (IqError, IqTimeout) as e:
            r.check("listing 1: store exodus:prefs", False, describe(e))
            return

        # Listing 2: read back and compare.
        await self.expect_nick(r, "listing 2: retrieve and compare", "Hamlet", t)

        # Listing 3: set for another user's bare JID.
        iq = self.make_iq_set(ito=self.args.other)
        other = Exodus()
        other["defaultnick"] = "Macbeth"
        iq["private"].append(other)
        await self.expect_error(r, "listing 3: set for another user", iq, LISTING3_OK, t)
        # A server that ignored to= would have stored Macbeth for us.
        await self.expect_nick(r, "listing 3: own data unchanged", "Hamlet", t)

        # Listing 4: empty query, as a set (as the XEP shows) and as a get.
        iq = self.make_iq_set()
        iq.enable("private")
        await self.expect_error(r, "listing 4: set with empty query", iq, LISTING4_OK, t)
        iq = self.make_iq_get()
        iq.enable("private")
        await self.expect_error(r, "listing 4: get with empty query", iq, LISTING4_OK, t)

    async def expect_nick(self, r, name, want, t):
        try:
            res = await self.plugin["xep_0049"].retrieve("exodus", timeout=t)
        except (IqError, IqTimeout) as e:
            r.check(name, False, describe(e))
            return
        q = res.xml.find(f"{{jabber:client}}query")
        if q is None:
            q = res.xml.find(f"{{{PRIVATE_NS}}}query")
        ex = None if q is None else q.find(f"{{{EXODUS_NS}}}exodus")
        got = None if ex is None else ex.findtext(f"{{{EXODUS_NS}}}defaultnick")
        children = [] if ex is None else [c.tag for c in ex]
        ok = got == want and children == [f"{{{EXODUS_NS}}}defaultnick"]
        r.check(name, ok, f"defaultnick={got!r} (want {want!r})" + ("" if ok else f"; reply {ET.tostring(res.xml, 'unicode')}"))

    async def send_iq_raw(self, iq, t):
        """Send an iq and return its reply, of whatever type, or None on timeout.

        Iq.send() is not used here: it turns an error reply into IqError,
        whose constructor raises ValueError on conditions outside RFC 6120,
        such as the XEP's own bad-format, and the reply is then lost.
        """
        fut = self.loop.create_future()
        name = f"raw-iq-{iq['id']}"

        def on_reply(stanza):
            if not fut.done():
                fut.set_result(stanza)

        self.register_handler(Callback(name, MatcherId(iq["id"]), on_reply, once=True))
        self.send(iq)
        try:
            return await asyncio.wait_for(fut, t)
        except asyncio.TimeoutError:
            self.remove_handler(name)
            return None

    async def expect_error(self, r, name, iq, allowed, t):
        res = await self.send_iq_raw(iq, t)
        if res is None:
            r.check(name, False, "no reply (timeout)")
        elif res["type"] != "error":
            r.check(name, False, f"got type={res['type']}, want an error: {ET.tostring(res.xml, 'unicode')}")
        else:
            cond, etype = stanza_error_condition(res)
            ok = cond in allowed
            r.check(name, ok, f"error type={etype} condition={cond} (accepted: {', '.join(allowed)})")


def describe(e):
    if isinstance(e, IqTimeout):
        return "no reply (timeout)"
    cond, etype = stanza_error_condition(e.iq)
    return f"error type={etype} condition={cond}"


def main():
    p = base_parser(__doc__)
    p.add_argument("--other", required=True, help="another user's bare JID (listing 3)")
    args = parse_args(p)
    finish(asyncio.run(run_until_done(PrivateCheck, args)))


if __name__ == "__main__":
    main()
