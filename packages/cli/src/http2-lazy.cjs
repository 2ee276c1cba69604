'use strict';
// `node:http2` for the CLI bundle. undici's HTTP/2 client reads a few constants
// when it loads and calls `connect` only when a dispatcher allows HTTP/2, which
// the CLI never does. Loading the real module (and with it `tls` and `crypto`)
// at start-up costs ~20 ms and ~7 MB of resident memory per process, so the
// constants are given here and the module is loaded on first real use.
// The values are HTTP/2's own (RFC 9113 pseudo-headers, nghttp2 error codes).
const constants = {
  HTTP2_HEADER_AUTHORITY: ':authority',
  HTTP2_HEADER_METHOD: ':method',
  HTTP2_HEADER_PATH: ':path',
  HTTP2_HEADER_SCHEME: ':scheme',
  HTTP2_HEADER_STATUS: ':status',
  HTTP2_HEADER_PROTOCOL: ':protocol',
  HTTP2_HEADER_CONTENT_LENGTH: 'content-length',
  HTTP2_HEADER_EXPECT: 'expect',
  NGHTTP2_REFUSED_STREAM: 7,
  NGHTTP2_CANCEL: 8,
};
const real = () => require('node:http2');
module.exports = new Proxy({ constants }, { get: (target, key) => (key === 'constants' ? target.constants : real()[key]) });
