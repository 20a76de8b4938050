/*
 * The desk's live chat widget: one tag on any site (docs/chat-protocol.md, the protocol it speaks).
 *
 *   <script src="https://<desk>/static/chat/widget.js" data-desk="https://<desk>" async></script>
 *
 * Optional attributes: data-widget="<key>" (default "default"), data-lang="en" | "zh-hans"
 * (else the browser's language), data-identity and data-identity-hmac (a signed-in visitor,
 * HMAC-SHA256 of the identity under the widget's secret, computed by the site's server).
 *
 * Everything lives in a shadow root with its own styles: the page's CSS does not reach in
 * and ours does not leak out. Requests go to the desk's origin only, without cookies.
 * Nothing is written to the visitor's browser until they open the panel; from then on
 * localStorage keeps the visitor token, the conversation id, the last sequence number seen,
 * messages not yet confirmed and whether the panel was open (keys "sdchat:<desk>:<widget>:*").
 *
 * Messages are never lost or doubled: each has a client_id; it shows "sending" until its
 * line comes back with a seq ("delivered"), and is sent again with the same client_id after
 * any reconnect (the desk stores it once). Lines are kept by seq; a seq already held is
 * dropped. After a reconnect the widget resumes from the highest seq it holds.
 *
 * Text from the desk or the visitor is only ever set with textContent.
 */
