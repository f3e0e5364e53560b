/* Streamzy message Markdown: a small, safe subset, drawn as DOM nodes and never as HTML.

   The vendored markdown-it (static/vendor/markdown-it.min.js) only parses: md.parse() gives
   tokens, and this file builds elements from an allowlist with createElement, textContent
   and setAttribute. Nothing derived from a message is ever parsed as HTML, so raw markup
   in a message is shown as the characters it is.

   The subset: **bold**, *italic* / _italic_, `code`, fenced code blocks (``` and ~~~),
   block quotes, ordered and unordered lists, links ([text](url), <url> and bare http(s)
   URLs), paragraphs and line breaks (one newline is a line break, as people type in chat).
   Everything else is shown as typed: headings (# stays a #), rules, tables, images
   (![alt](url) shows "!" and a link), strikethrough, indented code, reference links.

   Links: only http:, https: and mailto: URLs become links, checked after the cleaning a
   browser applies itself; any other destination leaves the whole [text](url) as text.
   Every link opens in a new tab without an opener or a referrer, its title shows where it
   really goes, and nothing is ever fetched for a preview.

   Depth is bounded: markdown-it stops nesting at MAX_NESTING and would drop what lies
   deeper, so a message that reaches the bound is shown as plain text instead, whole.

   API: window.StreamzyMarkdown.render(text) -> DocumentFragment. */
(() => {
  "use strict";

  const MAX_NESTING = 20;
  const SCHEMES = new Set(["http:", "https:", "mailto:"]);

  /* The href a link may have, or null. The URL parser drops leading and trailing C0
     controls and spaces and every tab and newline ("java\tscript:" is "javascript:"),
     so the scheme is read after the same cleaning, then confirmed by the parser itself.
     The returned href is the parser's serialisation: what we checked is what is followed. */
  const safeHref = (raw) => {
    const cleaned = String(raw)
      .replace(/^[\u0000-\u0020]+|[\u0000-\u0020]+$/g, "")
      .replace(/[\t\n\r]/g, "");
    if (!/^(?:https?|mailto):/i.test(cleaned)) return null;
    let url;
    try {
      url = new URL(cleaned);
    } catch {
      return null;
    }
    return SCHEMES.has(url.protocol) ? url.href : null;
  };

  const plain = (text) => {
    const fragment = document.createDocumentFragment();
    fragment.append(document.createTextNode(text));
    return fragment;
  };

  const parser = (() => {
    if (typeof window.markdownit !== "function") return null;
    const md = window.markdownit("default", {
      html: false,          // raw HTML stays text
      linkify: true,        // bare URLs become links (schemes limited below)
      breaks: true,         // a newline is a line break
      typographer: false,   // no quote or dash rewriting: what was typed is what is shown
      maxNesting: MAX_NESTING,
    });
    md.disable(["heading", "lheading", "hr", "code", "table", "reference", "image",
                "strikethrough", "html_block", "html_inline"]);
    // Bare links need an explicit http(s):// or mailto: ("example.com" and "//x" stay text).
    md.linkify.set({ fuzzyLink: false, fuzzyEmail: false, fuzzyIP: false });
    md.linkify.add("ftp:", null);
    md.linkify.add("//", null);
    // markdown-it asks this of every link, autolink and linkified URL: refused ones stay text.
    md.validateLink = (url) => safeHref(url) !== null;
    return md;
  })();

  // Opening tokens drawn as an element of their own. Any other opening token (there should
  // be none with the rules above) adds no element: its content joins its parent's.
  const TAGS = {
    paragraph_open: "p",
    blockquote_open: "blockquote",
    bullet_list_open: "ul",
    ordered_list_open: "ol",
    list_item_open: "li",
    strong_open: "strong",
    em_open: "em",
  };

  const element = (tag, text) => {
    const node = document.createElement(tag);
    if (text != null) node.textContent = text;
    return node;
  };

  const opening = (token) => {
    if (token.type === "link_open") {
      const href = safeHref(token.attrGet("href") || "");
      if (href === null) return null;  // cannot happen past validateLink: text, then
      const link = element("a");
      link.setAttribute("href", href);
      link.setAttribute("title", href);
      link.setAttribute("rel", "noopener noreferrer nofollow");
      link.setAttribute("target", "_blank");
      return link;
    }
    // A tight list's paragraphs are hidden: their text sits in the list item itself.
    if (token.type === "paragraph_open" && token.hidden) return null;
    const tag = TAGS[token.type];
    if (!tag) return null;
    const node = element(tag);
    if (token.type === "ordered_list_open") {
      // markdown-it gives "start" only when the list does not begin at 1.
      const start = token.attrGet("start");
      if (start !== null && Number.isSafeInteger(Number(start))) {
        node.setAttribute("start", String(Number(start)));
      }
    }
    return node;
  };

  /* Tokens to nodes. Each opening token pushes one entry (its element, or its parent when
     it draws none) and each closing token pops one, so the tree follows the tokens. */
  const build = (tokens) => {
    const fragment = document.createDocumentFragment();
    const stack = [fragment];
    const top = () => stack[stack.length - 1];
    const draw = (list) => {
      for (const token of list) {
        if (token.nesting === 1) {
          const node = opening(token);
          if (node) top().append(node);
          stack.push(node || top());
        } else if (token.nesting === -1) {
          if (stack.length > 1) stack.pop();
        } else if (token.type === "inline") {
          draw(token.children || []);
        } else if (token.type === "softbreak" || token.type === "hardbreak") {
          top().append(element("br"));
        } else if (token.type === "code_inline") {
          top().append(element("code", token.content));
        } else if (token.type === "fence" || token.type === "code_block") {
          const pre = element("pre");
          pre.append(element("code", token.content.replace(/\n$/, "")));
          top().append(pre);
        } else if (token.content) {
          // text, and anything unexpected (an image's alt text, raw HTML): as text
          top().append(document.createTextNode(token.content));
        }
      }
    };
    draw(tokens);
    return fragment;
  };

  const render = (text) => {
    const source = String(text);
    if (parser === null) return plain(source);
    try {
      const tokens = parser.parse(source, {});
      // markdown-it drops what lies deeper than maxNesting: show such a message whole, as text.
      if (tokens.some((token) => token.level >= MAX_NESTING - 1)) return plain(source);
      const fragment = build(tokens);
      // Only markers and nothing else (">", "- "): show what was typed.
      return fragment.textContent.trim() === "" ? plain(source) : fragment;
    } catch {
      return plain(source);
    }
  };

  window.StreamzyMarkdown = Object.freeze({ render });
})();
