"""Helpers shared by the slixmpp interop scripts (imported from the script's own folder)."""

import argparse
import asyncio
import logging
import ssl
import sys


class Report:
    """Collects check results; each one is printed as soon as it is known."""

    def __init__(self):
        self.results = []

    def check(self, name, ok, detail=""):
        self.results.append((name, ok))
        status = "PASS" if ok else "FAIL"
        print(f"[{status}] {name}" + (f" -- {detail}" if detail else ""), flush=True)
        return ok

    def all_passed(self):
        return bool(self.results) and all(ok for _, ok in self.results)


def use_starttls(client, cafile, insecure):
    """STARTTLS only, no plaintext: verify against `cafile` when given (a certificate the
    harness generated); with `insecure`, accept any certificate (a server's self-signed
    one: these checks are about XMPP, not PKI)."""
    ctx = ssl.create_default_context()
    if cafile:
        ctx.load_verify_locations(cafile=cafile)
    elif insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    client.ssl_context = ctx
    client.enable_direct_tls = False
    client.enable_starttls = True
    client.enable_plaintext = False


def base_parser(doc, overall_timeout=60.0, jid_help=None):
    """The options every single-account check takes: where the server is, the account,
    how to trust its certificate, the time limits. A script adds its own after these."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5222)
    p.add_argument("--jid", required=True, help=jid_help)
    p.add_argument("--password", required=True)
    p.add_argument("--cafile", help="verify the server certificate against this PEM file")
    p.add_argument("--insecure", action="store_true", help="accept any server certificate")
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    p.add_argument("--overall-timeout", type=float, default=overall_timeout, help="whole run, seconds")
    p.add_argument("--debug", action="store_true")
    return p


def parse_args(parser):
    """Parse, and log slixmpp's errors only (everything with --debug)."""
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR, format="%(levelname)s %(message)s")
    return args


async def run_until_done(make_client, args):
    """Make one client (`make_client(args, report)`, inside the running loop, which slixmpp
    binds to), connect it straight to host:port (loopback servers have no DNS records),
    wait for its `done` future within the overall timeout, then disconnect."""
    report = Report()
    xmpp = make_client(args, report)
    xmpp.connect(host=args.host, port=args.port)
    try:
        await asyncio.wait_for(asyncio.shield(xmpp.done), args.overall_timeout)
    except asyncio.TimeoutError:
        report.check("finished in time", False, f"no result after {args.overall_timeout}s")
    await disconnect_all([xmpp])
    return report


async def run_sessions(run, args):
    """Run `run(args, report)`, which returns the sessions it opened, within the overall
    timeout; any exception becomes a failed check instead of a hang. Then disconnect."""
    report = Report()
    sessions = []
    try:
        sessions = await asyncio.wait_for(run(args, report), args.overall_timeout)
    except asyncio.TimeoutError:
        report.check("finished in time", False, f"no result after {args.overall_timeout}s")
    except Exception as e:  # report, never hang
        report.check("unexpected exception", False, repr(e))
    await disconnect_all(sessions or [])
    return report


async def disconnect_all(sessions):
    for s in sessions:
        try:
            await asyncio.wait_for(s.disconnect(), 5)
        except Exception:
            pass


def finish(report):
    """Print the summary line the harness reads and exit 0 only if every check passed."""
    passed = sum(1 for _, ok in report.results if ok)
    print(f"slixmpp summary: {passed} of {len(report.results)} checks passed", flush=True)
    sys.exit(0 if report.all_passed() else 1)
