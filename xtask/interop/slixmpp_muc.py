#!/usr/bin/env python3
"""Group chat interop check (XEP-0045 basic use) driven by two slixmpp clients.

  1. both log in; A joins a new room with xep_0045 join_muc_wait: self-presence
     with status 110 and 201 (room created), owner/moderator
  2. B joins: each sees the other in the room's occupant list
  3. A's groupchat message reaches both A and B from room/alpha
  4. B's private message to room/alpha reaches A from room/beta
  5. B leaves: A sees beta's unavailable presence
  6. A speaks again: A gets it, B (gone) does not
  7. B joins again: the history holds A's messages with urn:xmpp:delay stamps

Prints one line per check ([PASS]/[FAIL] name -- detail) and exits 0 only when
every check passed. Run by `cargo xtask interop`; usable by hand:

  python3 slixmpp_muc.py --host 127.0.0.1 --port 5222 --jid alice@localhost \
      --password pw --other bob@localhost --other-password pw2 --insecure
"""

import argparse
import asyncio
import logging
import sys

from interop_common import Report
from slixmpp import JID

from slixmpp_im import login

MUC_USER = "http://jabber.org/protocol/muc#user"
DELAY_NS = "urn:xmpp:delay"


def codes(pres):
    x = pres.xml.find(f"{{{MUC_USER}}}x")
    if x is None:
        return set()
    return {s.get("code") for s in x.findall(f"{{{MUC_USER}}}status")}


def prepare(c):
    c.register_plugin("xep_0045")
    c.groupchat = asyncio.Queue()
    c.muc_offline = asyncio.Queue()
    c.add_event_handler("groupchat_message", lambda m: c.groupchat.put_nowait(m))


async def next_groupchat(c, body, timeout):
    """The next groupchat message with `body` (others, e.g. the subject, are skipped)."""
    while True:
        m = await asyncio.wait_for(c.groupchat.get(), timeout)
        if m["body"] == body:
            return m


async def run(args, report):
    t = args.timeout
    domain = JID(args.jid).domain
    room = JID(f"{args.room}@conference.{domain}")
    a = await login(args, report, args.jid, args.password, "alpha", "A")
    b = await login(args, report, args.other, args.other_password, "beta", "B")
    if a is None or b is None:
        return
    prepare(a)
    prepare(b)
    try:
        muc_a, muc_b = a.plugin["xep_0045"], b.plugin["xep_0045"]
        a.add_event_handler(f"muc::{room}::got_offline", lambda p: a.muc_offline.put_nowait(p))
        try:
            pres, _subject, _occupants, _history = await muc_a.join_muc_wait(room, "alpha", maxstanzas=0, timeout=t)
            item = pres["muc"]
            ok = {"110", "201"} <= codes(pres) and item["affiliation"] == "owner" and item["role"] == "moderator"
            report.check("A creates and joins the room", ok, f"codes={sorted(codes(pres))} {item['affiliation']}/{item['role']}")
        except Exception as e:
            report.check("A creates and joins the room", False, repr(e))
            return
        try:
            pres, _subject, occupants, _history = await muc_b.join_muc_wait(room, "beta", maxstanzas=0, timeout=t)
            report.check("B joins the room", "110" in codes(pres), f"codes={sorted(codes(pres))}")
        except Exception as e:
            report.check("B joins the room", False, repr(e))
            return
        await asyncio.sleep(0.3)
        roster_a = set(muc_a.get_roster(room))
        roster_b = set(muc_b.get_roster(room))
        report.check(
            "occupants seen both ways",
            {"alpha", "beta"} <= roster_a and {"alpha", "beta"} <= roster_b,
            f"A sees {sorted(roster_a)}, B sees {sorted(roster_b)}",
        )

        a.send_message(mto=room, mbody="To be, or not to be", mtype="groupchat")
        try:
            got_a = await next_groupchat(a, "To be, or not to be", t)
            got_b = await next_groupchat(b, "To be, or not to be", t)
            ok = str(got_a["from"]) == f"{room}/alpha" and str(got_b["from"]) == f"{room}/alpha"
            report.check("groupchat message reaches everyone", ok, f"from={got_b['from']}")
        except asyncio.TimeoutError:
            report.check("groupchat message reaches everyone", False, "timeout")

        b.send_message(mto=JID(f"{room}/alpha"), mbody="Soft you now", mtype="chat")
        try:
            while True:
                m = await asyncio.wait_for(a.messages.get(), t)
                if m["body"] == "Soft you now":
                    break
            report.check("private message between occupants", str(m["from"]) == f"{room}/beta", f"from={m['from']}")
        except asyncio.TimeoutError:
            report.check("private message between occupants", False, "timeout")

        muc_b.leave_muc(room, "beta")
        try:
            while True:
                p = await asyncio.wait_for(a.muc_offline.get(), t)
                if str(p["from"]) == f"{room}/beta":
                    break
            report.check("A sees B leave", p["type"] == "unavailable")
        except asyncio.TimeoutError:
            report.check("A sees B leave", False, "timeout")

        a.send_message(mto=room, mbody="The rest is silence", mtype="groupchat")
        try:
            await next_groupchat(a, "The rest is silence", t)
            got_a = True
        except asyncio.TimeoutError:
            got_a = False
        try:
            await next_groupchat(b, "The rest is silence", 1.0)
            got_b = True
        except asyncio.TimeoutError:
            got_b = False
        report.check("after leaving, messages reach only the occupants", got_a and not got_b, f"A got it: {got_a}, B got it: {got_b}")

        try:
            _pres, _subject, _occupants, history = await muc_b.join_muc_wait(room, "beta", timeout=t)
            bodies = [m["body"] for m in history]
            stamped = all(m.xml.find(f"{{{DELAY_NS}}}delay") is not None for m in history)
            ok = "To be, or not to be" in bodies and "The rest is silence" in bodies and stamped
            report.check("history with delay stamps on rejoin", ok, f"history={bodies} stamped={stamped}")
        except Exception as e:
            report.check("history with delay stamps on rejoin", False, repr(e))
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
    p.add_argument("--room", default="elsinore-interop")
    p.add_argument("--cafile")
    p.add_argument("--insecure", action="store_true")
    p.add_argument("--timeout", type=float, default=15.0)
    p.add_argument("--debug", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR)
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
