/* Streamzy room page: what happens elsewhere. Exposes window.StreamzyNotify for chat.js:
   the sidebar's unread and mention badges (kept live through `watch` + `activity` and
   `notify`), the tab title and favicon badge, opt-in browser notifications for mentions
   and direct messages, and the "New message" form that opens a direct conversation.

   Under CSP img-src 'self' data:, the favicon badge is drawn on a canvas and set as a
   data: URL. Notification permission is only ever asked for from a user's click. */
(() => {
  "use strict";

  const R = window.StreamzyRender;
  if (!R) return;
  const { make } = R;
  const $ = (id) => document.getElementById(id);
  const STORE = "streamzy.notify";      // "off" | "on" | "hide"
  const MODES = new Set(["off", "on", "hide"]);

  let ctx = null;                       // {room, call, connected}
  const entries = new Map();            // room id -> {link, lastSeq, read, mentions}
  let hereUnseen = 0;
  const baseTitle = document.title;

  /* ---------- sidebar badges ---------- */
  const num = (value) => (Number.isFinite(Number(value)) ? Number(value) : 0);
  const learn = (link) => {
    const id = Number(link.dataset.roomId);
    if (!Number.isInteger(id) || entries.has(id)) return;
    const lastSeq = num(link.dataset.lastSeq);
    entries.set(id, { link, lastSeq, read: lastSeq - num(link.dataset.unread),
                      mentions: num(link.dataset.mentions) });
  };
  const badge = (cls, shown, after) => {
    const node = make("span", cls);
    node.append(make("span", "sr-only", ", "), shown, make("span", "sr-only", after));
    return node;
  };
  const unreadOf = (id, entry) => (id === ctx.room ? 0 : Math.max(0, entry.lastSeq - entry.read));

  const paint = (id) => {
    const entry = entries.get(id);
    if (!entry) return;
    const unread = unreadOf(id, entry), mentions = id === ctx.room ? 0 : entry.mentions;
    const holder = entry.link;
    for (const old of holder.querySelectorAll(":scope > .unread, :scope > .mention-count")) old.remove();
    if (mentions > 0) holder.append(badge("mention-count", `@${mentions}`, mentions === 1 ? " mention" : " mentions"));
    if (unread > 0) holder.append(badge("unread", String(unread), " unread"));
    holder.classList.toggle("has-unread", unread > 0);
    holder.dataset.unread = String(unread);
    holder.dataset.mentions = String(mentions);
    holder.dataset.lastSeq = String(entry.lastSeq);
  };

  const total = () => {
    let sum = hereUnseen;
    for (const [id, entry] of entries) sum += unreadOf(id, entry);
    return sum;
  };

  /* ---------- title and favicon ---------- */
  const icon = document.querySelector('link[rel="icon"]');
  const plainIcon = icon ? icon.getAttribute("href") : "";
  const plainType = icon ? icon.getAttribute("type") || "" : "";
  let iconImage = null, badgedIcon = "";
  const drawBadge = () => new Promise((resolve) => {
    if (badgedIcon) { resolve(badgedIcon); return; }
    iconImage = iconImage || new Image();
    const draw = () => {
      try {
        const canvas = document.createElement("canvas");
        canvas.width = canvas.height = 64;
        const g = canvas.getContext("2d");
        g.drawImage(iconImage, 0, 0, 64, 64);
        g.beginPath();
        g.arc(48, 16, 15, 0, 2 * Math.PI);
        g.fillStyle = "#d92d20";
        g.fill();
        g.lineWidth = 4;
        g.strokeStyle = "#ffffff";
        g.stroke();
        badgedIcon = canvas.toDataURL("image/png");
      } catch { badgedIcon = ""; }
      resolve(badgedIcon);
    };
    if (iconImage.complete && iconImage.naturalWidth) draw();
    else {
      iconImage.addEventListener("load", draw, { once: true });
      iconImage.addEventListener("error", () => resolve(""), { once: true });
      if (!iconImage.src) iconImage.src = plainIcon || "/static/favicon.svg";
    }
  });

  let shownTotal = -1;
  const refresh = async () => {
    const n = total();
    if (n === shownTotal) return;
    shownTotal = n;
    document.title = n > 0 ? `(${n}) ${baseTitle}` : baseTitle;
    document.documentElement.dataset.unreadTotal = String(n);
    if (!icon) return;
    const href = n > 0 ? await drawBadge() : plainIcon;
    if (href && shownTotal === n) {
      icon.setAttribute("href", href);
      icon.setAttribute("type", n > 0 ? "image/png" : plainType);  // else the browser skips it
      icon.dataset.badged = String(n > 0);
    }
  };

  const setHereUnseen = (n) => { hereUnseen = Math.max(0, n); refresh(); };

  /* ---------- watching the other rooms ---------- */
  const watch = async () => {
    if (!ctx) return;
    const ids = [...entries.keys()].slice(0, 500);
    if (!ids.length) return;
    let ack;
    try { ack = await ctx.call("watch", { rooms: ids }); } catch { return; }
    if (!ack || !ack.ok || !Array.isArray(ack.rooms)) return;  // an older server: badges stay as loaded
    for (const state of ack.rooms) {
      const entry = entries.get(state && state.id);
      if (!entry) continue;
      entry.lastSeq = num(state.last_seq);
      entry.read = entry.lastSeq - num(state.unread);
      entry.mentions = num(state.mentions);
      paint(state.id);
    }
    refresh();
  };

  const onActivity = (data) => {
    const entry = data && entries.get(data.room);
    if (!entry || !Number.isInteger(data.last_seq)) return;
    entry.lastSeq = Math.max(entry.lastSeq, data.last_seq);
    if (data.room === ctx.room) entry.read = entry.lastSeq;
    paint(data.room);
    refresh();
  };

  /* A message in the current room was read (or sent) here: its entry is up to date. */
  const readHere = (seq) => {
    const entry = entries.get(ctx.room);
    if (!entry) return;
    entry.lastSeq = Math.max(entry.lastSeq, seq);
    entry.read = Math.max(entry.read, seq);
  };

  /* We are no longer in a room (removed, banned, or left elsewhere): it stops counting. The
     room open here keeps its link, marked, so the page still says where it is; any other
     room's link goes. */
  const drop = (id) => {
    const entry = entries.get(id);
    const link = entry ? entry.link : document.querySelector(`.sidebar a[data-room-id="${Number(id)}"]`);
    entries.delete(id);
    if (!link) { refresh(); return; }
    if (id === ctx.room) {
      for (const old of link.querySelectorAll(":scope > .unread, :scope > .mention-count")) old.remove();
      link.classList.add("removed");
      if (!link.querySelector(".removed-tag")) link.append(make("span", "tag removed-tag", "removed"));
    } else (link.closest("li") || link).remove();
    refresh();
  };

  /* A conversation we did not list (someone just opened a DM with us): list and watch it. */
  const addEntry = (data) => {
    const dm = data.kind === "dm";
    const list = $(dm ? "dm-links" : "room-links");
    if (!list || typeof data.room_name !== "string") return null;
    const link = make("a");
    link.href = "/rooms/" + encodeURIComponent(data.room_name);
    link.dataset.roomId = String(data.room);
    link.dataset.kind = dm ? "dm" : "room";
    link.dataset.lastSeq = String(Math.max(0, num(data.seq) - 1));
    link.dataset.unread = "0";
    link.append(make("span", "room-name", dm ? R.nameOf(data.sender) : `#${data.room_name}`));
    const item = make("li");
    item.append(link);
    list.append(item);
    const empty = $(dm ? "dm-empty" : "rooms-empty");
    if (empty) empty.hidden = true;
    learn(link);
    watch();
    return entries.get(data.room);
  };

  /* ---------- browser notifications ---------- */
  const select = $("notify-mode"), note = $("notify-note");
  const supported = "Notification" in window;
  const mode = () => {
    let stored = "off";
    try { stored = localStorage.getItem(STORE) || "off"; } catch { stored = "off"; }
    return MODES.has(stored) ? stored : "off";
  };
  const say = (text) => { if (note) { note.textContent = text; note.hidden = !text; } };
  const showMode = () => {
    if (!select) return;
    select.value = mode();
    const summary = $("notify-summary");
    if (summary) summary.textContent = { off: "off", on: "on", hide: "on, content hidden" }[select.value];
    if (!supported) { select.disabled = true; say("This browser cannot show notifications."); }
    else if (select.value !== "off" && Notification.permission === "denied") {
      say("Notifications are blocked for this site in the browser's settings.");
    } else say("");
  };
  if (select) {
    select.addEventListener("change", async () => {
      const wanted = MODES.has(select.value) ? select.value : "off";
      if (wanted !== "off" && supported && Notification.permission === "default") {
        try { await Notification.requestPermission(); } catch { /* treated as not granted */ }
      }
      const allowed = wanted === "off" || (supported && Notification.permission === "granted");
      try { localStorage.setItem(STORE, allowed ? wanted : "off"); } catch { /* private mode */ }
      showMode();
      if (!allowed) say("Notifications are not allowed for this site: allow them in the browser to turn this on.");
    });
    showMode();
  }

  const excerpt = (text) => R.excerpt(text).slice(0, 180);
  const show = (data) => {
    const chosen = mode();
    if (chosen === "off" || !supported || Notification.permission !== "granted") return;
    const who = R.nameOf(data.sender);
    const dm = data.kind === "dm";
    const where = dm ? "" : data.room_name ? `#${data.room_name}` : "a room";
    const title = chosen === "hide" ? "Streamzy"
      : dm ? `${who} (direct message)` : `${who} mentioned you in ${where}`;
    const body = chosen === "hide" ? (dm ? "New direct message" : `New mention in ${where}`)
      : excerpt(data.text);
    try {
      const shown = new Notification(title, { body, tag: `streamzy-room-${data.room}` });
      shown.addEventListener("click", () => {
        window.focus();
        if (data.room !== ctx.room && typeof data.room_name === "string") {
          window.location.assign("/rooms/" + encodeURIComponent(data.room_name));
        }
        shown.close();
      });
    } catch { /* e.g. a browser that only allows them from a service worker */ }
  };

  const told = new Set();  // message ids already notified
  /* The room's name for links and texts: the notice's, else the sidebar's. */
  const nameOfRoom = (data) => {
    if (typeof data.room_name === "string" && data.room_name) return data.room_name;
    const entry = entries.get(data.room);
    const match = entry && /\/rooms\/([^/?#]+)$/u.exec(entry.link.getAttribute("href") || "");
    return match ? decodeURIComponent(match[1]) : null;
  };

  const onNotify = (raw) => {
    if (!raw || !Number.isInteger(raw.room)) return;
    // Our own message (a DM or an @room we sent) is news to the others only.
    if (raw.sender && raw.sender.id === ctx.me) return;
    // A mention in a DM comes twice (to the person named, and to the DM's members): once.
    if (told.has(raw.message_id)) return;
    told.add(raw.message_id);
    if (told.size > 200) told.delete(told.values().next().value);
    const data = { ...raw, room_name: nameOfRoom(raw) };
    const here = data.room === ctx.room;
    if (!here) {
      const entry = entries.get(data.room) || addEntry(data);
      if (entry && data.kind === "mention") {
        entry.mentions += 1;
        paint(data.room);
      }
    }
    if (!here || document.visibilityState !== "visible") show(data);
    refresh();
  };

  /* ---------- opening a direct conversation ---------- */
  const setupDmForm = () => {
    const open = $("dm-new"), form = $("dm-form"), field = $("dm-users"), error = $("dm-error");
    if (!open || !form || !field) return;
    const toggle = (shown) => {
      form.hidden = !shown;
      open.setAttribute("aria-expanded", String(shown));
      if (shown) field.focus();
      else if (error) error.textContent = "";
    };
    open.addEventListener("click", () => toggle(form.hidden));
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { event.preventDefault(); toggle(false); open.focus(); }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const users = field.value.split(/[,\s]+/u).map((u) => u.replace(/^@/u, "").trim().toLowerCase())
        .filter(Boolean);
      if (!users.length) { error.textContent = "Name at least one person by username."; return; }
      if (!ctx || !ctx.connected()) { error.textContent = "You are offline: try again when connected."; return; }
      const submit = form.querySelector("button[type=submit]");
      submit.disabled = true;
      error.textContent = "";
      try {
        const ack = await ctx.call("dm", { users: [...new Set(users)] });
        if (ack && ack.ok && ack.room && typeof ack.room.name === "string") {
          window.location.assign("/rooms/" + encodeURIComponent(ack.room.name));
          return;
        }
        error.textContent = (ack && ack.message) || "Could not open that conversation.";
      } catch {
        error.textContent = "No answer from the server. Try again.";
      } finally {
        submit.disabled = false;
      }
    });
  };

  const init = (options) => {
    ctx = options;
    for (const link of document.querySelectorAll(".sidebar a[data-room-id]")) learn(link);
    for (const id of entries.keys()) paint(id);
    setupDmForm();
    refresh();
  };

  window.StreamzyNotify = Object.freeze({ init, watch, onActivity, onNotify, readHere,
                                          setHereUnseen, refresh, drop });
})();
