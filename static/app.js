/* Streamzy page helpers. Plain ES2020, no libraries; runs under CSP script-src 'self'. */
(() => {
  "use strict";

  /* Defined immediately so later deferred scripts (e.g. the chat page) can use it. */
  const csrfToken = () => {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") || "" : "";
  };

  /* fetch() with the session cookie, the CSRF header and JSON both ways.
     Resolves to the parsed body (null when empty); rejects with an Error carrying .status and .data. */
  const fetchJSON = async (url, opts = {}) => {
    const headers = new Headers(opts.headers || {});
    headers.set("X-CSRF-Token", csrfToken());
    if (!headers.has("Accept")) headers.set("Accept", "application/json");
    let body = opts.body;
    const plain = body != null && typeof body === "object" &&
      (Array.isArray(body) || Object.getPrototypeOf(body) === Object.prototype);
    if (plain) body = JSON.stringify(body);
    /* FormData, Blob, URLSearchParams keep the Content-Type the browser gives them. */
    if ((body == null || typeof body === "string") && !headers.has("Content-Type")) {
      headers.set("Content-Type", "application/json");
    }
    const res = await fetch(url, { ...opts, body, headers, credentials: "same-origin" });
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = { error: text }; }
    }
    if (!res.ok) {
      const err = new Error((data && (data.message || data.error)) || `HTTP ${res.status}`);
      err.status = res.status;
      err.data = data;
      throw err;
    }
    return data;
  };

  window.Streamzy = Object.freeze({ csrfToken, fetchJSON });

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

  document.addEventListener("DOMContentLoaded", () => { setupCopy(); setupStrength(); });
})();
