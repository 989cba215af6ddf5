// Tokens: what an agent holds on TRN and the XRPL; create, mint, send; trust an issuer.
// Every button runs one of the agent's own actions on the server, under its spending limits.
import { api } from "../api.js";
import { listen } from "../events.js";
import { empty, h, header, toast } from "../ui.js";

const enc = encodeURIComponent;
// TRN (0x…) and XRPL (r…) addresses alike, shortened for a phone's width
const short = (a) => (a && a.length > 14 ? `${a.slice(0, 6)}…${a.slice(-4)}` : a);

// Long fractions (18-decimal native XRP) cut to six places on screen; the whole on hover.
function balanceCell(value, suffix = "") {
  const [whole, frac = ""] = String(value).split(".");
  const text = frac.length > 6 ? `${whole}.${frac.slice(0, 6)}…` : String(value);
  return h("div", { class: "balance", title: value }, text + suffix);
}

function field(label, input, hint) {
  const note = typeof hint === "string" ? h("span", { class: "field-hint" }, hint) : hint;
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), input, note);
}

const input = (id, attrs = {}) => h("input", { id, autocomplete: "off", spellcheck: "false", ...attrs });

// A form card: its fields, a submit button and the error the server gave, if any.
function form(id, title, subtitle, fields, label, submit) {
  const error = h("p", { class: "form-error", id: `${id}-error`, hidden: true });
  const button = h("button", { class: "primary", id: `${id}-submit`, type: "submit" }, label);
  const el = h("form", { class: "card token-form", id, onsubmit: async (e) => {
    e.preventDefault();
    error.hidden = true;
    button.disabled = true;
    try {
      await submit();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  } },
  h("div", { class: "token-form-head" }, h("h3", {}, title), subtitle ? h("p", { class: "muted small" }, subtitle) : null),
  ...fields, error, h("div", { class: "row" }, button));
  return el;
}

function kindPill(kind) {
  return h("span", { class: `pill token-kind ${kind}` }, kind === "created" ? "yours" : kind);
}

function balanceRow(t) {
  return h("div", { class: "token-row", "data-token": t.symbol },
    h("div", { class: "token-badge" }, t.symbol.slice(0, 3)),
    h("div", { class: "grow" },
      h("div", { class: "strong" }, t.symbol, " ", kindPill(t.kind)),
      h("div", { class: "muted small ellipsis", title: t.address || "" }, t.name || (t.address ? short(t.address) : "TRN's native coin"))),
    balanceCell(t.balance));
}

function lineRow(currency, who, value, sub, attrs, suffix = "") {
  return h("div", { class: "token-row", ...attrs },
    h("div", { class: "token-badge xrpl" }, currency.slice(0, 3)),
    h("div", { class: "grow" }, h("div", { class: "strong" }, currency), h("div", { class: "muted small ellipsis", title: who }, sub)),
    balanceCell(value, suffix));
}

function chainCard(title, address, body, error) {
  return h("section", { class: "card chain-card" },
    h("div", { class: "chain-head" },
      h("h3", {}, title),
      address ? h("button", { class: "ghost small mono address-chip", type: "button", title: "Copy the address", onclick: async () => {
        try { await navigator.clipboard.writeText(address); toast("Address copied", "ok"); } catch { toast(address); }
      } }, short(address)) : null),
    error ? h("p", { class: "form-error" }, error) : body);
}

export async function tokensPage(main, [chosen]) {
  const agents = (await api("GET", "/api/agents")).filter((a) => a.state === "running");
  if (!agents.length) {
    main.append(header("Tokens"), empty("No running agents", "Start an agent to see and move its tokens.", h("a", { class: "button", href: "#/agents" }, "Go to agents")));
    return;
  }
  const name = agents.some((a) => a.name === chosen) ? chosen : agents[0].name;
  const path = `/api/agents/${enc(name)}`;
  const select = h("select", { id: "tokens-agent", onchange: () => (location.hash = `#/tokens/${enc(select.value)}`) },
    ...agents.map((a) => h("option", { value: a.name, selected: a.name === name }, a.name)));
  const balances = h("div", { class: "chains", id: "balances" }, h("div", { class: "card muted small" }, "Reading the chains…"));
  const forms = h("div", { class: "token-forms", id: "token-forms" });
  main.append(header("Tokens", "Create, mint and send tokens. Every change runs under the agent's spending limits.", select), balances, forms);

  let held = null;
  async function render() {
    held = await api("GET", `${path}/tokens`);
    const cards = [];
    if (held.trn) {
      const t = held.trn;
      cards.push(chainCard("The Root Network", t.address, t.tokens && h("div", { class: "token-list", id: "trn-tokens" }, ...t.tokens.map(balanceRow)), t.error));
    }
    if (held.xrpl) {
      const x = held.xrpl;
      const rows = x.error ? [] : [
        h("div", { class: "token-row", "data-token": "XRP" },
          h("div", { class: "token-badge xrpl" }, "XRP"),
          h("div", { class: "grow" }, h("div", { class: "strong" }, "XRP ", kindPill("native")), h("div", { class: "muted small" }, "the ledger's own coin")),
          balanceCell(x.xrp)),
        ...x.holding.map((l) => lineRow(l.currency, l.issuer, l.balance, `from ${short(l.issuer)} · limit ${l.limit}`, { "data-line": `${l.currency}/${l.issuer}` })),
        // What an issuer holds of its own currency is a debt; it reads as what is out there.
        ...x.currencies.map((c) => lineRow(c.currency, x.address, c.outstanding,
          `issued by this agent · ${c.holders} holder${c.holders === 1 ? "" : "s"}`, { "data-currency": c.currency }, " out")),
      ];
      cards.push(chainCard("XRP Ledger", x.address, h("div", { class: "token-list", id: "xrpl-tokens" }, ...rows), x.error));
    }
    balances.replaceChildren(...(cards.length ? cards : [empty("No chains", `${name} has neither the trn nor the xrpl plugin, so it holds no tokens here.`)]));
    renderForms();
  }

  // Forms are built once per agent (typing survives a refresh of the balances), and only for
  // the chains the agent reaches.
  let built = false;
  let mintFollow = () => {};
  let fresh = null; // a token just created: selected for minting as soon as it is listed
  const mintToken = h("select", { id: "mint-token" });
  const sendToken = h("select", { id: "send-token" });
  function options() {
    const created = held.trn && !held.trn.error ? held.trn.tokens.filter((t) => t.kind === "created") : [];
    const mintable = [...created.map((t) => ({ value: `trn:${t.symbol}`, label: `${t.symbol} · TRN` }))];
    if (held.xrpl && !held.xrpl.error) {
      for (const c of held.xrpl.currencies) mintable.push({ value: `xrpl:${c.currency}`, label: `${c.currency} · XRPL (issue)` });
    }
    const sendable = [];
    if (held.trn && !held.trn.error) for (const t of held.trn.tokens) if (t.kind !== "native") sendable.push({ value: `trn:${t.symbol}`, label: `${t.symbol} · TRN` });
    if (held.xrpl && !held.xrpl.error) for (const l of held.xrpl.holding) sendable.push({ value: `xrpl:${l.currency}:${l.issuer}`, label: `${l.currency} · XRPL (${short(l.issuer)})` });
    for (const [sel, list, none] of [[mintToken, mintable, "Create a token first"], [sendToken, sendable, "No tokens to send yet"]]) {
      const keep = sel === mintToken && list.some((o) => o.value === fresh) ? fresh : sel.value;
      sel.replaceChildren(...(list.length ? list.map((o) => h("option", { value: o.value, selected: o.value === keep }, o.label)) : [h("option", { value: "" }, none)]));
    }
  }

  function renderForms() {
    if (!built) {
      built = true;
      const cards = [];
      const done = async (message) => { toast(message, "ok"); await render(); };
      if (held.trn || held.xrpl) {
        // One card, one chain at a time: an ERC-20 on TRN, or a currency code on the XRPL.
        let chain = held.trn ? "trn" : "xrpl";
        const caps = (el) => () => (el.value = el.value.toUpperCase());
        const tname = input("create-name", { placeholder: "Maker Coin", maxlength: 64 });
        const symbol = input("create-symbol", { placeholder: "MKR", maxlength: 11 });
        symbol.oninput = caps(symbol);
        const decimals = input("create-decimals", { type: "number", min: 0, max: 36, value: 18, inputmode: "numeric" });
        const code = input("create-currency", { placeholder: "AGC", maxlength: 40 });
        code.oninput = caps(code);
        const trnFields = h("div", { class: "token-form-fields" }, field("Name", tname),
          h("div", { class: "field-pair" }, field("Symbol", symbol), field("Decimals", decimals)));
        const xrplFields = h("div", { class: "token-form-fields" }, field("Currency code", code, "Three letters or digits. Holders trust this agent for it; then mint to issue it."));
        const note = h("p", { class: "muted small" });
        const tabs = h("div", { class: "segmented", role: "tablist" });
        let submitLabel = null;
        const show = (to) => {
          chain = to;
          trnFields.hidden = chain !== "trn";
          xrplFields.hidden = chain !== "xrpl";
          note.textContent = chain === "trn"
            ? "An ERC-20 on TRN that this agent mints. Its symbol is the asset of its spending limits."
            : "A currency this agent issues on the XRP Ledger, under the spending limits for its code.";
          for (const b of tabs.children) b.classList.toggle("on", b.dataset.chain === chain);
          if (submitLabel) submitLabel.textContent = chain === "trn" ? "Create token" : "Create currency";
        };
        for (const [c, label] of [["trn", "TRN"], ["xrpl", "XRPL"]]) {
          if (held[c]) tabs.append(h("button", { type: "button", id: `create-chain-${c}`, "data-chain": c, onclick: () => show(c) }, label));
        }
        const card = form("create", "Create", null, [tabs.children.length > 1 ? tabs : null, note, trnFields, xrplFields].filter(Boolean), "Create token",
          async () => {
            if (chain === "trn") {
              const made = await api("POST", `${path}/tokens`, { name: tname.value, symbol: symbol.value, decimals: Number(decimals.value) });
              tname.value = symbol.value = "";
              fresh = `trn:${made.symbol}`;
              await done(`${made.symbol} created`);
            } else {
              const made = await api("POST", `${path}/tokens`, { chain: "xrpl", currency: code.value });
              code.value = "";
              fresh = `xrpl:${made.currency}`;
              await done(`${made.currency} ready to issue`);
            }
          });
        submitLabel = card.querySelector("#create-submit");
        show(chain);
        cards.push(card);
      }
      if (held.trn || held.xrpl) {
        const amount = input("mint-amount", { placeholder: "100", inputmode: "decimal", required: true });
        const to = input("mint-to");
        const hint = h("span", { class: "field-hint" });
        // TRN mints to the agent unless told otherwise; the XRPL needs a holder that trusts it
        const follow = () => {
          const xrpl = mintToken.value.startsWith("xrpl:");
          to.placeholder = xrpl ? "r…" : "the agent itself";
          hint.textContent = xrpl ? "An account with a trust line to this agent." : "Empty: to the agent's own account.";
        };
        mintToken.onchange = follow;
        mintFollow = follow;
        cards.push(form("mint", "Mint", "New units of a token this agent issues.",
          [field("Token", mintToken), field("Amount", amount), field("To", to, hint)], "Mint",
          async () => {
            const [chain, token] = mintToken.value.split(":");
            if (!token) throw new Error("Create a token first, or set up a currency to issue.");
            await api("POST", `${path}/tokens/${enc(token)}/mint`, { chain, amount: amount.value, to: to.value.trim() });
            amount.value = "";
            await done(chain === "xrpl" ? `Issued ${token}` : `Minted ${token}`);
          }));
      }
      if (held.trn || held.xrpl) {
        const to = input("send-to", { placeholder: "0x… or r…", required: true });
        const amount = input("send-amount", { placeholder: "10", inputmode: "decimal", required: true });
        cards.push(form("send", "Send", null, [field("Token", sendToken), field("To", to), field("Amount", amount)], "Send",
          async () => {
            const [chain, token, issuer] = sendToken.value.split(":");
            if (!token) throw new Error("There is nothing to send yet.");
            await api("POST", `${path}/tokens/${enc(token)}/transfer`, { chain, to: to.value.trim(), amount: amount.value, issuer: issuer || "" });
            amount.value = "";
            await done(`Sent ${token}`);
          }));
      }
      if (held.xrpl) {
        const currency = input("trust-currency", { placeholder: "USD", maxlength: 40, required: true });
        const issuer = input("trust-issuer", { placeholder: "r…", required: true });
        const limit = input("trust-limit", { placeholder: "1000", inputmode: "decimal", required: true });
        cards.push(form("trust", "Trust line", "Let this agent hold an issuer's currency, up to a limit (0 removes it).",
          [field("Currency", currency), field("Issuer", issuer), field("Limit", limit)], "Set trust line",
          async () => {
            await api("POST", `${path}/trustlines`, { currency: currency.value, issuer: issuer.value.trim(), limit: limit.value });
            await done(`Trusting ${short(issuer.value.trim())} for ${currency.value}`);
          }));
      }
      forms.replaceChildren(...cards);
    }
    options();
    if (mintToken.value === fresh) fresh = null; // chosen once; the user's choice from then on
    mintFollow();
  }

  try {
    await render();
  } catch (err) {
    balances.replaceChildren(h("p", { class: "form-error" }, err.message));
  }
  return listen((event) => {
    if (event && event.kind === "token" && event.agent === name) render().catch(() => {});
  });
}
