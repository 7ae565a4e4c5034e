/**
 * The naming rule of OS-image snapshots (the seed's sync_os "命名规则"): a template such as
 * `os-image {os} {type} v{version}`. `{os}` is required; `{type}` (the pool's volume type) and
 * `{version}` (dotted numbers; the highest is the newest) are optional. OS names contain spaces,
 * so a name is matched against each known (os, type) literally rather than split apart.
 */
export interface SnapshotNameRule {
  template: string;
  hasType: boolean;
  hasVersion: boolean;
  /** The version if `name` is this OS's (and type's) snapshot, '' when the rule has no version. */
  match(name: string, os: string, volumeType: string): string | null;
  format(os: string, volumeType: string, version: string): string;
}

const PLACEHOLDER = /\{(os|type|version)\}/g;
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function parseSnapshotNameRule(template: string): SnapshotNameRule {
  const unknown = template.match(/\{(?!os\}|type\}|version\})[^}]*\}/);
  if (unknown) throw new Error(`unknown placeholder ${unknown[0]} (use {os}, {type}, {version})`);
  const count = (p: string) => template.split(`{${p}}`).length - 1;
  if (count('os') !== 1) throw new Error('the rule must contain {os} exactly once');
  if (count('type') > 1 || count('version') > 1)
    throw new Error('{type} and {version} may appear once');
  const hasType = count('type') === 1;
  const hasVersion = count('version') === 1;

  const cache = new Map<string, RegExp>();
  const regexFor = (os: string, volumeType: string): RegExp => {
    const key = `${os}\u0000${volumeType}`;
    let re = cache.get(key);
    if (!re) {
      let src = '';
      let last = 0;
      for (const m of template.matchAll(PLACEHOLDER)) {
        src += escapeRe(template.slice(last, m.index));
        if (m[1] === 'os') src += escapeRe(os);
        else if (m[1] === 'type') src += escapeRe(volumeType);
        else src += '(\\d+(?:\\.\\d+)*)';
        last = (m.index ?? 0) + m[0].length;
      }
      src += escapeRe(template.slice(last));
      re = new RegExp(`^${src}$`, 'i');
      cache.set(key, re);
    }
    return re;
  };

  return {
    template,
    hasType,
    hasVersion,
    match(name, os, volumeType) {
      const m = regexFor(os, volumeType).exec(name);
      if (!m) return null;
      return hasVersion ? (m[1] ?? '') : '';
    },
    format(os, volumeType, version) {
      return template.replace(PLACEHOLDER, (_all, p: string) =>
        p === 'os' ? os : p === 'type' ? volumeType : version,
      );
    },
  };
}

/** Compares dotted versions numerically: '10' > '9', '1.10' > '1.9'. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
