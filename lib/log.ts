/**
 * Structured logs (pino, JSON lines). Secrets are redacted by key wherever they appear, as a
 * second line of defence: code never passes tokens, passwords or transfer auth keys on purpose,
 * and a URL is logged only through maskUrlSecrets.
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
  'apiKeys',
  'sslpassword',
  'PGPASSWORD',
];

/** Query parameters whose value is a secret: password, sslpassword, PGPASSWORD, passwd, token… */
const SECRET_PARAM = /pass(word|wd)?|pwd|secret|token/i;

/**
 * A URL fit for a log: the password of its userinfo (`user:<secret>@`) and every query
 * parameter that carries a secret (`?password=<secret>`, `sslpassword`, …) masked. The text is
 * kept otherwise as written: a URL that does not parse still has its secrets masked.
 */
export function maskUrlSecrets(url: string): string {
  // Userinfo ends at the authority's last '@' (a password may hold a raw '@' or ':').
  const masked = url.replace(
    /^([a-z][\w+.-]*:\/\/)([^/?#]*)@/i,
    (_, scheme: string, userinfo: string) => {
      const colon = userinfo.indexOf(':');
      return `${scheme}${colon < 0 ? userinfo : `${userinfo.slice(0, colon)}:<secret>`}@`;
    },
  );
  return masked.replace(/([?&;])([^=&#;]*)=([^&#;]*)/g, (whole, sep: string, key: string) =>
    SECRET_PARAM.test(safeDecode(key)) ? `${sep}${key}=<secret>` : whole,
  );
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

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
