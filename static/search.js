/* The search box of the room page: GET /search (JSON; results decrypted by the server from
   the rooms we belong to), newest first, each a link that opens its room at the message
   (`/rooms/<name>?at=<seq>`; static/chat.js scrolls to it and highlights it, loading older
   pages as needed). In the room already open, the jump happens in place.
   Runs under CSP script-src 'self'; results are set with textContent only. */
(() => {
  "use strict";

  const form = document.getElementById("search-form");
  const input = document.getElementById("search-text");
  const panel = document.getElementById("search-results");
  const root = document.getElementById("chat");
  if (!form || !input || !panel) return;
  const here = root ? Number(root.dataset.roomId) : 0;
  let nextBefore = null, lastQuery = "", busy = false;

  const make = (tag, cls, text) => {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text !== undefined) el.textContent = text;
    return el;
  };

  const when = (iso) => {
    const at = new Date(iso);
    return Number.isNaN(at.getTime()) ? "" : at.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  };

  const item = (hit) => {
    const li = make("li", "search-hit");
    const link = make("a", "search-link");
    link.href = hit.url;
    link.dataset.roomId = String(hit.room.id);
    link.dataset.seq = String(hit.seq);
    const where = hit.room.kind === "dm" ? "Direct message" : `#${hit.room.name}`;
    const who = hit.sender ? (hit.sender.display_name || hit.sender.username) : "deleted account";
    const meta = make("span", "search-meta");
    meta.append(make("span", "search-room", where), make("span", "search-who", ` · ${who} · `),
                make("time", "search-when", when(hit.created_at)));
    meta.lastChild.dateTime = hit.created_at;
    link.append(meta, make("span", "search-snippet", hit.snippet));
    li.append(link);
    return li;
  };

  const show = (hits, append) => {
    let list = panel.querySelector("ol");
    if (!append || !list) {
      panel.replaceChildren();
      const head = make("div", "search-head");
      head.append(make("p", "search-title", "Search results"));
      const close = make("button", "button small", "Close");
      close.type = "button";
      close.addEventListener("click", () => { panel.hidden = true; input.value = ""; });
      head.append(close);
      list = make("ol", "search-list");
      panel.append(head, list);
    }
    for (const hit of hits) list.append(item(hit));
    panel.querySelector(".search-more")?.remove();
    if (!list.children.length) panel.append(make("p", "muted search-empty", "No messages found."));
    if (nextBefore !== null) {
      const more = make("button", "button small search-more", "Older results");
      more.type = "button";
      more.addEventListener("click", () => run(true));
      panel.append(more);
    }
    panel.hidden = false;
  };

  const fail = (message) => {
    panel.replaceChildren(make("p", "error-text search-error", message));
    panel.hidden = false;
  };

  async function run(append) {
    if (busy) return;
    const query = append ? lastQuery : input.value.trim();
    if (!query) { panel.hidden = true; return; }
    const params = new URLSearchParams({ q: query });
    if (append && nextBefore !== null) params.set("before", String(nextBefore));
    busy = true;
    try {
      const response = await fetch(`/search?${params}`, {
        headers: { Accept: "application/json" }, credentials: "same-origin" });
      const body = await response.json().catch(() => null);
      if (!response.ok || !body || !body.ok) {
        fail((body && body.message) || "Search is unavailable right now. Try again.");
        return;
      }
      lastQuery = query;
      nextBefore = body.next_before;
      show(body.results, append);
    } catch {
      fail("Search is unavailable right now. Try again.");
    } finally {
      busy = false;
    }
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); run(false); });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { panel.hidden = true; input.blur(); }
  });
  // A hit in the room already open: jump in place (chat.js) instead of reloading the page.
  panel.addEventListener("click", (event) => {
    const link = event.target.closest("a.search-link");
    const chat = window.StreamzyChat;
    if (!link || !chat || Number(link.dataset.roomId) !== here) return;
    event.preventDefault();
    history.replaceState(null, "", link.href);
    chat.jumpToSeq(Number(link.dataset.seq));
  });
})();
