/* Streamzy page helpers. Plain ES2020, no libraries; runs under CSP script-src 'self'. */
(() => {
  "use strict";

  /* Defined immediately so later deferred scripts (e.g. the chat page) can use it. */
  const csrfToken = () => {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") || "" : "";
  };

  /* Sign-in notices: which /login?reason= code explains how a session ended. The table is
     defined once on the server (streamzy/web/sign_in_notices.py); signed-in pages carry it
     as <script type="application/json" id="sign-in-notices">. */
  let notices = null;
  const readNotices = () => {
    const block = document.getElementById("sign-in-notices");
    try { return block ? JSON.parse(block.textContent) : null; } catch { return null; }
  };
  const table = () => {
    notices = notices || readNotices() || { forEnding: {}, otherwise: "", inactive: "" };
    return notices;
  };
  /* The sign-in page for a session that ended for `reason` (a session_ended reason or a
     refusal code from the socket). */
  const signInPage = (reason) => {
    const { forEnding, otherwise } = table();
    const code = Object.hasOwn(forEnding, reason) ? forEnding[reason] : otherwise;
    return code ? "/login?reason=" + encodeURIComponent(code) : "/login";
  };

  /* Signing out through the real logout form (POST /logout with the CSRF token). */
  let leaving = false;
  const isLeaving = () => leaving;
  const signOut = (reason) => {
    const form = document.getElementById("logout-form");
    if (!form) { window.location.assign("/login"); return; }
    leaving = true;
    if (reason) form.action = "/logout?reason=" + encodeURIComponent(reason);
    form.submit();
  };

  window.Streamzy = Object.freeze({ csrfToken, isLeaving, signInPage });

  /* (1) Copy buttons: <button data-copy="#selector">. */
  const legacyCopy = (target, text) => {
    let field = target, temp = null;
    if (!("select" in target)) {
      temp = document.createElement("textarea");
      temp.value = text;
      temp.readOnly = true;
      temp.className = "sr-only";
      document.body.appendChild(temp);
      field = temp;
    }
    field.focus();
    field.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch { ok = false; }
    if (temp) temp.remove();
    return ok;
  };

  const setupCopy = () => {
    document.querySelectorAll("button[data-copy]").forEach((button) => {
      const label = button.textContent;
      let timer = 0;
      button.setAttribute("aria-live", "polite");
      button.addEventListener("click", async () => {
        const target = document.querySelector(button.dataset.copy);
        if (!target) return;
        const text = "value" in target ? target.value : target.textContent;
        let ok = false;
        if (navigator.clipboard && window.isSecureContext) {
          try { await navigator.clipboard.writeText(text); ok = true; } catch { ok = false; }
        }
        if (!ok) ok = legacyCopy(target, text);
        if (ok) button.focus();
        else if ("select" in target) { target.focus(); target.select(); }
        button.textContent = ok ? "Copied" : "Press Ctrl+C";
        button.classList.toggle("copied", ok);
        clearTimeout(timer);
        timer = setTimeout(() => {
          button.textContent = label;
          button.classList.remove("copied");
        }, 2000);
      });
    });
  };

  /* (1b) Download buttons: <button data-download="#selector" data-filename="x.txt"> save
     the element's text as a file (recovery codes); nothing leaves the page. */
  const setupDownload = () => {
    document.querySelectorAll("button[data-download]").forEach((button) => {
      button.addEventListener("click", () => {
        const target = document.querySelector(button.dataset.download);
        if (!target) return;
        const text = "value" in target ? target.value : target.textContent;
        const url = URL.createObjectURL(new Blob([text + "\n"], { type: "text/plain" }));
        const link = document.createElement("a");
        link.href = url;
        link.download = button.dataset.filename || "download.txt";
        document.body.appendChild(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(url), 1000);
      });
    });
  };

  /* (2) Password strength hint: a rough guide only; the server enforces the real policy. */
  const rate = (pw, length) => {
    const variety = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(pw)).length;
    if (length < 12) return ["short", "too short"];
    if (length >= 20 || (length >= 16 && variety >= 3)) return ["strong", "strong"];
    if (length >= 14 || variety >= 3) return ["good", "good"];
    return ["fair", "fair"];
  };

  const setupStrength = () => {
    const input = document.getElementById("f-new_password");
    const out = document.getElementById("strength");
    if (!input || !out) return;
    const update = () => {
      const pw = input.value;
      if (!pw) { out.textContent = ""; delete out.dataset.rating; return; }
      const length = [...pw].length;
      const [rating, words] = rate(pw, length);
      out.dataset.rating = rating;
      out.textContent = `${length} character${length === 1 ? "" : "s"}: ${words}`;
    };
    input.addEventListener("input", update);
    update();
  };

  /* (3) Inactivity: warn before the deadline, then sign out through the real logout.
     <body data-inactivity="seconds"> is set on signed-in pages. Activity in another tab of
     this site counts too (shared through localStorage). */
  const setupIdle = () => {
    const seconds = Number(document.body.dataset.inactivity);
    const modal = document.getElementById("idle-modal");
    const countdown = document.getElementById("idle-countdown");
    const stay = document.getElementById("idle-stay");
    if (!seconds || !modal || !countdown || !stay) return;
    const limit = seconds * 1000;
    const lead = Math.min(60, seconds / 2) * 1000;  // how long the warning shows
    const KEY = "streamzy:activity";
    let last = Date.now(), shared = 0, warned = false, restore = null;

    const share = (now) => {
      if (now - shared < 5000) return;
      shared = now;
      try { localStorage.setItem(KEY, String(now)); } catch { /* private mode */ }
    };
    const behind = [document.querySelector(".topbar"), document.getElementById("main")];
    const cover = (on) => behind.forEach((el) => { if (el) el.inert = on; });  // keep focus in the dialog
    const close = () => {
      warned = false;
      modal.hidden = true;
      cover(false);
      if (restore && document.contains(restore)) restore.focus();
    };
    const active = () => {
      if (warned || leaving) return;  // during the warning only "Stay signed in" counts
      last = Date.now();
      share(last);
    };
    const keep = () => { close(); shared = 0; active(); };
    const tick = () => {
      if (leaving) return;
      const left = last + limit - Date.now();
      if (left <= 0) { clearInterval(timer); signOut(table().inactive); return; }
      countdown.textContent = String(Math.ceil(left / 1000));
      if (left <= lead && !warned) {
        warned = true;
        restore = document.activeElement;
        modal.hidden = false;
        cover(true);
        stay.focus();
      }
    };
    /* Not "scroll": the chat scrolls itself when messages arrive, which is not the person.
       Scrolling by wheel, touch or keys is seen through these events instead. */
    ["keydown", "pointerdown", "wheel", "touchmove"].forEach((name) =>
      document.addEventListener(name, active, { capture: true, passive: true }));
    window.addEventListener("focus", active);
    window.addEventListener("storage", (event) => {
      if (event.key !== KEY || !event.newValue) return;
      const when = Number(event.newValue);
      if (when > last) { last = when; if (warned) close(); }
    });
    stay.addEventListener("click", keep);
    modal.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { event.preventDefault(); keep(); }
      if (event.key === "Tab") { event.preventDefault(); stay.focus(); }  // the only control
    });
    const timer = setInterval(tick, 1000);
    share(last);
  };

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("logout-form")?.addEventListener("submit", () => { leaving = true; });
    setupCopy();
    setupDownload();
    setupStrength();
    setupIdle();
  });
})();
