#!/usr/bin/env python3
"""XEP-0055 (Jabber Search) data-forms interop check driven by slixmpp.

Logs in over STARTTLS, then against the server's user directory:

  1. set a vCard with a nickname (that puts the account in the directory)
  2. get the search fields: an <x type='form'> with FORM_TYPE jabber:iq:search
     and the fields first, last, nick, email (stock xep_0004 form parsing)
  3. search with a submitted form built by the stock xep_0055 plugin
     (make_search_iq): a result form with <reported> and an item for us
  4. a cancelled form: expect bad-request

Prints one line per check and exits 0 only when every check passed.
Run by `cargo xtask interop` (elsinore side); usable by hand:

  python3 slixmpp_search.py --host 127.0.0.1 --port 5222 \
      --jid alice@localhost --password pw --insecure
"""

import asyncio
import xml.etree.ElementTree as ET

from interop_common import base_parser, finish, parse_args, run_until_done, use_starttls
from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError, IqTimeout

SEARCH_NS = "jabber:iq:search"
NICK = "Yorick-the-jester"




class SearchCheck(ClientXMPP):
    def __init__(self, args, report):
        super().__init__(args.jid, args.password)
        self.args = args
        self.report = report
        self.done = asyncio.get_event_loop().create_future()
        use_starttls(self, args.cafile, args.insecure)
        # Client side only: do not answer searches ourselves.
        self.register_plugin("xep_0055", {"provide_search": False})
        self.add_event_handler("session_start", self.on_session_start)
        for ev in ("failed_all_auth", "no_auth", "connection_failed", "disconnected"):
            self.add_event_handler(ev, self.make_failure(ev))

    def finish(self):
        if not self.done.done():
            self.done.set_result(None)

    def make_failure(self, event):
        def handler(*_):
            if not self.done.done():
                self.report.check("session", False, f"event {event}")
                self.finish()

        return handler

    async def on_session_start(self, _):
        try:
            await self.run_checks()
        except Exception as e:  # report, never hang
            self.report.check("unexpected exception", False, repr(e))
        finally:
            self.finish()

    async def run_checks(self):
        r = self.report
        t = self.args.timeout
        service = self.boundjid.domain
        me = self.boundjid.bare

        iq = self.make_iq_set()
        vcard = ET.Element("{vcard-temp}vCard")
        ET.SubElement(vcard, "{vcard-temp}NICKNAME").text = NICK
        iq.append(vcard)
        try:
            await iq.send(timeout=t)
            r.check("vCard set", True)
        except (IqError, IqTimeout) as e:
            r.check("vCard set", False, repr(e))
            return

        iq = self.make_iq_get(ito=service)
        iq.enable("search")
        try:
            res = await iq.send(timeout=t)
        except (IqError, IqTimeout) as e:
            r.check("search fields: a form", False, repr(e))
            return
        form = res["search"]["form"]
        fields = form.get_fields()
        # slixmpp reads a hidden field as multi-valued (a list).
        form_type = fields["FORM_TYPE"]["value"] if "FORM_TYPE" in fields else None
        ok = (
            form["type"] == "form"
            and form_type in (SEARCH_NS, [SEARCH_NS])
            and all(f in fields for f in ("first", "last", "nick", "email"))
        )
        r.check("search fields: a form", ok, f"type={form['type']} FORM_TYPE={form_type} fields={sorted(fields)}")

        iq = self.plugin["xep_0055"].make_search_iq(ito=service)
        iq["search"]["form"].add_field("nick", value=NICK.lower())
        try:
            res = await iq.send(timeout=t)
        except (IqError, IqTimeout) as e:
            r.check("form search: result form", False, repr(e))
            return
        form = res["search"]["form"]
        reported = sorted(form.get_reported())
        items = form.get_items()
        ok = (
            form["type"] == "result"
            and reported == sorted(["jid", "first", "last", "nick", "email"])
            and [(i.get("jid"), i.get("nick")) for i in items] == [(me, NICK)]
        )
        r.check("form search: result form", ok, f"reported={reported} items={items}")

        iq = self.make_iq_set(ito=service)
        iq["search"]["form"]["type"] = "cancel"
        try:
            res = await iq.send(timeout=t)
            r.check("cancelled form: bad-request", False, f"got type={res['type']}")
        except IqError as e:
            cond = e.iq["error"]["condition"]
            r.check("cancelled form: bad-request", cond == "bad-request", f"condition={cond}")
        except IqTimeout:
            r.check("cancelled form: bad-request", False, "no reply (timeout)")


def main():
    args = parse_args(base_parser(__doc__))
    finish(asyncio.run(run_until_done(SearchCheck, args)))


if __name__ == "__main__":
    main()
