// Reading the keys of a proxy's `Proxy.Config` (an untyped map from Consul) as
// typed values, the way Consul decodes them. A bad value throws a
// ConsulEcsError (`envoy-bootstrap-proxy-config`) naming the proxy and the key.
import { ConsulEcsError } from '../util/errors.js';
import { isIP } from 'node:net';
import { BAD_PROXY_CONFIG } from './input-checks.js';
import type { EnvoyAddress, EnvoyJsonObject } from './types.js';

export class ProxyConfigReader {
  /**
   * @param config the proxy's Proxy.Config; undefined reads every key as unset.
   * @param what the proxy, as messages name it (`proxy <ID>`).
   */
  constructor(
    private readonly config: Record<string, unknown> | undefined,
    private readonly what: string,
  ) {}

  /** Throws the error for a bad value of `key`. */
  fail(key: string, problem: string): never {
    throw new ConsulEcsError(BAD_PROXY_CONFIG, `${this.what}: Proxy.Config key ${key} ${problem}`);
  }

  /** A string value; numbers and booleans are taken as text (as Consul's weak decoding does); "" is unset. */
  string(key: string): string | undefined {
    const v = this.config?.[key];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    return this.fail(key, `must be a string, got ${Array.isArray(v) ? 'an array' : typeof v}`);
  }

  /** A list of strings; a single string is a list of one. */
  stringList(key: string): string[] {
    const v = this.config?.[key];
    if (v === undefined || v === null || v === '') return [];
    if (typeof v === 'string') return [v];
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
    return this.fail(key, 'must be a list of strings');
  }

  /**
   * JSON objects, given as Consul takes them: one object, or several separated
   * by commas (text to put inside a JSON array); a JSON array is accepted too.
   */
  jsonList(key: string): EnvoyJsonObject[] {
    const text = this.string(key);
    if (text === undefined) return [];
    let items: unknown;
    try {
      items = JSON.parse(`[${text}]`);
    } catch (err) {
      return this.fail(key, `is not valid JSON (${jsonError(err)}); give one JSON object, or several separated by commas`);
    }
    let list = items as unknown[];
    if (list.length === 1 && Array.isArray(list[0])) list = list[0] as unknown[];
    list.forEach((x, i) => {
      if (!x || typeof x !== 'object' || Array.isArray(x))
        this.fail(key, `must hold JSON objects, but item ${i + 1} is ${x === null ? 'null' : Array.isArray(x) ? 'an array' : typeof x}`);
    });
    return list as EnvoyJsonObject[];
  }

  /** One JSON object. */
  jsonObject(key: string): EnvoyJsonObject | undefined {
    const text = this.string(key);
    if (text === undefined) return undefined;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (err) {
      return this.fail(key, `is not valid JSON (${jsonError(err)})`);
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) return this.fail(key, 'must be a JSON object');
    return v as EnvoyJsonObject;
  }

  /** An address for a listener to bind: `<ip>:<port>` (IPv6 in brackets). */
  bindAddress(key: string): { address: string; port: number } | undefined {
    const s = this.string(key);
    if (s === undefined) return undefined;
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(s);
    const host = m?.[1] ?? m?.[2];
    const p = m ? Number(m[3]) : NaN;
    if (!m || !host || isIP(host) === 0 || !(p >= 1 && p <= 65535)) {
      return this.fail(key, `must be <ip>:<port> (e.g. 0.0.0.0:20200), got ${JSON.stringify(s)}`);
    }
    return { address: host, port: p };
  }

  /** A protobuf duration in seconds, as Envoy takes it in JSON (`10s`, `1.5s`). */
  durationSeconds(key: string): string | undefined {
    const s = this.string(key);
    if (s !== undefined && !/^\d+(\.\d{1,9})?s$/.test(s)) {
      return this.fail(key, `is ${JSON.stringify(s)}; Envoy wants a duration in seconds such as "10s" or "1.5s"`);
    }
    return s;
  }

  /**
   * The address of a statsd sink: a `udp://<ip>:<port>` or `unix:///<path>`
   * URL, or `$VAR` naming an environment variable that holds one. Inside a
   * URL only `${HOST_IP}` is expanded (the host's IP on ECS/Nomad/k8s).
   */
  statsSinkAddress(key: string, env: Record<string, string | undefined>): EnvoyAddress | undefined {
    const raw = this.string(key);
    if (raw === undefined) return undefined;
    let url: string;
    const whole = /^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$/.exec(raw);
    if (whole) {
      // The whole value names an environment variable holding the URL.
      const v = env[whole[1]!];
      if (!v) this.fail(key, `names the environment variable ${whole[1]}, which is not set`);
      url = v!;
    } else {
      url = raw.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, a?: string, b?: string) => {
        const n = (a ?? b)!;
        if (n !== 'HOST_IP') return m;
        const v = env.HOST_IP;
        if (!v) this.fail(key, 'uses ${HOST_IP}, which is not set');
        return v!;
      });
    }
    const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/.exec(url);
    if (!m) return this.fail(key, `must be a udp://<ip>:<port> or unix:///<path> URL, got ${JSON.stringify(url)}`);
    const scheme = m[1]!.toLowerCase();
    if (scheme === 'udp') {
      const hp = /^(?:\[([^\]]+)\]|([^:/]+)):(\d+)\/?$/.exec(m[2]!);
      const host = hp?.[1] ?? hp?.[2];
      const p = hp ? Number(hp[3]) : NaN;
      if (!hp || !host || isIP(host) === 0 || !(p >= 1 && p <= 65535)) {
        return this.fail(key, `must be udp://<ip>:<port> with an IP address (Envoy does not resolve names for stats sinks), got ${JSON.stringify(url)}`);
      }
      return { socket_address: { address: host, port_value: p } };
    }
    if (scheme === 'unix') {
      if (!m[2]!.startsWith('/')) return this.fail(key, `must be unix:///<absolute path>, got ${JSON.stringify(url)}`);
      return { pipe: { path: m[2]! } };
    }
    return this.fail(key, `uses the unsupported address protocol ${JSON.stringify(scheme)}; use udp:// or unix://`);
  }
}

/**
 * A JSON parse error without the snippet of input newer V8s quote
 * (`Unexpected token 'x', "…" is not valid JSON`): user JSON could hold a secret.
 */
export function jsonError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/, (?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, ' in the JSON');
}
