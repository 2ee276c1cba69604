import { systemClock, type Clock } from '../util/clock.js';
import { describeError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { ConsulApiError, type ConsulHttpClient } from './http-client.js';
import type { IoOptions } from '../util/options.js';

/** A client of the Consul API that sends through one server connection at a time (CatalogClient, AclAdmin). */
export interface UsesConsulServer {
  http: ConsulHttpClient;
}

export interface ServerFailoverOptions extends Pick<IoOptions, 'clock'> {
  /**
   * Finds the Consul servers again (`consulServers.hosts`: a DNS name or
   * `exec=<command>`), for when every known one has stopped answering: servers
   * replaced in an upgrade come back at other addresses.
   */
  rediscover?: () => Promise<ConsulHttpClient[]>;
  /** Least time between two rediscoveries. Default 10 s. */
  rediscoverEveryMs?: number;
}

/**
 * Whether a failed call says the server itself is failing: no connection, or an
 * HTTP 5xx (a server cut off from the cluster's leader answers 500 "No cluster
 * leader" while the others serve).
 */
function isServerFailure(err: unknown): boolean {
  if (err instanceof ConsulApiError) return err.status >= 500;
  return (err as { code?: string } | undefined)?.code === 'consul-unreachable';
}

/**
 * Follows the Consul servers for a long-running command: on a connection
 * failure (`consul-unreachable`) or an HTTP 5xx it points every user at the
 * next server, round robin; once every known server has failed, it finds the servers again and,
 * when their addresses changed, moves to the new ones. Other errors change
 * nothing.
 */
export class ServerFailover {
  #clients: ConsulHttpClient[];
  #current = 0;
  /** Servers that failed one after the other since the last switch round began. */
  #failedInRow = 0;
  #lastRediscovery = Number.NEGATIVE_INFINITY;
  #rediscovering: Promise<void> | undefined;
  /** The clients it made by rediscovery (the caller closes the ones it gave). */
  readonly #owned = new Set<ConsulHttpClient>();
  readonly #clock: Clock;

  constructor(
    clients: ConsulHttpClient[],
    private readonly users: UsesConsulServer[],
    private readonly log: Logger,
    private readonly opts: ServerFailoverOptions = {},
  ) {
    if (!clients.length) throw new Error('ServerFailover needs at least one Consul client');
    this.#clients = clients;
    this.#clock = opts.clock ?? systemClock;
  }

  /** The clients of the servers currently known, the one in use first after a switch. */
  get clients(): readonly ConsulHttpClient[] {
    return this.#clients;
  }

  /** The handler for a failed Consul call: `retry`'s `onRetry`, the sync loop's error hook. */
  readonly onError = (err: unknown): void => {
    if (!isServerFailure(err)) return;
    this.#failedInRow++;
    if (this.#failedInRow >= this.#clients.length) {
      this.#failedInRow = 0;
      this.#startRediscovery();
    }
    if (this.#clients.length < 2) return;
    this.#use((this.#current + 1) % this.#clients.length);
  };

  /** Waits for a rediscovery under way, if any (for tests and shutdown). */
  async settled(): Promise<void> {
    await this.#rediscovering;
  }

  /** Closes the clients it made by rediscovery; the caller closes the ones it gave. */
  async close(): Promise<void> {
    await this.#rediscovering;
    await Promise.all([...this.#owned].map((c) => c.close().catch(() => {})));
    this.#owned.clear();
  }

  #use(index: number): void {
    this.#current = index;
    for (const user of this.users) user.http = this.#clients[index]!;
    this.log.info('switching to Consul server', { address: this.#clients[index]!.baseUrl.origin });
  }

  #startRediscovery(): void {
    const rediscover = this.opts.rediscover;
    const now = this.#clock.now();
    if (!rediscover || this.#rediscovering || now - this.#lastRediscovery < (this.opts.rediscoverEveryMs ?? 10_000)) return;
    this.#lastRediscovery = now;
    this.#rediscovering = rediscover()
      .then((found) => this.#adopt(found))
      .catch((err: unknown) => this.log.warn('could not find the Consul servers again', { error: describeError(err) }))
      .finally(() => (this.#rediscovering = undefined));
  }

  #adopt(found: ConsulHttpClient[]): void {
    const origins = (list: readonly ConsulHttpClient[]) =>
      list
        .map((c) => c.baseUrl.origin)
        .sort()
        .join(',');
    if (!found.length || origins(found) === origins(this.#clients)) {
      for (const c of found) void c.close().catch(() => {});
      return;
    }
    this.log.info('found the Consul servers at new addresses', { addresses: found.map((c) => c.baseUrl.origin).join(',') });
    // A retired client of its own closes once the requests on their way through it end.
    for (const old of this.#clients) {
      if (this.#owned.delete(old)) void old.close().catch(() => {});
    }
    for (const c of found) this.#owned.add(c);
    this.#clients = found;
    this.#failedInRow = 0;
    this.#use(0);
  }
}
