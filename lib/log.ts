/**
 * Structured logs (pino, JSON lines). Secrets are redacted by key wherever they appear, as a
 * second line of defence: code never passes tokens, passwords or transfer auth keys on purpose.
 */
import pino, { type Logger } from 'pino';

export const REDACTED_KEYS = [
  'token',
  'authKey',
  'auth_key',
  'password',
  'auth_passwd',
  'X-Auth-Token',
  'x-auth-token',
  'authorization',
  'apiKey',
];

export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: [
        ...REDACTED_KEYS,
        ...REDACTED_KEYS.map((k) => `*.${k}`),
        ...REDACTED_KEYS.map((k) => `*.*.${k}`),
      ],
      censor: '<redacted>',
    },
  });
}

export type { Logger };