(function () {
  "use strict";

  const script = document.currentScript;
  if (!script) return;

  // ------------------------------------------------------------------ strings

  const STRINGS = {
    en: {
      launcher: "Chat with us",
      unread: (n) => (n === 1 ? "1 new message" : n + " new messages"),
      title: "Chat",
      minimise: "Minimise chat",
      loading: "Loading…",
      load_failed: "The chat cannot be reached right now. Please try again in a moment.",
      retry: "Try again",
      refused: "This site may not use our chat.",
      name: "Your name",
      email: "Email address",
      topic: "Topic",
      topic_none: "Choose a topic",
      message: "Message",
      required: "(required)",
      optional: "(optional)",
      start: "Start chat",
      starting: "Starting…",
      offline_intro: "Nobody can chat right now. Leave us a message and we will answer by email.",
      offline_send: "Send message",
      err_required: "This field is required.",
      err_email: "Enter a valid email address.",
      err_long: (n) => "Write at most " + n + " characters.",
      err_generic: "Something went wrong. Please try again.",
      err_throttled: (s) => "Too many attempts. Please try again in " + s + " seconds.",
      err_form: "Please correct the fields marked below.",
      offline_done: (ref) =>
        "Thank you. We have your message" + (ref ? " (reference " + ref + ")" : "") + " and will answer by email.",
      connecting: "Connecting…",
      reconnecting: "Connection lost. Reconnecting…",
      waiting_next: "Waiting for an agent. You are next in the queue.",
      waiting_n: (n) => "Waiting for an agent. You are number " + n + " in the queue.",
      active: (agent) => "You are chatting with " + agent + ".",
      joined: (agent) => agent + " joined the chat.",
      ended: "The chat has ended.",
      abandoned: "The chat ended before an agent joined.",
      offline: "We have your message and will answer by email.",
      conversation: "Conversation",
      you: "You",
      agent: "Agent",
      sending: "Sending…",
      delivered: "Delivered",
      failed: "Not sent",
      typing: (agent) => (agent || "The agent") + " is typing…",
      compose: "Your message",
      send: "Send",
      attach: "Attach an image or PDF",
      attachment: (name) => "Attachment" + (name ? ": " + name : ""),
      file_type: "Only images (PNG, JPEG, GIF, WebP) and PDF files can be sent.",
      transcript: "Email me the transcript",
      transcript_email: "Send the transcript to",
      transcript_send: "Send transcript",
      transcript_sent: (to) => "The transcript is on its way to " + to + ".",
      end: "End chat",
      offer: "Still waiting? Leave a message instead and we will answer by email.",
      leave: "Leave a message",
      leave_done: "Thank you. We have your message and will answer by email.",
      rate: "How was this chat?",
      rate_hint: "1 is poor, 5 is excellent.",
      rate_n: (n) => n + " out of 5",
      comment: "Comment",
      rate_send: "Send rating",
      suggested: "These articles may answer your question:",
      rate_done: "Thank you for your rating.",
      rate_choose: "Choose a rating from 1 to 5.",
      new_chat: "Start a new chat",
      slow_down: "Sending a little slower…",
    },
    "zh-hans": {
      launcher: "在线咨询",
      unread: (n) => n + " 条新消息",
      title: "在线咨询",
      minimise: "收起聊天窗口",
      loading: "正在加载…",
      load_failed: "暂时无法连接在线咨询，请稍后再试。",
      retry: "重试",
      refused: "此网站不能使用我们的在线咨询。",
      name: "您的姓名",
      email: "电子邮箱",
      topic: "主题",
      topic_none: "请选择主题",
      message: "留言",
      required: "（必填）",
      optional: "（选填）",
      start: "开始咨询",
      starting: "正在开始…",
      offline_intro: "目前没有客服在线。请留言，我们会通过电子邮件回复您。",
      offline_send: "发送留言",
      err_required: "此项为必填项。",
      err_email: "请输入有效的电子邮箱地址。",
      err_long: (n) => "最多 " + n + " 个字符。",
      err_generic: "出错了，请重试。",
      err_throttled: (s) => "尝试次数过多，请在 " + s + " 秒后重试。",
      err_form: "请更正下面标出的内容。",
      offline_done: (ref) => "谢谢。我们已收到您的留言" + (ref ? "（编号 " + ref + "）" : "") + "，将通过电子邮件回复您。",
      connecting: "正在连接…",
      reconnecting: "连接已断开，正在重新连接…",
      waiting_next: "正在等待客服。下一位就是您。",
      waiting_n: (n) => "正在等待客服。您前面还有 " + (n - 1) + " 位。",
      active: (agent) => "正在与 " + agent + " 交谈。",
      joined: (agent) => agent + " 已加入对话。",
      ended: "对话已结束。",
      abandoned: "客服加入前对话已结束。",
      offline: "我们已收到您的留言，将通过电子邮件回复您。",
      conversation: "对话",
      you: "您",
      agent: "客服",
      sending: "正在发送…",
      delivered: "已送达",
      failed: "未发送",
      typing: (agent) => (agent || "客服") + " 正在输入…",
      compose: "您的消息",
      send: "发送",
      attach: "附加图片或 PDF",
      attachment: (name) => "附件" + (name ? "：" + name : ""),
      file_type: "只能发送图片（PNG、JPEG、GIF、WebP）和 PDF 文件。",
      transcript: "通过邮件发送对话记录",
      transcript_email: "发送对话记录至",
      transcript_send: "发送对话记录",
      transcript_sent: (to) => "对话记录正在发送至 " + to + "。",
      end: "结束对话",
      offer: "还在等待？您可以留言，我们会通过电子邮件回复您。",
      leave: "留言",
      leave_done: "谢谢。我们已收到您的留言，将通过电子邮件回复您。",
      rate: "您对本次对话满意吗？",
      rate_hint: "1 为很差，5 为很好。",
      rate_n: (n) => n + " 分（满分 5 分）",
      comment: "评论",
      rate_send: "提交评分",
      suggested: "这些文章也许能解答您的问题：",
      rate_done: "感谢您的评分。",
      rate_choose: "请选择 1 到 5 分。",
      new_chat: "开始新的对话",
      slow_down: "发送稍慢一些…",
    },
  };

  function languageOf(value) {
    return /^zh\b/i.test(value || "") ? "zh-hans" : "en";
  }

  const lang = languageOf(script.dataset.lang || navigator.language);
  const T = STRINGS[lang];

  // ------------------------------------------------------------------ configuration

  let desk;
  try {
    desk = new URL(script.dataset.desk || script.src).origin;
  } catch (error) {
    console.warn("Service desk chat: data-desk is not a URL.");
    return;
  }
  const widgetKey = (script.dataset.widget || "default").replace(/[^A-Za-z0-9_-]/g, "") || "default";
  const identity = script.dataset.identity || "";
  const identityHmac = script.dataset.identityHmac || "";
  const registry = (window.__servicedeskChat = window.__servicedeskChat || {});
  if (registry[desk + " " + widgetKey]) return; // the tag is on the page twice
  registry[desk + " " + widgetKey] = true;

  const api = desk + "/api/v1/chat/";
  const socketUrl = desk.replace(/^http/, "ws") + "/ws/chat/";
  const PING_EVERY = 20000;
  const SILENCE_MAX = 50000; // no frame (not even a pong) for this long: the socket is dead
  const BACKOFF_FIRST = 1000;
  const BACKOFF_CAP = 30000;
  const TYPING_EVERY = 2000;
  const TYPING_SHOWN = 5000;
  const FINAL = ["ended", "abandoned", "offline"];

  // ------------------------------------------------------------------ storage

  const prefix = "sdchat:" + new URL(desk).host + ":" + widgetKey + ":";
  const store = {
    writable: false, // set once the visitor opens the panel: nothing is written before
    get(name) {
      try {
        return window.localStorage.getItem(prefix + name);
      } catch (error) {
        return null;
      }
    },
    set(name, value) {
      if (!this.writable) return;
      try {
        if (value === null || value === undefined) window.localStorage.removeItem(prefix + name);
        else window.localStorage.setItem(prefix + name, String(value));
      } catch (error) {
        // Storage full or refused: the chat goes on, it is just not remembered.
      }
    },
  };

  function storedJson(name, fallback) {
    try {
      const value = JSON.parse(store.get(name) || "null");
      return value === null ? fallback : value;
    } catch (error) {
      return fallback;
    }
  }

  // ------------------------------------------------------------------ small helpers

  /** The key under which suggestions shown, opened and followed by a chat count (kept for this browser). */
  function deflectionKey() {
    let key = store.get("deflection");
    if (!key || !/^[A-Za-z0-9-]{8,64}$/.test(key)) {
      key = uuid();
      store.set("deflection", key);
    }
    return key;
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  let idCounter = 0;
  function uid(name) {
    idCounter += 1;
    return "sd-" + name + "-" + idCounter;
  }

  /** An element: h("p", {class: "x", hidden: true, onclick: f}, "text", child ...). Strings become text. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key === "text") el.textContent = value;
      else if (value === true) el.setAttribute(key, "");
      else el.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      el.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return el;
  }

  async function call(path, { method = "GET", json, form, token } = {}) {
    const headers = { Accept: "application/json", "Accept-Language": lang };
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form) {
      body = form;
    }
    if (token) headers["X-Visitor-Token"] = token;
    let response;
    try {
      response = await fetch(api + path, { method, headers, body, credentials: "omit", mode: "cors", cache: "no-store" });
    } catch (error) {
      // A network failure, or a refusal without CORS headers (an origin the desk does not allow).
      return { status: 0, ok: false, data: {} };
    }
    let data = {};
    try {
      data = await response.json();
    } catch (error) {
      data = {};
    }
    return { status: response.status, ok: response.ok, data: data || {}, retryAfter: response.headers.get("Retry-After") };
  }

  function errorText(result) {
    if (result.status === 429) return T.err_throttled(result.data.retry_after || result.retryAfter || 60);
    if (result.status === 403) return T.refused;
    if (result.status && result.data && typeof result.data.detail === "string" && result.status !== 500) {
      return result.data.detail;
    }
    return result.status ? T.err_generic : T.load_failed;
  }

  const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
  const COLOUR = /^#[0-9a-fA-F]{6}$/;

  // ------------------------------------------------------------------ styles

  const CSS = `
:host { all: initial !important; }
.root { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; font: 15px/1.45 system-ui, -apple-system,
  "Segoe UI", Roboto, "Noto Sans", "PingFang SC", "Microsoft YaHei", sans-serif; color: #1b1f24;
  --accent: #1f5fbf; --on-accent: #ffffff; text-align: left; }
*, *::before, *::after { box-sizing: border-box; }
[hidden] { display: none !important; }
button, input, select, textarea { font: inherit; color: inherit; margin: 0; }
.vh { position: absolute !important; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
  clip-path: inset(50%); white-space: nowrap; border: 0; padding: 0; margin: -1px; }
:focus-visible { outline: 3px solid #f5a623; outline-offset: 2px; }
.launcher { display: flex; align-items: center; gap: 8px; margin-left: auto; border: 0; border-radius: 999px;
  padding: 12px 18px; background: var(--accent); color: var(--on-accent); cursor: pointer; font-weight: 600;
  box-shadow: 0 4px 14px rgba(0,0,0,.25); }
.launcher svg { width: 22px; height: 22px; fill: currentColor; }
.badge { background: #d93025; color: #fff; border-radius: 999px; padding: 0 7px; font-size: 12px; }
.panel { position: absolute; right: 0; bottom: 64px; width: min(370px, calc(100vw - 40px));
  height: min(580px, calc(100vh - 110px)); display: flex; flex-direction: column; background: #fff;
  border-radius: 12px; box-shadow: 0 10px 40px rgba(0,0,0,.3); overflow: hidden; }
.head { display: flex; align-items: center; gap: 8px; padding: 12px 14px; background: var(--accent); color: var(--on-accent); }
.head h2 { flex: 1; margin: 0; font-size: 16px; font-weight: 600; }
.close { border: 0; background: transparent; color: inherit; font-size: 22px; line-height: 1; padding: 4px 8px;
  border-radius: 6px; cursor: pointer; }
.status { margin: 0; padding: 6px 14px; font-size: 13px; background: #f2f4f7; color: #3b4350; border-bottom: 1px solid #e3e6ea; }
.status:empty { display: none; }
.body { flex: 1; display: flex; flex-direction: column; min-height: 0; overflow: auto; }
.pad { padding: 14px; }
.greeting { margin: 0 0 12px; }
.field { margin: 0 0 10px; }
.field label { display: block; font-weight: 600; font-size: 13px; margin-bottom: 3px; }
.field .hint { font-weight: 400; color: #5b6470; }
input[type=text], input[type=email], select, textarea { width: 100%; padding: 7px 9px; border: 1px solid #9aa3ad;
  border-radius: 6px; background: #fff; }
textarea { resize: vertical; min-height: 64px; }
[aria-invalid=true] { border-color: #c5221f; }
.err { color: #b3261e; font-size: 13px; margin: 3px 0 0; }
.err:empty { display: none; }
.primary { border: 0; border-radius: 6px; padding: 8px 16px; background: var(--accent); color: var(--on-accent);
  font-weight: 600; cursor: pointer; }
.secondary { border: 1px solid #9aa3ad; border-radius: 6px; padding: 6px 10px; background: #fff; cursor: pointer; font-size: 13px; }
button:disabled { opacity: .6; cursor: default; }
.note { margin: 0 0 12px; padding: 8px 10px; background: #fff8e1; border-radius: 6px; font-size: 14px; }
.suggestions ul { margin: 0 0 12px; padding-left: 20px; }
.suggestions[hidden] { display: none; }
.log { list-style: none; margin: 0; padding: 12px 14px; flex: 1; overflow-y: auto; min-height: 120px; }
.line { margin: 0 0 10px; max-width: 85%; }
.line .who { display: block; font-size: 12px; color: #5b6470; }
.line .text { display: inline-block; padding: 7px 11px; border-radius: 12px; background: #eef1f5;
  white-space: pre-wrap; overflow-wrap: anywhere; }
.line.visitor { margin-left: auto; text-align: right; }
.line.visitor .text { background: var(--accent); color: var(--on-accent); text-align: left; }
.line.system { max-width: none; text-align: center; font-size: 13px; color: #5b6470; }
.line.system .text { background: transparent; padding: 0; }
.line .state { display: block; font-size: 11px; color: #5b6470; }
.line.failed .state { color: #b3261e; }
.typing { margin: 0; padding: 0 14px 6px; font-size: 13px; color: #5b6470; font-style: italic; }
.offer { margin: 0 14px 10px; }
.compose { display: flex; gap: 8px; padding: 10px 14px; border-top: 1px solid #e3e6ea; align-items: flex-end; }
.compose textarea { min-height: 42px; height: 42px; }
.tools { display: flex; flex-wrap: wrap; gap: 6px; padding: 0 14px 10px; }
.after { padding: 10px 14px; border-top: 1px solid #e3e6ea; }
fieldset { border: 0; padding: 0; margin: 0 0 8px; }
legend { font-weight: 600; padding: 0; }
.scores { display: flex; gap: 6px; margin: 6px 0; }
.scores label { display: flex; align-items: center; gap: 3px; padding: 4px 8px; border: 1px solid #9aa3ad; border-radius: 6px; cursor: pointer; }
.done { margin: 0 0 10px; }
@media (prefers-reduced-motion: no-preference) { .panel { transition: opacity .15s; } }
`;

  // ------------------------------------------------------------------ the widget

  const state = {
    settings: null,
    conversation: null, // {id, token}
    status: null, // the last status frame
    seqs: new Set(), // sequence numbers shown
    maxSeq: 0,
    pending: [], // [{client_id, text}] sent, not yet back with a seq
    own: new Map(), // client_id -> its <li>
    files: new Map(), // client_id -> file name (the line carries no name)
    email: "",
    ws: null,
    wsOpen: false,
    caughtUp: false,
    replayed: false,
    attempts: 0,
    reconnectTimer: 0,
    pingTimer: 0,
    lastFrameAt: 0,
    typingSentAt: 0,
    typingTimer: 0,
    endRequested: false,
    open: false,
    unread: 0,
    announced: "",
    view: "",
  };

  let host, root, launcher, badge, panel, titleEl, statusEl, bodyEl;
  const ui = {}; // the chat view's parts

  function build() {
    host = document.createElement("servicedesk-chat");
    const shadow = host.attachShadow({ mode: "open" });
    if ("adoptedStyleSheets" in shadow && window.CSSStyleSheet && CSSStyleSheet.prototype.replaceSync) {
      // A constructed sheet: not subject to the page's style-src policy.
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      shadow.adoptedStyleSheets = [sheet];
    } else {
      shadow.append(h("style", {}, CSS));
    }
    const panelId = uid("panel");
    const titleId = uid("title");
    badge = h("span", { class: "badge", hidden: true });
    launcher = h(
      "button",
      { type: "button", class: "launcher", "aria-expanded": "false", "aria-controls": panelId, "aria-haspopup": "dialog" },
      chatIcon(),
      h("span", { text: T.launcher }),
      badge
    );
    launcher.addEventListener("click", () => (state.open ? close() : openPanel()));
    titleEl = h("h2", { id: titleId, text: T.title });
    statusEl = h("p", { class: "status", role: "status", "aria-live": "polite" });
    bodyEl = h("div", { class: "body" });
    panel = h(
      "div",
      { class: "panel", id: panelId, role: "dialog", "aria-labelledby": titleId, hidden: true },
      h("div", { class: "head" }, titleEl, h("button", { type: "button", class: "close", "aria-label": T.minimise, text: "×", onclick: () => close() })),
      statusEl,
      bodyEl
    );
    root = h("div", { class: "root", lang: lang === "zh-hans" ? "zh-Hans" : "en" }, panel, launcher);
    // Escape closes from anywhere in the widget (the dialog is not modal: Tab may leave it).
    root.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && state.open) {
        event.stopPropagation();
        close();
      }
    });
    shadow.append(root);
  }

  function chatIcon() {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z");
    svg.append(path);
    return svg;
  }

  function applySettings(settings) {
    state.settings = settings;
    if (COLOUR.test(settings.colour || "")) root.style.setProperty("--accent", settings.colour);
    if (COLOUR.test(settings.text_colour || "")) root.style.setProperty("--on-accent", settings.text_colour);
    titleEl.textContent = settings.name || T.title;
  }

  async function loadSettings() {
    const result = await call("widgets/" + encodeURIComponent(widgetKey) + "/");
    if (!result.ok) return result;
    applySettings(result.data);
    return result;
  }

  function announce(text) {
    if (text === state.announced) return;
    state.announced = text;
    statusEl.textContent = text;
  }

  function setUnread(n) {
    state.unread = n;
    badge.hidden = n === 0;
    badge.textContent = n ? String(n) : "";
    launcher.setAttribute("aria-label", n ? T.launcher + ", " + T.unread(n) : T.launcher);
  }

  // ------------------------------------------------------------------ opening and closing

  function openPanel() {
    store.writable = true;
    state.open = true;
    store.set("open", "1");
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    setUnread(0);
    if (state.maxSeq) store.set("seq", state.maxSeq);
    if (!state.view) {
      showStart();
      return;
    }
    // A stored chat not read yet on this page (a finished one is read once, then its socket closed).
    if (state.conversation && !state.ws && !state.replayed) connect();
    focusFirst();
  }

  function close() {
    state.open = false;
    store.set("open", null);
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }

  function focusFirst() {
    const target =
      bodyEl.querySelector("[data-autofocus]:not([disabled]):not([hidden])") ||
      bodyEl.querySelector("input:not([type=hidden]):not(.vh), select, textarea:not([disabled]), button:not([disabled])");
    (target || panel.querySelector(".close")).focus();
  }

  function setView(name, ...children) {
    state.view = name;
    bodyEl.replaceChildren(...children);
    if (state.open) focusFirst();
  }

  /** What opening the panel shows first: the stored chat, or the pre-chat form. */
  async function showStart() {
    if (state.conversation) {
      showChat();
      connect();
      return;
    }
    if (!state.settings) {
      setView("loading", h("p", { class: "pad", text: T.loading }));
      const result = await loadSettings();
      if (!result.ok) {
        setView(
          "error",
          h("div", { class: "pad" }, h("p", { role: "alert", text: errorText(result) }), h("button", { type: "button", class: "secondary", text: T.retry, onclick: () => showStart() }))
        );
        return;
      }
    }
    showForm();
  }

  // ------------------------------------------------------------------ the pre-chat (and offline) form

  function field(name, label, control, required) {
    const errorId = uid("err");
    control.id = control.id || uid(name);
    control.name = name;
    control.setAttribute("aria-describedby", errorId);
    if (required) control.setAttribute("aria-required", "true");
    return h(
      "div",
      { class: "field" },
      h("label", { for: control.id }, label + " ", h("span", { class: "hint", text: required ? T.required : T.optional })),
      control,
      h("p", { class: "err", id: errorId, "data-error-for": name })
    );
  }

  function showForm(previousStatus) {
    const s = state.settings;
    const online = s.online;
    const emailRequired = s.email_required || !online;
    const form = h("form", { class: "pad prechat", novalidate: true });
    if (s.greeting) form.append(h("p", { class: "greeting", text: s.greeting }));
    if (!online) form.append(h("p", { class: "note", text: T.offline_intro }));
    form.append(field("name", T.name, h("input", { type: "text", autocomplete: "name", maxlength: 200 }), s.name_required));
    const email = h("input", { type: "email", autocomplete: "email", maxlength: 254 });
    if (state.email) email.value = state.email;
    form.append(field("email", T.email, email, emailRequired));
    if (s.topics && s.topics.length) {
      const select = h("select", {}, h("option", { value: "", text: T.topic_none }));
      for (const topic of s.topics) select.append(h("option", { value: topic.slug, text: topic.name }));
      form.append(field("topic", T.topic, select, false));
    }
    const question = h("textarea", { rows: 3 });
    form.append(field("text", T.message, question, true));
    // Knowledge-base articles for what the visitor is typing (links open on the desk's help centre).
    const suggestions = h("div", { class: "suggestions", hidden: true, "aria-live": "polite" });
    form.append(suggestions);
    let suggestTimer = null;
    let suggestAsked = 0;
    question.addEventListener("input", () => {
      clearTimeout(suggestTimer);
      suggestTimer = setTimeout(async () => {
        const text = question.value.trim();
        const mine = ++suggestAsked;
        if (text.length < 3) {
          suggestions.hidden = true;
          return;
        }
        const result = await call(
          "widgets/" + encodeURIComponent(widgetKey) + "/suggestions/?visitor_key=" + encodeURIComponent(deflectionKey()) +
            "&q=" + encodeURIComponent(text.slice(0, 200))
        );
        if (mine !== suggestAsked || !result.ok) return;
        const articles = result.data.articles || [];
        suggestions.replaceChildren();
        if (articles.length) {
          const list = h("ul", {});
          for (const article of articles) {
            list.append(h("li", {}, h("a", { href: article.url, target: "_blank", rel: "noopener", text: article.title })));
          }
          suggestions.append(h("p", { class: "note", text: T.suggested }), list);
        }
        suggestions.hidden = articles.length === 0;
      }, 300);
    });
    const formError = h("p", { class: "err", role: "alert" });
    const submit = h("button", { type: "submit", class: "primary", text: online ? T.start : T.offline_send });
    form.append(formError, submit);
    const clientId = { value: uuid() }; // kept across retries of this one submission
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = {
        name: form.elements.name.value.trim(),
        email: form.elements.email.value.trim(),
        topic: form.elements.topic ? form.elements.topic.value : "",
        text: form.elements.text.value.trim(),
      };
      const errors = {};
      if (s.name_required && !values.name) errors.name = T.err_required;
      if (!values.email && emailRequired) errors.email = T.err_required;
      else if (values.email && !EMAIL.test(values.email)) errors.email = T.err_email;
      if (!values.text) errors.text = T.err_required;
      else if (values.text.length > (s.text_max || 4000)) errors.text = T.err_long(s.text_max || 4000);
      if (showFieldErrors(form, errors, formError)) return;
      submit.disabled = true;
      submit.textContent = T.starting;
      const result = await startChat(values, clientId);
      submit.disabled = false;
      submit.textContent = online ? T.start : T.offline_send;
      if (!result.ok) {
        const fieldErrors = {};
        for (const name of ["name", "email", "topic", "text"]) {
          if (Array.isArray(result.data[name])) fieldErrors[name] = result.data[name].join(" ");
        }
        if (!showFieldErrors(form, fieldErrors, formError)) {
          formError.textContent = errorText(result);
        }
      }
    });
    setView("form", form);
  }

  /** Marks the fields in ``errors`` (name -> text); true when there was one. Focus goes to the first. */
  function showFieldErrors(form, errors, formError) {
    let first = null;
    for (const slot of form.querySelectorAll("[data-error-for]")) {
      const name = slot.dataset.errorFor;
      const control = form.elements[name];
      slot.textContent = errors[name] || "";
      if (control) control.setAttribute("aria-invalid", errors[name] ? "true" : "false");
      if (errors[name] && !first) first = control;
    }
    formError.textContent = first ? T.err_form : "";
    if (first) first.focus();
    return Boolean(first);
  }

  async function startChat(values, clientId) {
    const body = {
      widget: widgetKey,
      name: values.name,
      email: values.email,
      topic: values.topic,
      text: values.text,
      client_id: clientId.value,
      language: lang,
    };
    const previous = store.get("token");
    if (previous) body.visitor = previous;
    const deflection = store.get("deflection");
    if (deflection) body.visitor_key = deflection;
    if (identity) {
      body.identity = identity;
      body.identity_hmac = identityHmac;
    }
    let result = await call("conversations/", { method: "POST", json: body });
    if (result.status === 409 && result.data.code === "already_started") {
      // An earlier attempt was stored but its answer lost: the protocol says start again.
      clientId.value = body.client_id = uuid();
      result = await call("conversations/", { method: "POST", json: body });
    }
    if (!result.ok) return result;
    state.email = values.email;
    resetConversation();
    state.conversation = { id: result.data.id, token: result.data.visitor_token };
    store.set("token", state.conversation.token);
    store.set("conversation", state.conversation.id);
    store.set("seq", 0);
    store.set("email", values.email || null);
    if (result.data.status === "offline") {
      state.status = { status: "offline" };
      store.set("pending", null);
      setView(
        "offline",
        h(
          "div",
          { class: "pad" },
          h("p", { class: "done", role: "alert", text: T.offline_done(result.data.ticket) }),
          h("button", { type: "button", class: "secondary", text: T.new_chat, onclick: newChat })
        )
      );
      announce(T.offline);
      return result;
    }
    showChat();
    // The first message is the start's: its line comes back with this client_id.
    ownLine(clientId.value, values.text, "sending");
    connect();
    return result;
  }

  function resetConversation() {
    disconnect();
    state.conversation = null;
    state.status = null;
    state.seqs = new Set();
    state.maxSeq = 0;
    state.pending = [];
    state.own = new Map();
    state.files = new Map();
    state.endRequested = false;
    state.replayed = false;
    state.announced = "";
    statusEl.textContent = "";
  }

  async function newChat() {
    // The old token stays stored: the next start passes it as ``visitor`` (the same record).
    resetConversation();
    store.set("conversation", null);
    store.set("seq", null);
    store.set("pending", null);
    const result = await loadSettings(); // online or not may have changed
    if (!result.ok && !state.settings) {
      setView("error", h("p", { class: "pad", role: "alert", text: errorText(result) }));
      return;
    }
    showForm();
  }

  // ------------------------------------------------------------------ the chat view

  function showChat() {
    ui.log = h("ol", { class: "log", role: "log", "aria-live": "polite", "aria-label": T.conversation, tabindex: "0" });
    ui.typing = h("p", { class: "typing", "aria-live": "polite", hidden: true });
    ui.offer = h("div", { class: "offer", hidden: true });
    ui.text = h("textarea", { id: uid("compose"), rows: 2, "data-autofocus": true, maxlength: (state.settings && state.settings.text_max) || 4000 });
    ui.text.addEventListener("input", typed);
    ui.text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        ui.compose.requestSubmit();
      }
    });
    ui.send = h("button", { type: "submit", class: "primary", text: T.send });
    ui.compose = h("form", { class: "compose", onsubmit: sendTyped }, h("label", { class: "vh", for: ui.text.id, text: T.compose }), ui.text, ui.send);
    ui.file = h("input", { type: "file", class: "vh", tabindex: "-1", "aria-hidden": "true", accept: fileTypes().join(",") });
    ui.file.addEventListener("change", () => {
      const file = ui.file.files && ui.file.files[0];
      ui.file.value = "";
      if (file) sendFile(file);
    });
    ui.attach = h("button", { type: "button", class: "secondary", text: T.attach, onclick: () => ui.file.click() });
    ui.transcript = h("button", { type: "button", class: "secondary", text: T.transcript, onclick: transcript });
    ui.end = h("button", { type: "button", class: "secondary", text: T.end, onclick: endChat });
    ui.transcriptArea = h("div", { class: "pad", hidden: true });
    ui.tools = h("div", { class: "tools" }, ui.attach, ui.file, ui.transcript, ui.end);
    ui.after = h("div", { class: "after", hidden: true });
    setView("chat", ui.log, ui.typing, ui.offer, ui.compose, ui.tools, ui.transcriptArea, ui.after);
    for (const message of state.pending) ownLine(message.client_id, message.text, "sending");
  }

  function fileTypes() {
    return (state.settings && state.settings.file_types) || ["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"];
  }

  function lineElement(author, name, text, at) {
    const who = author === "visitor" ? T.you : author === "agent" ? name || T.agent : "";
    const li = h("li", { class: "line " + author });
    if (who) li.append(h("span", { class: "who" }, who + (at ? " · " + timeOf(at) : "")));
    li.append(h("span", { class: "text", text }));
    return li;
  }

  function timeOf(at) {
    try {
      return new Date(at).toLocaleTimeString(lang === "zh-hans" ? "zh-CN" : "en", { hour: "2-digit", minute: "2-digit" });
    } catch (error) {
      return "";
    }
  }

  /** A message of the visitor's own, before its line is back (it goes last, after every stored line). */
  function ownLine(clientId, text, status) {
    const li = lineElement("visitor", "", text, null);
    li.dataset.clientId = clientId;
    li.classList.add("own");
    li.append(h("span", { class: "state" }));
    state.own.set(clientId, li);
    ui.log.append(li);
    markOwn(li, status);
    scrollDown();
    return li;
  }

  function markOwn(li, status) {
    li.dataset.state = status;
    li.classList.toggle("failed", status === "failed");
    li.querySelector(".state").textContent = status === "delivered" ? T.delivered : status === "failed" ? T.failed : T.sending;
  }

  function scrollDown() {
    if (ui.log) ui.log.scrollTop = ui.log.scrollHeight;
  }

  /** A line from the desk: shown once per seq, in seq order, before the messages still sending. */
  function receiveLine(frame) {
    const seq = frame.seq;
    if (!Number.isInteger(seq) || state.seqs.has(seq)) return;
    state.seqs.add(seq);
    state.maxSeq = Math.max(state.maxSeq, seq);
    let text = typeof frame.text === "string" ? frame.text : "";
    const names = Array.isArray(frame.files)
      ? frame.files.map((f) => (f && typeof f.name === "string" ? f.name : "")).filter(Boolean)
      : [];
    if (names.length) {
      const shown = names.map((name) => T.attachment(name)).join("\n");
      text = text ? text + "\n" + shown : shown;
    } else if (frame.author === "visitor" && !text) {
      text = T.attachment(state.files.get(frame.client_id) || "");
    }
    let li = frame.client_id ? state.own.get(frame.client_id) : null;
    if (li) {
      const stamp = li.querySelector(".who");
      if (stamp && frame.at) stamp.textContent = T.you + " · " + timeOf(frame.at);
      markOwn(li, "delivered");
    } else {
      li = lineElement(frame.author, frame.name, text, frame.at);
      if (frame.author === "visitor") {
        li.classList.add("own");
        li.append(h("span", { class: "state", text: T.delivered }));
        li.dataset.state = "delivered";
      }
    }
    li.dataset.seq = String(seq);
    if (frame.client_id) {
      li.dataset.clientId = frame.client_id;
      const before = state.pending.length;
      state.pending = state.pending.filter((m) => m.client_id !== frame.client_id);
      if (state.pending.length !== before) store.set("pending", JSON.stringify(state.pending));
    }
    let next = null;
    for (const other of ui.log.children) {
      if (other !== li && (!other.dataset.seq || Number(other.dataset.seq) > seq)) {
        next = other;
        break;
      }
    }
    // Moved only when out of place: a node put back into the log is read out again.
    if (!li.isConnected || li.nextElementSibling !== next) ui.log.insertBefore(li, next);
    if (frame.author === "agent") ui.typing.hidden = true;
    if (state.open) store.set("seq", state.maxSeq);
    else if (frame.author !== "visitor" && seq > Number(store.get("seq") || 0)) setUnread(state.unread + 1);
    scrollDown();
  }

  function receiveStatus(frame) {
    const previous = state.status || {};
    state.status = frame;
    const status = frame.status;
    if (status === "waiting") {
      announce(frame.position > 1 ? T.waiting_n(frame.position) : T.waiting_next);
    } else if (status === "active") {
      const joined = previous.status && (previous.status !== "active" || previous.agent !== frame.agent);
      announce(joined ? T.joined(frame.agent) + " " + T.active(frame.agent) : T.active(frame.agent));
    } else if (status === "ended") {
      announce(T.ended);
    } else if (status === "abandoned") {
      announce(T.abandoned);
    } else if (status === "offline") {
      announce(T.offline);
    }
    store.set("live", FINAL.includes(status) ? null : "1");
    const open = !FINAL.includes(status);
    if (ui.compose) {
      ui.compose.hidden = !open;
      ui.attach.hidden = !open;
      ui.end.hidden = !open;
      ui.offer.hidden = !(status === "waiting" && frame.offline_offered);
      if (!ui.offer.hidden && !ui.offer.firstChild) buildOffer();
      if (!open && ui.after.hidden) buildAfter(status);
    }
    if (!open) {
      for (const message of state.pending) {
        const li = state.own.get(message.client_id);
        if (li) markOwn(li, "failed");
      }
      state.pending = [];
      store.set("pending", null);
      maybeDisconnect();
    }
  }

  function buildOffer() {
    const email = h("input", { type: "email", autocomplete: "email", maxlength: 254 });
    email.value = state.email || store.get("email") || "";
    const text = h("textarea", { rows: 2 });
    const error = h("p", { class: "err", role: "alert" });
    const form = h("form", { novalidate: true }, field("email", T.email, email, true), field("text", T.message, text, false), error, h("button", { type: "submit", class: "secondary", text: T.leave }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = { email: email.value.trim(), text: text.value.trim() };
      const errors = {};
      if (!values.email) errors.email = T.err_required;
      else if (!EMAIL.test(values.email)) errors.email = T.err_email;
      if (showFieldErrors(form, errors, error)) return;
      const result = await call("conversations/" + state.conversation.id + "/leave/", { method: "POST", json: values, token: state.conversation.token });
      if (!result.ok) {
        const fieldErrors = {};
        for (const name of ["email", "text"]) if (Array.isArray(result.data[name])) fieldErrors[name] = result.data[name].join(" ");
        if (!showFieldErrors(form, fieldErrors, error)) error.textContent = errorText(result);
        return;
      }
      ui.offer.replaceChildren(h("p", { class: "done", role: "alert", text: T.leave_done }));
    });
    ui.offer.append(h("p", { class: "note", text: T.offer }), form);
  }

  function buildAfter(status) {
    ui.after.hidden = false;
    ui.typing.hidden = true;
    const parts = [];
    if (status === "ended") {
      const scores = h("div", { class: "scores" });
      for (let n = 1; n <= 5; n += 1) {
        scores.append(h("label", {}, h("input", { type: "radio", name: "score", value: String(n), "aria-label": T.rate_n(n) }), String(n)));
      }
      const comment = h("textarea", { rows: 2, maxlength: 4000 });
      const error = h("p", { class: "err", role: "alert" });
      const form = h(
        "form",
        { novalidate: true, class: "rating" },
        h("fieldset", {}, h("legend", { text: T.rate }), h("p", { class: "hint", text: T.rate_hint }), scores),
        field("comment", T.comment, comment, false),
        error,
        h("button", { type: "submit", class: "primary", text: T.rate_send })
      );
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const chosen = form.querySelector("input[name=score]:checked");
        if (!chosen) {
          error.textContent = T.rate_choose;
          form.querySelector("input[name=score]").focus();
          return;
        }
        const result = await call("conversations/" + state.conversation.id + "/rating/", {
          method: "POST",
          json: { score: Number(chosen.value), comment: comment.value.trim() },
          token: state.conversation.token,
        });
        if (!result.ok) {
          error.textContent = errorText(result);
          return;
        }
        const done = h("p", { class: "done", role: "alert", tabindex: "-1", text: T.rate_done });
        form.replaceWith(done);
        done.focus();
      });
      parts.push(form);
    }
    parts.push(h("button", { type: "button", class: "secondary", text: T.new_chat, onclick: newChat }));
    ui.after.replaceChildren(...parts);
  }

  // ------------------------------------------------------------------ the visitor's actions

  function sendTyped(event) {
    event.preventDefault();
    const text = ui.text.value.trim();
    if (!text) return;
    const max = (state.settings && state.settings.text_max) || 4000;
    if (text.length > max) {
      announce(T.err_long(max));
      return;
    }
    const message = { client_id: uuid(), text };
    state.pending.push(message);
    store.set("pending", JSON.stringify(state.pending));
    ownLine(message.client_id, text, "sending");
    ui.text.value = "";
    send({ type: "message", client_id: message.client_id, text });
    ui.text.focus();
  }

  function typed() {
    const now = Date.now();
    if (!ui.text.value.trim() || now - state.typingSentAt < TYPING_EVERY) return;
    if (send({ type: "typing" })) state.typingSentAt = now;
  }

  async function sendFile(file) {
    const clientId = uuid();
    state.files.set(clientId, file.name);
    const li = ownLine(clientId, T.attachment(file.name), "sending");
    if (!fileTypes().includes(file.type)) {
      markOwn(li, "failed");
      announce(T.file_type);
      return;
    }
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("client_id", clientId);
    const result = await call("conversations/" + state.conversation.id + "/files/", { method: "POST", form, token: state.conversation.token });
    if (!result.ok) {
      markOwn(li, "failed");
      announce(Array.isArray(result.data.file) ? result.data.file.join(" ") : errorText(result));
    }
    // Delivered when its line (this client_id) arrives on the socket.
  }

  async function transcript(event, email) {
    ui.transcript.disabled = true;
    const result = await call("conversations/" + state.conversation.id + "/transcript/", {
      method: "POST",
      json: email ? { email } : {},
      token: state.conversation.token,
    });
    ui.transcript.disabled = false;
    if (result.ok) {
      ui.transcriptArea.hidden = true;
      announce(T.transcript_sent(result.data.sent_to || email || ""));
      return;
    }
    if (result.status === 400 && Array.isArray(result.data.email) && !email) {
      askTranscriptAddress();
      return;
    }
    announce(errorText(result));
  }

  function askTranscriptAddress() {
    const input = h("input", { type: "email", autocomplete: "email", maxlength: 254, "data-autofocus": true });
    const error = h("p", { class: "err", role: "alert" });
    const form = h("form", { novalidate: true }, field("email", T.transcript_email, input, true), error, h("button", { type: "submit", class: "secondary", text: T.transcript_send }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!EMAIL.test(value)) {
        showFieldErrors(form, { email: value ? T.err_email : T.err_required }, error);
        return;
      }
      transcript(null, value);
    });
    ui.transcriptArea.replaceChildren(form);
    ui.transcriptArea.hidden = false;
    input.focus();
  }

  function endChat() {
    state.endRequested = true;
    send({ type: "end" });
  }

  // ------------------------------------------------------------------ the socket

  function send(frame) {
    if (!state.ws || !state.wsOpen) return false;
    try {
      state.ws.send(JSON.stringify(frame));
      return true;
    } catch (error) {
      return false;
    }
  }

  function connect() {
    if (state.ws || !state.conversation) return;
    window.clearTimeout(state.reconnectTimer);
    if (!state.status || !FINAL.includes(state.status.status)) announce(state.attempts ? T.reconnecting : T.connecting);
    const ws = new WebSocket(socketUrl + "?token=" + encodeURIComponent(state.conversation.token));
    state.ws = ws;
    state.wsOpen = false;
    state.caughtUp = false;
    ws.onopen = () => {
      state.wsOpen = true;
      state.lastFrameAt = Date.now();
      // Every line after the highest held (0 after a page load: the whole chat), then what is unconfirmed.
      send({ type: "resume", after: state.maxSeq });
      for (const message of state.pending) send({ type: "message", client_id: message.client_id, text: message.text });
      if (state.endRequested) send({ type: "end" });
      send({ type: "ping" }); // its pong comes after the replay: caught up
      window.clearInterval(state.pingTimer);
      state.pingTimer = window.setInterval(ping, PING_EVERY);
    };
    ws.onmessage = (event) => {
      state.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      if (!frame || typeof frame !== "object") return;
      state.attempts = 0;
      if (frame.type === "message") receiveLine(frame);
      else if (frame.type === "status") receiveStatus(frame);
      else if (frame.type === "typing") agentTyping();
      else if (frame.type === "pong") {
        state.caughtUp = state.replayed = true;
        maybeDisconnect();
      } else if (frame.type === "error") refused(frame);
    };
    ws.onclose = (event) => closed(ws, event.code);
  }

  function ping() {
    if (Date.now() - state.lastFrameAt > SILENCE_MAX) {
      // Half-open: the close event may take minutes; start over now.
      const ws = state.ws;
      closed(ws, 1006);
      try {
        ws.close();
      } catch (error) {
        // already closing
      }
      return;
    }
    send({ type: "ping" });
  }

  function refused(frame) {
    if (frame.code === "rate_limited") {
      announce(T.slow_down);
      window.setTimeout(() => {
        for (const message of state.pending) send({ type: "message", client_id: message.client_id, text: message.text });
        if (state.status) receiveStatus(state.status);
      }, 1500);
    } else if (frame.code === "invalid" && state.pending.length) {
      // The desk refused one text (empty or too long): the oldest unconfirmed one.
      const [message] = state.pending.splice(0, 1);
      store.set("pending", JSON.stringify(state.pending));
      const li = state.own.get(message.client_id);
      if (li) markOwn(li, "failed");
      announce(frame.message || T.err_generic);
    } else if (frame.code === "closed") {
      state.endRequested = false;
    }
  }

  function agentTyping() {
    const agent = state.status && state.status.agent;
    ui.typing.textContent = T.typing(agent);
    ui.typing.hidden = false;
    window.clearTimeout(state.typingTimer);
    state.typingTimer = window.setTimeout(() => (ui.typing.hidden = true), TYPING_SHOWN);
  }

  /** After the replay, a finished chat needs no socket. */
  function maybeDisconnect() {
    if (state.caughtUp && state.status && FINAL.includes(state.status.status)) disconnect();
  }

  function disconnect() {
    window.clearTimeout(state.reconnectTimer);
    window.clearInterval(state.pingTimer);
    const ws = state.ws;
    state.ws = null;
    state.wsOpen = false;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onopen = null;
      try {
        ws.close(1000);
      } catch (error) {
        // already closed
      }
    }
  }

  function closed(ws, code) {
    if (ws !== state.ws) return;
    ws.onclose = ws.onmessage = ws.onopen = null;
    state.ws = null;
    state.wsOpen = false;
    window.clearInterval(state.pingTimer);
    if (code === 4401) {
      // The token is unknown or expired: this chat is gone for this browser.
      forget();
      return;
    }
    if (code === 4403) {
      announce(T.refused);
      return;
    }
    if (state.status && FINAL.includes(state.status.status)) return;
    // Jittered exponential backoff: 1 s, 2 s, 4 s ... capped at 30 s, each between half and all of it.
    const ceiling = Math.min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** state.attempts);
    state.attempts += 1;
    announce(T.reconnecting);
    state.reconnectTimer = window.setTimeout(connect, ceiling / 2 + Math.random() * (ceiling / 2));
  }

  function forget() {
    resetConversation();
    store.set("token", null);
    store.set("conversation", null);
    store.set("seq", null);
    store.set("pending", null);
    store.set("live", null);
    state.view = "";
    if (state.open) showStart();
  }

  window.addEventListener("online", () => {
    if (!state.ws && state.conversation && !(state.status && FINAL.includes(state.status.status))) {
      state.attempts = 0;
      connect();
    }
  });

  // ------------------------------------------------------------------ start-up

  async function init() {
    let result = await loadSettings();
    for (let attempt = 1; !result.ok && result.status === 0 && attempt < 3; attempt += 1) {
      await new Promise((resolve) => window.setTimeout(resolve, 2000 * attempt));
      result = await loadSettings();
    }
    if (!result.ok) {
      // A site the desk does not allow gets no launcher at all (the desk logs the refusal).
      console.warn("Service desk chat: the desk refused or did not answer (" + (result.status || "network") + ").");
      return;
    }
    document.body.append(host);
    // A returning visitor: their chat (read, never written, before they open the panel).
    const token = store.get("token");
    const id = Number(store.get("conversation"));
    if (token && id) {
      store.writable = true; // they opened the panel before
      state.conversation = { id, token };
      state.email = store.get("email") || "";
      state.pending = storedJson("pending", []).filter((m) => m && typeof m.client_id === "string" && typeof m.text === "string");
      showChat();
      // A chat still going is followed at once (a waiting visitor who stays away abandons it).
      if (store.get("live") || state.pending.length) connect();
      if (store.get("open")) openPanel();
    }
  }

  function boot() {
    build();
    init();
  }

  if (document.body) boot();
  else document.addEventListener("DOMContentLoaded", boot, { once: true });
})();
