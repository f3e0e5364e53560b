/* Streamzy room page: live chat over the vendored Socket.IO client.
   Runs under CSP script-src 'self'. User content is only ever set with textContent.

   Delivery contract (streamzy/realtime/handlers.py): `join {room, since_seq?}` answers with the
   messages we missed; live `message` events may arrive before that answer, so they are
   buffered until it does and everything is merged by sequence number (deduplicated by seq
   and id). After a reconnect we join again with since_seq = the highest seq we have seen,
   repeating while the server says has_more. Sends are idempotent per client_msg_id, so a
   pending message is simply sent again (same id) after a reconnect or on Retry.

   Stored messages change (edits, deletes, reactions): each state carries the room's change
   sequence, and a state is applied only if it is at least as new as the one shown. The
   join after a reconnect also passes since_change (the highest change seen), and applies
   the answer's `changes`, repeating while has_more_changes.

   Moderation reaches the page as it happens (streamzy/realtime/room_notices.py): `removed`
   (kicked, banned, left elsewhere) ends our part in the room for good on this page, with
   no re-join on reconnect; `standing` (our role or mute changed) and `room_state` (archive,
   slow mode) update the composer's note and the moderator controls.

   How a message looks is static/chat-render.js; what can be done to it (toolbar, picker,
   dialogs) static/chat-actions.js; other rooms, the title, notifications and DMs
   static/chat-notify.js. */
