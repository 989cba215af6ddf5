// The explorer: the live feed of what happens to your agents.
import { api } from "../api.js";
import { feed, listen } from "../events.js";
import { empty, h, header, time } from "../ui.js";

const LABELS = {
  "message.in": "in", "message.out": "out", "agent.state": "state", "agent.error": "error",
  "confirmation.pending": "confirm?", "confirmation.resolved": "confirmed", sale: "sale", token: "token",
};

function summary(e) {
  switch (e.kind) {
    case "message.in": return `${e.user} → ${e.text}`;
    case "message.out": return e.text;
    case "agent.state": return e.error ? `${e.state}: ${e.error}` : e.state;
    case "agent.error": return e.error;
    case "confirmation.pending": return e.question;
    case "confirmation.resolved": return e.approved ? "approved" : "denied";
    case "sale": return `earned ${e.amount} from ${e.sender}`;
    case "token": return e.ok ? [e.action, e.amount || e.limit, e.symbol || e.token || e.currency].filter(Boolean).join(" ") : `not ${e.action}: ${e.error}`;
    default: return JSON.stringify(e);
  }
}

// Verification results by message id, kept across re-renders of the feed.
const checked = new Map();

async function verify(e, out) {
  out.textContent = "checking…";
  try {
    // Asked afresh: the receipt gains its anchor after the event was sent.
    const got = await api("GET", `/api/agents/${encodeURIComponent(e.agent)}/messages/${encodeURIComponent(e.message_id)}/receipt`);
    const v = await api("POST", "/api/verify", { receipt: got.receipts.trn, text: e.text });
    checked.set(e.message_id, {
      text: v.proof === "ok"
        ? `proof ok, root ${String(v.root).slice(0, 10)}…; on chain: not checked here`
        : `proof mismatch: ${v.problems.join("; ")}`,
      title: v.chain,
      ok: v.proof === "ok",
    });
  } catch (err) {
    checked.set(e.message_id, { text: `cannot check: ${err.message}`, title: "", ok: false });
  }
  const result = checked.get(e.message_id);
  out.textContent = result.text;
  out.title = result.title;
  out.dataset.ok = String(result.ok);
}

function verifier(e) {
  if (e.kind !== "message.out" || !e.message_id || !(e.receipts && e.receipts.trn)) return null;
  const done = checked.get(e.message_id);
  const out = h("span", { class: "verify-result", title: done ? done.title : "" }, done ? done.text : "");
  if (done) out.dataset.ok = String(done.ok);
  const button = h("button", { class: "ghost small verify", onclick: () => verify(e, out) }, "verify");
  return h("span", { class: "verify-box" }, button, out);
}

function extras(e) {
  if (!e.receipts || !Object.keys(e.receipts).length) return null;
  // One grid cell, so the time keeps its column.
  return h("span", { class: "event-extra" },
    h("span", { class: "tag kind-anchor", title: JSON.stringify(e.receipts) }, "receipt"),
    verifier(e));
}

export async function explorerPage(main) {
  const kind = h("select", { id: "kind-filter", onchange: () => render() },
    h("option", { value: "" }, "All events"),
    h("option", { value: "message" }, "Messages"),
    h("option", { value: "agent" }, "Agent state"),
    h("option", { value: "confirmation" }, "Confirmations"),
    h("option", { value: "sale" }, "Sales"));
  const status = h("span", { class: "live" });
  const list = h("div", { class: "feed", id: "feed" });
  main.append(header("Explorer", "Messages, state changes, confirmations and sales, as they happen.", status, kind), h("div", { class: "card" }, list));

  function row(e) {
    return h("div", { class: `event ${e.kind.replace(".", "-")}`, "data-kind": e.kind },
      h("span", { class: `tag kind-${e.kind.split(".")[0]}` }, LABELS[e.kind] || e.kind),
      h("span", { class: "event-agent" }, e.agent),
      h("span", { class: "event-text" }, summary(e)),
      extras(e),
      h("time", {}, time(e.at)));
  }

  function render() {
    status.className = `live ${feed.live ? "on" : ""}`;
    status.textContent = feed.live ? "live" : "connecting";
    const chosen = kind.value;
    const events = feed.events.filter((e) => !chosen || e.kind === chosen || e.kind.startsWith(chosen + ".")).slice(-200).reverse();
    list.replaceChildren(...(events.length ? events.map(row) : [empty("Nothing yet", "Talk to an agent and watch it here.")]));
  }

  render();
  return listen(() => render());
}
