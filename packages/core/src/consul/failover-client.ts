import { systemClock, type Clock } from '../util/clock.js';
import { silentLogger } from '../util/logger.js';
import { retry, type BackoffOptions } from '../util/retry.js';
import type { IoOptions } from '../util/options.js';
import { ConsulHttpClient, isRetryableConsulError, type ConsulRequest } from './http-client.js';
import { ServerFailover, type UsesConsulServer } from './server-failover.js';

export interface FailoverConsulClientOptions extends Pick<IoOptions, 'clock' | 'logger'> {
  /**
   * Finds the Consul servers again (`consulServers.hosts`), once every known one
   * has failed: servers replaced in an upgrade come back at other addresses.
   * None: the servers given are all there is.
   */
  rediscover?: () => Promise<ConsulHttpClient[]>;
  /**
   * How long one call keeps retrying connection errors, 5xx and 429, across the
   * servers, in milliseconds. Default 30 s; 0 makes one attempt. A call's own
   * `retryDeadlineMs` wins.
   */
  retryDeadlineMs?: number;
  backoff?: BackoffOptions;
  /** Close the clients given when this one closes. Default false: they are the caller's to close. */
  closeGivenClients?: boolean;
}

/**
 * A Consul HTTP client over several servers, for a command that must not stay
 * with one that failed: every attempt of a call goes to the server in use, and a
 * failure of that server (no connection, a connection reset, HTTP 5xx) moves it
 * to the next one, round robin ({@link ServerFailover}), where the call's next
 * attempt goes; once every known server has failed, it finds them again with
 * `rediscover`. Other errors (4xx, 429) leave the server in use as it is. A call
 * with `retryDeadlineMs: 0` makes one attempt, as with one server; the caller's
 * next call goes to the next server if that one failed.
 *
 * It is a {@link ConsulHttpClient}: `baseUrl` is the server in use.
 */
export class FailoverConsulClient extends ConsulHttpClient {
  readonly #inUse: UsesConsulServer;
  readonly #failover: ServerFailover;
  readonly #given: ConsulHttpClient[];
  readonly #opts: FailoverConsulClientOptions;
  readonly #clock: Clock;
  #moves = 0;

  constructor(clients: ConsulHttpClient[], opts: FailoverConsulClientOptions = {}) {
    if (!clients.length) throw new Error('FailoverConsulClient needs at least one Consul client');
    super({ address: clients[0]!.baseUrl.href });
    this.#given = [...clients];
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#inUse = { http: clients[0]! };
    this.#failover = new ServerFailover(clients, [this.#inUse], opts.logger ?? silentLogger, { rediscover: opts.rediscover, clock: opts.clock });
  }

  /** The base URL of the server in use. */
  override get baseUrl(): URL {
    return this.#inUse.http.baseUrl;
  }

  /** The client of the server in use. */
  get server(): ConsulHttpClient {
    return this.#inUse.http;
  }

  /** How many times a failed server made it move to the next one. */
  get moves(): number {
    return this.#moves;
  }

  /** The clients of the servers known now, in their round-robin order. */
  get servers(): readonly ConsulHttpClient[] {
    return this.#failover.clients;
  }

  /** Sends a call to the server in use, and its retries to whichever server is in use then. */
  override async send(req: ConsulRequest): Promise<{ status: number; text: string }> {
    const deadline = req.retryDeadlineMs ?? this.#opts.retryDeadlineMs ?? 30_000;
    return retry(
      async () => {
        const server = this.#inUse.http;
        try {
          return await server.send({ ...req, retryDeadlineMs: 0 });
        } catch (err) {
          // Calls in flight together that fail on the same server move it on once.
          if (!req.signal?.aborted && server === this.#inUse.http) {
            this.#failover.onError(err);
            if (this.#inUse.http !== server) this.#moves++;
          }
          throw err;
        }
      },
      {
        ...this.#opts.backoff,
        deadlineMs: deadline,
        maxAttempts: deadline === 0 ? 1 : undefined,
        clock: this.#clock,
        signal: req.signal,
        retryable: isRetryableConsulError,
      },
    );
  }

  /** Waits for a search for the servers under way, if any (for tests). */
  async settled(): Promise<void> {
    await this.#failover.settled();
  }

  /** Closes the clients it made when it found the servers again, and the ones given if it was told to. */
  override async close(): Promise<void> {
    await this.#failover.close();
    if (this.#opts.closeGivenClients) await Promise.all(this.#given.map((c) => c.close().catch(() => {})));
  }
}
