/* Streamzy room page: live chat over the vendored Socket.IO client.
   Runs under CSP script-src 'self'. User content is only ever set with textContent.

   Delivery contract (streamzy/realtime/handlers.py): `join {room, since_seq?}` answers with the
   messages we missed; live `message` events may arrive before that answer, so they are
   buffered until it does and everything is merged by sequence number (deduplicated by seq
   and id). After a reconnect we join again with since_seq = the highest seq we have seen,
   repeating while the server says has_more. Sends are idempotent per client_msg_id, so a
   pending message is simply sent again (same id) after a reconnect or on Retry. */
(() => {
  "use strict";

  const root = document.getElementById("chat");
  if (!root || typeof window.io !== "function") return;

  const $ = (id) => document.getElementById(id);
  const ROOM = Number(root.dataset.roomId);
  const ROOM_NAME = root.dataset.roomName || "";
  const ME = { id: Number(root.dataset.me), username: root.dataset.meUsername || "",
               display_name: root.dataset.meName || "", bot: false };
  const list = $("messages"), connEl = $("conn-state"), typingEl = $("typing");
  const presenceEl = $("presence"), form = $("composer"), input = $("composer-text");
  const toastEl = $("toast");
  const ACK_TIMEOUT = 15000;
  // Refusals no retry can change: the text goes back to the composer to be edited.
  const PERMANENT = new Set(["blocked", "too_long", "invalid_text", "empty", "invalid_input",
                             "conflict"]);

  const bySeq = new Map();          // seq -> element (confirmed messages)
  const seenIds = new Set();        // message ids already shown
  const pending = new Map();        // client_msg_id -> {el, text, state, attempt}
  let buffer = [];                  // live messages that arrived before the join answer
  let highest = 0, lowest = Infinity, hasOlder = false, loadingOlder = false;
  let joined = false, everJoined = false, ended = false, lastRead = 0, readTimer = 0;

  const make = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  };
  const leaving = () => Boolean(window.Streamzy && window.Streamzy.isLeaving());
  // A message body: the safe Markdown subset of static/markdown.js, or plain text without it.
  const renderText = (node, text) => {
    if (window.StreamzyMarkdown) node.replaceChildren(window.StreamzyMarkdown.render(text));
    else node.textContent = text;
  };

  /* ---------- connection state and notices ---------- */
  const setConn = (state, text) => { connEl.dataset.state = state; connEl.textContent = text; };

  let toastTimer = 0;
  const toast = (text, kind = "error", ms = 6000) => {
    toastEl.textContent = text;
    toastEl.className = "toast " + kind;
    toastEl.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toastEl.hidden = true; }, ms);
  };

  /* ---------- rendering ---------- */
  const edge = make("div", "history-edge");
  const olderButton = make("button", "button small", "Load older messages");
  olderButton.type = "button";
  olderButton.addEventListener("click", () => loadOlder());
  const edgeText = make("p", "muted", "");
  edge.append(olderButton, edgeText);
  list.prepend(edge);
  const updateEdge = () => {
    olderButton.hidden = !hasOlder;
    olderButton.disabled = loadingOlder;
    olderButton.textContent = loadingOlder ? "Loading…" : "Load older messages";
    edgeText.textContent = !everJoined ? "Loading messages…"
      : hasOlder ? "" : `This is the beginning of #${ROOM_NAME}.`;
    edgeText.hidden = edgeText.textContent === "";
  };

  const timeOf = (iso) => {
    const when = new Date(iso);
    const time = make("time", null, Number.isNaN(when.getTime()) ? ""
      : when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
    if (!Number.isNaN(when.getTime())) { time.dateTime = when.toISOString(); time.title = when.toLocaleString(); }
    return time;
  };

  const messageElement = (sender, text, createdAt) => {
    const item = make("div", "message");
    const head = make("div", "meta");
    const author = make("span", "author", sender.display_name || sender.username || "unknown");
    if (sender.username) author.title = "@" + sender.username;
    head.append(author);
    if (sender.bot) head.append(make("span", "tag", "bot"));
    head.append(timeOf(createdAt));
    const body = make("div", "text");
    renderText(body, text);
    body.dir = "auto";  // right-to-left text reads right; its direction stays inside it
    item.append(head, body);
    if (sender.id === ME.id) item.classList.add("mine");
    return item;
  };

  const nearBottom = () => list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const toBottom = () => { list.scrollTop = list.scrollHeight; };

  /* Insert a confirmed message in sequence order, before any pending ones. */
  const place = (item, seq) => {
    for (let node = list.lastElementChild; node && node !== edge; node = node.previousElementSibling) {
      if (node.dataset.seq && Number(node.dataset.seq) < seq) { node.after(item); return; }
    }
    edge.after(item);
  };

  /* Show one stored message once. Returns true when it was new. */
  const addMessage = (m) => {
    if (!m || m.room !== ROOM || !Number.isInteger(m.seq) || !m.sender) return false;
    if (m.sender.id === ME.id && pending.has(m.client_msg_id)) settle(m.client_msg_id);
    const existing = bySeq.get(m.seq);
    if (existing) {   // we drew it from our own ack: the server's text and time win
      renderText(existing.querySelector(".text"), String(m.text));
      existing.querySelector("time").replaceWith(timeOf(m.created_at));
      return false;
    }
    if (seenIds.has(m.id)) return false;
    const item = messageElement(m.sender, String(m.text), m.created_at);
    item.dataset.seq = String(m.seq);
    item.dataset.id = String(m.id);
    if (m.unreadable) item.classList.add("unreadable");
    place(item, m.seq);
    bySeq.set(m.seq, item);
    seenIds.add(m.id);
    highest = Math.max(highest, m.seq);
    lowest = Math.min(lowest, m.seq);
    stopTyping(m.sender.id);
    return true;
  };

  const addLive = (messages) => {
    const follow = nearBottom();
    let fresh = false;
    for (const m of [...messages].sort((a, b) => a.seq - b.seq)) fresh = addMessage(m) || fresh;
    if (fresh && follow) toBottom();
    if (fresh) markRead();
  };

  /* ---------- joining, resuming and history ---------- */
  const call = (event, payload) => socket.timeout(ACK_TIMEOUT).emitWithAck(event, payload);

  const join = async () => {
    joined = false;
    setConn("connecting", everJoined ? "Catching up…" : "Joining…");
    try {
      let since = everJoined ? highest : null;
      for (;;) {
        const ack = await call("join", since === null ? { room: ROOM } : { room: ROOM, since_seq: since });
        if (!ack || !ack.ok) return refused(ack);
        if (ack.mode === "history") hasOlder = Boolean(ack.has_more);
        setOnline(Array.isArray(ack.online) ? ack.online : [], ack.online_count);
        const first = !everJoined;
        everJoined = true;
        addLive(ack.messages || []);
        if (first) toBottom();
        if (ack.mode !== "since" || !ack.has_more) break;
        since = highest;  // more was missed than one answer holds: keep going
      }
    } catch {
      if (socket.connected) { socket.disconnect(); socket.connect(); }  // no answer: start over
      return;
    }
    joined = true;
    const early = buffer;
    buffer = [];
    addLive(early);
    updateEdge();
    setConn("connected", "Connected");
    pump();
  };

  const refused = (ack) => {
    const code = ack && ack.code;
    if (code === "session_ended" || code === "not_authenticated") return endSession(code);
    setConn("offline", "Not joined");
    toast((ack && ack.message) || "Could not join this room.");
    input.disabled = true;
  };

  const loadOlder = async () => {
    if (loadingOlder || !hasOlder || !socket.connected || lowest === Infinity) return;
    loadingOlder = true;
    updateEdge();
    try {
      const ack = await call("history", { room: ROOM, before_seq: lowest, limit: 50 });
      if (ack && ack.ok) {
        const height = list.scrollHeight, top = list.scrollTop;
        for (const m of ack.messages) addMessage(m);
        hasOlder = Boolean(ack.has_more);
        list.scrollTop = top + (list.scrollHeight - height);  // keep what the reader was reading
      } else if (ack) toast(ack.message || "Could not load older messages.");
    } catch {
      toast("Could not load older messages. Try again.");
    } finally {
      loadingOlder = false;
      updateEdge();
    }
  };
  list.addEventListener("scroll", () => { if (list.scrollTop < 120) loadOlder(); }, { passive: true });

  /* ---------- sending ---------- */
  const newId = () => {
    if (crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  };

  function settle(cmid) {
    const entry = pending.get(cmid);
    if (entry) { entry.el.remove(); pending.delete(cmid); }
  }

  const setPendingState = (entry, state, why = "") => {
    entry.state = state;
    entry.el.classList.toggle("pending", state === "sending");
    entry.el.classList.toggle("failed", state === "failed" || state === "refused");
    entry.el.setAttribute("aria-busy", String(state === "sending"));
    const bar = entry.el.querySelector(".failure");
    if (bar) bar.remove();
    if (state !== "failed" && state !== "refused") return;
    const failure = make("div", "failure");
    failure.append(make("span", "failure-text", "Not sent: " + why));
    if (state === "failed") {
      const retry = make("button", "retry", "Retry");
      retry.type = "button";
      retry.addEventListener("click", () => { setPendingState(entry, "sending"); pump(); });
      failure.append(retry);
    } else {
      const edit = make("button", "retry", "Edit");
      edit.type = "button";
      edit.addEventListener("click", () => { settle(entry.cmid); putInComposer(entry.text); });
      failure.append(edit);
    }
    const discard = make("button", "retry discard", "Discard");
    discard.type = "button";
    discard.addEventListener("click", () => { settle(entry.cmid); input.focus(); });
    failure.append(discard);
    entry.el.append(failure);
  };

  const describe = (ack) => {
    if (!ack) return "no answer from the server.";
    if (ack.code === "rate_limited") {
      const wait = Math.max(1, Math.ceil(Number(ack.retry_after) || 1));
      return `you are sending too fast. Try again in ${wait} s.`;
    }
    return (ack.message || "the server refused it.").replace(/^\w/, (c) => c.toLowerCase());
  };

  const putInComposer = (text) => {
    const newer = input.value.trim();
    input.value = newer ? `${text}\n\n${input.value}` : text;
    input.rows = Math.min(8, Math.max(2, input.value.split("\n").length));
    input.focus();
    input.setSelectionRange(text.length, text.length);
  };

  /* Refused for what it says (blocked, too long, ...): Retry could never succeed and
     Discard would lose it, so the text goes back into the composer to be edited. If
     newer text is being typed there, the bubble stays, marked, with Edit to bring it back. */
  const giveBack = (entry, why) => {
    if (!input.value.trim()) {
      settle(entry.cmid);
      putInComposer(entry.text);
      toast(`Message not sent: ${why} It is back in the message box: edit it and send again.`);
      return;
    }
    setPendingState(entry, "refused", why);
    toast(`Message not sent: ${why} Use Edit to bring it back to the message box.`);
  };

  const fail = (cmid, ack) => {
    const entry = pending.get(cmid);
    if (!entry) return;
    const why = describe(ack);
    if (ack && PERMANENT.has(ack.code)) { giveBack(entry, why); return; }
    const follow = nearBottom();
    setPendingState(entry, "failed", why);
    if (follow) toBottom();
    toast(`Message not sent: ${why}`);
  };

  /* One message in flight at a time, so the room shows them in the order they were typed
     (the server may handle one connection's events concurrently). */
  let inflight = null;
  function pump() {
    if (inflight || !joined || !socket.connected) return;
    for (const [cmid, entry] of pending) {
      if (entry.state === "sending") { transmit(cmid); return; }
    }
  }

  function transmit(cmid) {
    const entry = pending.get(cmid);
    inflight = cmid;
    const attempt = ++entry.attempt;
    socket.timeout(ACK_TIMEOUT).emit("message", { room: ROOM, client_msg_id: cmid, text: entry.text },
      (err, ack) => {
        const current = pending.get(cmid);
        if (current && current.attempt !== attempt) return;  // a newer attempt owns it
        if (inflight === cmid) inflight = null;
        if (!current) return pump();  // its broadcast arrived first and settled it
        if (err) {
          if (socket.connected) fail(cmid, null);  // else: sent again after the next join
        } else if (ack && ack.ok) {
          const follow = nearBottom();
          settle(cmid);
          addMessage({ id: ack.id, room: ROOM, seq: ack.seq, sender: ME, client_msg_id: cmid,
                       text: entry.text, created_at: new Date().toISOString() });
          if (follow) toBottom();
          markRead();
        } else if (ack && ack.code === "session_ended") {
          return endSession(ack.code);
        } else fail(cmid, ack);
        pump();
      });
  }

  const send = () => {
    const text = input.value.trim();
    if (!text) return;
    const cmid = newId();
    const item = messageElement(ME, text, new Date().toISOString());
    item.dataset.clientMsgId = cmid;
    const entry = { el: item, text, state: "sending", attempt: 0, cmid };
    pending.set(cmid, entry);
    setPendingState(entry, "sending");
    list.append(item);
    toBottom();
    input.value = "";
    input.rows = 2;
    pump();
  };

  form.addEventListener("submit", (event) => { event.preventDefault(); send(); input.focus(); });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });

  /* ---------- typing, presence, read position ---------- */
  let typingSentAt = -Infinity;
  input.addEventListener("input", () => {
    input.rows = Math.min(8, Math.max(2, input.value.split("\n").length));
    const now = Date.now();
    if (input.value.trim() && joined && now - typingSentAt >= 2000) {
      typingSentAt = now;
      socket.emit("typing", { room: ROOM });
    }
  });

  const typers = new Map();  // user id -> {name, timer}
  const renderTyping = () => {
    const names = [...typers.values()].map((t) => t.name);
    typingEl.textContent = names.length === 0 ? ""
      : names.length === 1 ? `${names[0]} is typing…`
      : names.length === 2 ? `${names[0]} and ${names[1]} are typing…`
      : "Several people are typing…";
  };
  function stopTyping(userId) {
    const entry = typers.get(userId);
    if (!entry) return;
    clearTimeout(entry.timer);
    typers.delete(userId);
    renderTyping();
  }
  // Typing indicators arrive in batches per room (our own name is in them too: skip it).
  const onTyping = (data) => {
    if (!data || data.room !== ROOM || !Array.isArray(data.users)) return;
    for (const user of data.users) {
      if (!user || user.id === ME.id) continue;
      stopTyping(user.id);
      const timer = setTimeout(() => stopTyping(user.id), 3000);
      typers.set(user.id, { name: user.display_name || user.username, timer });
    }
    renderTyping();
  };

  /* Who is online: the join answer lists them (in a large room only the first ones, with
     the count), then `presence` events say who came and who went. */
  const online = new Map();  // user id -> person
  let onlineCount = 0;
  const onlineTitle = $("online-title");
  const renderPresence = () => {
    const people = [...online.values()].sort((a, b) =>
      (a.display_name || a.username).localeCompare(b.display_name || b.username));
    presenceEl.replaceChildren(...people.map((person) => {
      const item = make("li", null, person.display_name || person.username);
      item.title = "@" + person.username;
      if (person.bot) item.append(" ", make("span", "tag", "bot"));
      if (person.id === ME.id) item.append(" ", make("span", "muted", "(you)"));
      return item;
    }));
    const more = onlineCount - people.length;
    if (more > 0) presenceEl.append(make("li", "muted presence-more", `and ${more} more`));
    if (onlineTitle) onlineTitle.textContent = onlineCount ? `Online (${onlineCount})` : "Online";
  };
  function setOnline(people, count) {
    online.clear();
    for (const person of people || []) {
      if (person && Number.isInteger(person.id)) online.set(person.id, person);
    }
    if (people && !online.has(ME.id)) online.set(ME.id, ME);  // a long list may not reach us
    onlineCount = Math.max(Number.isInteger(count) ? count : 0, online.size);
    renderPresence();
  }
  const onPresence = (data) => {
    if (!data || data.room !== ROOM || !joined && !everJoined) return;
    for (const id of Array.isArray(data.left) ? data.left : []) online.delete(id);
    for (const person of Array.isArray(data.joined) ? data.joined : []) {
      if (person && Number.isInteger(person.id)) online.set(person.id, person);
    }
    onlineCount = Number.isInteger(data.online_count) ? data.online_count : online.size;
    renderPresence();
  };

  function markRead() {
    clearTimeout(readTimer);
    readTimer = setTimeout(() => {
      if (document.visibilityState !== "visible" || !joined || highest <= lastRead) return;
      lastRead = highest;
      socket.emit("read", { room: ROOM, seq: highest }, () => {});  // acked: the server has it
    }, 500);
  }
  document.addEventListener("visibilitychange", markRead);

  /* ---------- the end of a session ---------- */
  /* `reason` is why the server ended it, or the code it refused us with; app.js knows
     which sign-in notice explains it. */
  function endSession(reason) {
    if (ended) return;
    ended = true;
    socket.io.reconnection(false);
    socket.disconnect();
    input.disabled = true;
    setConn("offline", "Signed out");
    if (leaving()) return;  // this tab is signing out itself; its own redirect wins
    window.location.assign(window.Streamzy ? window.Streamzy.signInPage(reason) : "/login");
  }

  /* ---------- the socket ---------- */
  // Reconnects back off with jitter (each delay randomised by ±50 %), so clients that lost
  // the server together do not all come back in the same second.
  const socket = window.io({
    transports: ["websocket", "polling"],
    tryAllTransports: true,
    reconnectionDelay: 1000,
    reconnectionDelayMax: 10000,
    randomizationFactor: 0.5,
    withCredentials: true,
    // The session cookie authenticates; the CSRF token rides along so the server can also
    // bind the handshake to this page (the Origin allowlist is the check today).
    auth: { csrf: window.Streamzy ? window.Streamzy.csrfToken() : "" },
  });

  socket.on("connect", () => { join(); });
  socket.on("message", (m) => {
    if (!joined) { buffer.push(m); return; }
    if (m && m.room === ROOM && Number.isInteger(m.seq) && m.seq > highest + 1) {
      buffer.push(m);  // a gap: an earlier one never arrived live; catch up, then show this
      join();
      return;
    }
    addLive([m]);
  });
  socket.on("typing", onTyping);
  socket.on("presence", onPresence);
  socket.on("session_ended", (data) => endSession(data && data.reason));
  socket.on("connect_error", (err) => {
    const code = err && err.message;
    if (code === "password_change_required") { window.location.assign("/account/password?first=1"); return; }
    if (code === "not_authenticated" || code === "session_expired") { endSession(code); return; }
    if (!socket.active) setTimeout(() => { if (!ended) socket.connect(); }, 5000);  // unknown refusal
    setConn("offline", "Offline — reconnecting…");
  });
  socket.on("resync", () => { if (joined) join(); });  // the server may have missed deliveries
  socket.on("kicked", (data) => toast((data && data.message) || "Disconnected by the server."));
  // The server is restarting on purpose: its transport closes next and socket.io reconnects
  // by itself; the join after it catches up with since_seq.
  // It asks us to come back at a random moment within spread_seconds: thousands of clients
  // of one process then reconnect spread out instead of in one storm.
  let restartTimer = 0;
  socket.on("restart", (data) => {
    const spread = Math.min(60, Math.max(0, Number(data && data.spread_seconds) || 0));
    setConn("connecting", "Server restarting — reconnecting…");
    socket.io.reconnection(false);
    clearTimeout(restartTimer);
    restartTimer = setTimeout(() => {
      if (ended) return;
      socket.io.reconnection(true);
      if (!socket.connected) socket.connect();
    }, 250 + Math.random() * spread * 1000);
  });
  socket.on("disconnect", (reason) => {
    joined = false;
    inflight = null;  // its answer is lost; it is sent again (same id) after the next join
    setOnline(null, 0);  // who is online is unknown while we are not: the next join says
    for (const id of [...typers.keys()]) stopTyping(id);
    if (ended || leaving()) return;
    setConn("offline", "Offline — reconnecting…");
    // The server hung up on purpose (e.g. flooding): socket.io will not retry by itself.
    // If the session is gone, the next handshake says so and we go to the sign-in page.
    if (reason === "io server disconnect") setTimeout(() => { if (!ended) socket.connect(); }, 5000);
  });
  socket.io.on("reconnect_attempt", () => { if (!ended) setConn("connecting", "Reconnecting…"); });
  window.addEventListener("pagehide", () => { ended = true; socket.disconnect(); });
  window.addEventListener("pageshow", (event) => { if (event.persisted) window.location.reload(); });

  updateEdge();
  input.focus();
})();
