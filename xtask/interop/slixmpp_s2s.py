#!/usr/bin/env python3
"""Federation check: two users on two servers exchange chat messages over s2s.

A (on server A) sends B (on server B) a message; B must receive it with A's
bare JID as sender and the exact body; B answers; A must receive the answer the
same way (--b-first: B starts). With --presence, the first one then subscribes to
the other's presence: both rosters must end with subscription 'both' and each
user must see the other available. With --iq, each user asks the other's server
for disco#info and pings the other user's full JID. With --expect-bounce, A's message must come
back to A as an error message instead, and B must not get it. Each direction makes its server open its own outgoing s2s stream.
Prints one [PASS]/[FAIL] line per check; exit 0 only when all passed.
Certificates are not checked (self-signed test servers).

  python3 slixmpp_s2s.py --a-jid alice@one.test --a-port 5222 --a-password pw \
      --b-jid bob@two.test --b-port 5223 --b-password pw2
"""

import argparse
import asyncio
import logging
import sys

from interop_common import Report, use_starttls
from slixmpp import ClientXMPP


class Client(ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        use_starttls(self, None, True)
        self.started = asyncio.get_event_loop().create_future()
        self.messages = asyncio.Queue()
        self.errors = asyncio.Queue()
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        self.auto_authorize = True
        self.auto_subscribe = True
        self.available = set()
        self.changed = asyncio.Event()
        self.add_event_handler("presence_available", self.on_available)
        self.add_event_handler("roster_update", lambda _: self.changed.set())
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        for ev in ("failed_all_auth", "connection_failed"):
            self.add_event_handler(ev, self.on_fail)

    def on_fail(self, *_):
        if not self.started.done():
            self.started.set_exception(RuntimeError("login failed"))

    async def on_start(self, _):
        # Fetching the roster first makes slixmpp apply the roster pushes that follow.
        await self.get_roster(timeout=20)
        self.send_presence()
        if not self.started.done():
            self.started.set_result(True)

    def on_available(self, pres):
        self.available.add(pres["from"].bare)
        self.changed.set()

    def subscription(self, jid):
        return self.client_roster[jid]["subscription"] if jid in self.client_roster else "none"

    async def until(self, predicate, timeout):
        """Waits until predicate() holds or timeout passes; returns predicate()."""
        loop = asyncio.get_event_loop()
        deadline = loop.time() + timeout
        while not predicate():
            left = deadline - loop.time()
            if left <= 0:
                break
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))
            except asyncio.TimeoutError:
                pass
        return predicate()

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal"):
            self.messages.put_nowait(msg)
        elif msg["type"] == "error":
            self.errors.put_nowait(msg)


async def expect(client, sender, body, timeout):
    """Waits for a message from `sender` (bare) with `body`; returns (ok, detail)."""
    seen = []
    loop = asyncio.get_event_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            return False, f"nothing matching within {timeout}s; saw {seen}"
        try:
            msg = await asyncio.wait_for(client.messages.get(), left)
        except asyncio.TimeoutError:
            continue
        seen.append((str(msg["from"]), msg["body"]))
        if msg["from"].bare == sender and msg["body"] == body:
            return True, f"from={msg['from']} body={body!r}"


async def expect_error(client, sender, timeout):
    """Waits for an error message from `sender` (bare); returns (ok, detail)."""
    loop = asyncio.get_event_loop()
    deadline = loop.time() + timeout
    seen = []
    while True:
        left = deadline - loop.time()
        if left <= 0:
            return False, f"no error message within {timeout}s; saw {seen}"
        try:
            msg = await asyncio.wait_for(client.errors.get(), left)
        except asyncio.TimeoutError:
            continue
        seen.append(str(msg["from"]))
        if msg["from"].bare == sender:
            return True, f"error {msg['error']['type']}/{msg['error']['condition']} from {msg['from']}"


