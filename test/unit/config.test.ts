import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  CONFIG_DEFAULTS,
  ConfigValidationError,
  ConsulEcsError,
  consulDnsEnabled,
  gatewayName,
  isGateway,
  loadConfig,
  parseConfigJson,
  serviceName,
  transparentProxyEnabled,
  validateConfig,
  type ResolvedConfig,
} from '@consul-ecs-ts/core';
import { findJsonSyntaxError } from '../../packages/core/src/config/json.ts';
import { rejection } from '../helpers/rejection.ts';

// Configurations written for consul-ecs v0.10.0, copied from its repository (README.md beside them).
const anchorConfigs = new URL('../fixtures/config/consul-ecs-v0.10.0/', import.meta.url);
const invalidFixtures = new URL('../fixtures/config/invalid/', import.meta.url);
const coreSchema = new URL('../../packages/core/src/config/schema.json', import.meta.url);

const readExample = (name: string): string => readFileSync(new URL(name, name === 'schema.json' ? coreSchema : anchorConfigs), 'utf8');
const loadExample = (name: string): Promise<ResolvedConfig> => validateConfig(parseConfigJson(readExample(name), name), name);

const MINIMAL = { bootstrapDir: '/consul', consulServers: { hosts: 'consul.example.com' } };

/** The default resolution of everything but bootstrapDir, hosts and what a test sets. */
const DEFAULT_RESOLVED: Omit<ResolvedConfig, 'bootstrapDir'> = {
  logLevel: 'INFO',
  healthSyncContainers: [],
  consulLogin: { enabled: false, method: 'iam-ecs-service-token', includeEntity: true, meta: {} },
  controller: { iamRolePath: '/consul-ecs/', partitionsEnabled: false },
  consulServers: {
    hosts: 'consul.example.com',
    skipServerWatch: false,
    defaults: { tls: true },
    grpc: { port: 8503, tls: true },
    http: { port: 8501, https: true, tls: true },
  },
  service: { tags: [], port: 0, enableTagOverride: false, meta: {} },
  proxy: { publicListenerPort: 20000, healthCheckPort: 22000, upstreams: [] },
  transparentProxy: {
    enabled: true,
    excludeInboundPorts: [],
    excludeOutboundPorts: [],
    excludeOutboundCIDRs: [],
    excludeUIDs: [],
    consulDNS: { enabled: false },
  },
};

describe('config schema', () => {
  it("is byte-identical to consul-ecs v0.10.0's config/schema.json", () => {
    assert.equal(createHash('sha256').update(readFileSync(coreSchema)).digest('hex'), '386b3d68c926fe8191a1d0268e839e46650d8cefd7ebdb3e70acee3a22d2d735');
  });
});

describe("validateConfig: consul-ecs v0.10.0's example configs", () => {
  it('test_config.json resolves with the contract defaults', async () => {
    const config = await loadExample('test_config.json');
    assert.deepEqual(config, {
      ...DEFAULT_RESOLVED,
      bootstrapDir: '/consul/',
      healthSyncContainers: ['container1'],
      consulServers: { ...DEFAULT_RESOLVED.consulServers, hosts: 'consul.dc1' },
      service: { name: 'blah', tags: ['tag1'], port: 1234, enableTagOverride: false, meta: { a: '1' } },
      proxy: { publicListenerPort: 20000, healthCheckPort: 22000, upstreams: [{ destinationName: 'asdf', localBindPort: 543 }] },
    });
    assert.equal(isGateway(config), false);
    assert.equal(serviceName(config, 'Ignored-Family'), 'blah');
  });

  it('test_config_empty_fields.json: empty strings, objects and a zero port take the defaults', async () => {
    const config = await loadExample('test_config_empty_fields.json');
    assert.deepEqual(config.consulLogin, DEFAULT_RESOLVED.consulLogin);
    assert.deepEqual(config.controller, DEFAULT_RESOLVED.controller);
    assert.deepEqual(config.consulServers, { ...DEFAULT_RESOLVED.consulServers, hosts: '' });
    assert.deepEqual(config.service, { tags: [], port: 9000, enableTagOverride: false, meta: {} });
    assert.deepEqual(config.proxy, DEFAULT_RESOLVED.proxy);
    assert.deepEqual(config.transparentProxy, DEFAULT_RESOLVED.transparentProxy);
    assert.deepEqual(config.gateway, {
      kind: 'mesh-gateway',
      lanAddress: { port: 8443 },
      wanAddress: { port: 8443 },
      tags: [],
      meta: {},
      healthCheckPort: 22000,
      proxy: {},
    });
    assert.ok(isGateway(config));
    assert.equal(gatewayName(config, 'Mesh-Gateway'), 'mesh-gateway');
    assert.equal(transparentProxyEnabled(config), false, 'transparent proxy never applies to gateways');
  });

  it('test_config_null_nested_fields.json: nulls are dropped and take the defaults', async () => {
    const config = await loadExample('test_config_null_nested_fields.json');
    assert.deepEqual(config, {
      ...DEFAULT_RESOLVED,
      bootstrapDir: '/consul/',
      consulServers: { ...DEFAULT_RESOLVED.consulServers, hosts: '' },
      service: { tags: [], port: 9000, enableTagOverride: false, meta: {} },
      proxy: { ...DEFAULT_RESOLVED.proxy, upstreams: [{ destinationName: 'backend', localBindPort: 2345 }] },
      gateway: {
        kind: 'mesh-gateway',
        lanAddress: { port: 8443 },
        wanAddress: { port: 8443 },
        tags: [],
        meta: {},
        healthCheckPort: 22000,
        proxy: {},
      },
    });
  });
});

