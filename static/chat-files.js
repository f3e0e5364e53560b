/* Streamzy chat: files in the composer. Pick them with the attach button, drop them on
   the composer or paste an image; each is uploaded at once (POST /rooms/<id>/files, the
   raw bytes, the name in X-Filename, the CSRF token in a header) with its progress shown,
   and can be removed before sending. The server decides what a file is from its bytes;
   the message then carries the finished uploads' ids. Plain ES2020, CSP script-src 'self'. */
(() => {
  "use strict";
  const MAX_FILES = 4;

  const attach = ({ form, input, button, picker, list, roomId, maxBytes, toast, onChange }) => {
    const R = window.StreamzyRender;
    const items = [];  // {file, el, state: "uploading" | "done" | "failed", view, xhr}

    const changed = () => {
      list.hidden = items.length === 0;
      input.required = !items.some((i) => i.state === "done");
      if (onChange) onChange();
    };

    const remove = (item) => {
      if (item.xhr && item.state === "uploading") item.xhr.abort();
      const at = items.indexOf(item);
      if (at >= 0) items.splice(at, 1);
      item.el.remove();
      changed();
      input.focus();
    };

    const render = (item, text) => {
      item.el.dataset.state = item.state;
      item.status.textContent = text;
      item.progress.hidden = item.state !== "uploading";
    };

    const upload = (item) => {
      const xhr = new XMLHttpRequest();
      item.xhr = xhr;
      xhr.open("POST", `/rooms/${encodeURIComponent(roomId)}/files`);
      xhr.setRequestHeader("X-CSRF-Token", window.Streamzy ? window.Streamzy.csrfToken() : "");
      xhr.setRequestHeader("X-Filename", encodeURIComponent(item.file.name || "file"));
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        item.progress.value = Math.round((event.loaded / event.total) * 100);
      });
      xhr.addEventListener("load", () => {
        let answer = null;
        try { answer = JSON.parse(xhr.responseText); } catch { answer = null; }
        if (xhr.status === 201 && answer && answer.attachment) {
          item.state = "done";
          item.view = answer.attachment;
          render(item, R.fileSize(item.view.size));
        } else {
          item.state = "failed";
          render(item, (answer && answer.message) || `Upload failed (${xhr.status}).`);
        }
        changed();
      });
      xhr.addEventListener("error", () => {
        item.state = "failed";
        render(item, "Upload failed: check your connection.");
        changed();
      });
      xhr.send(item.file);
    };

    const add = (files) => {
      for (const file of files) {
        if (items.length >= MAX_FILES) {
          toast(`A message carries at most ${MAX_FILES} files.`);
          break;
        }
        const el = R.make("li", "composer-file");
        const name = R.make("span", "file-name", file.name || "pasted image");
        const status = R.make("span", "file-status");
        const progress = document.createElement("progress");
        progress.max = 100;
        progress.value = 0;
        const drop = R.make("button", "link-button file-remove", "Remove");
        drop.type = "button";
        drop.setAttribute("aria-label", `Remove ${file.name || "file"}`);
        el.append(name, progress, status, drop);
        const item = { file, el, state: "uploading", view: null, xhr: null, status, progress };
        drop.addEventListener("click", () => remove(item));
        items.push(item);
        list.append(el);
        if (maxBytes && file.size > maxBytes) {
          item.state = "failed";
          render(item, `Too large: files are limited to ${R.fileSize(maxBytes)}.`);
        } else {
          render(item, "Uploading…");
          upload(item);
        }
      }
      changed();
    };

    button.addEventListener("click", () => picker.click());
    picker.addEventListener("change", () => {
      add([...picker.files]);
      picker.value = "";
    });
    // Drag and drop onto the composer.
    form.addEventListener("dragover", (event) => {
      if (!event.dataTransfer || ![...event.dataTransfer.types].includes("Files")) return;
      event.preventDefault();
      form.classList.add("dropping");
    });
    form.addEventListener("dragleave", () => form.classList.remove("dropping"));
    form.addEventListener("drop", (event) => {
      form.classList.remove("dropping");
      const files = event.dataTransfer ? [...event.dataTransfer.files] : [];
      if (!files.length) return;
      event.preventDefault();
      add(files);
    });
    // Paste: an image (a screenshot) becomes an upload; text pastes as usual.
    input.addEventListener("paste", (event) => {
      const files = event.clipboardData ? [...event.clipboardData.files] : [];
      if (!files.length) return;
      event.preventDefault();
      add(files);
    });

    return {
      busy: () => items.some((i) => i.state === "uploading"),
      ready: () => items.filter((i) => i.state === "done").map((i) => i.view),
      count: () => items.length,
      clear: () => {
        for (const item of [...items]) {
          if (item.state !== "uploading") { item.el.remove(); items.splice(items.indexOf(item), 1); }
        }
        changed();
      },
    };
  };

  window.StreamzyFiles = Object.freeze({ attach });
})();
