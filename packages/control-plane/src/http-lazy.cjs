'use strict';
// What undici reads of `node:http`, for the CLI bundle. undici loads node:http
// (and with it the HTTP server, agent and parser modules) for two things: the
// --max-http-header-size option when it loads, and IncomingMessage, to treat a
// body that is an incoming HTTP message specially when it destroys it. The CLI
// never hands undici such a body, and loading node:http costs every command
// ~1.6 ms at start, so node:http is loaded only when one of them needs it.
const real = () => require('node:http');
/** Node.js's default --max-http-header-size (16 KiB), unless the option is given. */
const DEFAULT_MAX_HEADER_SIZE = 16 * 1024;
const optionGiven = () =>
  [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => a.startsWith('--max-http-header-size'));

module.exports = {
  get maxHeaderSize() {
    return optionGiven() ? real().maxHeaderSize : DEFAULT_MAX_HEADER_SIZE;
  },
  /** Whether `ctor` is http.IncomingMessage; only a class of that name can be, and then node:http is loaded already. */
  isIncomingMessageClass: (ctor) => typeof ctor === 'function' && ctor.name === 'IncomingMessage' && ctor === real().IncomingMessage,
};