describe('validateConfig: defaults and inheritance', () => {
  it('resolves a minimal config to the defaults', async () => {
    assert.deepEqual(await validateConfig(MINIMAL), { ...DEFAULT_RESOLVED, bootstrapDir: '/consul' });
    assert.equal(CONFIG_DEFAULTS.gatewayPort, 8443);
  });

  it('grpc and http inherit tls, caCertFile and tlsServerName from consulServers.defaults unless set', async () => {
    const config = await validateConfig({
      ...MINIMAL,
      consulServers: {
        hosts: 'consul.example.com',
        defaults: { tls: false, caCertFile: '/consul/ca.pem', tlsServerName: 'server.dc1.consul' },
        grpc: { port: null, tls: null, caCertFile: '', tlsServerName: 'grpc.dc1.consul' },
        http: { https: false, port: 8500, tls: true, caCertFile: '/consul/http-ca.pem' },
      },
    });
    assert.deepEqual(config.consulServers, {
      hosts: 'consul.example.com',
      skipServerWatch: false,
      defaults: { tls: false, caCertFile: '/consul/ca.pem', tlsServerName: 'server.dc1.consul' },
      grpc: { port: 8503, tls: false, caCertFile: '/consul/ca.pem', tlsServerName: 'grpc.dc1.consul' },
      http: { port: 8500, https: false, tls: true, caCertFile: '/consul/http-ca.pem', tlsServerName: 'server.dc1.consul' },
    });
  });

  it('keeps explicit login, controller, gateway and transparent proxy settings', async () => {
    const config = await validateConfig({
      ...MINIMAL,
      logLevel: 'DEBUG',
      consulLogin: { enabled: true, method: '', includeEntity: false, region: 'us-west-2', meta: { team: 'a' } },
      controller: { iamRolePath: '', partitionsEnabled: true, partition: 'part-1' },
      gateway: {
        kind: 'mesh-gateway',
        name: 'gw',
        lanAddress: { address: '10.0.0.1', port: 0 },
        wanAddress: { address: '203.0.113.7', port: 443 },
        healthCheckPort: 21000,
        proxy: { config: { envoy_gateway_no_default_bind: true } },
      },
      transparentProxy: { enabled: false, consulDNS: { enabled: true }, excludeUIDs: ['5995'] },
    });
    assert.equal(config.logLevel, 'DEBUG');
    assert.deepEqual(config.consulLogin, {
      enabled: true,
      method: 'iam-ecs-service-token',
      includeEntity: false,
      region: 'us-west-2',
      meta: { team: 'a' },
    });
    assert.deepEqual(config.controller, { iamRolePath: '/consul-ecs/', partitionsEnabled: true, partition: 'part-1' });
    assert.deepEqual(config.gateway?.lanAddress, { address: '10.0.0.1', port: 8443 });
    assert.deepEqual(config.gateway?.wanAddress, { address: '203.0.113.7', port: 443 });
    assert.equal(config.gateway?.healthCheckPort, 21000);
    assert.deepEqual(config.gateway?.proxy, { config: { envoy_gateway_no_default_bind: true } });
    assert.equal(gatewayName(config, 'Family'), 'gw');
    assert.equal(config.transparentProxy.enabled, false);
    assert.deepEqual(config.transparentProxy.excludeUIDs, ['5995']);
    assert.equal(consulDnsEnabled(config), false, 'Consul DNS needs transparent proxy');
  });

  it('applies the outlier detection defaults of the schema when network resilience is configured', async () => {
    const config = await validateConfig({
      ...MINIMAL,
      service: { port: 8080, networkResilienceConfig: { enabled: true, outlierDetection: { maxFailures: 3, consecutive5xx: 4 } } },
    });
    assert.deepEqual(config.service.networkResilienceConfig, {
      enabled: true,
      outlierDetection: {
        interval: 10_000_000_000,
        maxFailures: 3,
        enforcingConsecutive5xx: 100,
        consecutive5xx: 4,
        enforcingConsecutiveGatewayFailure: 100,
        maxEjectionPercent: 50,
      },
    });
  });

  it('enables Consul DNS only with transparent proxy on a service task', async () => {
    const config = await validateConfig({ ...MINIMAL, transparentProxy: { consulDNS: { enabled: true } } });
    assert.equal(transparentProxyEnabled(config), true);
    assert.equal(consulDnsEnabled(config), true);
  });

  it('accepts unknown keys where the schema allows them and drops them from the result', async () => {
    const config = await validateConfig({
      ...MINIMAL,
      consulServers: { hosts: 'consul.example.com', grpc: { port: 8502, extra: 1 } },
      proxy: { meshGateway: { mode: 'local', extra: true }, somethingElse: 1 },
    });
    assert.deepEqual(config.consulServers.grpc, { port: 8502, tls: true });
    assert.deepEqual(config.proxy.meshGateway, { mode: 'local' });
    assert.equal('somethingElse' in config.proxy, false);
  });

  it('accepts both service and gateway (a gateway task ignores service), as consul-ecs does', async () => {
    const config = await validateConfig({ ...MINIMAL, service: { port: 8080 }, gateway: { kind: 'terminating-gateway' } });
    assert.ok(isGateway(config));
    assert.equal(transparentProxyEnabled(config), false);
  });
});

