import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import { ipVersion, isIPv4 } from '../../packages/core/src/util/ip-address.ts';

// ipVersion stands in for net.isIP on the start-up path (it does not run
// Node.js's IPv6 pattern on DNS names); it must answer as net.isIP does.
describe('ipVersion', () => {
  const cases = [
    '127.0.0.1', '0.0.0.0', '255.255.255.255', '10.0.0.1', '192.168.1.10', '1.2.3.4',
    '256.0.0.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.04', '00.0.0.0', '1..2.3', '.1.2.3', '1.2.3.', '', '.',
    '1.2.3.4 ', ' 1.2.3.4', '1.2.3.-4', '1.2.3.+4', '1.2.3.1e2', '1.2.3.0x1', '1.2.3.٣', '1000.2.3.4', '999.1.1.1',
    '::1', '::', 'fe80::1%eth0', '2001:db8::8a2e:370:7334', '::ffff:127.0.0.1', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', ':::', 'g::1',
    'consul.service.consul', 'localhost', 'host:8500', 'a.b.c.d', '1.2.3.a',
  ];
  it('answers as net.isIP for IPv4 and IPv6 literals, malformed ones and DNS names', () => {
    for (const text of cases) assert.equal(ipVersion(text), isIP(text), JSON.stringify(text));
  });

  it('answers as net.isIP for generated dotted quads', () => {
    const parts = ['0', '00', '1', '9', '10', '09', '99', '100', '199', '200', '249', '250', '255', '256', '300', '999', '1000', '-1', 'x'];
    for (const a of parts) {
      for (const b of parts) {
        const text = `${a}.1.${b}.2`;
        assert.equal(ipVersion(text), isIP(text), text);
        assert.equal(isIPv4(text), isIP(text) === 4, text);
      }
    }
  });
});
