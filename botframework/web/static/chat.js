/*
 * botframework web chat. No framework and no build step: this file, chat.css and the vendored
 * markdown-it are the whole page. Model output is untrusted: it reaches the DOM only through
 * markdown-it with raw HTML disabled and a link allowlist, behind a Trusted Types policy.
 */
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const logEl = $('log');
  const emptyEl = $('empty');
  const announcer = $('announcer');
  const form = $('composer');
  const input = $('composer-input');
  const sendBtn = $('send');
  const stopBtn = $('stop');
  const retryBtn = $('retry');
  const statusEl = $('status');
  const statusText = $('status-text');
  const alertEl = $('alert');

  // ---- where we are: /t/{tenant}/chat[?user=U[&expires=E&sig=S]][&token=T]
  const params = new URLSearchParams(location.search);
  const pathMatch = /\/t\/([^/]+)\/chat\/?$/.exec(location.pathname);
  const tenant = (() => {
    try { return pathMatch ? decodeURIComponent(pathMatch[1]) : ''; } catch { return ''; }
  })();
  const token = params.get('token');
  // A signed link (identity "signed") is passed through as it came.
  const expires = params.get('expires');
  const sig = params.get('sig');

  const store = {
    get(key) {
      try { return localStorage.getItem(key); } catch { return null; }
    },
    set(key, value) {
      try { localStorage.setItem(key, value); } catch { /* storage off: keep state in memory */ }
    },
    remove(key) {
      try { localStorage.removeItem(key); } catch { /* ignore */ }
    },
  };

  // crypto.randomUUID needs a secure context; getRandomValues does not (plain-http LAN installs).
  function randomHex(bytes) {
    const buf = new Uint8Array(bytes);
    crypto.getRandomValues(buf);
    return Array.from(buf, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  const userKey = `botframework.webchat.user.${tenant}`;
  const user = (params.get('user') || '').trim() || store.get(userKey) || (() => {
    const id = `web-${randomHex(12)}`;
    store.set(userKey, id);
    return id;
  })();
  const outboxKey = `botframework.webchat.outbox.${tenant}.${user}`;
  // Identity "anonymous": the server names this browser in a `session` frame, with a token that
  // brings the same conversation back next time.
  const resumeKey = `botframework.webchat.resume.${tenant}`;

  const idPrefix = `m${randomHex(6)}`;
  let idCounter = 0;
  const newId = () => `${idPrefix}-${++idCounter}`;

  document.title = tenant ? `Chat · ${tenant}` : 'Chat';

  // ---- Markdown: markdown-it escapes raw HTML (html: false); links pass an allowlist.
  const md = window.markdownit({ html: false, linkify: true, breaks: true, typographer: false });
  const SAFE_SCHEMES = new Set(['http', 'https', 'mailto']);
  md.validateLink = (url) => {
    const scheme = /^\s*([a-z][a-z0-9+.-]*):/i.exec(url);
    return !scheme || SAFE_SCHEMES.has(scheme[1].toLowerCase());
  };
  const renderDefault = (tokens, idx, options, env, self) => self.renderToken(tokens, idx, options);
  md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
    tokens[idx].attrSet('target', '_blank');
    tokens[idx].attrSet('rel', 'noopener noreferrer nofollow');
    return renderDefault(tokens, idx, options, env, self);
  };
  // Images become links: untrusted output must not make the browser fetch URLs on its own
  // (a classic way to leak the conversation through an image URL).
  md.renderer.rules.image = (tokens, idx, options, env, self) => {
    const tok = tokens[idx];
    const src = tok.attrGet('src') || '';
    const alt = self.renderInlineAsText(tok.children || [], options, env) || src;
    const esc = md.utils.escapeHtml;
    return `<a href="${esc(src)}" target="_blank" rel="noopener noreferrer nofollow" class="image-link">` +
      `${esc(alt)}</a>`;
  };

  const htmlPolicy = window.trustedTypes
    ? window.trustedTypes.createPolicy('chat-markdown', { createHTML: (s) => s })
    : { createHTML: (s) => s };
  // Parse into an inert template, then replace only the top-level blocks that changed: while a reply
  // streams, the blocks above the one being written keep their nodes and their layout.
  const scratch = document.createElement('template');
  function renderMarkdown(el, text) {
    scratch.innerHTML = htmlPolicy.createHTML(md.render(text));
    const fresh = Array.from(scratch.content.childNodes);
    const old = el.childNodes;
    let same = 0;
    while (same < fresh.length && same < old.length && old[same].isEqualNode(fresh[same])) same += 1;
    while (old.length > same) el.lastChild.remove();
    el.append(...fresh.slice(same));
    scratch.replaceChildren();
  }

  // ---- conversation state
  /** @type {Map<string, object>} user messages by id */
  let messages = new Map();
  let outbox = loadOutbox();
  let ws = null;
  // Replies this page has, acknowledged to the server (and named in ?ack= when it reconnects), so
  // a reply is never sent to it twice, even across a server crash.
  const acked = [];
  let attempts = 0;
  let openedAt = 0;
  let retryTimer = null;
  let countdownTimer = null;
  let stopped = false;

  function loadOutbox() {
    try {
      const items = JSON.parse(store.get(outboxKey) || '[]');
      return Array.isArray(items)
        ? items.filter((o) => o && typeof o.id === 'string' && typeof o.text === 'string')
        : [];
    } catch {
      return [];
    }
  }
  function saveOutbox() {
    if (outbox.length) store.set(outboxKey, JSON.stringify(outbox));
    else store.remove(outboxKey);
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function nearBottom() {
    const doc = document.documentElement;
    return window.innerHeight + window.scrollY >= doc.scrollHeight - 96;
  }
  function scrollToBottom() {
    window.scrollTo({ top: document.documentElement.scrollHeight, behavior: 'instant' });
  }
  function keepingBottom(fn) {
    const stick = nearBottom();
    const result = fn();
    if (stick) scrollToBottom();
    return result;
  }

  function updateEmpty() {
    emptyEl.hidden = logEl.querySelector('.msg') !== null;
  }

  function announce(text) {
    const line = el('p', null, text.length > 600 ? `${text.slice(0, 600)}…` : text);
    announcer.append(line);
    while (announcer.childElementCount > 3) announcer.firstElementChild.remove();
  }

  // ---- user messages
  function addUserMessage(id, text, state) {
    const article = el('article', 'msg user');
    const bubble = el('div', 'bubble');
    bubble.append(el('span', 'visually-hidden', 'You said: '));
    bubble.append(el('p', 'text', text));
    const meta = el('p', 'meta');
    article.append(bubble, meta);
    if (id) article.dataset.id = id;
    const msg = { id, text, el: article, meta, state, reply: null, mergedInto: null };
    logEl.append(article);
    if (id) messages.set(id, msg);
    setUserState(msg, state);
    updateEmpty();
    return msg;
  }

  function setUserState(msg, state) {
    msg.state = state;
    msg.el.dataset.state = state;
    if (state === 'sending') {
      msg.meta.textContent = ws && ws.readyState === WebSocket.OPEN ? 'Sending…' : 'Waiting for connection…';
    } else if (msg.mergedInto) {
      msg.meta.textContent = 'Answered together with your previous message';
    } else {
      msg.meta.textContent = '';
    }
  }

  function markAccepted(id) {
    const before = outbox.length;
    outbox = outbox.filter((o) => o.id !== id);
    if (outbox.length !== before) saveOutbox();
    const msg = messages.get(id);
    if (msg && msg.state === 'sending') setUserState(msg, 'sent');
    return msg;
  }

  // ---- replies
  function createReply(anchor) {
    const article = el('article', 'msg assistant');
    const avatar = el('span', 'avatar');
    avatar.setAttribute('aria-hidden', 'true');
    const content = el('div', 'content');
    content.append(el('span', 'visually-hidden', 'Reply: '));
    const body = el('div', 'body markdown');
    const meta = el('div', 'meta');
    content.append(body, meta);
    article.append(avatar, content);
    const reply = {
      el: article, body, meta, text: '', done: false, error: null, stopping: false,
      frame: 0, timer: 0, paintedAt: 0, cost: 0,
    };
    if (anchor) anchor.after(article);
    else logEl.append(article);
    updateEmpty();
    return reply;
  }

  function replyFor(id, fallbackAnchor) {
    const msg = messages.get(id);
    if (msg) {
      if (!msg.reply) {
        msg.reply = keepingBottom(() => createReply(msg.el));
        msg.reply.el.dataset.replyTo = id;
      }
      return msg.reply;
    }
    // A reply to a message this page does not show (e.g. older than the history it was sent).
    const orphan = keepingBottom(() => createReply(fallbackAnchor || null));
    orphan.el.dataset.replyTo = id;
    messages.set(id, {
      id, text: '', el: orphan.el, meta: orphan.meta, state: 'sent', reply: orphan, mergedInto: null,
    });
    return orphan;
  }

  // At most one render per animation frame, and no more often than three times what the last render
  // cost: a long reply (each render parses all of it) then spends at most about a quarter of the time
  // rendering, however fast the deltas come.
  function scheduleRender(reply) {
    if (reply.frame || reply.timer) return;
    const wait = reply.paintedAt + 3 * reply.cost - performance.now();
    const paint = () => {
      reply.timer = 0;
      reply.frame = requestAnimationFrame(() => {
        reply.frame = 0;
        paintReply(reply);
      });
    };
    if (wait > 0) reply.timer = setTimeout(paint, wait);
    else paint();
  }

  function paintReply(reply) {
    if (reply.frame) {
      cancelAnimationFrame(reply.frame);
      reply.frame = 0;
    }
    if (reply.timer) {
      clearTimeout(reply.timer);
      reply.timer = 0;
    }
    const started = performance.now();
    keepingBottom(() => {
      const waiting = !reply.done && !reply.text;
      reply.el.dataset.state = reply.error ? 'error' : reply.done ? 'done' : waiting ? 'waiting' : 'streaming';
      reply.el.setAttribute('aria-busy', String(!reply.done));
      if (waiting) {
        reply.body.replaceChildren(typingIndicator());
      } else {
        renderMarkdown(reply.body, reply.text);
      }
      reply.meta.replaceChildren();
      if (reply.error) {
        reply.meta.append(errorNote(reply));
      } else if (reply.stopping) {
        reply.meta.append(el('span', 'note', reply.done ? 'Stopped' : 'Stopping…'));
      }
    });
    reply.paintedAt = performance.now();
    reply.cost = reply.paintedAt - started;
  }

  function typingIndicator() {
    const box = el('span', 'typing');
    box.append(el('span', 'visually-hidden', 'Thinking…'));
    for (let i = 0; i < 3; i += 1) {
      const dot = el('span', 'typing-dot');
      dot.setAttribute('aria-hidden', 'true');
      box.append(dot);
    }
    return box;
  }

  // Error kinds from botframework.errors.ErrorKind (plus the channel's own); the message is shown as sent.
  const ERROR_KINDS = {
    rate_limited: 'Too many requests',
    overloaded: 'Model busy',
    timeout: 'Timed out',
    connection: 'Model unreachable',
    incomplete_stream: 'Reply cut off',
    context_overflow: 'Too long',
    content_filter: 'Blocked',
    unavailable: 'Not delivered',
  };

  function errorNote(reply) {
    const box = el('div', 'error-note');
    const kind = reply.error.kind;
    const label = Object.hasOwn(ERROR_KINDS, kind) ? ERROR_KINDS[kind] : 'Error';
    box.append(el('strong', null, `${label}: `), el('span', 'error-text', reply.error.message));
    if (reply.retryText) {
      const again = el('button', 'link-button', 'Try again');
      again.type = 'button';
      again.addEventListener('click', () => {
        again.disabled = true;
        sendMessage(reply.retryText);
      });
      box.append(' ', again);
    }
    return box;
  }

  function removeReply(msg) {
    if (!msg.reply) return;
    if (msg.reply.frame) cancelAnimationFrame(msg.reply.frame);
    if (msg.reply.timer) clearTimeout(msg.reply.timer);
    msg.reply.el.remove();
    msg.reply = null;
  }

  // ---- frames
  function onFrame(frame) {
    const id = typeof frame.reply_to === 'string' ? frame.reply_to : null;
    switch (frame.type) {
      case 'session':
        if (typeof frame.resume === 'string' && frame.resume) store.set(resumeKey, frame.resume);
        break;
      case 'history':
        if (Array.isArray(frame.messages)) renderHistory(frame.messages);
        break;
      case 'accepted': {
        if (!id) break;
        // Another tab of the same user sent it: show it if the server says what it was.
        if (!messages.has(id) && typeof frame.text === 'string') addUserMessage(id, frame.text, 'sent');
        const msg = markAccepted(id);
        if (msg && !msg.reply && !msg.mergedInto) paintReply(replyFor(id));
        break;
      }
      case 'delta': {
        if (!id || typeof frame.text !== 'string') break;
        markAccepted(id);
        const reply = replyFor(id);
        if (reply.done) break;
        reply.text += frame.text;
        scheduleRender(reply);
        break;
      }
      case 'reset': {
        if (!id) break;
        const msg = messages.get(id);
        if (msg && msg.reply) {
          Object.assign(msg.reply, { text: '', done: false, error: null });
          paintReply(msg.reply);
        }
        break;
      }
      case 'done':
        if (id) {
          finishReply(id, frame);
          acknowledge(id);
        }
        break;
      case 'error':
        if (id) failReply(id, frame);
        else showAlert(String(frame.message || 'The server reported an error.'));
        break;
      default:
        break;
    }
    updateControls();
  }

  function finishReply(id, frame) {
    const text = typeof frame.text === 'string' ? frame.text : '';
    const msg = markAccepted(id);
    const target = typeof frame.merged_into === 'string' && frame.merged_into !== id ? frame.merged_into : null;
    if (target) {
      if (msg) {
        removeReply(msg);
        msg.mergedInto = target;
        setUserState(msg, 'settled');
      }
      const reply = replyFor(target, msg ? msg.el : null);
      // The shared reply answers both messages: it belongs after the later one.
      if (msg && msg.el.compareDocumentPosition(reply.el) & Node.DOCUMENT_POSITION_PRECEDING) {
        msg.el.after(reply.el);
      }
      const fresh = !reply.done || reply.text !== text;
      Object.assign(reply, { text, done: true, error: null });
      paintReply(reply);
      if (fresh) announce(`Reply: ${reply.body.textContent}`);
      return;
    }
    const reply = replyFor(id);
    const fresh = !reply.done || reply.text !== text;
    Object.assign(reply, { text, done: true, error: null });
    if (msg) setUserState(msg, 'settled');
    paintReply(reply);
    if (fresh) announce(`Reply: ${reply.body.textContent}`);
  }

  function failReply(id, frame) {
    const msg = markAccepted(id);
    const reply = replyFor(id);
    const message = String(frame.message || 'The reply failed.');
    const kind = typeof frame.kind === 'string' ? frame.kind : '';
    if (kind === 'cancelled' || kind === 'canceled') {
      Object.assign(reply, { done: true, stopping: true });
    } else {
      Object.assign(reply, { done: true, error: { message, kind } });
      reply.retryText = msg && msg.text ? msg.text : null;
      announce(`Error: ${message}`);
    }
    if (msg) setUserState(msg, 'settled');
    paintReply(reply);
  }

  function renderHistory(items) {
    const previous = messages;
    const stick = nearBottom() || previous.size === 0;
    messages = new Map();
    for (const node of logEl.querySelectorAll('.msg')) node.remove();

    let unanswered = [];
    for (const item of items) {
      if (!item || typeof item.text !== 'string') continue;
      if (item.role === 'user') {
        const id = typeof item.id === 'string' ? item.id : null;
        unanswered.push(addUserMessage(id, item.text, 'settled'));
      } else if (item.role === 'assistant') {
        const reply = createReply(null);
        Object.assign(reply, { text: item.text, done: true });
        paintReply(reply);
        for (const msg of unanswered) msg.reply = reply;
        unanswered = [];
      }
    }
    // Stored messages still waiting for their reply keep what this page knew about it
    // (text streamed before the drop, or an error); the server sends `done` when it is ready.
    for (const msg of unanswered) {
      const old = msg.id ? previous.get(msg.id) : null;
      if (!old) continue;
      if (old.reply && !old.mergedInto) {
        msg.reply = old.reply;
        msg.el.after(old.reply.el);
        paintReply(old.reply);
      }
      msg.mergedInto = old.mergedInto;
      setUserState(msg, old.state === 'sending' ? 'sent' : old.state);
    }
    // Local messages the history does not show yet: still waiting for their reply or unsent.
    for (const old of previous.values()) {
      if (!old.id || messages.has(old.id) || old.mergedInto) continue;
      if (old.state === 'sent' && old.text) {
        const msg = addUserMessage(old.id, old.text, 'sent');
        if (old.reply) {
          msg.reply = old.reply;
          msg.el.after(old.reply.el);
        }
      }
    }
    for (const item of outbox) {
      if (!messages.has(item.id)) addUserMessage(item.id, item.text, 'sending');
    }
    updateEmpty();
    if (stick) scrollToBottom();
  }

  // ---- sending
  function acknowledge(id) {
    if (id.includes(',')) return;
    if (!acked.includes(id)) {
      acked.push(id);
      if (acked.length > 100) acked.shift();
    }
    transmit({ type: 'ack', reply_to: id });
  }

  function transmit(frame) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  function sendMessage(text) {
    const id = newId();
    outbox.push({ id, text });
    saveOutbox();
    addUserMessage(id, text, 'sending');
    scrollToBottom();
    transmit({ type: 'message', id, text });
    updateControls();
  }

  function resendOutbox() {
    for (const item of outbox) {
      transmit({ type: 'message', id: item.id, text: item.text });
      const msg = messages.get(item.id);
      if (msg) setUserState(msg, 'sending');
    }
  }

  function activeTurn() {
    let waiting = null;
    for (const msg of messages.values()) {
      if (msg.state !== 'sent' || msg.mergedInto) continue;
      if (msg.reply && msg.reply.done) continue;
      if (msg.reply && msg.reply.text) return msg;
      if (!waiting) waiting = msg;
    }
    return waiting;
  }

  function updateControls() {
    const open = ws !== null && ws.readyState === WebSocket.OPEN;
    const turn = activeTurn();
    stopBtn.hidden = !turn;
    stopBtn.disabled = !open || Boolean(turn && turn.reply && turn.reply.stopping);
    input.disabled = stopped;
    sendBtn.disabled = stopped;
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || stopped) return;
    input.value = '';
    autosize();
    sendMessage(text);
    input.focus();
  });

  input.addEventListener('keydown', (event) => {
    // isComposing: Enter that confirms an IME candidate (Chinese, Japanese...) must not send.
    if (event.key !== 'Enter' || event.shiftKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    form.requestSubmit();
  });

  function autosize() {
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, Math.round(window.innerHeight * 0.4))}px`;
  }
  input.addEventListener('input', autosize);

  stopBtn.addEventListener('click', () => {
    const turn = activeTurn();
    if (!turn || !transmit({ type: 'cancel', id: turn.id })) return;
    const reply = replyFor(turn.id);
    reply.stopping = true;
    paintReply(reply);
    updateControls();
    input.focus();
  });

  // ---- connection
  function setStatus(state, text) {
    statusEl.dataset.state = state;
    statusText.textContent = text;
    if (state !== 'offline') $('status-count').textContent = '';
    retryBtn.hidden = state !== 'offline';
  }

  function showAlert(text) {
    alertEl.textContent = text;
    alertEl.hidden = false;
  }
  function hideAlert() {
    alertEl.hidden = true;
    alertEl.textContent = '';
  }

  function socketUrl() {
    const url = new URL(location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    url.pathname = location.pathname.replace(/\/chat\/?$/, '/ws');
    url.search = '';
    url.hash = '';
    url.searchParams.set('user', user);
    if (expires && sig) {
      url.searchParams.set('expires', expires);
      url.searchParams.set('sig', sig);
    }
    const resume = store.get(resumeKey);
    if (resume) url.searchParams.set('resume', resume);
    if (token) url.searchParams.set('token', token);
    if (acked.length) url.searchParams.set('ack', acked.join(','));
    return url.href;
  }

  function connect() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    retryTimer = null;
    if (stopped || ws) return;
    setStatus('connecting', attempts ? 'Reconnecting…' : 'Connecting…');
    const sock = new WebSocket(socketUrl());
    ws = sock;
    sock.addEventListener('open', () => {
      if (ws !== sock) return;
      openedAt = Date.now();
      setStatus('online', 'Connected');
      hideAlert();
      resendOutbox();
      updateControls();
    });
    sock.addEventListener('message', (event) => {
      if (ws !== sock || typeof event.data !== 'string') return;
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      if (frame && typeof frame === 'object') onFrame(frame);
    });
    sock.addEventListener('close', (event) => {
      if (ws !== sock) return;
      ws = null;
      onClosed(event.code, event.reason);
    });
  }

  function onClosed(code, reason) {
    for (const msg of messages.values()) if (msg.state === 'sending') setUserState(msg, 'sending');
    if (code === 4401 || code === 4403) {
      giveUp('unauthorized', 'Not authorized',
        'Not authorized: this chat link has no valid token. Ask whoever gave it to you for a new one.');
      return;
    }
    if (code === 4404) {
      giveUp('refused', 'Unavailable', 'This chat does not exist or is switched off.');
      return;
    }
    if (code === 4400) {
      giveUp('refused', 'Unavailable', `The server refused this chat: ${reason || 'bad request'}.`);
      return;
    }
    if (openedAt && Date.now() - openedAt > 5000) attempts = 0;
    openedAt = 0;
    const delay = Math.min(30000, 500 * 2 ** attempts) * (0.5 + Math.random() * 0.5);
    attempts += 1;
    const due = Date.now() + delay;
    const tick = () => {
      const left = Math.max(1, Math.ceil((due - Date.now()) / 1000));
      $('status-count').textContent = ` in ${left} s`;
    };
    setStatus('offline', 'Connection lost. Reconnecting');
    tick();
    countdownTimer = setInterval(tick, 1000);
    retryTimer = setTimeout(() => {
      $('status-count').textContent = '';
      connect();
    }, delay);
    if (reason) showAlert(`Connection closed: ${reason}`);
    updateControls();
  }

  function giveUp(state, status, message) {
    stopped = true;
    setStatus(state, status);
    showAlert(message);
    updateControls();
  }

  function reconnectNow() {
    if (ws || stopped) return;
    $('status-count').textContent = '';
    connect();
  }
  retryBtn.addEventListener('click', reconnectNow);
  window.addEventListener('online', reconnectNow);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') reconnectNow();
  });

  // ---- start
  for (const item of outbox) addUserMessage(item.id, item.text, 'sending');
  if (!tenant) {
    giveUp('refused', 'Unavailable', 'This page must be opened at /t/{tenant}/chat.');
  } else {
    connect();
  }
  updateControls();
  autosize();
})();
