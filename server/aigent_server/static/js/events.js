// One live feed per tab (GET /api/events), shared by the pages that show it.
const KINDS = ["message.in", "message.out", "agent.state", "agent.error", "confirmation.pending", "confirmation.resolved",
  "payment.committed", "payment.released", "payment.held", "paid_message", "settlement.claim_sent", "settlement.claim_received",
  "settlement.channel_opened", "settlement.channel_funded", "settlement.channel_closed", "settlement.redeemed", "anchor.batch", "plugin.event", "token"];
export const feed = { events: [], listeners: new Set(), source: null, live: false };

export function connect() {
  if (feed.source) return;
  const source = new EventSource("/api/events", { withCredentials: true });
  feed.source = source;
  source.onopen = () => { feed.live = true; notify(null); };
  source.onerror = () => { feed.live = false; notify(null); };
  for (const kind of KINDS) {
    source.addEventListener(kind, (message) => {
      const event = JSON.parse(message.data);
      if (feed.events.some((e) => e.id === event.id)) return; // replayed after a reconnect
      feed.events.push(event);
      if (feed.events.length > 500) feed.events.shift();
      notify(event);
    });
  }
}

export function disconnect() {
  if (feed.source) feed.source.close();
  feed.source = null;
  feed.events = [];
  feed.live = false;
}

export function listen(fn) {
  feed.listeners.add(fn);
  return () => feed.listeners.delete(fn);
}

function notify(event) {
  for (const fn of feed.listeners) fn(event);
}
