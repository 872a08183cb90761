"""Helpers shared by the slixmpp interop scripts (imported from the script's own folder)."""

import ssl


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