describe('serviceName and gatewayName', () => {
  it('default to the task family, lower-cased', async () => {
    const config = await validateConfig({ ...MINIMAL, service: { port: 8080, name: '' }, gateway: { kind: 'api-gateway', name: null } });
    assert.equal(serviceName(config, 'Web-App'), 'web-app');
    assert.equal(gatewayName(config, 'API-GW'), 'api-gw');
  });

  it('fail clearly with neither a configured name nor a family', async () => {
    const config = await validateConfig(MINIMAL);
    assert.throws(() => serviceName(config, ''), { code: 'service-name-missing', message: /set service\.name in CONSUL_ECS_CONFIG_JSON/ });
  });
});

/** Each invalid fixture and the exact lines its error lists, after the header line. */
const INVALID: Record<string, string[]> = {
  'wrong-types.json': [
    '/bootstrapDir: must be a string (got integer)',
    '/consulLogin/enabled: must be a boolean or null (got string)',
    '/consulLogin/meta/team: must be a string (got integer)',
    '/consulServers/skipServerWatch: must be a boolean or null (got string)',
    '/healthSyncContainers: must be an array or null (got string)',
    '/service/tags: must be an array or null (got string)',
    '/service/weights/passing: must be an integer (got number)',
  ],
  'missing-bootstrap-dir.json': ['/bootstrapDir: is required'],
  'missing-consul-servers.json': ['/consulServers: is required'],
  'missing-service-port.json': ['/consulServers/hosts: is required', '/service/port: is required'],
  'unknown-properties.json': [
    '/meshInit: is not a known property; allowed here: logLevel, bootstrapDir, consulLogin, controller, consulServers, healthSyncContainers, service, proxy, gateway, transparentProxy',
    '/consulLogin/accessKeyId: is not a known property; allowed here: enabled, method, datacenter, includeEntity, meta, region, stsEndpoint, serverIdHeaderValue',
    '/consulLogin/secretAccessKey: is not a known property; allowed here: enabled, method, datacenter, includeEntity, meta, region, stsEndpoint, serverIdHeaderValue',
    '/service/checks: is not a known property; allowed here: name, tags, port, enableTagOverride, meta, weights, namespace, partition, networkResilienceConfig',
  ],
  'bad-gateway-kind.json': [
    '/gateway/kind: must be one of "mesh-gateway", "terminating-gateway", "api-gateway" (got "ingress-gateway")',
    '/gateway/lanAddress/port: must be an integer or null (got string)',
    '/gateway/healthCheckPort: must be an integer or null (got string)',
  ],
  'bad-upstreams.json': [
    '/proxy/upstreams/0/localBindPort: must be an integer (got string)',
    '/proxy/upstreams/1/destinationName: is required',
    '/proxy/upstreams/1/destination: is not a known property; allowed here: destinationType, destinationNamespace, destinationPartition, destinationName, destinationPeer, datacenter, localBindAddress, localBindPort, config, meshGateway',
    '/proxy/upstreams/1/destinationType: must be one of "service", "prepared_query", null (got "dns")',
  ],
  'bad-mesh-gateway-mode.json': [
    '/proxy/upstreams/0/meshGateway/mode: is required',
    '/proxy/meshGateway/mode: must be one of "none", "local", "remote" (got "both")',
  ],
  'bad-ports.json': [
    '/service/networkResilienceConfig/outlierDetection/maxFailures: must be >= 1 (got 0)',
    '/service/networkResilienceConfig/outlierDetection/maxEjectionPercent: must be <= 100 (got 150)',
    '/consulServers/http/port: must be a port number from 0 to 65535 (got 70000)',
    '/service/port: must be a port number from 0 to 65535 (got -1)',
    '/proxy/publicListenerPort: must be a port number from 0 to 65535 (got 65536)',
    '/proxy/expose/paths/0/localPathPort: must be a port number from 0 to 65535 (got 80800)',
    '/transparentProxy/excludeInboundPorts/1: must be a port number from 0 to 65535 (got 99999)',
  ],
  'bad-names-and-enums.json': [
    '/logLevel: must be one of "TRACE", "DEBUG", "INFO", "WARN", "ERROR", null (got "info")',
    '/bootstrapDir: must not be empty',
    '/healthSyncContainers: must not contain duplicates (items 0 and 2 are equal)',
    '/service/name: must match the pattern (^$)|(^[a-z0-9]([a-z0-9-_]*[a-z0-9])?$): lower-case letters, digits, "-" and "_", starting and ending with a letter or digit (got "Web")',
    '/gateway/name: must match the pattern (^$)|(^[a-z0-9]([a-z0-9-_]*[a-z0-9])?$): lower-case letters, digits, "-" and "_", starting and ending with a letter or digit (got "Mesh_GW")',
    '/proxy/expose/checks: must be a boolean (got string)',
    '/proxy/expose/paths/0/protocol: must be one of "http", "http2" (got "grpc")',
  ],
  'not-an-object.json': ['(root): must be an object (got array)'],
};

