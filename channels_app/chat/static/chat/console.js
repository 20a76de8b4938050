/* The agent chat console at /desk/chat/ (docs/chat-protocol.md, "Agents").
 *
 * Everything shown comes from the chat API, which applies the chat access
 * rule: the waiting chats of the agent's queues (GET conversations/), and for
 * each chat the agent holds its state, customer panel and lines
 * (GET conversations/<id>/?after=<the last seq shown>; a seq already shown is
 * dropped). The console's own socket to /ws/desk/ only says which chat changed
 * ({"type": "chat", "event": "offer" | "changed" | "typing" | "queue"}), and
 * the console reads it again. The socket reconnects by itself with growing,
 * jittered delays and, once back, everything is read again: the database is
 * the truth. Its ping every 25 s is the agent's heartbeat (routing offers
 * chats only to agents with a desk open). Pushes are sent at most once (a
 * blip of the channel layer loses what was in flight), so while connected the
 * console also reads everything every 30 s.
 *
 * Visitors' words, names and addresses are put in the page as text
 * (textContent), never as HTML. The translated strings come from the page
 * (#chat-console-strings); the static labels from its <template> elements.
 */
(function () {
  "use strict";
  var PING_MS = 25000;
  var TYPING_EVERY_MS = 3000;
  var TYPING_SHOWN_MS = 5000;
  var MAX_DELAY_MS = 30000;
  var POLL_MS = 5000;
  var SAFETY_READ_MS = 30000;
  var FORBIDDEN = 4403;

  var root = document.getElementById("chat-console");
  if (!root || !("fetch" in window)) return;

  var API = root.getAttribute("data-api");
  var csrf = root.getAttribute("data-csrf");
  var me = Number(root.getAttribute("data-user"));
  var ticketUrl = root.getAttribute("data-ticket-url");
  var live = root.getAttribute("data-live") === "on" && "WebSocket" in window;
  var language = document.documentElement.lang || undefined;
  var strings = {};
  try {
    strings = JSON.parse(document.getElementById("chat-console-strings").textContent);
  } catch (e) {
    /* The labels of the page itself stay; the script's messages are empty. */
  }

  var state = {
    capacity: 0,
    heldActive: 0,
    waiting: {}, // id -> the waiting chat's body from the list
    offered: {}, // ids offered to this agent, as last read
    fetchedAt: 0,
    skew: 0, // the server's clock minus this one (ms), from the Date header when it is clearly off
    chats: {}, // id -> a chat the agent holds (a column)
    order: [],
    selected: null,
    focusOnArrival: null,
    canned: {}, // queue id -> promise of its canned replies
  };

  // --- Small helpers ------------------------------------------------------------

  function format(text, values) {
    return String(text || "").replace(/%\((\w+)\)s/g, function (all, key) {
      return values && key in values ? String(values[key]) : all;
    });
  }

  function node(tag, className, text) {
    var element = document.createElement(tag);
    if (className) element.className = className;
    if (text !== undefined && text !== null) element.textContent = String(text);
    return element;
  }

  function field(scope, name) {
    return scope.querySelector('[data-field="' + name + '"]');
  }

  function part(scope, name) {
    return scope.querySelector('[data-part="' + name + '"]');
  }

  function announce(text) {
    var region = document.getElementById("chat-console-status");
    if (region && text) region.textContent = text;
  }

  function serverNow() {
    return Date.now() + state.skew;
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var s = seconds % 60;
    var pad = function (n) {
      return (n < 10 ? "0" : "") + n;
    };
    return h ? h + ":" + pad(m) + ":" + pad(s) : m + ":" + pad(s);
  }

  function clock(iso) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) return "";
    try {
      return date.toLocaleTimeString(language, { hour: "2-digit", minute: "2-digit" });
    } catch (e) {
      return date.toLocaleTimeString();
    }
  }

  function ticketHref(reference) {
    return ticketUrl.replace("REFERENCE", encodeURIComponent(reference));
  }

  function uuid4() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 15) | 64;
    bytes[8] = (bytes[8] & 63) | 128;
    var hex = Array.prototype.map
      .call(bytes, function (b) {
        return (b + 256).toString(16).slice(1);
      })
      .join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  function reason(result) {
    var data = result && result.data;
    if (data && typeof data.detail === "string") return data.detail;
    if (data && typeof data === "object") {
      for (var key in data) {
        if (Array.isArray(data[key]) && data[key].length) return String(data[key][0]);
      }
    }
    return strings.networkError;
  }

  // --- The chat API ---------------------------------------------------------------

  function api(method, path, body) {
    var headers = { Accept: "application/json" };
    if (method !== "GET") {
      headers["X-CSRFToken"] = csrf;
      headers["Content-Type"] = "application/json";
    }
    return fetch(API + path, {
      method: method,
      credentials: "same-origin",
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (response) {
      // The Date header has whole seconds: only a clock that is clearly off is corrected.
      var date = Date.parse(response.headers.get("Date") || "");
      if (!isNaN(date)) {
        var skew = date + 500 - Date.now();
        state.skew = Math.abs(skew) > 2000 ? skew : 0;
      }
      if (response.status === 204) return { ok: response.ok, status: response.status, data: null };
      return response
        .json()
        .catch(function () {
          return null;
        })
        .then(function (data) {
          return { ok: response.ok, status: response.status, data: data };
        });
    });
  }

  // One read at a time per subject; a read asked for meanwhile runs once after it.
  function coalesced(run) {
    var running = false;
    var again = false;
    return function go() {
      if (running) {
        again = true;
        return;
      }
      running = true;
      run()
        .catch(function () {
          /* The next change or reconnection reads it again. */
        })
        .then(function () {
          running = false;
          if (again) {
            again = false;
            go();
          }
        });
    };
  }

  function readAll() {
    readList();
    state.order.forEach(function (id) {
      readChat(id);
    });
  }

  // --- The list: waiting chats, offers, and the chats the agent holds -------------------

  var readList = coalesced(function () {
    return api("GET", "conversations/").then(function (result) {
      if (result.ok && result.data) showList(result.data);
    });
  });

  function held(chat) {
    return (
      chat.agent &&
      chat.agent.id === me &&
      (chat.status === "active" || (chat.status === "ended" && !chat.wrapped_up_at))
    );
  }

  function showList(data) {
    var results = data.results || [];
    state.capacity = data.capacity || 0;
    state.fetchedAt = Date.now();
    var waiting = results.filter(function (chat) {
      return chat.status === "waiting";
    });
    var mine = results.filter(held);
    state.heldActive = mine.filter(function (chat) {
      return chat.status === "active";
    }).length;

    var offered = {};
    waiting.forEach(function (chat) {
      if (chat.offered_to_me) {
        offered[chat.id] = true;
        if (!state.offered[chat.id]) offerArrived(chat);
      }
    });
    state.offered = offered;
    showWaiting(waiting);

    var wanted = {};
    mine.forEach(function (chat) {
      wanted[chat.id] = true;
      var known = state.chats[chat.id];
      if (!known) {
        columnAdd(chat);
        readChat(chat.id);
      } else if (known.data.status !== chat.status || known.data.wrapped_up_at !== chat.wrapped_up_at) {
        readChat(chat.id);
      }
    });
    state.order.slice().forEach(function (id) {
      if (!wanted[id]) columnRemove(id);
    });
    document.getElementById("chat-columns-empty").hidden = state.order.length > 0;
    document.getElementById("chat-capacity").textContent = format(strings.capacity, {
      held: state.heldActive,
      capacity: state.capacity,
    });
    tick();
  }

  function showWaiting(waiting) {
    var list = document.getElementById("chat-waiting-list");
    var existing = {};
    Array.prototype.forEach.call(list.children, function (item) {
      existing[item.getAttribute("data-conversation")] = item;
    });
    state.waiting = {};
    var full = state.heldActive >= state.capacity;
    // Offers to this agent first, then the order of the API (the longest waiting first).
    waiting = waiting
      .filter(function (chat) {
        return chat.offered_to_me;
      })
      .concat(
        waiting.filter(function (chat) {
          return !chat.offered_to_me;
        })
      );
    waiting.forEach(function (chat) {
      state.waiting[chat.id] = chat;
      var item = existing[chat.id] || waitingItem(chat);
      delete existing[chat.id];
      item.classList.toggle("chat-offer", !!chat.offered_to_me);
      field(item, "name").textContent = chat.visitor.name || strings.visitor;
      field(item, "queue").textContent = chat.queue.name;
      var tier = field(item, "tier");
      tier.textContent = chat.customer.tier_label || "";
      tier.hidden = !chat.customer.tier || chat.customer.tier === "standard";
      var button = item.querySelector("button");
      if (!button.getAttribute("data-busy")) {
        button.disabled = full;
        button.textContent = strings.accept;
        button.className = chat.offered_to_me ? "" : "secondary";
      }
      list.appendChild(item);
    });
    Object.keys(existing).forEach(function (id) {
      existing[id].remove();
    });
    document.getElementById("chat-waiting-empty").hidden = waiting.length > 0;
  }

  function waitingItem(chat) {
    var item = node("li", "chat-waiting-item");
    item.setAttribute("data-conversation", String(chat.id));
    var head = node("p", "chat-waiting-head");
    var name = node("strong", "chat-waiting-name");
    name.setAttribute("data-field", "name");
    var tier = node("span", "badge chat-tier");
    tier.setAttribute("data-field", "tier");
    head.appendChild(name);
    head.appendChild(document.createTextNode(" "));
    head.appendChild(tier);
    var meta = node("p", "chat-waiting-meta muted");
    var queue = node("span");
    queue.setAttribute("data-field", "queue");
    var waited = node("span", "chat-waited");
    waited.setAttribute("data-field", "waited");
    meta.appendChild(queue);
    meta.appendChild(document.createTextNode(" · "));
    meta.appendChild(waited);
    var left = node("p", "chat-offer-left");
    left.setAttribute("data-field", "offer-left");
    var button = node("button", "", strings.accept);
    button.type = "button";
    button.addEventListener("click", function () {
      accept(chat.id, button);
    });
    item.appendChild(head);
    item.appendChild(meta);
    item.appendChild(left);
    item.appendChild(button);
    return item;
  }

  function accept(id, button) {
    var error = document.getElementById("chat-waiting-error");
    error.textContent = "";
    button.disabled = true;
    button.setAttribute("data-busy", "1");
    button.textContent = strings.accepting;
    api("POST", "conversations/" + id + "/accept/")
      .then(function (result) {
        if (result.ok) {
          state.focusOnArrival = id;
          state.selected = id;
        } else {
          error.textContent = format(strings.failed, { reason: reason(result) });
        }
      })
      .catch(function () {
        error.textContent = strings.networkError;
      })
      .then(function () {
        button.removeAttribute("data-busy");
        readList();
      });
  }

  // --- A new offer: a sound and a desktop notification ---------------------------------

  var audio = null;
  var Notice = window.Notification;

  function alertsOn() {
    // Asked for by a click only: browsers let a page play sound and ask for
    // notifications after a gesture, and the agent chooses to be disturbed.
    var AudioContext = window.AudioContext || window.webkitAudioContext;
    if (AudioContext && !audio) {
      try {
        audio = new AudioContext();
      } catch (e) {
        audio = null;
      }
    }
    if (audio && audio.state === "suspended") audio.resume();
    var shown = document.getElementById("chat-notify-state");
    if (!Notice) {
      shown.textContent = strings.soundOnly;
      return;
    }
    var asked = Notice.requestPermission(function () {});
    Promise.resolve(asked).then(function () {
      shown.textContent = Notice.permission === "granted" ? strings.notificationsOn : strings.notificationsBlocked;
      root.setAttribute("data-notifications", Notice.permission);
    });
    chime();
  }

  function chime() {
    if (!audio) return;
    var start = audio.currentTime + 0.01;
    [
      [880, 0],
      [1320, 0.2],
    ].forEach(function (note) {
      var oscillator = audio.createOscillator();
      var gain = audio.createGain();
      var at = start + note[1];
      oscillator.type = "sine";
      oscillator.frequency.setValueAtTime(note[0], at);
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.3, at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.35);
      oscillator.connect(gain);
      gain.connect(audio.destination);
      oscillator.start(at);
      oscillator.stop(at + 0.4);
    });
    root.setAttribute("data-chimes", String(Number(root.getAttribute("data-chimes") || 0) + 1));
  }

  function offerArrived(chat) {
    var name = chat.visitor.name || strings.visitor;
    announce(strings.newOffer + ": " + name);
    chime();
    if (!Notice || Notice.permission !== "granted") return;
    try {
      var notification = new Notice(strings.newOffer, {
        body: format(strings.newOfferBody, { name: name, queue: chat.queue.name }),
        tag: "chat-offer-" + chat.id,
      });
      notification.onclick = function () {
        window.focus();
        var item = document.querySelector('.chat-waiting-item[data-conversation="' + chat.id + '"] button');
        if (item) item.focus();
        notification.close();
      };
    } catch (e) {
      /* Some browsers show notifications only from a service worker: the sound stays. */
    }
  }

  // --- The chats the agent holds: one column each -------------------------------------

  var readers = {};

  function readChat(id) {
    if (!readers[id]) {
      readers[id] = coalesced(function () {
        var chat = state.chats[id];
        if (!chat) return Promise.resolve();
        return api("GET", "conversations/" + id + "/?after=" + chat.lastSeq).then(function (result) {
          if (!state.chats[id]) return;
          if (result.status === 404) {
            columnRemove(id);
            readList();
          } else if (result.ok && result.data) {
            chatShow(state.chats[id], result.data);
          }
        });
      });
    }
    readers[id]();
  }

  function columnAdd(data) {
    var template = document.getElementById("chat-column-template");
    var column = template.content.firstElementChild.cloneNode(true);
    column.setAttribute("data-conversation", String(data.id));
    var chat = {
      id: data.id,
      data: data,
      lastSeq: 0,
      seqs: {},
      pending: {},
      el: column,
      typingUntil: 0,
      lastTyping: 0,
      loaded: false,
    };
    state.chats[data.id] = chat;
    state.order.push(data.id);
    columnWire(chat);
    columnRender(chat);
    document.getElementById("chat-columns").appendChild(column);
    if (state.selected === null) select(data.id);
  }

  function columnRemove(id) {
    var chat = state.chats[id];
    if (!chat) return;
    chat.el.remove();
    delete state.chats[id];
    delete readers[id];
    state.order = state.order.filter(function (other) {
      return other !== id;
    });
    if (state.selected === id) {
      state.selected = null;
      if (state.order.length) select(state.order[0]);
      else customerClear();
    }
    document.getElementById("chat-columns-empty").hidden = state.order.length > 0;
  }

  function columnWire(chat) {
    var column = chat.el;
    var composer = part(column, "composer");
    var text = composer.querySelector("textarea");
    column.addEventListener("click", function () {
      if (state.selected !== chat.id) select(chat.id);
    });
    column.addEventListener("focusin", function () {
      if (state.selected !== chat.id) select(chat.id);
    });
    composer.addEventListener("submit", function (event) {
      event.preventDefault();
      var value = text.value.trim();
      if (!value) return;
      text.value = "";
      send(chat, value, uuid4());
    });
    text.addEventListener("keydown", function (event) {
      // Enter sends; Shift+Enter is a new line; Enter that ends an input method's composition (Chinese) is neither.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        if (composer.requestSubmit) composer.requestSubmit();
        else composer.dispatchEvent(new Event("submit", { cancelable: true }));
      }
    });
    text.addEventListener("input", function () {
      var now = Date.now();
      if (!text.value.trim() || now - chat.lastTyping < TYPING_EVERY_MS || chat.data.status !== "active") return;
      chat.lastTyping = now;
      api("POST", "conversations/" + chat.id + "/typing/").catch(function () {});
    });

    var canned = part(column, "canned");
    canned.addEventListener("toggle", function () {
      if (canned.open) cannedShow(chat, canned, text);
    });

    var transfer = part(column, "transfer");
    var transferForm = part(column, "transfer-form");
    transfer.addEventListener("toggle", function () {
      if (transfer.open) targetsShow(chat, transferForm.querySelector("select"));
    });
    transferForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var target = transferForm.querySelector("select").value.split(":");
      if (target.length !== 2) return;
      var body = {};
      body[target[0]] = Number(target[1]);
      act(chat, "transfer/", body, function () {
        announce(strings.transferred);
      });
    });

    column.querySelector('[data-action="end"]').addEventListener("click", function () {
      act(chat, "end/", undefined);
    });

    var wrapUp = part(column, "wrap-up");
    wrapUp.addEventListener("submit", function (event) {
      event.preventDefault();
      var body = { status: wrapUp.elements.status.value, note: wrapUp.elements.note.value };
      act(chat, "wrap-up/", body, function (data) {
        announce(
          format(strings.wrappedUp, {
            ticket: chat.data.ticket,
            status: (strings.statuses || {})[data.ticket_status] || data.ticket_status,
          })
        );
        columnRemove(chat.id);
      });
    });
  }

  // A POST about one chat; then the chat and the list are read again.
  function act(chat, path, body, done) {
    var error = field(chat.el, "error");
    error.textContent = "";
    var buttons = chat.el.querySelectorAll("[data-part=active] button, [data-part=wrap-up] button");
    Array.prototype.forEach.call(buttons, function (button) {
      button.disabled = true;
    });
    api("POST", "conversations/" + chat.id + "/" + path, body)
      .then(function (result) {
        if (result.ok) {
          if (done) done(result.data || {});
        } else {
          error.textContent = format(strings.failed, { reason: reason(result) });
        }
      })
      .catch(function () {
        error.textContent = strings.networkError;
      })
      .then(function () {
        Array.prototype.forEach.call(buttons, function (button) {
          button.disabled = false;
        });
        if (state.chats[chat.id]) readChat(chat.id);
        readList();
      });
  }

  function chatShow(chat, data) {
    var lines = data.lines || [];
    var changed = chat.data.status !== data.status;
    delete data.lines;
    chat.data = data;
    lines.forEach(function (line) {
      lineAdd(chat, line);
    });
    columnRender(chat);
    if (changed) {
      // The column's layout changed (the wrap-up form): its last lines stay in view.
      var transcript = chat.el.querySelector(".chat-transcript");
      transcript.scrollTop = transcript.scrollHeight;
    }
    if (state.selected === chat.id) customerShow(chat);
    if (!chat.loaded) {
      chat.loaded = true;
      if (state.focusOnArrival === chat.id) {
        state.focusOnArrival = null;
        select(chat.id);
        var text = part(chat.el, "composer").querySelector("textarea");
        if (data.status === "active") text.focus();
      }
    }
  }

  function columnRender(chat) {
    var data = chat.data;
    var column = chat.el;
    var active = data.status === "active";
    var ending = data.status === "ended" && !data.wrapped_up_at;
    column.classList.toggle("chat-column-ended", !active);
    column.setAttribute("data-status", data.status);
    field(column, "name").textContent = (data.visitor && data.visitor.name) || strings.visitor;
    field(column, "queue").textContent = format(strings.queueLabel, { queue: data.queue.name });
    var ticket = field(column, "ticket");
    ticket.textContent = data.ticket;
    ticket.href = ticketHref(data.ticket);
    field(column, "since").textContent = clock(data.answered_at || data.requested_at);
    field(column, "connection").textContent =
      active && data.visitor && data.visitor.connected === false ? strings.visitorLeft : "";
    part(column, "active").hidden = !active;
    part(column, "wrap-up").hidden = !ending;
    field(column, "ended").textContent = ending ? strings.ended : "";
    typingShow(chat);
  }

  function lineAdd(chat, line) {
    if (typeof line.seq !== "number" || chat.seqs[line.seq]) return;
    chat.seqs[line.seq] = true;
    if (line.seq > chat.lastSeq) chat.lastSeq = line.seq;
    var transcript = chat.el.querySelector(".chat-transcript");
    var stick = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 40;
    var item = line.client_id && chat.pending[line.client_id];
    if (item) {
      delete chat.pending[line.client_id];
      item.classList.remove("chat-line-pending", "chat-line-failed");
      item.removeAttribute("data-pending");
      var retry = item.querySelector(".chat-retry");
      if (retry) retry.remove();
    } else {
      item = lineNode(line.author, line.text);
    }
    item.setAttribute("data-seq", String(line.seq));
    field(item, "meta").textContent = line.author === "system" ? clock(line.at) : line.name + " · " + clock(line.at);
    // In order of seq, before the lines still being sent.
    var before = null;
    Array.prototype.some.call(transcript.children, function (other) {
      var seq = Number(other.getAttribute("data-seq"));
      if (other !== item && (other.hasAttribute("data-pending") || seq > line.seq)) {
        before = other;
        return true;
      }
      return false;
    });
    transcript.insertBefore(item, before);
    if (line.author === "visitor") chat.typingUntil = 0;
    if (stick) transcript.scrollTop = transcript.scrollHeight;
  }

  function lineNode(author, text) {
    var item = node("li", "chat-line chat-line-" + author);
    var meta = node("p", "chat-line-meta");
    meta.setAttribute("data-field", "meta");
    item.appendChild(meta);
    item.appendChild(node("p", "chat-line-text", text));
    return item;
  }

  function send(chat, text, clientId) {
    var item = chat.pending[clientId];
    if (!item) {
      item = lineNode("agent", text);
      item.setAttribute("data-pending", clientId);
      chat.pending[clientId] = item;
      var transcript = chat.el.querySelector(".chat-transcript");
      transcript.appendChild(item);
      transcript.scrollTop = transcript.scrollHeight;
    }
    item.classList.add("chat-line-pending");
    item.classList.remove("chat-line-failed");
    field(item, "meta").textContent = strings.sending;
    var oldRetry = item.querySelector(".chat-retry");
    if (oldRetry) oldRetry.remove();
    chat.lastTyping = 0;

    function failed(why) {
      if (!chat.pending[clientId]) return;
      item.classList.remove("chat-line-pending");
      item.classList.add("chat-line-failed");
      field(item, "meta").textContent = strings.notSent + " " + why;
      var retry = node("button", "secondary chat-retry", strings.retry);
      retry.type = "button";
      retry.addEventListener("click", function () {
        send(chat, text, clientId);
      });
      item.appendChild(retry);
    }

    // The same client_id sent again is stored once: a retry after a lost answer is safe.
    api("POST", "conversations/" + chat.id + "/messages/", { text: text, client_id: clientId })
      .then(function (result) {
        if (result.ok && result.data) lineAdd(chat, result.data);
        else failed(reason(result));
      })
      .catch(function () {
        failed(strings.networkError);
      });
  }

  function typingShow(chat) {
    var shown = chat.typingUntil > Date.now() && chat.data.status === "active" ? strings.visitorTyping : "";
    var region = field(chat.el, "typing");
    if (region.textContent !== shown) region.textContent = shown;
  }

  // --- Canned replies and transfer targets --------------------------------------------

  function cannedShow(chat, details, text) {
    var queueId = chat.data.queue.id;
    var list = details.querySelector(".chat-canned-list");
    if (!state.canned[queueId]) {
      state.canned[queueId] = api("GET", "canned-replies/?queue=" + queueId).then(function (result) {
        if (!result.ok) {
          delete state.canned[queueId];
          throw new Error(reason(result));
        }
        return result.data.results || [];
      });
    }
    state.canned[queueId]
      .then(function (replies) {
        list.textContent = "";
        if (!replies.length) list.appendChild(node("li", "muted", strings.noCanned));
        replies.forEach(function (reply) {
          var item = node("li");
          var button = node("button", "secondary chat-canned-item", reply.title);
          button.type = "button";
          button.title = reply.text;
          button.addEventListener("click", function () {
            insert(text, reply.text);
            details.open = false;
          });
          item.appendChild(button);
          list.appendChild(item);
        });
      })
      .catch(function (error) {
        list.textContent = "";
        list.appendChild(node("li", "chat-error", error.message || strings.networkError));
      });
  }

  function insert(textarea, text) {
    var start = textarea.selectionStart;
    var end = textarea.selectionEnd;
    if (typeof start !== "number") {
      textarea.value += text;
    } else {
      textarea.value = textarea.value.slice(0, start) + text + textarea.value.slice(end);
      textarea.selectionStart = textarea.selectionEnd = start + text.length;
    }
    textarea.focus();
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function targetsShow(chat, select) {
    api("GET", "conversations/" + chat.id + "/transfer-targets/")
      .then(function (result) {
        if (!result.ok) throw new Error(reason(result));
        select.textContent = "";
        var agents = result.data.agents || [];
        var queues = result.data.queues || [];
        if (agents.length) {
          var agentGroup = node("optgroup");
          agentGroup.label = strings.agentsGroup;
          agents.forEach(function (agent) {
            var label = agent.name;
            if (!agent.has_room) label = format(strings.full, { name: agent.name });
            else if (!agent.available) label = format(strings.unavailable, { name: agent.name });
            var option = node("option", "", label);
            option.value = "agent:" + agent.id;
            option.disabled = !agent.has_room;
            agentGroup.appendChild(option);
          });
          select.appendChild(agentGroup);
        }
        if (queues.length) {
          var queueGroup = node("optgroup");
          queueGroup.label = strings.queuesGroup;
          queues.forEach(function (queue) {
            var option = node("option", "", queue.current ? format(strings.currentQueue, { name: queue.name }) : queue.name);
            option.value = "queue:" + queue.id;
            queueGroup.appendChild(option);
          });
          select.appendChild(queueGroup);
        }
        if (!agents.length && !queues.length) {
          var none = node("option", "", strings.noTargets);
          none.value = "";
          select.appendChild(none);
        }
      })
      .catch(function (error) {
        field(chat.el, "error").textContent = format(strings.failed, { reason: error.message || strings.networkError });
      });
  }

  // --- The customer panel of the selected chat ------------------------------------------

  function select(id) {
    state.selected = id;
    state.order.forEach(function (other) {
      var chat = state.chats[other];
      chat.el.classList.toggle("chat-column-selected", other === id);
      field(chat.el, "name").setAttribute("aria-pressed", other === id ? "true" : "false");
    });
    if (state.chats[id]) customerShow(state.chats[id]);
  }

  function customerClear() {
    var body = document.getElementById("chat-customer-body");
    body.textContent = "";
  }

  function customerShow(chat) {
    var data = chat.data;
    var panel = data.customer_panel;
    if (!panel) return; // The list's body has none: the chat's own read follows.
    var body = document.getElementById("chat-customer-body");
    var view = document.getElementById("chat-customer-template").content.cloneNode(true);
    var visitor = data.visitor || {};
    field(view, "name").textContent = visitor.name || strings.visitor;
    field(view, "email").textContent = visitor.email || "—";
    var check = field(view, "email-check");
    check.hidden = !visitor.email;
    check.textContent = visitor.verified ? strings.verified : strings.unverified;
    check.classList.add(visitor.verified ? "chat-verified" : "chat-unverified");
    field(view, "tier").textContent = (data.customer && data.customer.tier_label) || "";
    field(view, "organization").textContent = (data.customer && data.customer.organization) || "—";

    var match = panel.claimed_email_owner;
    var matchPart = part(view, "match");
    if (match) {
      matchPart.hidden = false;
      field(view, "match").textContent = format(strings.possibleMatch, { name: match.name });
      field(view, "match-check").textContent = strings.unverified;
      field(view, "match-tickets").textContent = format(match.open_tickets === 1 ? strings.openTicketsOne : strings.openTicketsOther, {
        count: match.open_tickets,
      });
      var confirm = matchPart.querySelector('[data-action="confirm"]');
      confirm.addEventListener("click", function () {
        confirm.disabled = true;
        api("POST", "conversations/" + chat.id + "/confirm-identity/")
          .then(function (result) {
            if (result.ok) announce(strings.confirmed);
            else field(chat.el, "error").textContent = format(strings.failed, { reason: reason(result) });
          })
          .catch(function () {
            field(chat.el, "error").textContent = strings.networkError;
          })
          .then(function () {
            readChat(chat.id);
          });
      });
    }
    ticketsList(field(view, "open"), panel.open_tickets || [], strings.noOpenTickets);
    ticketsList(field(view, "history"), panel.history || [], strings.noHistory);
    body.textContent = "";
    body.appendChild(view);
    body.setAttribute("data-conversation", String(chat.id));
  }

  function ticketsList(list, tickets, empty) {
    if (!tickets.length) list.appendChild(node("li", "muted", empty));
    tickets.forEach(function (ticket) {
      var item = node("li", "chat-ticket");
      var link = node("a", "", ticket.reference);
      link.href = ticketHref(ticket.reference);
      item.appendChild(link);
      item.appendChild(document.createTextNode(" "));
      item.appendChild(node("span", "chat-ticket-subject", ticket.subject));
      var meta = node("span", "chat-ticket-meta muted");
      meta.appendChild(node("span", "", (strings.channels || {})[ticket.channel] || ticket.channel));
      meta.appendChild(document.createTextNode(" "));
      meta.appendChild(
        node("span", "badge status-" + ticket.status, (strings.statuses || {})[ticket.status] || ticket.status)
      );
      item.appendChild(meta);
      list.appendChild(item);
    });
  }

  // --- Time: the wait, the offer's seconds left, the typing notice ------------------------

  function tick() {
    var sinceRead = (Date.now() - state.fetchedAt) / 1000;
    var now = serverNow();
    Array.prototype.forEach.call(document.querySelectorAll(".chat-waiting-item"), function (item) {
      var chat = state.waiting[item.getAttribute("data-conversation")];
      if (!chat) return;
      field(item, "waited").textContent = format(strings.waitedFor, {
        time: duration(chat.waited_seconds + sinceRead),
      });
      var left = field(item, "offer-left");
      if (chat.offered_to_me && chat.offer_expires_at) {
        var seconds = Math.max(0, Math.ceil((Date.parse(chat.offer_expires_at) - now) / 1000));
        left.textContent = format(strings.offerFor, { seconds: seconds });
        left.hidden = false;
      } else {
        left.textContent = "";
        left.hidden = true;
      }
    });
    state.order.forEach(function (id) {
      typingShow(state.chats[id]);
    });
  }

  // --- The socket ------------------------------------------------------------------------

  var attempts = 0;
  var pinger = null;
  var safetyReader = null;

  function connection(name) {
    var shown = document.getElementById("chat-connection");
    shown.setAttribute("data-state", name);
    shown.textContent = strings[name] || "";
    root.setAttribute("data-live-state", name);
  }

  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + root.getAttribute("data-socket");
    var socket;
    try {
      socket = new WebSocket(url);
    } catch (e) {
      reconnectLater();
      return;
    }
    socket.onopen = function () {
      attempts = 0;
      connection("connected");
      pinger = window.setInterval(function () {
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ping" }));
      }, PING_MS);
      safetyReader = window.setInterval(readAll, SAFETY_READ_MS);
      // Whatever happened while the socket was closed is in the database.
      readAll();
    };
    socket.onmessage = function (event) {
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (frame && frame.type === "chat") heard(frame);
    };
    socket.onclose = function (event) {
      window.clearInterval(pinger);
      window.clearInterval(safetyReader);
      if (event.code === FORBIDDEN) {
        connection("offline");
        return;
      }
      connection("reconnecting");
      reconnectLater();
    };
  }

  function reconnectLater() {
    var delay = Math.min(MAX_DELAY_MS, 1000 * Math.pow(2, attempts));
    attempts += 1;
    window.setTimeout(connect, delay / 2 + Math.random() * (delay / 2));
  }

  function heard(frame) {
    var id = frame.conversation;
    var chat = state.chats[id];
    if (frame.event === "typing") {
      if (chat) {
        chat.typingUntil = Date.now() + TYPING_SHOWN_MS;
        typingShow(chat);
      }
      return;
    }
    if (chat) readChat(id);
    readList();
  }

  // --- Start -----------------------------------------------------------------------------

  document.getElementById("chat-notify").addEventListener("click", alertsOn);
  window.setInterval(tick, 1000);
  readList();
  if (live) {
    connection("connecting");
    connect();
  } else {
    connection("polling");
    window.setInterval(readAll, POLL_MS);
  }
})();
