// Money: payments waiting for approval, then one agent at a time: earnings over time (an SVG
// chart drawn here), spending against its limits, its connector ledger, settlements and
// channels, anchoring, and its latest payments. Live: re-read when the agent's money moves.
import { api } from "../api.js";
import { listen } from "../events.js";
import { empty, h, header, pill, time, toast } from "../ui.js";
import { digestCard } from "./digest.js";

const SVG = "http://www.w3.org/2000/svg";
const LIVE_KINDS = ["paid_message", "payment", "settlement", "anchor", "confirmation", "agent"];
const RAILS = { ilp: "over ILP", "x402-xrpl": "by x402 (XRPL)", "x402-evm": "by x402 (EVM)" };

export const amount = (n, scale, asset) =>
  `${(n / 10 ** (scale || 0)).toLocaleString(undefined, { maximumFractionDigits: scale || 0 })}${asset ? ` ${asset}` : ""}`;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

// Round steps (1, 2, 5 × 10^n) so the axis reads 0, 0.002, 0.004 … rather than odd values.
function niceStep(max, ticks) {
  const raw = max / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw);
}

function bucketLabel(at, every) {
  const d = new Date(at * 1000);
  return every === "hour"
    ? d.toLocaleTimeString([], { hour: "numeric" })
    : d.toLocaleDateString([], { month: "short", day: "numeric" });
}

export function earningsChart(data, width) {
  const height = 220;
  const pad = { left: 64, right: 16, top: 14, bottom: 30 };
  const buckets = data.buckets;
  const top = Math.max(0, ...buckets.map((b) => b.amount));
  const unit = 10 ** data.scale;
  const step = top > 0 ? niceStep(top / unit, 4) * unit : unit / 1000;
  const ymax = top > 0 ? Math.ceil(top / step) * step : step * 4;
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const y = (v) => pad.top + plotH - (v / ymax) * plotH;
  const slot = plotW / Math.max(1, buckets.length);
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": `Earnings per ${data.every}: ${data.total.text} in all` });
  for (let v = 0; v <= ymax + step / 2; v += step) {
    svg.append(s("line", { class: "grid-line", x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }));
    // Nothing earned: no made-up scale, only the zero line.
    if (top > 0 || v === 0) svg.append(s("text", { class: "axis", x: pad.left - 8, y: y(v) + 4, "text-anchor": "end" }, amount(v, data.scale)));
  }
  const every = Math.max(1, Math.ceil(buckets.length / Math.max(2, Math.floor(plotW / 70))));
  buckets.forEach((b, i) => {
    const x = pad.left + i * slot;
    if (b.amount > 0) {
      const bar = s("rect", { class: "bar-rect", x: x + slot * 0.15, y: y(b.amount), width: Math.max(1, slot * 0.7),
        height: Math.max(1, pad.top + plotH - y(b.amount)), rx: Math.min(4, slot * 0.2) });
      bar.append(s("title", {}, `${bucketLabel(b.at, data.every)}: ${amount(b.amount, data.scale, data.asset)} from ${b.messages} message(s)`));
      svg.append(bar);
    }
    if ((buckets.length - 1 - i) % every === 0) {
      // The newest label ends at the plot's edge instead of running past it.
      const last = i === buckets.length - 1;
      svg.append(s("text", { class: "axis", x: last ? width - pad.right : x + slot / 2, y: height - 8,
        "text-anchor": last ? "end" : "middle" }, last && data.every === "hour" ? "now" : bucketLabel(b.at, data.every)));
    }
  });
  svg.append(s("line", { class: "base-line", x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0) }));
  if (top === 0) {
    svg.append(s("text", { class: "chart-empty", x: pad.left + plotW / 2, y: pad.top + plotH / 2, "text-anchor": "middle" },
      data.every === "hour" ? "No paid messages in the last 24 hours" : "No paid messages in the last 30 days"));
  }
  return svg;
}

function meter(label, used, cap, scale, asset) {
  const share = cap ? Math.min(100, (100 * used) / cap) : 0;
  return h("div", { class: "meter" },
    h("div", { class: "row between small" }, h("span", {}, label),
      h("span", { class: "strong" }, amount(used, scale, asset), cap ? h("span", { class: "muted" }, ` of ${amount(cap, scale, asset)}`) : h("span", { class: "muted" }, " · no cap"))),
    cap ? h("div", { class: `bar ${share >= 90 ? "hot" : ""}` }, h("div", { style: `width:${share}%` })) : null);
}

