// The explorer: the live feed of what happens to your agents.
import { api } from "../api.js";
import { feed, listen } from "../events.js";
import { empty, h, header, time } from "../ui.js";

const LABELS = {
  "message.in": "in", "message.out": "out", "agent.state": "state", "agent.error": "error",
  "confirmation.pending": "confirm?", "confirmation.resolved": "confirmed", paid_message: "paid msg",
  "payment.committed": "paid", "payment.released": "released", "payment.held": "held",
  "settlement.claim_sent": "claim out", "settlement.claim_received": "claim in", "settlement.channel_opened": "channel",
  "settlement.channel_funded": "funded", "settlement.channel_closed": "closed", "settlement.redeemed": "redeemed",
  "anchor.batch": "anchored", "plugin.event": "plugin", token: "token",
};

const money = (n, scale, asset) => `${(n / 10 ** (scale || 0)).toLocaleString(undefined, { maximumFractionDigits: scale || 0 })} ${asset || ""}`.trim();
const cut = (id) => (id && id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id);

function summary(e) {
  switch (e.kind) {
    case "message.in": return `${e.user} → ${e.text}`;
    case "message.out": return e.text;
    case "agent.state": return e.error ? `${e.state}: ${e.error}` : e.state;
    case "agent.error": return e.error;
    case "confirmation.pending": return e.question;
    case "confirmation.resolved": return e.approved ? "approved" : "denied";
    case "paid_message": return `earned ${money(e.amount, e.scale, e.asset)} from ${e.sender}`;
    // The purpose names the payee as the user knows it; a STREAM address is noise.
    case "payment.committed": return `paid ${money(e.amount, e.scale, e.asset)}: ${e.purpose || `to ${e.destination}`}`;
    case "payment.released": return `released ${money(e.amount, e.scale, e.asset)} to ${e.destination}: nothing moved`;
    case "payment.held": return `held ${money(e.amount, e.scale, e.asset)} to ${e.destination}: ${e.note}`;
    case "settlement.claim_sent": return `claim for ${money(e.amount, e.scale, e.asset)} to ${e.peer} (total ${money(e.total, e.scale, e.asset)})`;
    case "settlement.claim_received": return `claim for ${money(e.amount, e.scale, e.asset)} from ${e.peer} (total ${money(e.total, e.scale, e.asset)})`;
    case "settlement.channel_opened": return `opened channel ${cut(e.channel)} to ${e.peer} with ${money(e.capacity, e.scale, e.asset)}`;
    case "settlement.channel_funded": return `added ${money(e.amount, e.scale, e.asset)} to channel ${cut(e.channel)}`;
    case "settlement.channel_closed": return `channel ${cut(e.channel)} with ${e.peer} closed`;
    case "settlement.redeemed": return `redeemed ${money(e.amount, e.scale, e.asset)} on channel ${cut(e.channel)}`;
    case "anchor.batch": return `batch #${e.batch} of ${e.count} anchored in tx ${cut(e.tx_hash)}`;
    case "plugin.event": return `${e.plugin || "plugin"}: ${e.event}`;
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
    h("option", { value: "paid_message" }, "Paid messages"),
    h("option", { value: "payment" }, "Payments"),
    h("option", { value: "settlement" }, "Settlements"),
    h("option", { value: "anchor" }, "Anchors"));
  const status = h("span", { class: "live" });
  const list = h("div", { class: "feed", id: "feed" });
  main.append(header("Explorer", "Messages, payments, settlements, anchors and state changes, as they happen.", status, kind), h("div", { class: "card" }, list));

  function row(e) {
    return h("div", { class: `event ${e.kind.replace(".", "-")}`, "data-kind": e.kind },
      h("span", { class: `tag kind-${e.kind.split(".")[0]}`, title: e.kind }, LABELS[e.kind] || e.kind),
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
