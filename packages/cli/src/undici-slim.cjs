'use strict';
// The part of undici the consul-ecs CLI uses: Agent, the Dispatcher API
// (request) and the global dispatcher. The CLI bundle resolves `undici` here so
// that a command does not load fetch, WebSocket, caches and mocks it never uses:
// that halves the start-up time. The library itself imports undici as usual.
const Dispatcher = require('undici/lib/dispatcher/dispatcher.js');
const api = require('undici/lib/api/index.js');
const Agent = require('undici/lib/dispatcher/agent.js');
const { getGlobalDispatcher, setGlobalDispatcher } = require('undici/lib/global.js');

Object.assign(Dispatcher.prototype, api);

module.exports = { Agent, Dispatcher, getGlobalDispatcher, setGlobalDispatcher };
