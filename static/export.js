// Exports with progress: an export form (action ending in /export) is sent with fetch, the
// streamed JSON is counted as it arrives (one message per line) against the count the
// server announces (X-Export-Count), and the file is saved when complete. Without
// JavaScript the form still posts and the browser downloads the file itself.
"use strict";

(function () {
  function statusFor(form) {
    let status = form.nextElementSibling;
    if (!status || !status.classList.contains("export-status")) {
      status = document.createElement("p");
      status.className = "export-status muted";
      status.setAttribute("role", "status");
      status.setAttribute("aria-live", "polite");
      form.after(status);
    }
    return status;
  }

  function filenameOf(response) {
    const header = response.headers.get("Content-Disposition") || "";
    const match = /filename="([^"]+)"/.exec(header);
    return match ? match[1] : "streamzy-export.json";
  }

  function save(blob, filename) {
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = filename;
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  async function run(form, button, status) {
    const response = await fetch(form.action, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: {"Accept": "application/json"},
    });
    if (response.status === 403) {
      // A fresh proof of identity is owed first: to the step-up page, then back here.
      const refusal = await response.json().catch(() => null);
      if (refusal && refusal.code === "step_up_required") {
        window.location.assign("/account/confirm?next=" +
          encodeURIComponent(window.location.pathname + window.location.search));
        return;
      }
    }
    if (!response.ok || !response.body) {
      status.textContent = response.status === 429
        ? "Too many exports for now; try again later."
        : "The export could not be made (" + response.status + ").";
      return;
    }
    const total = Number(response.headers.get("X-Export-Count") || "0");
    const reader = response.body.getReader();
    const parts = [];
    let lines = 0;
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      parts.push(value);
      for (let i = 0; i < value.length; i += 1) {
        if (value[i] === 10) lines += 1;
      }
      // Every message starts a new line; the closing bracket takes one more.
      const seen = Math.min(lines, total);
      const share = total ? Math.floor((seen * 100) / total) : 100;
      status.textContent = "Exporting: " + seen.toLocaleString() + " of " +
        total.toLocaleString() + " messages (" + share + "%)";
    }
    save(new Blob(parts, {type: "application/json"}), filenameOf(response));
    status.textContent = "Export ready: " + total.toLocaleString() + " messages saved.";
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !/\/export$/.test(form.action)) return;
    if (!window.fetch || !window.ReadableStream) return;  // the plain download then
    event.preventDefault();
    const button = form.querySelector("button");
    const status = statusFor(form);
    if (button) button.disabled = true;
    status.textContent = "Exporting…";
    run(form, button, status).catch(() => {
      status.textContent = "The export was interrupted; try again.";
    }).finally(() => {
      if (button) button.disabled = false;
    });
  });
})();
