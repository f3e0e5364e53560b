/* Passkeys (WebAuthn): add one on the account page, sign in with one on /login, answer the
   second step with one, confirm it is you (step-up) with one. Plain ES2020 under CSP
   script-src 'self'; every request is a same-origin POST with the page's CSRF token in the
   X-CSRF-Token header. The server sends the options as JSON (base64url strings) and gets
   the credential back the same way; errors are shown in the page, never in a dialog. */
(() => {
  "use strict";

  if (window.StreamzyPasskeys) return; // several partials on one page load this once
  window.StreamzyPasskeys = true;

  const MESSAGES = {
    NotAllowedError: "The passkey request was cancelled or timed out.",
    InvalidStateError: "This device already holds a passkey for your account.",
    SecurityError: "Passkeys are not available on this address.",
    NotSupportedError: "This device offers no passkey that fits.",
    AbortError: "The passkey request was cancelled.",
  };
  const supported = () => Boolean(window.PublicKeyCredential && navigator.credentials);

  /* -- base64url <-> ArrayBuffer ---------------------------------------------------- */
  const toBuffer = (text) => {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const binary = atob(padded);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  };
  const toText = (buffer) => {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 1) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };

  const creationOptions = (json) => ({
    ...json,
    challenge: toBuffer(json.challenge),
    user: { ...json.user, id: toBuffer(json.user.id) },
    excludeCredentials: (json.excludeCredentials || []).map((c) => ({ ...c, id: toBuffer(c.id) })),
  });
  const requestOptions = (json) => ({
    ...json,
    challenge: toBuffer(json.challenge),
    allowCredentials: (json.allowCredentials || []).map((c) => ({ ...c, id: toBuffer(c.id) })),
  });

  const registrationJSON = (credential) => ({
    id: credential.id,
    rawId: toText(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
    response: {
      clientDataJSON: toText(credential.response.clientDataJSON),
      attestationObject: toText(credential.response.attestationObject),
      transports: credential.response.getTransports ? credential.response.getTransports() : [],
    },
  });
  const assertionJSON = (credential) => {
    const r = credential.response;
    const response = {
      clientDataJSON: toText(r.clientDataJSON),
      authenticatorData: toText(r.authenticatorData),
      signature: toText(r.signature),
    };
    if (r.userHandle && r.userHandle.byteLength) response.userHandle = toText(r.userHandle);
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response,
    };
  };

  /* -- the server --------------------------------------------------------------------- */
  const csrf = () => (window.Streamzy ? window.Streamzy.csrfToken() : "");

  class ServerError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const post = async (path, body) => {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json", "Content-Type": "application/json",
                 "X-CSRF-Token": csrf() },
      body: JSON.stringify(body || {}),
    });
    let data = null;
    try { data = await response.json(); } catch { data = null; }
    if (!response.ok) {
      const code = data && typeof data.code === "string" ? data.code : "error";
      const message = data && typeof data.message === "string" ? data.message
        : response.status === 429 ? "Too many attempts for now. Wait a few minutes."
          : "The request failed (" + response.status + ").";
      throw new ServerError(response.status, code, message);
    }
    return data;
  };

  /* -- showing what happened ---------------------------------------------------------- */
  const errorBox = (root) => root.querySelector("[data-passkey-error]");
  const showError = (root, error) => {
    const box = errorBox(root);
    if (!box) return;
    box.textContent = "";
    let text = MESSAGES[error && error.name] || (error && error.message) || "Something went wrong.";
    if (error instanceof ServerError && error.code === "step_up_required") {
      text = "Confirm it is you first: ";
      const link = document.createElement("a");
      link.href = "/account/confirm?next=" + encodeURIComponent(location.pathname);
      link.textContent = "confirm";
      box.append(text, link, ".");
    } else {
      box.textContent = text;
    }
    box.hidden = false;
  };
  const clearError = (root) => { const box = errorBox(root); if (box) box.hidden = true; };

  const nextPage = (root) => {
    if (root.dataset.next) return root.dataset.next;
    const field = document.querySelector('input[name="next"]');
    if (field && field.value) return field.value;
    return new URLSearchParams(location.search).get("next") || "/";
  };

  const busy = async (root, button, work) => {
    if (button.disabled) return;
    button.disabled = true;
    clearError(root);
    try {
      await work();
    } catch (error) {
      showError(root, error);
    } finally {
      button.disabled = false;
    }
  };

  /* -- the ceremonies ----------------------------------------------------------------- */
  const register = async (form) => {
    const name = form.querySelector('input[name="name"]').value;
    const options = await post("/account/passkeys/options");
    const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
    const done = await post("/account/passkeys/register",
                            { credential: registrationJSON(credential), name });
    location.assign(done.next || "/account/passkeys");
  };

  const answer = (base) => async (root) => {
    const options = await post(base + "/options");
    const credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
    const done = await post(base + "/verify",
                            { credential: assertionJSON(credential), next: nextPage(root) });
    location.assign(done.next || "/");
  };
  const ACTIONS = {
    "sign-in": answer("/login/passkey"),
    "second-factor": answer("/login/second-factor/passkey"),
    "step-up": answer("/account/confirm/passkey"),
  };

  const start = () => {
    document.querySelectorAll("[data-passkey-register]").forEach((form) => {
      const root = form.closest("[data-passkeys-section]") || form;
      const button = form.querySelector('button[type="submit"]');
      if (!supported()) {
        button.disabled = true;
        showError(root, new Error("This browser cannot create passkeys."));
        return;
      }
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        busy(root, button, () => register(form));
      });
    });
    document.querySelectorAll("[data-passkey-action]").forEach((button) => {
      const action = ACTIONS[button.dataset.passkeyAction];
      const root = button.parentElement;
      if (!action || !supported()) return; // the block stays hidden
      root.hidden = false;
      button.addEventListener("click", () => busy(root, button, () => action(root)));
    });
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