(() => {
  "use strict";

  const root = document.getElementById("chat");
  const R = window.StreamzyRender, A = window.StreamzyActions, N = window.StreamzyNotify;
  if (!root || typeof window.io !== "function" || !R || !A || !N) return;

  const $ = (id) => document.getElementById(id);
  const ROOM = Number(root.dataset.roomId);
  const ROOM_NAME = root.dataset.roomName || "";
  const IS_DM = root.dataset.kind === "dm";
  const ME = { id: Number(root.dataset.me), username: root.dataset.meUsername || "",
               display_name: root.dataset.meName || "", bot: false };
  const list = $("messages"), connEl = $("conn-state"), typingEl = $("typing");
  const presenceEl = $("presence"), form = $("composer"), input = $("composer-text");
  const toastEl = $("toast"), modeEl = $("composer-mode"), noteEl = $("composer-note");
  const ACK_TIMEOUT = 15000;
  // Refusals no retry can change: the text goes back to the composer to be edited.
  // (muted, archived and slow mode too: the text waits in the composer, not in a bubble.)
  const PERMANENT = new Set(["blocked", "too_long", "invalid_text", "empty", "invalid_input",
                             "conflict", "muted", "archived", "slow_mode"]);

  const bySeq = new Map();          // seq -> record {m, el, local} (confirmed messages)
  const byId = new Map();           // message id -> the same record
  const pending = new Map();        // client_msg_id -> {el, text, state, attempt, replyTo}
  const people = new Map();         // user id -> name, for reaction titles
  const ctx = { me: ME, canModerate: false, people };
  let buffer = [];                  // live events that arrived before the join answer
  let highest = 0, lowest = Infinity, hasOlder = false, loadingOlder = false;
  let joined = false, everJoined = false, ended = false, lastRead = 0, readTimer = 0;
  let removed = false, removedLabel = "";  // taken out of the room (kicked, banned, left elsewhere)
  let maxChange = 0, changesKnown = false;  // changesKnown: the server speaks since_change
  const { make } = R;
  const leaving = () => Boolean(window.Streamzy && window.Streamzy.isLeaving());

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
      : hasOlder ? "" : IS_DM ? "This is the beginning of your conversation."
    : `This is the beginning of #${ROOM_NAME}.`;
    edgeText.hidden = edgeText.textContent === "";
  };

  let retitleTimer = 0;
  const learn = (person) => {
    if (!person || !Number.isInteger(person.id)) return;
    const known = people.has(person.id);
    people.set(person.id, R.nameOf(person));
    if (known || retitleTimer) return;
    retitleTimer = setTimeout(() => {  // once per batch of newcomers
      retitleTimer = 0;
      for (const record of byId.values()) {
        if ((record.m.reactions || []).length) R.retitle(record.el, record.m, ctx);
      }
    }, 0);
  };
  const relayout = () => R.relayout(list);
  const noteChange = (seq) => { if (Number.isInteger(seq)) maxChange = Math.max(maxChange, seq); };

  const nearBottom = () => list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const toBottom = () => { list.scrollTop = list.scrollHeight; };

  /* Insert a confirmed message in sequence order, before any pending ones. */
  const place = (item, seq) => {
    for (let node = list.lastElementChild; node && node !== edge; node = node.previousElementSibling) {
      if (node.dataset.seq && Number(node.dataset.seq) < seq) { node.after(item); return; }
    }
    edge.after(item);
  };

  /* Show one stored message once. Returns true when it was new. `local`: drawn from our
     own ack, so the server's copy (live or from history) replaces it when it comes. */
  const addMessage = (m, local = false) => {
    if (!m || m.room !== ROOM || !Number.isInteger(m.seq) || !m.sender) return false;
    if (m.sender.id === ME.id && pending.has(m.client_msg_id)) settle(m.client_msg_id);
    learn(m.sender);
    if (m.reply_to) learn(m.reply_to.sender);
    if (!local) noteChange(m.change_seq);
    const existing = bySeq.get(m.seq);
    if (existing) {
      if (!local && (existing.local || (m.change_seq || 0) >= (existing.m.change_seq || 0))) {
        if (existing.local) R.setTime(existing.el, m.created_at);
        existing.local = false;
        existing.m = m;
        R.update(existing.el, m, ctx);
      }
      return false;
    }
    if (byId.has(m.id)) return false;
    const item = R.build(m, ctx);
    item.dataset.seq = String(m.seq);
    item.dataset.id = String(m.id);
    place(item, m.seq);
    const record = { m, el: item, local };
    bySeq.set(m.seq, record);
    byId.set(m.id, record);
    highest = Math.max(highest, m.seq);
    lowest = Math.min(lowest, m.seq);
    stopTyping(m.sender.id);
    return true;
  };

  /* A newer state of a message we may show (edited, deleted, reacted to). */
  const applyChange = (m) => {
    if (!m || m.room !== ROOM || !Number.isInteger(m.id)) return;
    noteChange(m.change_seq);
    learn(m.sender);
    const record = byId.get(m.id);
    if (!record || (m.change_seq || 0) < (record.m.change_seq || 0)) return;
    record.m = m;
    record.local = false;
    R.update(record.el, m, ctx);
    for (const child of list.querySelectorAll(`.message[data-reply-to="${m.id}"]`)) {
      const reply = byId.get(Number(child.dataset.id));
      if (!reply || !reply.m.reply_to) continue;
      reply.m = { ...reply.m, reply_to: { ...reply.m.reply_to, deleted: Boolean(m.deleted),
                                         text: m.deleted ? "" : R.excerpt(m.text) } };
      R.update(child, reply.m, ctx);
    }
    if (m.deleted && mode && mode.id === m.id) endMode();
    relayout();
  };
  /* What an ack told us about our own change, as a state (never older than the one shown). */
  const applyOwn = (id, changeSeq, patch) => {
    const record = byId.get(id);
    noteChange(changeSeq);
    if (!record || !Number.isInteger(changeSeq) || changeSeq <= (record.m.change_seq || 0)) return;
    applyChange({ ...record.m, ...patch(record.m), change_seq: changeSeq });
  };

  /* "New messages": a line above the first message that arrived unread. */
  let unreadLine = null, hiddenSince = null, unseenHere = 0;
  const markUnreadFrom = (item) => {
    if (unreadLine) unreadLine.remove();
    unreadLine = make("div", "unread-line");
    unreadLine.append(make("span", null, "New messages"));
    item.before(unreadLine);
  };
  const clearUnreadLine = () => { if (unreadLine) { unreadLine.remove(); unreadLine = null; } };

  const addLive = (messages) => {
    const follow = nearBottom();
    let fresh = false;
    for (const m of [...messages].sort((a, b) => a.seq - b.seq)) {
      if (!addMessage(m)) continue;
      fresh = true;
      if (hiddenSince !== null && m.sender.id !== ME.id && m.seq > hiddenSince) {
        if (unseenHere === 0) markUnreadFrom(bySeq.get(m.seq).el);
        unseenHere += 1;
      }
    }
    if (!fresh) return;
    relayout();
    if (follow) toBottom();
    N.setHereUnseen(unseenHere);
    markRead();
  };

  /* ---------- joining, resuming and history ---------- */
  const call = (event, payload) => socket.timeout(ACK_TIMEOUT).emitWithAck(event, payload);

  const join = async () => {
    if (removed) return;  // a reconnect must not walk back into a room we were taken out of
    joined = false;
    setConn("connecting", everJoined ? "Catching up…" : "Joining…");
    try {
      let since = everJoined ? highest : null;
      let sinceChange = everJoined && changesKnown ? maxChange : null;
      for (;;) {
        const payload = { room: ROOM };
        if (since !== null) payload.since_seq = since;
        if (sinceChange !== null) payload.since_change = sinceChange;
        const ack = await call("join", payload);
        if (removed) return;  // taken out while the answer was on its way
        if (!ack || !ack.ok) return refused(ack);
        if (ack.mode === "history") hasOlder = Boolean(ack.has_more);
        applyRoom(ack.room || {});
        setOnline(Array.isArray(ack.online) ? ack.online : [], ack.online_count);
        const first = !everJoined;
        everJoined = true;
        addLive(ack.messages || []);
        let cursor = sinceChange;
        for (const m of Array.isArray(ack.changes) ? ack.changes : []) {
          applyChange(m);
          if (Number.isInteger(m && m.change_seq)) cursor = Math.max(cursor || 0, m.change_seq);
        }
        const moreChanges = Boolean(ack.has_more_changes) && cursor !== null;
        if (Number.isInteger(ack.last_change)) {
          changesKnown = true;
          if (!moreChanges) noteChange(ack.last_change);
        }
        if (first) opened();
        if (!(ack.mode === "since" && ack.has_more) && !moreChanges) break;
        since = highest;  // more was missed than one answer holds: keep going
        sinceChange = changesKnown ? cursor : null;
      }
    } catch {
      if (socket.connected) { socket.disconnect(); socket.connect(); }  // no answer: start over
      return;
    }
    joined = true;
    const early = buffer;
    buffer = [];
    addLive(early.filter((e) => e.kind === "message").map((e) => e.data));
    for (const e of early) if (e.kind === "change") applyChange(e.data);
    updateEdge();
    setConn("connected", "Connected");
    N.watch();
    pump();
    if (focusSeq) { const seq = focusSeq; focusSeq = 0; jumpToSeq(seq); }
  };

  /* The page opened: show the newest, with a line above what arrived since the last visit. */
  const opened = () => {
    const lastVisit = Number(root.dataset.lastRead);
    toBottom();
    if (!Number.isInteger(lastVisit) || root.dataset.lastRead === "") return;
    const first = [...bySeq.values()].filter((r) => r.m.seq > lastVisit && r.m.sender.id !== ME.id)
      .sort((a, b) => a.m.seq - b.m.seq)[0];
    if (!first) return;
    markUnreadFrom(first.el);
    relayout();
    if (unreadLine.offsetTop < list.scrollTop) unreadLine.scrollIntoView({ block: "start" });
  };

  /* What the join answer says about the room: kind, who may moderate, slow mode, archive. */
  const applyRoom = (room) => {
    // Only a first join's answer says (a reconnect's catch-up leaves it out).
    if ("can_moderate" in room) setModerate(Boolean(room.can_moderate));
    if ("muted_until" in room) {  // a mute already in force when the page opened
      const until = room.muted_until ? new Date(room.muted_until).getTime() : 0;
      composerState.mutedUntil = Number.isNaN(until) ? 0 : until;
      composerState.mutedText = "";
    }
    composerState.slow = Math.max(0, Number(room.slow_mode_seconds) || 0);
    composerState.archived = Boolean(room.archived);
    if (IS_DM && Array.isArray(room.members)) showMembers(room.members);
    renderNote();
  };

  /* Moderators get Delete on everyone's messages and the "Manage room" link (not in DMs). */
  const manageLink = $("manage-link");
  function setModerate(moderate) {
    if (manageLink) manageLink.hidden = !moderate || IS_DM;
    if (moderate === ctx.canModerate) return;
    ctx.canModerate = moderate;
    for (const record of byId.values()) R.update(record.el, record.m, ctx);
  }

  const showMembers = (members) => {
    const title = $("room-title");
    const others = members.filter((p) => p && p.id !== ME.id);
    if (!title || !others.length) return;
    for (const person of members) learn(person);
    const names = make("span", "dm-names", others.map(R.nameOf).join(", "));
    const faces = make("span", "dm-faces");
    faces.append(...others.slice(0, 3).map((p) => R.avatar(p)));
    title.replaceChildren(faces, names);
  };

  const refused = (ack) => {
    const code = ack && ack.code;
    if (code === "session_ended" || code === "not_authenticated") return endSession(code);
    setConn("offline", "Not joined");
    toast((ack && ack.message) || "Could not join this room.");
    input.disabled = true;
    if (code === "archived") { composerState.archived = true; renderNote(); }
  };

  const loadOlder = async (limit = 50) => {
    if (loadingOlder || !hasOlder || !socket.connected || lowest === Infinity) return false;
    loadingOlder = true;
    updateEdge();
    try {
      const ack = await call("history", { room: ROOM, before_seq: lowest, limit });
      if (ack && ack.ok) {
        const height = list.scrollHeight, top = list.scrollTop;
        for (const m of ack.messages) addMessage(m);
        hasOlder = Boolean(ack.has_more);
        relayout();
        list.scrollTop = top + (list.scrollHeight - height);  // keep what the reader was reading
        return true;
      }
      if (ack) toast(ack.message || "Could not load older messages.");
    } catch {
      toast("Could not load older messages. Try again.");
    } finally {
      loadingOlder = false;
      updateEdge();
    }
    return false;
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
    if (entry) { entry.el.remove(); pending.delete(cmid); relayout(); }
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
      edit.addEventListener("click", () => { settle(entry.cmid); putInComposer(entry.text, entry.replyTo); });
      failure.append(edit);
    }
    const discard = make("button", "retry discard", "Discard");
    discard.type = "button";
    discard.addEventListener("click", () => { settle(entry.cmid); input.focus(); });
    failure.append(discard);
    entry.el.append(failure);
  };

  const seconds = (value) => Math.max(1, Math.ceil(Number(value) || 1));
  const clock = (iso) => {
    const when = new Date(iso);
    return Number.isNaN(when.getTime()) ? "" : when.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  };
  const describe = (ack) => {
    if (!ack) return "no answer from the server.";
    if (ack.code === "rate_limited") return `you are sending too fast. Try again in ${seconds(ack.retry_after)} s.`;
    if (ack.code === "slow_mode") return `slow mode is on. You can send again in ${seconds(ack.retry_after)} s.`;
    if (ack.code === "muted" && clock(ack.until)) return `you are muted in this room until ${clock(ack.until)}.`;
    return (ack.message || "the server refused it.").replace(/^\w/, (c) => c.toLowerCase());
  };

  const putInComposer = (text, replyTo = null) => {
    if (replyTo && byId.has(replyTo) && !mode) startReply(replyTo);
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
    if (!input.value.trim() && !(mode && mode.kind === "edit")) {
      settle(entry.cmid);
      putInComposer(entry.text, entry.replyTo);
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
    if (ack) moderated(ack);
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
    const payload = { room: ROOM, client_msg_id: cmid, text: entry.text };
    if (entry.replyTo !== null) payload.reply_to = entry.replyTo;
    if (entry.files.length) payload.attachments = entry.files.map((f) => f.id);
    socket.timeout(ACK_TIMEOUT).emit("message", payload, (err, ack) => {
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
                       text: entry.text, created_at: new Date().toISOString(), edited_at: null,
                       deleted: false, reply_to: entry.replyPreview, reactions: [], mentions: [],
                       mentions_room: false, change_seq: 0, attachments: entry.files }, true);
          relayout();
          if (follow) toBottom();
          if (composerState.slow && !ctx.canModerate) startCountdown(composerState.slow);
          if (composerState.mutedText) { composerState.mutedText = ""; renderNote(); }
          markRead();
        } else if (ack && ack.code === "session_ended") {
          return endSession(ack.code);
        } else fail(cmid, ack);
        pump();
      });
  }

  const send = () => {
    if (mode && mode.kind === "edit") { saveEdit(); return; }
    const text = input.value.trim();
    if (uploads && uploads.busy()) { toast("Wait for your files to finish uploading."); return; }
    const files = uploads ? uploads.ready() : [];
    if (!text && !files.length) return;
    const cmid = newId();
    const parent = mode && mode.kind === "reply" ? byId.get(mode.id) : null;
    const replyPreview = parent ? { id: parent.m.id, seq: parent.m.seq, sender: parent.m.sender,
                                    text: R.excerpt(parent.m.text), deleted: false } : null;
    const item = R.build({ sender: ME, text, created_at: new Date().toISOString(),
                           reply_to: replyPreview, attachments: files }, ctx);
    item.dataset.clientMsgId = cmid;
    const entry = { el: item, text, state: "sending", attempt: 0, cmid, replyPreview,
                    replyTo: parent ? parent.m.id : null, files };
    if (uploads) uploads.clear();
    pending.set(cmid, entry);
    setPendingState(entry, "sending");
    list.append(item);
    clearUnreadLine();
    relayout();
    toBottom();
    if (parent) endMode();
    input.value = "";
    input.rows = 2;
    pump();
  };

  /* ---------- the composer's modes: editing or replying ---------- */
  let mode = null;  // {kind: "edit" | "reply", id, draft}
  const setMode = (next) => {
    const old = mode && byId.get(mode.id);
    if (old) old.el.classList.remove("editing", "replied");
    mode = next;
    modeEl.replaceChildren();
    modeEl.hidden = !mode;
    form.classList.toggle("editing", Boolean(mode && mode.kind === "edit"));
    if (!mode) return;
    const record = byId.get(mode.id);
    record.el.classList.add(mode.kind === "edit" ? "editing" : "replied");
    const label = mode.kind === "edit" ? make("span", "mode-label", "Editing message")
      : make("span", "mode-label", `Replying to ${R.nameOf(record.m.sender)}`);
    const cancel = make("button", "link-button", "Cancel");
    cancel.type = "button";
    cancel.addEventListener("click", () => { endMode(); input.focus(); });
    const keys = make("span", "mode-keys");
    keys.append(make("kbd", null, "Esc"), " cancels");
    modeEl.append(label, keys, cancel);
  };
  function endMode() {
    if (!mode) return;
    const was = mode;
    setMode(null);
    if (was.kind === "edit") {
      input.value = was.draft || "";
      input.rows = Math.min(8, Math.max(2, input.value.split("\n").length));
    }
  }

  const startReply = (id) => {
    if (!byId.has(id) || byId.get(id).m.deleted) return;
    if (mode && mode.kind === "edit") endMode();
    setMode({ kind: "reply", id, draft: "" });
    input.focus();
  };

  const startEdit = (id) => {
    const record = byId.get(id);
    if (!record || record.m.sender.id !== ME.id || record.m.deleted || record.m.unreadable) return;
    const draft = mode && mode.kind === "edit" ? mode.draft : input.value;
    setMode({ kind: "edit", id, draft });
    input.value = record.m.text;
    input.rows = Math.min(8, Math.max(2, input.value.split("\n").length));
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
    record.el.scrollIntoView({ block: "nearest" });
  };

  const lastOwn = () => {
    const mine = list.querySelectorAll(":scope > .message.mine[data-id]:not(.deleted):not(.unreadable)");
    return mine.length ? Number(mine[mine.length - 1].dataset.id) : null;
  };

  /* An edit, delete, react or report: answered, or explained in a toast. */
  const act = async (event, payload) => {
    if (removed) { toast(composerState.removed); return null; }
    if (!joined) { toast("You are offline: try again once reconnected."); return null; }
    let ack;
    try { ack = await call(event, { room: ROOM, ...payload }); } catch { ack = null; }
    if (ack && ack.ok) return ack;
    if (ack && ack.code === "session_ended") { endSession(ack.code); return null; }
    if (ack) moderated(ack);
    const why = describe(ack);
    toast(why.replace(/^\w/, (c) => c.toUpperCase()));
    return null;
  };

  let saving = false;
  const saveEdit = async () => {
    const { id } = mode;
    const record = byId.get(id);
    const text = input.value.trim();
    if (!record || record.m.deleted) { endMode(); return; }
    if (!text) { toast("A message cannot be empty: use Delete to remove it."); return; }
    if (text === record.m.text) { endMode(); return; }
    if (saving) return;
    saving = true;
    const ack = await act("edit", { id, text }).finally(() => { saving = false; });
    if (!ack) return;
    applyOwn(id, ack.change_seq, () => ({ text, edited_at: ack.edited_at || new Date().toISOString() }));
    if (composerState.mutedText) { composerState.mutedText = ""; renderNote(); }
    if (mode && mode.kind === "edit" && mode.id === id) endMode();
  };

  const removeMessage = async (id) => {
    const record = byId.get(id);
    if (!record || record.m.deleted) return;
    const mine = record.m.sender.id === ME.id;
    const sure = await A.ask({ title: "Delete this message?", confirmLabel: "Delete", danger: true,
      text: `${mine ? "It" : `${R.nameOf(record.m.sender)}'s message`} will show as “This message was deleted.” for everyone. This cannot be undone.` });
    if (!sure) return;
    const ack = await act("delete", { id });
    if (ack) applyOwn(id, ack.change_seq, () => ({ deleted: true, text: "", reactions: [] }));
  };

  const react = async (id, emoji) => {
    const ack = await act("react", { id, emoji });
    if (!ack) return;
    applyOwn(id, ack.change_seq, (m) => {
      const reactions = (m.reactions || []).map((r) => ({ ...r, users: [...(r.users || [])] }));
      let entry = reactions.find((r) => r.emoji === emoji);
      if (!entry && ack.added) reactions.push(entry = { emoji, count: 0, users: [] });
      if (entry && ack.added && !entry.users.includes(ME.id)) { entry.users.push(ME.id); entry.count += 1; }
      if (entry && !ack.added && entry.users.includes(ME.id)) {
        entry.users = entry.users.filter((u) => u !== ME.id);
        entry.count -= 1;
      }
      return { reactions: reactions.filter((r) => r.count > 0) };
    });
  };

  const report = async (id) => {
    const reason = await A.ask({ title: "Report this message", confirmLabel: "Send report",
      text: "The server's admins will see the message and your reason.",
      field: { label: "Reason (optional)", maxLength: 500 } });
    if (reason === null) return;
    const ack = await act("report", { id, reason });
    if (ack) toast("Thank you: your report was sent to the server's admins.", "info");
  };

  /* A reply's quote: go to the original, loading older pages (a few at most) to reach it. */
  const jump = async (id, from) => {
    const quoted = from && byId.get(Number(from.dataset.id));
    const seq = quoted && quoted.m.reply_to ? quoted.m.reply_to.seq : null;
    for (let page = 0; !byId.has(id) && page < 5 && hasOlder && !(seq && lowest <= seq); page++) {
      if (!(await loadOlder())) break;
    }
    const target = byId.get(id);
    if (!target) { toast("The original message is too far back to show here.", "info"); return; }
    target.el.scrollIntoView({ block: "center" });
    target.el.classList.remove("flash");
    void target.el.offsetWidth;  // restart the highlight if it is still running
    target.el.classList.add("flash");
    target.el.focus({ preventScroll: true });
  };
  list.addEventListener("animationend", (event) => event.target.classList.remove("flash"));

  /* A search result (`?at=<seq>`, or static/search.js in place): bring that message into
     view, loading older pages (100 at a time, a bounded number) until it is there, and
     keep it marked until another is. */
  const JUMP_PAGES = 40;
  const jumpToSeq = async (seq) => {
    if (!Number.isInteger(seq) || seq < 1) return;
    for (let page = 0; !bySeq.has(seq) && page < JUMP_PAGES && hasOlder && lowest > seq; page++) {
      if (!(await loadOlder(100))) break;
    }
    const target = bySeq.get(seq);
    if (!target) {
      toast(seq > highest ? "That message is not here." : "That message is too far back to show here.", "info");
      return;
    }
    for (const old of list.querySelectorAll(".message.search-focus")) old.classList.remove("search-focus");
    target.el.classList.add("search-focus");
    target.el.scrollIntoView({ block: "center" });
    target.el.classList.remove("flash");
    void target.el.offsetWidth;  // restart the highlight if it is still running
    target.el.classList.add("flash");
    target.el.focus({ preventScroll: true });
  };
  let focusSeq = Number(new URLSearchParams(window.location.search).get("at")) || 0;
  window.StreamzyChat = Object.freeze({ jumpToSeq });

  A.attach(list, { react, reply: startReply, edit: startEdit, delete: removeMessage, report, jump });

  /* ---------- slow mode, mutes and archived rooms: the note under the composer ---------- */
  const composerState = { slow: 0, archived: false, mutedUntil: 0, mutedText: "", slowUntil: 0,
                          removed: "" };
  let noteTimer = 0;
  function renderNote() {
    clearTimeout(noteTimer);
    const now = Date.now();
    const wait = Math.ceil((composerState.slowUntil - now) / 1000);
    let text = "";
    if (composerState.removed) text = composerState.removed;
    else if (composerState.archived) text = "This room is archived: you can read it, but no one can post.";
    else if (composerState.mutedUntil > now) text = `You are muted in this room until ${clock(composerState.mutedUntil)}.`;
    else if (composerState.mutedText) text = composerState.mutedText;
    else if (wait > 0) text = `Slow mode: you can send again in ${wait} s.`;
    else if (composerState.slow > 0) text = `Slow mode: one message every ${composerState.slow} s.`;
    noteEl.textContent = text;
    noteEl.hidden = !text;
    noteEl.dataset.kind = composerState.removed ? "removed" : composerState.archived ? "archived"
      : composerState.mutedUntil > now || composerState.mutedText ? "muted"
      : wait > 0 ? "countdown" : text ? "slow" : "";
    const locked = Boolean(composerState.removed) || composerState.archived || ended;
    input.disabled = locked;
    form.querySelector("button[type=submit]").disabled = locked;
    if (composerState.removed) return;
    if (wait > 0) noteTimer = setTimeout(renderNote, 1000 - ((composerState.slowUntil - now) % 1000 || 0) + 20);
    else if (composerState.mutedUntil > now) noteTimer = setTimeout(renderNote, Math.min(60000, composerState.mutedUntil - now + 50));
  }
  function startCountdown(secs) {
    composerState.slowUntil = Math.max(composerState.slowUntil, Date.now() + secs * 1000);
    renderNote();
  }
  function moderated(ack) {
    if (ack.code === "slow_mode") startCountdown(seconds(ack.retry_after));
    else if (ack.code === "muted") {
      const until = new Date(ack.until).getTime();
      composerState.mutedUntil = Number.isNaN(until) ? 0 : until;
      // Without a time to count to, the server's own words stay until a send goes through.
      composerState.mutedText = composerState.mutedUntil ? "" : ack.message || "You are muted in this room.";
      renderNote();
    } else if (ack.code === "archived") { composerState.archived = true; renderNote(); }
  }

  /* Files: picked, dropped or pasted into the composer, uploaded at once (chat-files.js). */
  const uploads = window.StreamzyFiles ? window.StreamzyFiles.attach({
    form, input, button: $("composer-attach"), picker: $("composer-file"),
    list: $("composer-files"), roomId: ROOM, maxBytes: Number(root.dataset.maxFile) || 0, toast,
  }) : null;

  form.addEventListener("submit", (event) => { event.preventDefault(); send(); input.focus(); });
  input.addEventListener("keydown", (event) => {
    const plain = !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    } else if (event.key === "Escape" && mode) {
      event.preventDefault();
      endMode();
    } else if (event.key === "ArrowUp" && plain && !mode && input.value === "") {
      const id = lastOwn();
      if (id !== null) { event.preventDefault(); startEdit(id); }
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
      if (person && Number.isInteger(person.id)) { online.set(person.id, person); learn(person); }
    }
    if (people && !online.has(ME.id)) online.set(ME.id, ME);  // a long list may not reach us
    onlineCount = Math.max(Number.isInteger(count) ? count : 0, online.size);
    renderPresence();
  }
  const onPresence = (data) => {
    if (!data || data.room !== ROOM || removed || !joined && !everJoined) return;
    for (const id of Array.isArray(data.left) ? data.left : []) online.delete(id);
    for (const person of Array.isArray(data.joined) ? data.joined : []) {
      if (person && Number.isInteger(person.id)) { online.set(person.id, person); learn(person); }
    }
    onlineCount = Number.isInteger(data.online_count) ? data.online_count : online.size;
    renderPresence();
  };

  let seenUpTo = 0;  // what the reader has had on screen (sent at pagehide if still pending)
  function markRead() {
    if (document.visibilityState === "visible") seenUpTo = Math.max(seenUpTo, highest);
    clearTimeout(readTimer);
    readTimer = setTimeout(() => {
      if (document.visibilityState !== "visible" || !joined || highest <= lastRead) return;
      lastRead = highest;
      N.readHere(highest);
      socket.emit("read", { room: ROOM, seq: highest }, () => {});  // acked: the server has it
    }, 500);
  }
  /* While the tab is hidden, what arrives here counts in the title, under a "New messages"
     line; coming back reads it. */
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") {
      hiddenSince = highest;
      unseenHere = 0;
    } else {
      hiddenSince = null;
      unseenHere = 0;
      N.setHereUnseen(0);
      markRead();
    }
  });

  /* ---------- moderation as it happens ---------- */
  const REMOVED = {
    kicked: "You were removed from this room by a moderator.",
    banned: "You were banned from this room.",
    left: "You left this room (in another tab or window).",
    deleted: IS_DM ? "This conversation was deleted: its messages are gone for good."
      : "This room was deleted: its messages are gone for good.",
  };
  const MODERATING = new Set(["owner", "moderator"]);

  /* Taken out of a room: another room's link goes from the sidebar; this room stays on
     screen to read, but nothing here acts as joined any more (and no reconnect joins again:
     coming back is a page load, which the server then admits or refuses). */
  const onRemoved = (data) => {
    if (!data || !Number.isInteger(data.room)) return;
    if (data.room !== ROOM) { N.drop(data.room); return; }
    if (removed || ended || leaving()) return;
    const reason = typeof data.reason === "string" ? data.reason.trim() : "";
    removed = true;
    joined = false;
    buffer = [];
    composerState.removed = REMOVED[reason]
      || (reason ? `You were removed from this room: ${reason.slice(0, 200)}` : "You were removed from this room.");
    if (mode) endMode();
    for (const entry of pending.values()) {
      if (entry.state === "sending") setPendingState(entry, "refused", "you are no longer in this room.");
    }
    setModerate(false);
    setOnline(null, 0);
    for (const id of [...typers.keys()]) stopTyping(id);
    N.drop(ROOM);
    removedLabel = reason === "banned" ? "Banned" : reason === "deleted" ? "Deleted" : "Not in this room";
    if (reason === "deleted") {
      // Its key is destroyed: what is still on screen is all that is left of it anywhere.
      list.replaceChildren();
      const gone = document.createElement("p");
      gone.className = "notice warning room-gone";
      gone.id = "room-gone";
      gone.setAttribute("role", "status");
      gone.textContent = REMOVED.deleted;
      list.append(gone);
    }
    setConn("removed", removedLabel);
    renderNote();
  };

  /* Our role or mute here changed. A mute shows until it ends (renderNote's timer clears it
     then) or until a standing without one arrives. */
  let standingAsk = 0;
  const onStanding = async (data) => {
    if (!data || data.room !== ROOM || removed) return;
    const until = data.muted_until ? new Date(data.muted_until).getTime() : 0;
    composerState.mutedUntil = Number.isNaN(until) ? 0 : until;
    composerState.mutedText = "";
    renderNote();
    if (typeof data.role !== "string") return;
    if (MODERATING.has(data.role)) { setModerate(true); return; }
    if (!ctx.canModerate) return;
    // A member by role may still moderate (a server admin): the server has the last word.
    const asked = ++standingAsk;
    let ack = null;
    try { ack = await call("permissions", { room: ROOM }); } catch { ack = null; }
    if (asked !== standingAsk || removed) return;
    setModerate(Boolean(ack && ack.ok && ack.can_moderate));
  };

  /* The room was archived or unarchived, or its slow mode changed. */
  const onRoomState = (data) => {
    if (!data || data.room !== ROOM || removed) return;
    composerState.archived = Boolean(data.archived);
    composerState.slow = Math.max(0, Number(data.slow_mode_seconds) || 0);
    // A countdown never outlasts the new pace (none at all once slow mode is off).
    composerState.slowUntil = Math.min(composerState.slowUntil, Date.now() + composerState.slow * 1000);
    renderNote();
  };

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

  socket.on("connect", () => {
    if (removed) { setConn("removed", removedLabel); return; }  // the socket still carries notifications
    join();
  });
  socket.on("message", (m) => {
    if (!joined) { buffer.push({ kind: "message", data: m }); return; }
    if (removed) return;
    if (m && m.room === ROOM && Number.isInteger(m.seq) && m.seq > highest + 1) {
      buffer.push({ kind: "message", data: m });  // a gap: an earlier one never arrived live; catch up, then show this
      join();
      return;
    }
    addLive([m]);
  });
  socket.on("message_changed", (data) => {
    if (!data || data.room !== ROOM || !data.message) return;
    if (!joined) buffer.push({ kind: "change", data: data.message });
    else applyChange(data.message);
  });
  socket.on("activity", (data) => N.onActivity(data));
  socket.on("notify", (data) => N.onNotify(data));
  socket.on("typing", onTyping);
  socket.on("presence", onPresence);
  socket.on("session_ended", (data) => endSession(data && data.reason));
  socket.on("removed", onRemoved);
  socket.on("standing", onStanding);
  socket.on("room_state", onRoomState);
  socket.on("connect_error", (err) => {
    const code = err && err.message;
    if (code === "password_change_required") { window.location.assign("/account/password?first=1"); return; }
    if (code === "second_factor_required") { window.location.assign("/account/second-factor?required=1"); return; }
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
    if (!removed) setConn("offline", "Offline — reconnecting…");
    // The server hung up on purpose (e.g. flooding): socket.io will not retry by itself.
    // If the session is gone, the next handshake says so and we go to the sign-in page.
    if (reason === "io server disconnect") setTimeout(() => { if (!ended) socket.connect(); }, 5000);
  });
  socket.io.on("reconnect_attempt", () => { if (!ended && !removed) setConn("connecting", "Reconnecting…"); });
  window.addEventListener("pagehide", () => {
    if (joined && seenUpTo > lastRead) socket.emit("read", { room: ROOM, seq: seenUpTo });
    ended = true;
    socket.disconnect();
  });
  window.addEventListener("pageshow", (event) => { if (event.persisted) window.location.reload(); });

  N.init({ room: ROOM, me: ME.id, call, connected: () => socket.connected && joined });
  updateEdge();
  renderNote();
  input.focus();
})();
