// The demo page: a thin view over the wasm client. Everything about
// transports, reconnects and resuming lives in the client.
//
// Query parameters: name, room (join at once), transport=websocket (force
// WebSocket), token (for a server that requires one) and tokenUrl (where a
// fresh token is fetched when the server says it is about to expire, as an
// app would ask its own backend), and for trying failure modes: wt (another
// WebTransport URL), certHash (hex hashes to trust instead of the
// server's), headStart and wtTimeout (ms).

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const forceWebSocket = params.get("transport") === "websocket";

// What tests and curious people can inspect from the console.
const demo = (window.wtchatDemo = {
  messages: [],
  events: [],
  sends: {},
  client: null,
  ready: false,
  memberCount: 0,
});

function show(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

let init, Client;
try {
  ({ default: init, Client } = await import("./pkg/wtchat_client.js"));
  await init();
} catch (error) {
  show("The wasm client is not built. Run `cargo xtask run`, which builds it. (" + error + ")");
  throw error;
}

$("force-websocket").checked = forceWebSocket;
$("force-websocket").addEventListener("change", (event) => {
  const next = new URLSearchParams(location.search);
  if (event.target.checked) next.set("transport", "websocket");
  else next.delete("transport");
  location.search = next.toString();
});

const options = { forceWebSocket };
if (params.get("wt")) options.webtransportUrl = params.get("wt");
if (params.get("certHash")) options.certificateHashes = params.getAll("certHash");
if (params.get("headStart")) options.headStartMs = Number(params.get("headStart"));
if (params.get("wtTimeout")) options.webtransportTimeoutMs = Number(params.get("wtTimeout"));
if (params.get("token")) options.token = params.get("token");
const client = new Client(options);
demo.client = client;

// A token that expires is replaced inside the session: the client asks this
// callback for a fresh one, here from the app's token endpoint.
const tokenUrl = params.get("tokenUrl");
if (tokenUrl) {
  client.onTokenExpiring(async () => {
    const response = await fetch(tokenUrl, { cache: "no-store" });
    if (!response.ok) throw new Error(`the token endpoint answered ${response.status}`);
    return (await response.text()).trim();
  });
}
client.on("token", (event) => demo.events.push({ type: "token", at: at(), ...event }));

let room = null;
let me = null;
const typists = new Map();

// Events are stamped with the page's clock (ms since navigation), so that
// tests can tell how long the transport choice took.
const at = () => Math.round(performance.now());

client.on("state", (event) => {
  demo.events.push({ type: "state", at: at(), ...event });
  $("state").textContent = event.state + (event.retryInMs ? ` (retry in ${Math.round(event.retryInMs)} ms)` : "");
  $("state").dataset.state = event.state;
  if (event.state === "closed" && event.reason) show("Disconnected: " + event.reason);
});

client.on("transport", (event) => {
  demo.events.push({ type: "transport", at: at(), ...event });
  const badge = $("badge");
  badge.dataset.transport = event.transport;
  badge.textContent = event.transport === "webtransport" ? "WebTransport" : "WebSocket";
  badge.title = event.reason;
  const fallback = $("fallback");
  fallback.hidden = !event.fallbackReason;
  fallback.textContent = event.fallbackReason ? "Using WebSocket: " + event.fallbackReason : "";
});

client.on("joined", (event) => {
  demo.events.push({ type: "joined", ...event });
  if (event.room !== room) return;
  loadingOlder = false;
  renderMembers(event);
  if (event.gap) system("Some earlier messages are no longer available.");
  demo.ready = true;
});

client.on("members", (event) => {
  if (event.room === room) renderMembers(event);
});

client.on("presence", (event) => {
  demo.events.push({ type: "presence", ...event });
  if (event.room !== room) return;
  const verb = { joined: "joined", left: "left", disconnected: "disconnected" }[event.change];
  system(`${event.member.name} ${verb}`);
  typists.delete(event.member.id);
  renderTyping();
});

client.on("message", (event) => {
  demo.messages.push(event);
  if (event.room !== room) return;
  typists.delete(event.sender.id);
  renderTyping();
  const item = messageItem(event);
  const own = sentBySeq.get(event.seq);
  if (own) {
    sentBySeq.delete(event.seq);
    settle(own, item);
  }
  append(item);
  showOlder();
});

function messageItem(event) {
  const item = document.createElement("li");
  item.dataset.seq = event.seq;
  const time = document.createElement("time");
  time.dateTime = new Date(event.sentAt).toISOString();
  time.textContent = new Date(event.sentAt).toLocaleTimeString();
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = event.sender.name;
  item.append(time, who, document.createTextNode(event.body));
  return item;
}

// Older messages: scrolled to the top (or the button there), the page asks
// for those below the oldest it shows, and puts them above, keeping what
// the reader looks at in place.
let olderMayExist = true;
let loadingOlder = false;

function oldestShown() {
  const first = $("messages").querySelector("li[data-seq]");
  return first ? Number(first.dataset.seq) : null;
}

function loadOlder() {
  const oldest = oldestShown();
  if (loadingOlder || !olderMayExist || oldest === null || oldest <= 1) return;
  loadingOlder = client.history(room, oldest);
}

client.on("history", (event) => {
  demo.events.push({ type: "history", room: event.room, count: event.messages.length, more: event.more });
  if (event.room !== room) return;
  loadingOlder = false;
  olderMayExist = event.more;
  const list = $("messages");
  const oldest = oldestShown() ?? Infinity;
  const older = event.messages.filter((m) => m.seq < oldest).map(messageItem);
  const height = list.scrollHeight;
  list.prepend(...older);
  list.scrollTop += list.scrollHeight - height;
  showOlder();
});

function showOlder() {
  $("older").hidden = !(olderMayExist && (oldestShown() ?? 1) > 1);
}

$("messages").addEventListener("scroll", () => {
  if ($("messages").scrollTop < 8) loadOlder();
});
$("older").addEventListener("click", loadOlder);

// The page's own messages: each waits below the conversation, "sending…"
// until the server answers; once its number is known and the message is
// in the conversation, the waiting line goes and the message is marked as
// this page's. A refused one stays, with the server's reason and a retry.
const outgoing = new Map();
const sentBySeq = new Map();

client.on("send", (event) => {
  demo.sends[event.id] = event;
  demo.events.push({ type: "send", ...event });
  if (event.room !== room) return;
  let item = outgoing.get(event.id);
  if (!item) {
    item = document.createElement("li");
    item.dataset.id = event.id;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = me;
    const status = document.createElement("span");
    status.className = "status";
    item.append(who, document.createTextNode(event.body), status);
    outgoing.set(event.id, item);
    $("outgoing").append(item);
  }
  item.className = event.state;
  const status = item.querySelector(".status");
  status.textContent = { pending: "sending…", sent: "sent", failed: `not sent: ${event.reason}` }[event.state];
  if (event.state === "failed" && event.code !== "MESSAGE_TOO_LARGE") {
    const retry = document.createElement("button");
    retry.className = "retry";
    retry.textContent = "retry";
    retry.addEventListener("click", () => {
      item.remove();
      outgoing.delete(event.id);
      client.send(event.room, event.body);
    });
    status.append(" ", retry);
  }
  if (event.state === "sent") {
    const shown = $("messages").querySelector(`li[data-seq="${event.seq}"]`);
    if (shown) settle(event.id, shown);
    else sentBySeq.set(event.seq, event.id);
  }
});

function settle(id, shown) {
  shown.classList.add("mine");
  shown.dataset.id = id;
  outgoing.get(id)?.remove();
  outgoing.delete(id);
}

client.on("typing", (event) => {
  if (event.room !== room) return;
  typists.set(event.member.id, { name: event.member.name, until: Date.now() + 3000 });
  renderTyping();
});

client.on("error", (event) => {
  demo.events.push({ type: "error", ...event });
  console.warn("wtchat:", event.code, event.text);
  if (["INVALID_ROOM_NAME", "INVALID_DISPLAY_NAME"].includes(event.code)) {
    system(event.text);
  }
});

client.connect();

function append(item) {
  const list = $("messages");
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.append(item);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function system(text) {
  const item = document.createElement("li");
  item.className = "system";
  item.textContent = text;
  append(item);
}

// A small room lists everyone; a large one shows the count, the members
// fetched so far, and a button that fetches the next page.
function renderMembers({ members, count, more }) {
  const list = $("members");
  const items = members.map((member) => {
    const item = document.createElement("li");
    item.textContent = member.name;
    if (member.name === me) item.className = "me";
    return item;
  });
  if (more) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.id = "more-members";
    button.textContent = `${count - members.length} more…`;
    button.addEventListener("click", () => client.moreMembers(room));
    item.append(button);
    items.push(item);
  }
  list.replaceChildren(...items);
  $("member-count").textContent = count === 1 ? "1 member" : `${count} members`;
  demo.memberCount = count;
}

function renderTyping() {
  const now = Date.now();
  for (const [id, typist] of typists) if (typist.until < now) typists.delete(id);
  const names = [...typists.values()].map((t) => t.name);
  $("typing").textContent =
    names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`;
}
setInterval(renderTyping, 1000);

function enter(name, roomName) {
  me = name;
  room = roomName;
  $("room-title").textContent = "#" + room;
  $("join").hidden = true;
  $("chat").hidden = false;
  client.join(room, name);
  $("text").focus();
}

$("join").addEventListener("submit", (event) => {
  event.preventDefault();
  enter($("name").value.trim(), $("room").value.trim());
});

let lastTyping = 0;
$("text").addEventListener("input", () => {
  if (Date.now() - lastTyping > 2000 && $("text").value) {
    lastTyping = Date.now();
    client.typing(room);
  }
});

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value;
  if (!text) return;
  // Sent now, or as soon as the client is connected again.
  if (client.send(room, text)) {
    $("text").value = "";
    lastTyping = 0;
  }
});

if (params.get("name") && params.get("room")) enter(params.get("name"), params.get("room"));
