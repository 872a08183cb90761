#!/usr/bin/env python3
"""Instant messaging interop check (RFC 6121) driven by two slixmpp clients.

  1. both log in over STARTTLS with SCRAM
  2. A subscribes to B, B approves (auto_authorize), and the other way round:
     both rosters end with subscription 'both'
  3. each sees the other's available presence
  4. A sends B a chat message: B receives it with body and A's full JID
  5. B disconnects: A sees B unavailable
  6. A sends B a message while B is offline; B logs in again and receives it
     with a urn:xmpp:delay stamp

Prints one line per check ([PASS]/[FAIL] name -- detail) and exits 0 only when
every check passed. Run by `cargo xtask interop`; usable by hand:

  python3 slixmpp_im.py --host 127.0.0.1 --port 5222 --jid alice@localhost \
      --password pw --other bob@localhost --other-password pw2 --insecure
"""

import argparse
import asyncio
import logging
import sys
import time

from interop_common import Report, use_starttls
from slixmpp import ClientXMPP

SCRAM_MECHS = {"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"}
DELAY_NS = "urn:xmpp:delay"




class Client(ClientXMPP):
    def __init__(self, args, jid, password, resource):
        super().__init__(
            f"{jid}/{resource}",
            password,
            plugin_config={"feature_mechanisms": {"use_mechs": set(SCRAM_MECHS)}},
        )
        use_starttls(self, args.cafile, args.insecure)
        self.auto_authorize = True
        self.auto_subscribe = True
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0203")
        self.args = args
        self.started = asyncio.get_event_loop().create_future()
        self.messages = asyncio.Queue()
        self.presences = []
        self.presence_changed = asyncio.Event()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("presence", self.on_presence)
        for ev in ("failed_all_auth", "no_auth", "connection_failed"):
            self.add_event_handler(ev, self.make_failure(ev))

    def make_failure(self, ev):
        def handler(*_):
            if not self.started.done():
                self.started.set_exception(RuntimeError(f"login failed: {ev}"))

        return handler

    async def on_start(self, _):
        try:
            await self.get_roster(timeout=self.args.timeout)
            self.send_presence()
            if not self.started.done():
                self.started.set_result(True)
        except Exception as e:  # never hang on a failed roster fetch
            if not self.started.done():
                self.started.set_exception(e)

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal"):
            self.messages.put_nowait(msg)

    def on_presence(self, pres):
        self.presences.append((str(pres["from"]), pres["type"]))
        self.presence_changed.set()

    def tls_and_mech(self):
        t = self.transport
        tls = t is not None and t.get_extra_info("ssl_object") is not None
        mech = self.plugin["feature_mechanisms"].mech
        return tls, (mech.name if mech is not None else None)

    async def wait_presence(self, pred, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if any(pred(f, t) for f, t in self.presences):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.presence_changed.clear()
            try:
                await asyncio.wait_for(self.presence_changed.wait(), left)
            except asyncio.TimeoutError:
                return False


async def login(args, report, jid, password, resource, label):
    c = Client(args, jid, password, resource)
    c.connect(host=args.host, port=args.port)
    try:
        await asyncio.wait_for(c.started, args.timeout)
    except Exception as e:
        report.check(f"{label} logs in", False, repr(e))
        c.disconnect()
        return None
    tls, mech = c.tls_and_mech()
    report.check(f"{label} logs in", tls and mech in SCRAM_MECHS, f"tls={tls} mechanism={mech} jid={c.boundjid}")
    return c


async def wait_for(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.05)
    return pred()


async def run(args, report):
    t = args.timeout
    a = await login(args, report, args.jid, args.password, "alpha", "A")
    b = await login(args, report, args.other, args.other_password, "beta", "B")
    if a is None or b is None:
        return
    try:
        a.send_presence_subscription(pto=args.other, ptype="subscribe")
        # auto_authorize approves; auto_subscribe makes B subscribe back, which A approves.
        both = lambda c, who: c.client_roster[who]["subscription"] == "both"
        ok = await wait_for(lambda: both(a, args.other) and both(b, args.jid), t)
        report.check(
            "mutual subscription",
            ok,
            f"A sees {a.client_roster[args.other]['subscription']}, B sees {b.client_roster[args.jid]['subscription']}",
        )
        ok_a = await a.wait_presence(lambda f, ty: f.startswith(args.other + "/") and ty == "available", t)
        ok_b = await b.wait_presence(lambda f, ty: f.startswith(args.jid + "/") and ty == "available", t)
        report.check("presence both ways", ok_a and ok_b, f"A saw B: {ok_a}, B saw A: {ok_b}")

        a.send_message(mto=args.other, mbody="Wherefore art thou?", mtype="chat")
        try:
            msg = await asyncio.wait_for(b.messages.get(), t)
            ok = msg["body"] == "Wherefore art thou?" and str(msg["from"]) == str(a.boundjid)
            report.check("chat message delivered", ok, f"from={msg['from']} body={msg['body']!r}")
        except asyncio.TimeoutError:
            report.check("chat message delivered", False, "timeout")

        b.disconnect()
        await b.disconnected
        ok = await a.wait_presence(lambda f, ty: f.startswith(args.other + "/") and ty == "unavailable", t)
        report.check("unavailable presence on disconnect", ok)

        a.send_message(mto=args.other, mbody="Parting is such sweet sorrow", mtype="chat")
        await asyncio.sleep(0.5)  # let the server store it before B comes back
        b2 = await login(args, report, args.other, args.other_password, "gamma", "B again")
        if b2 is None:
            return
        try:
            try:
                msg = await asyncio.wait_for(b2.messages.get(), t)
                delay = msg.xml.find(f"{{{DELAY_NS}}}delay")
                stamp = None if delay is None else delay.get("stamp")
                ok = msg["body"] == "Parting is such sweet sorrow" and stamp is not None
                report.check("offline message with delay stamp", ok, f"body={msg['body']!r} stamp={stamp}")
            except asyncio.TimeoutError:
                report.check("offline message with delay stamp", False, "timeout")
        finally:
            b2.disconnect()
    finally:
        a.disconnect()
        b.disconnect()


async def main_async(args):
    report = Report()
    try:
        await asyncio.wait_for(run(args, report), args.timeout * 8)
    except asyncio.TimeoutError:
        report.check("scenario finished in time", False, "overall timeout")
    return 0 if report.all_passed() else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5222)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--other", required=True)
    p.add_argument("--other-password", required=True)
    p.add_argument("--cafile")
    p.add_argument("--insecure", action="store_true")
    p.add_argument("--timeout", type=float, default=15.0)
    p.add_argument("--debug", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR)
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