describe('validateConfig: invalid configs', () => {
  for (const [name, lines] of Object.entries(INVALID)) {
    it(`${name}: one config-invalid error listing every problem`, async () => {
      const text = readFileSync(new URL(name, invalidFixtures), 'utf8');
      const err = await rejection(validateConfig(parseConfigJson(text, name), name));
      assert.ok(err instanceof ConfigValidationError);
      assert.equal(err.code, 'config-invalid');
      const count = lines.length === 1 ? '1 problem' : `${lines.length} problems`;
      assert.equal(err.message, [`${name} is not a valid consul-ecs configuration (${count}):`, ...lines.map((l) => `  ${l}`)].join('\n'));
      assert.deepEqual(err.problems, lines);
    });
  }

  it('never echoes the values of unknown or secret-named fields', async () => {
    const text = readFileSync(new URL('unknown-properties.json', invalidFixtures), 'utf8');
    const err = await rejection(validateConfig(parseConfigJson(text, 'x'), 'x'));
    assert.doesNotMatch(err.message, /do-not-echo-this-secret|AKIAEXAMPLEKEYID0000/);
  });

  it('names CONSUL_ECS_CONFIG_JSON by default', async () => {
    const err = await rejection(validateConfig({ bootstrapDir: '/consul' }));
    assert.equal(err.message, 'CONSUL_ECS_CONFIG_JSON is not a valid consul-ecs configuration (1 problem):\n  /consulServers: is required');
  });
});