async def main_async(args):
    a = Client(args.a_jid, args.a_password)
    b = Client(args.b_jid, args.b_password)
    a.connect(host=args.host, port=args.a_port)
    b.connect(host=args.host, port=args.b_port)
    report = Report()
    try:
        try:
            await asyncio.wait_for(asyncio.gather(a.started, b.started), args.timeout)
            report.check(f"{args.label} both users logged in", True)
        except Exception as e:
            report.check(f"{args.label} both users logged in", False, repr(e))
            return 1
        if args.expect_bounce:
            body = f"hello {args.b_jid}, from {args.a_jid}: must bounce"
            a.send_message(mto=args.b_jid, mbody=body, mtype="chat")
            got, detail = await expect_error(a, args.b_jid, args.timeout)
            report.check(f"{args.label} {args.a_jid} -> {args.b_jid} bounced", got, detail)
            await asyncio.sleep(1.0)  # a late delivery would show up here
            report.check(
                f"{args.label} {args.b_jid} did not get it",
                b.messages.empty(),
                f"{b.messages.qsize()} message(s) arrived",
            )
            return 0 if report.all_passed() else 1
        first, second = ((b, args.b_jid), (a, args.a_jid)) if args.b_first else ((a, args.a_jid), (b, args.b_jid))
        # The first direction sends three messages at once: they wait in the server's
        # queue while its s2s stream is set up, and must arrive all and in order.
        for (src, src_jid), (dst, dst_jid), count in ((first, second, 3), (second, first, 1)):
            bodies = [f"hello {dst_jid}, from {src_jid} over s2s ({i}/{count})" for i in range(1, count + 1)]
            for body in bodies:
                src.send_message(mto=dst_jid, mbody=body, mtype="chat")
            got, details = True, []
            for body in bodies:
                one, detail = await expect(dst, src_jid, body, args.timeout)
                got &= one
                details.append(detail)
            report.check(f"{args.label} {src_jid} -> {dst_jid} ({count} in order)", got, "; ".join(details))
        if args.iq:
            # iq across servers: disco#info of the other server (answered by it) and a
            # ping of the other user's full JID (answered by their client, the result
            # routed back to ours).
            for me, other in ((a, b), (b, a)):
                domain = other.boundjid.domain
                try:
                    info = await me.plugin["xep_0030"].get_info(jid=domain, timeout=args.timeout)
                    ids = info["disco_info"]["identities"]
                    report.check(
                        f"{args.label} {me.boundjid.bare} disco#info of {domain}",
                        any(cat == "server" for cat, *_ in ids),
                        f"identities {sorted(ids)}",
                    )
                except Exception as e:
                    report.check(f"{args.label} {me.boundjid.bare} disco#info of {domain}", False, repr(e))
                full = other.boundjid.full
                try:
                    await me.plugin["xep_0199"].send_ping(full, timeout=args.timeout)
                    report.check(f"{args.label} {me.boundjid.bare} pings {full}", True)
                except Exception as e:
                    report.check(f"{args.label} {me.boundjid.bare} pings {full}", False, repr(e))
        if args.presence:
            # A subscribes to B; both auto-approve and subscribe back (RFC 6121 3),
            # across the two servers: both rosters end with 'both' and each sees the
            # other's available presence.
            src, dst = (b, a) if args.b_first else (a, b)
            src.send_presence_subscription(pto=dst.boundjid.bare)
            for me, other in ((a, b), (b, a)):
                them = other.boundjid.bare
                done = await me.until(
                    lambda: me.subscription(them) == "both" and them in me.available,
                    args.timeout,
                )
                report.check(
                    f"{args.label} {me.boundjid.bare} has {them} as 'both' and sees them available",
                    done,
                    f"subscription={me.subscription(them)}, available from {sorted(me.available)}",
                )
    finally:
        a.disconnect()
        b.disconnect()
        await asyncio.sleep(0.3)
    return 0 if report.all_passed() else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--a-jid", required=True)
    p.add_argument("--a-password", required=True)
    p.add_argument("--a-port", type=int, required=True)
    p.add_argument("--b-jid", required=True)
    p.add_argument("--b-password", required=True)
    p.add_argument("--b-port", type=int, required=True)
    p.add_argument("--label", default="s2s")
    p.add_argument("--b-first", action="store_true", help="B sends first, A answers")
    p.add_argument("--presence", action="store_true", help="then a mutual presence subscription")
    p.add_argument("--iq", action="store_true", help="then disco#info of the other server and a ping of the other user")
    p.add_argument("--expect-bounce", action="store_true", help="A's message must come back as an error, B must not get it")
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
