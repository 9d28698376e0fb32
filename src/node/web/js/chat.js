/**
 * Chat shared by both pages. Each message carries a client-generated clientId, so a re-send after
 * a network error is idempotent on the node, and a message shows once whether it comes back
 * from our own POST or from the event stream (history replay included).
 */
import { classifyError, FATAL_KINDS, randomId, request } from './api.js';
import { formatTime, keyForEnglish, onLanguageChange, t } from './i18n.js';

const RETRY_MS = 3000;

/** Prompts travel as their English text; each reader sees them in their own language. */
export function promptText(text) {
  const key = keyForEnglish('prompt.', text);
  return key ? t(key) : text;
}

export class Chat {
  /**
   * @param {{ caseId: string, token: string, role: 'buyer' | 'staff', list: HTMLElement,
   *   form: HTMLFormElement, input: HTMLInputElement | HTMLTextAreaElement,
   *   onFatal?: (kind: string, err: unknown) => void, onPrompt?: (msg: object, live: boolean) => void }} opts
   */
  constructor(opts) {
    this.opts = opts;
    /** @type {Map<string, {clientId:string, role:string, kind:string, text:string, at:number, state:string, el?:HTMLElement}>} */
    this.messages = new Map();
    this.retryTimer = undefined;
    opts.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const text = opts.input.value.trim();
      if (!text) return;
      opts.input.value = '';
      this.send(text, 'text');
    });
    opts.input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && opts.input.tagName === 'TEXTAREA') {
        ev.preventDefault();
        opts.form.requestSubmit();
      }
    });
    window.addEventListener('online', () => this.retryFailed());
    onLanguageChange(() => {
      for (const m of this.messages.values()) this.render(m);
      this.renderEmpty();
    });
    this.renderEmpty();
  }

  /** Sends a message; `kind` is `text` or (staff only) `prompt`. Returns the clientId. */
  send(text, kind = 'text') {
    const m = {
      clientId: randomId(this.opts.role === 'staff' ? 's' : 'b'),
      role: this.opts.role,
      kind,
      text,
      at: Date.now(),
      state: 'sending',
    };
    this.messages.set(m.clientId, m);
    this.render(m);
    this.deliver(m);
    return m.clientId;
  }

  async deliver(m) {
    m.state = m.state === 'sent' ? 'sent' : 'sending';
    this.render(m);
    try {
      await request(
        `/api/cases/${encodeURIComponent(this.opts.caseId)}/messages`,
        this.opts.token,
        {
          method: 'POST',
          body: { clientId: m.clientId, text: m.text, kind: m.kind },
        },
      );
      m.state = 'sent';
      this.render(m);
    } catch (err) {
      const kind = classifyError(err);
      m.state = 'failed';
      this.render(m);
      if (FATAL_KINDS.has(kind)) {
        this.opts.onFatal?.(kind, err);
        return;
      }
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.retryFailed(), RETRY_MS);
    }
  }

  retryFailed() {
    for (const m of this.messages.values()) if (m.state === 'failed') this.deliver(m);
  }

  /** A `message.posted` event from the stream (live or replayed). */
  receive(event, { live = true } = {}) {
    const d = event.data ?? {};
    if (!d.clientId) return;
    const existing = this.messages.get(d.clientId);
    if (existing) {
      existing.state = 'sent';
      existing.at = event.at ?? existing.at;
      this.render(existing);
      return;
    }
    const m = {
      clientId: d.clientId,
      role: d.role,
      kind: d.kind ?? 'text',
      text: d.text ?? '',
      at: event.at ?? Date.now(),
      state: 'sent',
    };
    this.messages.set(m.clientId, m);
    this.render(m);
    if (m.kind === 'prompt') this.opts.onPrompt?.(m, live);
  }

  who(m) {
    if (m.role === this.opts.role) return t('chat.you');
    return m.role === 'staff' ? t('chat.staff') : t('chat.buyer');
  }

  render(m) {
    const list = this.opts.list;
    let el = m.el;
    const isNew = !el;
    if (!el) {
      el = document.createElement('li');
      el.dataset.clientId = m.clientId;
      const meta = document.createElement('div');
      meta.className = 'msg-meta';
      const text = document.createElement('div');
      text.className = 'msg-text';
      el.append(meta, text);
      el.addEventListener('click', () => {
        if (m.state === 'failed') this.deliver(m);
      });
      m.el = el;
    }
    const mine = m.role === this.opts.role;
    el.className = `msg ${mine ? 'msg-mine' : 'msg-theirs'}${m.kind === 'prompt' ? ' msg-prompt' : ''} msg-${m.state}`;
    const meta = el.querySelector('.msg-meta');
    const who = m.kind === 'prompt' ? `${this.who(m)} · ${t('chat.prompt')}` : this.who(m);
    const status =
      m.state === 'sending'
        ? ` · ${t('chat.sending')}`
        : m.state === 'failed'
          ? ` · ${t('chat.failed')}`
          : '';
    meta.textContent = `${who} · ${formatTime(m.at)}${status}`;
    el.querySelector('.msg-text').textContent = m.kind === 'prompt' ? promptText(m.text) : m.text;
    if (isNew) {
      const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
      list.append(el);
      this.renderEmpty();
      if (nearBottom || mine) list.scrollTop = list.scrollHeight;
    }
  }

  renderEmpty() {
    const list = this.opts.list;
    let empty = list.querySelector('.msg-empty');
    if (this.messages.size > 0) {
      empty?.remove();
      return;
    }
    if (!empty) {
      empty = document.createElement('li');
      empty.className = 'msg-empty';
      list.append(empty);
    }
    empty.textContent = t('chat.empty');
  }
}
