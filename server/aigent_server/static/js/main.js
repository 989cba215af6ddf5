// The web app: a hash router over its pages, all talking to the same process's API.
import { restore, session } from "./api.js";
import { connect } from "./events.js";
import { h, short } from "./ui.js";
import { agentsPage } from "./pages/agents.js";
import { chatPage } from "./pages/chat.js";
import { explorerPage } from "./pages/explorer.js";
import { moneyPage } from "./pages/money.js";
import { tokensPage } from "./pages/tokens.js";
import { walletPage } from "./pages/wallet.js";

const PAGES = { agents: agentsPage, chat: chatPage, explorer: explorerPage, money: moneyPage, tokens: tokensPage, wallet: walletPage };
let leave = null;

export async function route() {
  const [name, ...rest] = (location.hash.replace(/^#\//, "") || "agents").split("/");
  const page = PAGES[name] ? name : "agents";
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.page === page);
  const who = document.getElementById("who");
  who.textContent = session.owner ? (session.owner === "operator" ? "operator" : short(session.owner)) : "Sign in";
  who.classList.toggle("signed-in", Boolean(session.owner));
  if (leave) leave();
  leave = null;
  const main = document.getElementById("page");
  main.replaceChildren();
  main.dataset.page = page;
  if (!session.owner && page !== "wallet") {
    main.append(
      h("section", { class: "hero" },
        h("div", { class: "hero-mark" }),
        h("h1", {}, "Agents that earn and pay"),
        h("p", { class: "muted" }, "Sign in with the wallet built into this page: a key made in your browser that never leaves it."),
        h("a", { class: "button primary", href: "#/wallet" }, "Open your wallet")),
    );
    return;
  }
  leave = (await PAGES[page](main, rest.map(decodeURIComponent))) || null;
}

async function start() {
  if (await restore()) connect();
  window.addEventListener("hashchange", route);
  await route();
  document.body.dataset.ready = "1";
}

start();