// A sliver stays visible: 0.001 of 1 XRP claimed is not nothing.
const share = (part, whole) => (part > 0 ? `width:max(3px, ${(100 * part) / Math.max(1, whole)}%)` : "width:0");

function card(title, subtitle, ...body) {
  return h("section", { class: "card money-card" },
    h("div", { class: "card-head" }, h("h2", {}, title), subtitle ? h("span", { class: "muted small" }, subtitle) : null), ...body);
}

async function optional(path) {
  try { return await api("GET", path); } catch { return null; }
}

export async function moneyPage(main, [chosen]) {
  const agents = await api("GET", "/api/agents");
  const pendingBox = h("div", { id: "confirmations" });
  const select = h("select", { id: "money-agent", "aria-label": "Agent", onchange: () => { location.hash = `#/money/${encodeURIComponent(select.value)}`; } },
    ...agents.map((a) => h("option", { value: a.name }, `${a.name}${a.state === "running" ? "" : ` (${a.state})`}`)));
  const every = { value: "hour" };
  const body = h("div", { class: "money" });
  main.append(header("Money", "What your agents earned, spent, owe and are owed, as it happens.", agents.length ? select : null),
    pendingBox, body);
  if (!agents.length) {
    body.append(empty("No agents", "Create an agent first.", h("a", { class: "button primary", href: "#/agents" }, "Agents")));
    return null;
  }
  const agent = agents.find((a) => a.name === chosen) || agents.find((a) => a.state === "running") || agents[0];
  select.value = agent.name;
  const base = `/api/agents/${encodeURIComponent(agent.name)}`;

  async function answer(p, approve) {
    try {
      await api("POST", `/api/agents/${encodeURIComponent(p.agent)}/confirmations/${p.id}`, { approve });
      toast(approve ? "Payment approved" : "Payment denied", approve ? "ok" : "info");
    } catch (err) { toast(err.message, "error"); }
    renderPending();
  }

  let asked = 0;
  async function renderPending() {
    const mine = ++asked;
    const lists = await Promise.all(agents.map((a) => optional(`/api/agents/${encodeURIComponent(a.name)}/confirmations`)));
    if (mine !== asked) return; // a later read is on its way: an older answer must not win
    const pending = lists.flat().filter(Boolean);
    pendingBox.replaceChildren(...(pending.length ? [h("h2", { class: "section" }, "Waiting for you"),
      ...pending.map((p) => h("div", { class: "card confirmation", "data-id": p.id },
        h("div", { class: "grow" }, h("div", { class: "strong" }, p.agent), h("div", {}, p.question),
          h("div", { class: "muted small" }, `${p.purpose || "payment"} · expires ${time(p.expires_at)}`)),
        h("div", { class: "row" },
          h("button", { class: "primary approve", onclick: () => answer(p, true) }, "Approve"),
          h("button", { class: "ghost danger", onclick: () => answer(p, false) }, "Deny"))))]
      : [h("div", { class: "pending-none muted small" }, h("span", { class: "dot on" }), "No payments are waiting for approval.")]));
  }

  const chartBox = h("div", { class: "chart-box" });
  let earnings = null;
  function drawChart() {
    if (!earnings) return;
    chartBox.replaceChildren(earningsChart(earnings, Math.max(280, chartBox.clientWidth || 600)));
  }

  async function render() {
    const fresh = (await optional(base)) || agent;
    if (fresh.state !== "running") {
      body.replaceChildren(card(agent.name, fresh.state,
        empty(`${agent.name} is ${fresh.state}`, "Start it to see its ledger, settlements and earnings.", h("a", { class: "button", href: "#/agents" }, "Agents"))));
      return;
    }
    const [money, ledger, settlements, anchors, payments] = await Promise.all([
      optional(`${base}/money`), optional(`${base}/ledger`), optional(`${base}/settlements`),
      optional(`${base}/anchors`), optional(`${base}/payments?limit=8`)]);
    earnings = await optional(`${base}/earnings?every=${every.value}`);

    const toggle = h("div", { class: "segmented", role: "group" },
      ...["hour", "day"].map((v) => h("button", { class: every.value === v ? "on" : "", "data-every": v,
        onclick: () => { every.value = v; render(); } }, v === "hour" ? "24 h" : "30 days")));
    const earned = money && money.earned;
    const held = money ? money.held.length : 0;
    const tiles = h("div", { class: "tiles" },
      h("div", { class: "tile" }, h("div", { class: "label" }, "Earned"), h("div", { class: "big", id: "earned" }, earned ? earned.text : "—"),
        h("div", { class: "muted small" }, earned ? `from ${earned.messages} paid message(s)` : "its connector is off"),
        earned && earned.rails && earned.rails.length
          ? h("div", { class: "muted small", id: "rails" }, earned.rails.map((r) => h("div", { "data-rail": r.rail }, `${r.text} ${RAILS[r.rail] || `by ${r.rail}`}`)))
          : null),
      h("div", { class: "tile" }, h("div", { class: "label" }, "Price"), h("div", { class: "big" }, fresh.price || "—"),
        h("div", { class: "muted small mono ellipsis" }, fresh.address || "no ILP address")),
      h("div", { class: "tile" }, h("div", { class: "label" }, "Peers"), h("div", { class: "big" }, ledger ? String(ledger.accounts.length) : "—"),
        h("div", { class: "muted small" }, ledger ? `${ledger.accounts.filter((a) => a.connected).length} connected` : "no connector")),
      h("div", { class: `tile ${held ? "warn-tile" : ""}` }, h("div", { class: "label" }, "Held"), h("div", { class: "big" }, String(held)),
        h("div", { class: "muted small" }, held ? "payments with an unknown outcome" : "no payment in doubt")));

    const chartCard = card("Earnings", earnings ? `per ${earnings.every}, ${earnings.asset}` : "", chartBox);
    chartCard.querySelector(".card-head").append(toggle);
    if (!earnings) chartBox.replaceChildren(h("p", { class: "muted small" }, "No connector: this agent does not sell messages."));

    const spent = money && money.spent.length
      ? money.spent.map((x) => h("div", { class: "asset-limits" }, h("div", { class: "strong small" }, x.asset),
          meter("Last hour", x.last_hour, x.per_hour, x.scale, x.asset), meter("Last 24 hours", x.last_day, x.per_day, x.scale, x.asset),
          x.confirm_above !== null ? h("div", { class: "muted small" }, `asks you above ${amount(x.confirm_above, x.scale, x.asset)}`) : null))
      : [h("p", { class: "muted small" }, "No spending limits: this agent never pays.")];
    const heldList = money && money.held.length
      ? h("ul", { class: "held" }, ...money.held.map((x) => h("li", { class: "warn small" }, `${amount(x.amount, 0, x.asset)} to ${x.destination}: ${x.note}`)))
      : null;

    const accounts = ledger && ledger.accounts.length
      ? h("div", { class: "table" }, h("div", { class: "tr th" }, h("span", {}, "Peer"), h("span", {}, "Balance"), h("span", {}, "Limits"), h("span", {}, "Settles at"), h("span", {}, "Engine")),
          ...ledger.accounts.map((a) => h("div", { class: "tr", "data-peer": a.peer },
            h("span", { class: "strong" }, h("span", { class: `dot ${a.connected ? "on" : ""}`, title: a.connected ? "link up" : "link down" }), ` ${a.peer}`, h("span", { class: "muted small" }, ` ${a.relation}`)),
            h("span", { class: `num ${a.balance > 0 ? "pos" : a.balance < 0 ? "neg" : ""}`, title: "positive: the peer owes this agent" }, amount(a.balance, a.scale, a.asset)),
            h("span", { class: "muted small" }, `${a.min_balance === null ? "−∞" : amount(a.min_balance, a.scale)} … ${a.max_balance === null ? "∞" : amount(a.max_balance, a.scale)}`),
            h("span", { class: "small" }, a.settle_threshold === null ? "—" : `${amount(a.settle_threshold, a.scale)} → ${amount(a.settle_to, a.scale)}`),
            h("span", { class: "small" }, a.settlement_engine || "—"))))
      : h("p", { class: "muted small" }, ledger ? "No peers configured (connector.peers in the character)." : "Its connector is off.");

    const peers = settlements ? settlements.peers : [];
    const channels = peers.length
      ? peers.map((p) => h("div", { class: "peer-settlements" },
          h("div", { class: "row between" }, h("span", { class: "strong" }, `${p.peer} · ${p.engine}`),
            p.settlements.length ? h("span", { class: "muted small" }, `${p.settlements.filter((x) => x.state === "done").length} settled, ${p.settlements.filter((x) => x.state !== "done").length} pending`) : null),
          ...(p.channels || []).map((c) => h("div", { class: "channel", "data-channel": c.channel },
            h("div", { class: "row between small" },
              h("span", {}, h("span", { class: `tag ${c.direction === "in" ? "kind-paid_message" : "kind-message"}` }, c.direction === "in" ? "paid to us" : "we pay"), " ",
                h("span", { class: "mono", title: c.channel }, `${c.channel.slice(0, 8)}…${c.channel.slice(-4)}`)),
              pill(c.state)),
            h("div", { class: "bar stacked" }, h("div", { class: "redeemed", style: share(c.redeemed, c.capacity) }),
              h("div", { class: "claimed", style: share(c.claimed - c.redeemed, c.capacity) })),
            h("div", { class: "muted small" }, `claimed ${amount(c.claimed, c.asset_scale, c.asset_code)} of ${amount(c.capacity, c.asset_scale, c.asset_code)}; redeemed ${amount(c.redeemed, c.asset_scale, c.asset_code)}`))),
          p.channels && !p.channels.length ? h("p", { class: "muted small" }, "No channel yet: one opens at the first settlement.") : null))
      : [h("p", { class: "muted small" }, "No peer settles with this agent.")];

    const services = anchors ? Object.entries(anchors.services) : [];
    const anchoring = services.length
      ? services.map(([name, a]) => h("div", {},
          h("div", { class: "row between small" }, h("span", { class: "strong" }, name), a.last_error ? h("span", { class: "warn" }, a.last_error) : pill(a.running ? "running" : "stopped")),
          h("div", { class: "facts small" }, h("dt", {}, "anchored"), h("dd", {}, `${a.anchored_messages} messages in ${a.anchored_batches} batches`),
            h("dt", {}, "waiting"), h("dd", {}, `${a.queued_messages} queued, ${a.sealed_batches} sealed`)),
          ...a.batches.slice(0, 5).map((b) => h("div", { class: "batch small", "data-status": b.status },
            h("span", { class: `tag ${b.status === "anchored" ? "kind-anchor" : ""}` }, b.status), h("span", {}, `#${b.id} · ${b.count} msg`),
            h("span", { class: "mono muted ellipsis", title: b.tx_hash || b.root }, b.tx_hash ? `tx ${b.tx_hash.slice(0, 10)}…` : `root ${b.root.slice(0, 10)}…`)))))
      : [h("p", { class: "muted small" }, "Nothing anchors this agent's messages (add the trn plugin).")];

    const recent = payments && payments.payments.length
      ? payments.payments.map((p) => h("div", { class: "payment small", "data-state": p.state },
          h("span", { class: `tag state-${p.state}` }, p.state), h("span", { class: "strong num" }, amount(p.amount, p.scale, p.asset)),
          h("span", { class: "muted ellipsis", title: p.destination }, p.purpose || p.destination), h("time", {}, time(p.at))))
      : [h("p", { class: "muted small" }, "No payments yet.")];

    body.replaceChildren(tiles, chartCard,
      h("div", { class: "money-grid" },
        card("Spending", "against its limits", ...spent, heldList),
        card("Latest payments", "", ...recent)),
      card("Ledger", ledger ? `${ledger.address} · ${ledger.asset}` : "", accounts),
      h("div", { class: "money-grid" }, card("Settlements", "channels per peer", ...channels), card("Anchors", "content receipts", ...anchoring)),
      digestCard(base));
    drawChart();
  }

  let timer = null;
  // Listening before the first read: a confirmation asked while it loads is not missed.
  const stop = listen((event) => {
    if (!event) return;
    if (event.kind.startsWith("confirmation")) renderPending();
    if (event.agent !== agent.name || !LIVE_KINDS.some((k) => event.kind === k || event.kind.startsWith(k + "."))) return;
    clearTimeout(timer);
    timer = setTimeout(render, 250); // a settlement is several events: one re-read
  });
  await Promise.all([render(), renderPending()]);
  const onResize = () => drawChart();
  window.addEventListener("resize", onResize);
  return () => { stop(); clearTimeout(timer); window.removeEventListener("resize", onResize); };
}
