// Interop check with xmpp.js (@xmpp/client): two clients log in over STARTTLS,
// A sends B a chat message, B answers, both are checked.
// Prints [PASS]/[FAIL] lines like the slixmpp scripts; exit 0 only if all pass.
//
//   node chat.mjs --port 5222 --jid alice@localhost --password pw \
//       --other bob@localhost --other-password pw2 [--insecure]
import { client, xml } from "@xmpp/client";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, cur, i, all) => {
    if (cur.startsWith("--")) {
      const next = all[i + 1];
      acc.push([cur.slice(2), next && !next.startsWith("--") ? next : true]);
    }
    return acc;
  }, []),
);
const host = args.host ?? "127.0.0.1";
const timeoutMs = Number(args.timeout ?? 15) * 1000;
if (args.insecure) {
  // The server's certificate is self-signed: this check is about XMPP, not PKI.
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
}

let failures = 0;
let checks = 0;
function check(name, ok, detail = "") {
  checks += 1;
  if (!ok) failures += 1;
  console.log(`[${ok ? "PASS" : "FAIL"}] ${name}${detail ? " -- " + detail : ""}`);
}

function withTimeout(promise, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), timeoutMs);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

function makeClient(jid, password, resource) {
  const [username, domain] = jid.split("@");
  const xmpp = client({
    service: `xmpp://${host}:${args.port}`,
    domain,
    resource,
    username,
    password,
  });
  xmpp.on("error", () => {});
  return xmpp;
}

async function main() {
  const a = makeClient(args.jid, args.password, "xmppjs-a");
  const b = makeClient(args.other, args["other-password"], "xmppjs-b");
  const received = (xmppClient) =>
    new Promise((resolve) => {
      xmppClient.on("stanza", (s) => {
        if (s.is("message") && s.getChildText("body")) resolve(s);
      });
    });
  try {
    const aOnline = await withTimeout(a.start(), "A login");
    check("xmpp.js A logs in", Boolean(aOnline), `jid=${aOnline}`);
    const bOnline = await withTimeout(b.start(), "B login");
    check("xmpp.js B logs in", Boolean(bOnline), `jid=${bOnline}`);
    await a.send(xml("presence"));
    await b.send(xml("presence"));

    const atB = received(b);
    await a.send(xml("message", { to: String(bOnline), type: "chat" }, xml("body", {}, "Good morrow")));
    const m1 = await withTimeout(atB, "message at B");
    check(
      "xmpp.js message A -> B",
      m1.getChildText("body") === "Good morrow" && m1.attrs.from === String(aOnline),
      `from=${m1.attrs.from}`,
    );

    const atA = received(a);
    await b.send(xml("message", { to: String(aOnline), type: "chat" }, xml("body", {}, "Good morrow to you")));
    const m2 = await withTimeout(atA, "message at A");
    check(
      "xmpp.js message B -> A",
      m2.getChildText("body") === "Good morrow to you" && m2.attrs.from === String(bOnline),
      `from=${m2.attrs.from}`,
    );
  } catch (e) {
    check("xmpp.js scenario", false, String(e && e.message ? e.message : e));
  } finally {
    await Promise.allSettled([withTimeout(a.stop(), "A stop"), withTimeout(b.stop(), "B stop")]);
  }
  process.exit(failures === 0 && checks > 0 ? 0 : 1);
}

main();
