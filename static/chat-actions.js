/* Streamzy room page: what a reader can do to a message, by mouse or keyboard. Exposes
   window.StreamzyActions: the per-message toolbar's clicks, roving focus through the log
   (ArrowUp/ArrowDown/Home/End; Tab then reaches the focused message's buttons), a small
   emoji picker and an in-page confirm/ask dialog (window.confirm would block the page). */
(() => {
  "use strict";

  const EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];
  const R = window.StreamzyRender;
  if (!R) return;
  const { make, tabbable } = R;

  /* ---------- dialog: confirm or ask for a line of text ---------- */
  const dialog = document.getElementById("chat-dialog");
  const ask = ({ title, text, confirmLabel, danger = false, field = null }) => new Promise((resolve) => {
    if (!dialog || typeof dialog.showModal !== "function") { resolve(null); return; }
    const opener = document.activeElement;
    const form = make("form", "dialog-form");
    form.method = "dialog";
    const heading = make("h2", null, title);
    heading.id = "chat-dialog-title";
    form.append(heading);
    if (text) form.append(make("p", null, text));
    let input = null;
    if (field) {
      const label = make("label", "field-label", field.label);
      label.htmlFor = "chat-dialog-field";
      input = make("textarea");
      input.id = "chat-dialog-field";
      input.rows = 3;
      input.maxLength = field.maxLength || 500;
      if (field.placeholder) input.placeholder = field.placeholder;
      form.append(label, input);
    }
    const actions = make("div", "actions");
    const cancel = make("button", "button", "Cancel");
    cancel.type = "button";
    const confirm = make("button", danger ? "button danger" : "button primary", confirmLabel);
    confirm.type = "submit";
    actions.append(cancel, confirm);
    form.append(actions);
    dialog.replaceChildren(form);
    dialog.setAttribute("aria-labelledby", heading.id);
    let answer = null;
    cancel.addEventListener("click", () => dialog.close());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      answer = input ? input.value.trim() : true;
      dialog.close();
    });
    dialog.addEventListener("close", () => {
      dialog.replaceChildren();
      if (opener && opener.isConnected) opener.focus();
      resolve(answer);
    }, { once: true });
    dialog.showModal();
    (input || confirm).focus();
  });

  /* ---------- the emoji picker: one popover, moved into the message it serves ---------- */
  let picker = null, pickerDone = null;
  const closePicker = (refocus = true) => {
    if (!picker) return;
    const owner = picker.parentElement, trigger = picker.trigger, gone = picker;
    picker = null;
    // Focus moves back first: removing the focused picker would blur the message, hide
    // its toolbar, and leave nothing focusable to go back to.
    if (refocus && trigger && trigger.isConnected) trigger.focus();
    else if (refocus && owner && owner.isConnected) owner.focus();
    gone.remove();
    if (pickerDone) pickerDone(null);
    pickerDone = null;
  };
  const pickEmoji = (item, trigger) => new Promise((resolve) => {
    closePicker(false);
    picker = make("div", "emoji-picker");
    picker.setAttribute("role", "menu");
    picker.setAttribute("aria-label", "Pick a reaction");
    picker.trigger = trigger;
    for (const emoji of EMOJI) {
      const choice = make("button", "emoji-choice", emoji);
      choice.type = "button";
      choice.setAttribute("role", "menuitem");
      choice.setAttribute("aria-label", `React with ${emoji}`);
      choice.dataset.emoji = emoji;
      choice.tabIndex = -1;
      picker.append(choice);
    }
    pickerDone = resolve;
    picker.addEventListener("click", (event) => {
      const choice = event.target.closest(".emoji-choice");
      if (!choice) return;
      event.stopPropagation();
      const done = pickerDone;
      pickerDone = null;
      closePicker();
      done(choice.dataset.emoji);
    });
    picker.addEventListener("keydown", (event) => {
      const choices = [...picker.querySelectorAll(".emoji-choice")];
      const at = choices.indexOf(document.activeElement);
      const go = (k) => { event.preventDefault(); choices[(k + choices.length) % choices.length].focus(); };
      if (event.key === "ArrowRight" || event.key === "ArrowDown") go(at + 1);
      else if (event.key === "ArrowLeft" || event.key === "ArrowUp") go(at - 1);
      else if (event.key === "Home") go(0);
      else if (event.key === "End") go(choices.length - 1);
      else if (event.key === "Escape" || event.key === "Tab") { event.preventDefault(); event.stopPropagation(); closePicker(); }
      event.stopPropagation();  // arrows here do not move through the log
    });
    item.append(picker);
    picker.firstChild.focus();
  });
  document.addEventListener("pointerdown", (event) => {
    if (picker && !picker.contains(event.target) && !(picker.trigger && picker.trigger.contains(event.target))) closePicker(false);
  });

  /* ---------- the log: clicks, roving focus ---------- */
  const attach = (list, handlers) => {
    const messages = () => [...list.querySelectorAll(":scope > .message[data-id]")];
    let active = null;
    const activate = (item) => {
      if (active === item) return;
      if (active) { active.classList.remove("active"); active.tabIndex = -1; tabbable(active, false); }
      active = item;
      // While focus is in it, the message is a Tab stop too, so Shift+Tab from its buttons
      // comes back to it; when focus leaves the log, only the log itself is one.
      if (item) { item.classList.add("active"); item.tabIndex = 0; tabbable(item, true); }
    };
    list.addEventListener("focusin", (event) => {
      const item = event.target.closest(".message");
      activate(item && list.contains(item) && item.dataset.id ? item : null);
    });
    list.addEventListener("focusout", (event) => {
      if (!list.contains(event.relatedTarget) && !(picker && picker.contains(event.relatedTarget))) activate(null);
    });
    list.addEventListener("keydown", (event) => {
      if (event.target.closest(".emoji-picker")) return;
      const keys = ["ArrowUp", "ArrowDown", "Home", "End"];
      if (!keys.includes(event.key) || event.altKey || event.ctrlKey || event.metaKey) return;
      const items = messages();
      if (!items.length) return;
      const current = event.target.closest(".message");
      let at = items.indexOf(current);
      if (event.target === list) at = event.key === "ArrowUp" ? items.length : -1;
      else if (current && event.target !== current) return;  // a button inside: leave its keys alone
      const next = event.key === "Home" ? 0 : event.key === "End" ? items.length - 1
        : event.key === "ArrowUp" ? Math.max(0, at - 1) : Math.min(items.length - 1, at + 1);
      event.preventDefault();
      items[next].focus();
      items[next].scrollIntoView({ block: "nearest" });
    });
    list.addEventListener("click", async (event) => {
      const control = event.target.closest("[data-action]");
      if (!control || !list.contains(control)) return;
      const item = control.closest(".message");
      const id = item && Number(item.dataset.id);
      if (!Number.isInteger(id)) return;
      const action = control.dataset.action;
      if (action === "react") {
        const emoji = await pickEmoji(item, control);
        if (emoji) handlers.react(id, emoji);
      } else if (action === "toggle-reaction") handlers.react(id, control.dataset.emoji);
      else if (action === "jump") handlers.jump(Number(control.dataset.target), item);
      else if (handlers[action]) handlers[action](id, item);
    });
  };

  window.StreamzyActions = Object.freeze({ attach, ask, pickEmoji, closePicker, EMOJI });
})();
