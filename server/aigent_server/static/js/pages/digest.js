// The digest card: what an agent watched (settings.watch) in the last day, week or month, per
// source — counts by kind, the biggest changes and the latest items — from /digest.
import { api } from "../api.js";
import { h } from "../ui.js";

const WINDOWS = { "24h": "Day", "7d": "Week", "30d": "Month" };

export function digestCard(base) {
  const body = h("div", { class: "digest-body" }, h("p", { class: "muted small" }, "Loading…"));
  const buttons = Object.entries(WINDOWS).map(([since, label]) =>
    h("button", { type: "button", "data-since": since, onclick: () => load(since) }, label));
  const card = h("section", { class: "card money-card digest-card" },
    h("div", { class: "card-head" }, h("h2", {}, "Digest"), h("span", { class: "muted small" }, "what it watched"),
      h("div", { class: "segmented", role: "group" }, ...buttons)),
    body);

  // A window spans days: the date is part of when.
  const when = (at) => new Date(at * 1000).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

  function item(o) {
    return h("li", { class: "small", "data-kind": o.kind }, h("time", { class: "muted" }, when(o.time)), " ", o.text);
  }

  async function load(since) {
    for (const b of buttons) b.classList.toggle("on", b.dataset.since === since);
    let got;
    try { got = await api("GET", `${base}/digest?since=${since}`); } catch (err) {
      body.replaceChildren(h("p", { class: "muted small" }, `No digest: ${err.message}`));
      return;
    }
    if (!got.watching) {
      body.replaceChildren(h("p", { class: "muted small" },
        "This agent watches nothing yet: give its character settings.watch and a plugin to watch with (xrpl, trn, twitter)."));
      return;
    }
    if (!got.sources.length) {
      body.replaceChildren(h("p", { class: "muted small" }, "Nothing was observed in this window."));
      return;
    }
    body.replaceChildren(...got.sources.map((s) => h("div", { class: "digest-source" },
      h("div", { class: "digest-title" }, h("strong", {}, s.source), h("span", { class: "muted small" },
        `${s.count} item${s.count === 1 ? "" : "s"} · ${Object.entries(s.kinds).map(([k, n]) => `${n} ${k}`).join(", ")}`)),
      s.top.length ? h("div", {}, h("div", { class: "muted small" }, "Top changes"), h("ul", {}, ...s.top.map(item))) : null,
      h("div", {}, h("div", { class: "muted small" }, "Latest"), h("ul", {}, ...s.latest.map(item))))));
  }

  load("24h");
  return card;
}