describe('parseConfigJson', () => {
  it('malformed.json: names the source, line and column and what was expected', async () => {
    const text = readFileSync(new URL('malformed.json', invalidFixtures), 'utf8');
    assert.throws(() => parseConfigJson(text, 'malformed.json'), {
      code: 'config-invalid',
      message: `malformed.json is not valid JSON: line 3, column 53: expected a double-quoted property name, found '}'; fix the JSON syntax`,
    });
  });

  it('locates common mistakes without quoting the text around them', () => {
    const cases: Array<[string, string]> = [
      ['{"a": 1', "line 1, column 8: expected ',' or '}' after the property value, found the end of the input"],
      ['{\n  "secretAccessKey": "hunter2" x\n}', "line 2, column 32: expected ',' or '}' after the property value, found 'x'"],
      ["{'a': 1}", "line 1, column 2: expected a double-quoted property name, found '''"],
      ['[1, 2,]', "line 1, column 7: expected a value, found ']'"],
      ['{"a": "x\ty"}', "line 1, column 9: expected a closing '\"' (control characters must be escaped in strings), found U+0009"],
      ['{"a": 01}', "line 1, column 8: expected ',' or '}' after the property value, found '1'"],
      ['{} {}', "line 1, column 4: expected the end of the document, found '{'"],
      ['', 'line 1, column 1: expected a value, found the end of the input'],
    ];
    for (const [text, where] of cases) {
      assert.throws(
        () => parseConfigJson(text, 'CONSUL_ECS_CONFIG_JSON'),
        (err: unknown) => {
          assert.ok(err instanceof ConsulEcsError);
          assert.equal(err.message, `CONSUL_ECS_CONFIG_JSON is not valid JSON: ${where}; fix the JSON syntax`);
          assert.doesNotMatch(err.message, /hunter2/);
          return true;
        },
      );
    }
  });

  it('finds no error in documents JSON.parse accepts', () => {
    for (const text of [readExample('schema.json'), '  {"a": [1, -2.5e+3, true, false, null, "\\u00e9\\n"], "b": {}} \n', '"x"', '0']) {
      assert.equal(findJsonSyntaxError(text), undefined);
      assert.doesNotThrow(() => parseConfigJson(text, 't'));
    }
  });
});

describe('loadConfig', () => {
  it('reads CONSUL_ECS_CONFIG_JSON', async () => {
    const config = await loadConfig({ env: { CONSUL_ECS_CONFIG_JSON: readExample('test_config.json') } });
    assert.equal(config.consulServers.hosts, 'consul.dc1');
  });

  it('says what to set when it is unset or empty', async () => {
    for (const [value, state] of [
      [undefined, 'not set'],
      ['', 'empty'],
      ['  \n', 'empty'],
    ] as const) {
      const err = await rejection(loadConfig({ env: { CONSUL_ECS_CONFIG_JSON: value } }));
      assert.equal(err.code, 'config-missing');
      assert.equal(
        err.message,
        `CONSUL_ECS_CONFIG_JSON is ${state}: set it to the consul-ecs configuration as JSON, at least ` +
          `{"bootstrapDir":"/consul","consulServers":{"hosts":"consul.example.com"}} (hosts: a DNS name, an IP address or exec=<command>)`,
      );
    }
  });

  it('reports syntax and schema errors against CONSUL_ECS_CONFIG_JSON', async () => {
    let err = await rejection(loadConfig({ env: { CONSUL_ECS_CONFIG_JSON: '{"bootstrapDir": "/consul",}' } }));
    assert.match(err.message, /^CONSUL_ECS_CONFIG_JSON is not valid JSON: line 1, column 28: /);
    err = await rejection(loadConfig({ env: { CONSUL_ECS_CONFIG_JSON: '{"bootstrapDir": "/consul"}' } }));
    assert.match(err.message, /^CONSUL_ECS_CONFIG_JSON is not a valid consul-ecs configuration \(1 problem\):\n {2}\/consulServers: is required$/);
  });
});

describe('startup cost', () => {
  it('does not load ajv until a config is validated', async () => {
    const core = fileURLToPath(new URL('../../packages/core/src/index.ts', import.meta.url));
    const script = `
      import { createRequire } from 'node:module';
      const core = await import(${JSON.stringify(core)});
      const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((p) => p.includes('/node_modules/ajv/'));
      const before = loaded();
      await core.validateConfig({ bootstrapDir: '/consul', consulServers: { hosts: 'h' } });
      console.log(JSON.stringify({ before, after: loaded() }));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
    });
    assert.deepEqual(JSON.parse(stdout.trim().split('\n').at(-1)!), { before: false, after: true });
  });
});
