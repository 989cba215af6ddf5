// Money: payments waiting for your approval, earnings, and spending against the limits.
import { api } from "../api.js";
import { listen } from "../events.js";
import { empty, h, header, toast } from "../ui.js";

const amount = (n, scale, asset) => `${(n / 10 ** scale).toLocaleString(undefined, { maximumFractionDigits: scale })} ${asset}`;

export async function moneyPage(main) {
  const pendingBox = h("div", { id: "confirmations" });
  const agentsBox = h("div", { class: "grid" });
  main.append(header("Money", "Approve payments above your limits; see what your agents earned and spent."),
    h("h2", { class: "section" }, "Waiting for you"), pendingBox, h("h2", { class: "section" }, "By agent"), agentsBox);

  async function answer(agent, id, approve) {
    try {
      await api("POST", `/api/agents/${encodeURIComponent(agent)}/confirmations/${id}`, { approve });
      toast(approve ? "Payment approved" : "Payment denied", approve ? "ok" : "info");
    } catch (err) { toast(err.message, "error"); }
    render();
  }

  async function render() {
    const agents = await api("GET", "/api/agents");
    const pending = [];
    const cards = [];
    for (const agent of agents) {
      const path = `/api/agents/${encodeURIComponent(agent.name)}`;
      const [money, confirmations] = await Promise.all([api("GET", `${path}/money`), api("GET", `${path}/confirmations`)]);
      pending.push(...confirmations);
      const spent = money.spent.map((s) =>
        h("div", { class: "meter" },
          h("div", { class: "row between small" }, h("span", {}, `${s.asset} today`), h("span", {}, `${amount(s.last_day, s.scale, s.asset)}${s.per_day ? ` of ${amount(s.per_day, s.scale, s.asset)}` : ""}`)),
          s.per_day ? h("div", { class: "bar" }, h("div", { style: `width:${Math.min(100, (100 * s.last_day) / s.per_day)}%` })) : null));
      cards.push(h("article", { class: "card" },
        h("h3", {}, agent.name),
        h("div", { class: "big" }, money.earned ? money.earned.text : "—"),
        h("div", { class: "muted small" }, money.earned ? `earned from ${money.earned.messages} paid messages` : "not running"),
        ...spent,
        money.held.length ? h("p", { class: "warn small" }, `${money.held.length} payment(s) with an unknown outcome are held`) : null));
    }
    pendingBox.replaceChildren(...(pending.length
      ? pending.map((p) => h("div", { class: "card confirmation", "data-id": p.id },
          h("div", { class: "grow" }, h("div", { class: "strong" }, p.agent), h("div", {}, p.question)),
          h("div", { class: "row" },
            h("button", { class: "primary approve", onclick: () => answer(p.agent, p.id, true) }, "Approve"),
            h("button", { class: "ghost danger", onclick: () => answer(p.agent, p.id, false) }, "Deny"))))
      : [h("div", { class: "card muted small" }, "No payments are waiting for approval.")]));
    agentsBox.replaceChildren(...(cards.length ? cards : [empty("No agents", "Create an agent first.")]));
  }

  await render();
  return listen((event) => {
    if (event && (event.kind.startsWith("confirmation") || event.kind === "sale" || event.kind === "agent.state")) render();
  });
}
