/* Streamzy room page: how one message looks, and how a run of them is laid out
   (grouped by sender, split by day). Exposes window.StreamzyRender for chat.js.

   Runs under CSP script-src 'self' / style-src 'self': user content is only ever set with
   textContent or as text nodes, and colours come from CSS classes, never inline style. */
(() => {
  "use strict";

  const GROUP_MS = 5 * 60 * 1000;   // a sender's messages within 5 minutes form one group
  const EXCERPT = 200;
  // @username or a whole-room word, not inside a word or an e-mail address (the server's
  // rule, streamzy/services/mentions.py: a name's trailing . _ - are punctuation).
  const MENTION = /(?<![\w@.])@([a-z0-9](?:[a-z0-9._-]{0,30}[a-z0-9])?)/gi;
  const ROOM_WORDS = new Set(["room", "here", "all", "everyone"]);

  const make = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  };

  const button = (cls, label, action) => {
    const node = make("button", cls);
    node.type = "button";
    node.tabIndex = -1;  // reached through the message (roving focus), not one Tab stop each
    if (label) { node.setAttribute("aria-label", label); node.title = label; }
    if (action) node.dataset.action = action;
    return node;
  };

  const nameOf = (person) => (person && (person.display_name || person.username)) || "unknown";

  const validDate = (iso) => {
    const when = new Date(iso);
    return Number.isNaN(when.getTime()) ? null : when;
  };

  const timeOf = (iso, cls) => {
    const when = validDate(iso);
    const time = make("time", cls || null, when
      ? when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "");
    if (when) { time.dateTime = when.toISOString(); time.title = when.toLocaleString(); }
    return time;
  };

  const dayKey = (when) => `${when.getFullYear()}-${when.getMonth()}-${when.getDate()}`;
  const dayLabel = (when, now = new Date()) => {
    const today = new Date(now.getFullYear(), now.getMonth(), now.getDate());
    const that = new Date(when.getFullYear(), when.getMonth(), when.getDate());
    const days = Math.round((today - that) / 86400000);
    if (days === 0) return "Today";
    if (days === 1) return "Yesterday";
    return when.toLocaleDateString([], { weekday: "long", day: "numeric", month: "long",
                                          year: when.getFullYear() === now.getFullYear() ? undefined : "numeric" });
  };

  /* ---------- avatars ---------- */
  // Fibonacci hashing: the top three bits of id × 2^32/φ, so neighbouring ids (people who
  // joined one after another) get different colours.
  const colourOf = (id) => Math.imul((Number(id) || 0) >>> 0, 0x9e3779b1) >>> (32 - 3);
  const initials = (person) => {
    const words = nameOf(person).trim().split(/\s+/u).filter(Boolean);
    const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words.slice(0, 1);
    return letters.map((w) => Array.from(w)[0] || "").join("").toUpperCase() || "?";
  };
  const avatar = (person, cls = "") => {
    const node = make("span", `avatar avatar-c${colourOf(person && person.id)} ${cls}`.trim(),
                      initials(person));
    node.setAttribute("aria-hidden", "true");
    return node;
  };

  /* ---------- text ---------- */
  /* Style @mentions inside `node`'s text nodes (never inside code or links). */
  const markMentions = (node, me) => {
    const walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT, {
      acceptNode: (text) => (text.parentElement && text.parentElement.closest("code, pre, a, .mention")
        ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
    });
    const texts = [];
    for (let t = walker.nextNode(); t; t = walker.nextNode()) texts.push(t);
    for (const text of texts) {
      const value = text.nodeValue;
      MENTION.lastIndex = 0;
      if (!MENTION.test(value)) continue;
      MENTION.lastIndex = 0;
      const parts = document.createDocumentFragment();
      let last = 0;
      for (const match of value.matchAll(MENTION)) {
        if (match.index > last) parts.append(value.slice(last, match.index));
        const who = match[1].toLowerCase();
        const span = make("span", "mention", match[0]);
        if (ROOM_WORDS.has(who) || (me && who === String(me.username).toLowerCase())) span.classList.add("me");
        parts.append(span);
        last = match.index + match[0].length;
      }
      if (last < value.length) parts.append(value.slice(last));
      text.replaceWith(parts);
    }
  };

  /* The one place a message body is filled: the safe Markdown subset of static/markdown.js
     (DOM nodes built from the text), or plain text without it; then @mentions are styled
     in its text nodes (not in code or links). */
  const renderText = (node, text, me) => {
    const md = window.StreamzyMarkdown;
    if (md && typeof md.render === "function") node.replaceChildren(md.render(String(text)));
    else node.textContent = String(text);
    markMentions(node, me);
  };

  const excerpt = (text) => {
    const flat = String(text || "").replace(/\s+/gu, " ").trim();
    return flat.length > EXCERPT ? flat.slice(0, EXCERPT - 1) + "…" : flat;
  };

  /* ---------- one message ---------- */
  const replyQuote = (reply) => {
    const quote = button("reply-quote", null, "jump");
    quote.dataset.target = String(reply.id);
    const who = reply.sender ? nameOf(reply.sender) : "someone";
    quote.setAttribute("aria-label", `Reply to ${who}: go to the original message`);
    quote.append(make("span", "reply-author", who));
    const gone = reply.deleted || !reply.text;
    quote.append(make("span", gone ? "reply-excerpt gone" : "reply-excerpt",
                      reply.deleted ? "Original message was deleted." : gone
                        ? "Original message unavailable." : excerpt(reply.text)));
    return quote;
  };

  const reactionTitle = (reaction, people, me) => {
    const names = (reaction.users || []).map((id) => (id === me.id ? "you" : people.get(id)))
      .filter(Boolean);
    const unknown = Math.max(0, (reaction.count || 0) - names.length);
    if (unknown) names.push(`${unknown} ${unknown === 1 ? "other" : "others"}`);
    const list = names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`
      : names[0] || "nobody";
    return `${list} reacted with ${reaction.emoji}`;
  };

  const reactionsRow = (m, ctx) => {
    const row = make("div", "reactions");
    row.setAttribute("role", "group");
    row.setAttribute("aria-label", "Reactions");
    for (const r of m.reactions || []) {
      if (!r || !r.emoji || !(r.count > 0)) continue;
      const mine = (r.users || []).includes(ctx.me.id);
      const pill = button("reaction", null, "toggle-reaction");
      pill.dataset.emoji = r.emoji;
      pill.setAttribute("aria-pressed", String(mine));
      pill.title = reactionTitle(r, ctx.people, ctx.me);
      pill.setAttribute("aria-label", `${r.emoji} ${r.count}: ${pill.title}`);
      pill.append(make("span", "emoji", r.emoji), make("span", "count", String(r.count)));
      row.append(pill);
    }
    if (row.childElementCount) {
      const more = button("reaction add", "Add a reaction", "react");
      more.append(make("span", "icon icon-smile"));
      row.append(more);
    }
    return row;
  };

  /* Names learnt later (someone came online) complete the titles of the pills shown. */
  const retitle = (item, m, ctx) => {
    for (const pill of item.querySelectorAll(".reaction[data-emoji]")) {
      const reaction = (m.reactions || []).find((r) => r.emoji === pill.dataset.emoji);
      if (!reaction) continue;
      pill.title = reactionTitle(reaction, ctx.people, ctx.me);
      pill.setAttribute("aria-label", `${reaction.emoji} ${reaction.count}: ${pill.title}`);
    }
  };

  const toolbar = (m, ctx) => {
    const bar = make("div", "actions");
    bar.setAttribute("role", "toolbar");
    bar.setAttribute("aria-label", "Message actions");
    const mine = m.sender && m.sender.id === ctx.me.id;
    const add = (label, action, icon) => {
      const b = button("action", label, action);
      b.append(make("span", `icon icon-${icon}`));
      bar.append(b);
    };
    add("React", "react", "smile");
    add("Reply", "reply", "reply");
    if (mine && !m.unreadable) add("Edit", "edit", "edit");
    if (mine || ctx.canModerate) add("Delete", "delete", "trash");
    if (!mine) add("Report", "report", "flag");
    return bar;
  };

  const setEdited = (meta, m) => {
    let mark = meta.querySelector(".edited");
    if (!m.edited_at || m.deleted) { if (mark) mark.remove(); return; }
    if (!mark) { mark = make("span", "edited", "(edited)"); meta.append(mark); }
    const when = validDate(m.edited_at);
    mark.title = when ? `Edited ${when.toLocaleString()}` : "Edited";
  };

  /* A message's files: images as their server-made thumbnail (a link to the full image),
     anything else as a download link with its name and size. Every URL is our own file
     route (same origin, membership checked there); names are text, never markup. */
  const THUMB_EDGE = 320;
  const fileSize = (n) => n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB`
    : `${(n / 1048576).toFixed(1)} MB`;
  const filesRow = (files) => {
    const row = make("div", "files");
    for (const f of files) {
      const url = `/files/${encodeURIComponent(f.id)}`;
      const link = make("a", f.thumbnail ? "file-image" : "file-link");
      link.href = url;
      if (f.thumbnail) {
        link.target = "_blank";
        link.rel = "noopener";
        const img = document.createElement("img");
        img.src = `${url}/thumbnail`;
        img.alt = f.name;
        img.loading = "lazy";
        if (f.width && f.height) {  // reserve the space: no jump when it loads
          const scale = Math.min(1, THUMB_EDGE / Math.max(f.width, f.height));
          img.width = Math.max(1, Math.round(f.width * scale));
          img.height = Math.max(1, Math.round(f.height * scale));
        }
        link.title = `${f.name} (${fileSize(f.size)})`;
        link.append(img);
      } else {
        link.download = f.name;
        link.append(make("span", "file-name", f.name), make("span", "file-size", fileSize(f.size)));
      }
      row.append(link);
    }
    return row;
  };

  /* Redraw what can change after a message is stored: text, edit mark, tombstone,
     reply quote, reactions, mention highlight and the actions offered. */
  const controlKey = (node) => `${node.dataset.action || ""}|${node.dataset.emoji || ""}`;
  const update = (item, m, ctx) => {
    const body = item.querySelector(".body");
    // Redrawing replaces controls: whoever had focus on one gets the same one back.
    const focused = item.contains(document.activeElement) && document.activeElement !== item
      ? document.activeElement : null;
    const focusKey = focused && focused.dataset.action ? controlKey(focused) : null;
    item.classList.toggle("deleted", Boolean(m.deleted));
    item.classList.toggle("unreadable", Boolean(m.unreadable));
    item.classList.toggle("mentions-me", !m.deleted && m.sender && m.sender.id !== ctx.me.id
      && (Boolean(m.mentions_room) || (m.mentions || []).includes(ctx.me.id)));
    item.classList.toggle("is-reply", Boolean(m.reply_to) && !m.deleted);
    if (m.reply_to && m.reply_to.id != null) item.dataset.replyTo = String(m.reply_to.id);
    else delete item.dataset.replyTo;

    const oldQuote = body.querySelector(".reply-quote");
    if (oldQuote) oldQuote.remove();
    if (m.reply_to && !m.deleted) body.prepend(replyQuote(m.reply_to));

    setEdited(body.querySelector(".meta"), m);
    const text = body.querySelector(".text");
    if (m.deleted) {
      text.replaceChildren();
      text.textContent = "This message was deleted.";
      text.classList.add("tombstone");
    } else {
      text.classList.remove("tombstone");
      renderText(text, m.text, ctx.me);
    }

    const oldFiles = body.querySelector(".files");
    if (oldFiles) oldFiles.remove();
    if (!m.deleted && (m.attachments || []).length) body.append(filesRow(m.attachments));

    const oldReactions = body.querySelector(".reactions");
    if (oldReactions) oldReactions.remove();
    if (!m.deleted && (m.reactions || []).length) body.append(reactionsRow(m, ctx));

    const oldBar = item.querySelector(".actions");
    if (oldBar) oldBar.remove();
    if (!m.deleted && m.id != null && ctx.actions !== false) item.append(toolbar(m, ctx));
    if (focused && !focused.isConnected) {
      const again = focusKey && [...item.querySelectorAll("[data-action]")].find((b) => controlKey(b) === focusKey);
      (again || item).focus({ preventScroll: true });
    }
    if (item.contains(document.activeElement) || item.classList.contains("active")) tabbable(item, true);
  };

  /* A message element from a wire message (or a pending one: no id or seq yet). */
  const build = (m, ctx) => {
    const item = make("div", "message");
    item.tabIndex = -1;
    item.dataset.sender = String(m.sender.id);
    item.dataset.created = m.created_at || new Date().toISOString();
    if (m.sender.id === ctx.me.id) item.classList.add("mine");

    const gutter = make("div", "gutter");
    gutter.append(avatar(m.sender), timeOf(m.created_at, "gutter-time"));
    gutter.lastChild.setAttribute("aria-hidden", "true");

    const body = make("div", "body");
    const meta = make("div", "meta");
    const author = make("span", "author", nameOf(m.sender));
    if (m.sender.username) author.title = "@" + m.sender.username;
    meta.append(author);
    if (m.sender.bot) meta.append(make("span", "tag", "bot"));
    meta.append(timeOf(m.created_at));
    const text = make("div", "text");
    text.dir = "auto";  // right-to-left text reads right; its direction stays inside it
    body.append(meta, text);
    item.append(gutter, body);
    update(item, m, ctx);
    return item;
  };

  const setTime = (item, iso) => {
    item.dataset.created = iso;
    item.querySelector(".meta time").replaceWith(timeOf(iso));
    item.querySelector(".gutter time").replaceWith(timeOf(iso, "gutter-time"));
    item.querySelector(".gutter time").setAttribute("aria-hidden", "true");
  };

  /* Only the message that holds focus has Tab stops inside it. */
  const tabbable = (item, on) => {
    for (const control of item.querySelectorAll("button")) control.tabIndex = on ? 0 : -1;
  };

  /* ---------- the run of messages ---------- */
  /* Group consecutive messages of one sender (within GROUP_MS, same day, not a reply) and
     put a day separator where the day changes. Cheap enough to run after each batch. */
  const relayout = (list) => {
    for (const old of list.querySelectorAll(":scope > .day-separator")) old.remove();
    const now = new Date();
    let prev = null;
    for (const item of list.querySelectorAll(":scope > .message")) {
      const when = validDate(item.dataset.created) || now;
      const day = dayKey(when);
      if (!prev || prev.day !== day) {
        const line = make("div", "day-separator");
        line.append(make("span", null, dayLabel(when, now)));
        const before = item.previousElementSibling;
        (before && before.classList.contains("unread-line") ? before : item).before(line);
      }
      const grouped = Boolean(prev) && prev.day === day && prev.sender === item.dataset.sender
        && when - prev.when < GROUP_MS && when - prev.when >= -GROUP_MS
        && !item.classList.contains("is-reply")
        && !(item.previousElementSibling && item.previousElementSibling.classList.contains("unread-line"));
      item.classList.toggle("grouped", grouped);
      prev = { day, when, sender: item.dataset.sender };
    }
  };

  window.StreamzyRender = Object.freeze({
    make, button, nameOf, timeOf, avatar, initials, colourOf, dayLabel, excerpt, fileSize,
    renderText, markMentions, build, update, retitle, setTime, tabbable, relayout,
  });
})();
