/**
 * A small structured logger writing one line per record to stderr (stdout stays for results).
 * Children carry context (`log.child({ caseId })`), so messages read `room abc: …` without
 * every caller formatting it by hand.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

export interface LogSink {
  write(line: string): void;
}

export class Logger {
  constructor(
    private readonly level: LogLevel = 'info',
    private readonly context: Record<string, string | number> = {},
    private readonly sink: LogSink = process.stderr,
    private readonly json = false,
  ) {}

  child(context: Record<string, string | number>): Logger {
    return new Logger(this.level, { ...this.context, ...context }, this.sink, this.json);
  }

  enabled(level: LogLevel): boolean {
    return ORDER[level] >= ORDER[this.level];
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.emit('debug', msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.emit('info', msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.emit('warn', msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.emit('error', msg, fields);
  }

  private emit(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (!this.enabled(level)) return;
    const at = new Date().toISOString();
    if (this.json) {
      this.sink.write(`${JSON.stringify({ at, level, ...this.context, msg, ...fields })}\n`);
      return;
    }
    const ctx = Object.entries(this.context)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    const extra = fields
      ? ` ${Object.entries(fields)
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ')}`
      : '';
    this.sink.write(`${at} ${level.padEnd(5)} ${ctx ? `${ctx} ` : ''}${msg}${extra}\n`);
  }
}

/** A logger that drops everything: for tests and library callers that pass none. */
export const silentLogger = new Logger('silent');
