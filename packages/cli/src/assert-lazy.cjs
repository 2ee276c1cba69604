'use strict';
// `node:assert` for undici in the CLI bundle. undici only calls `assert(value)`
// to check its own invariants; loading the real module at start-up costs ~9 ms
// and ~3 MB per process, so it is loaded only when an assertion fails (to throw
// the real AssertionError) or another member is used.
const real = () => require('node:assert');
function assert(value, message) {
  if (!value) real()(value, message);
}
module.exports = new Proxy(assert, { get: (target, key) => (key in target ? target[key] : real()[key]) });
