import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gatewayRegistration, resolveContainerHealth, serviceRegistrations, type TaskInfo } from '@consul-ecs-ts/core';

const task: TaskInfo = {
  taskArn: 'arn:aws:ecs:us-west-2:123456789012:task/prod/abc123',
  taskId: 'abc123',
  region: 'us-west-2',
  account: '123456789012',
  partition: 'aws',
  clusterArn: 'arn:aws:ecs:us-west-2:123456789012:cluster/prod',
  family: 'web',
  availabilityZone: 'us-west-2b',
  nodeIp: '10.0.0.7',
};

describe('catalog registrations', () => {
  it('registers the service and its sidecar on the synthetic node, as consul-ecs does', () => {
    const regs = serviceRegistrations(
      { name: 'web', port: 8080, tags: ['a'], meta: { team: 'x' }, weights: { Passing: 3, Warning: 1 } },
      { upstreams: [{ DestinationName: 'db', LocalBindPort: 5432 }], config: { protocol: 'http' } },
      { task, region: 'us-west-2', healthSyncContainers: ['app', 'worker'], transparentProxy: true },
    );
    const svc = regs.service!;
    assert.equal(svc.Node, task.clusterArn);
    assert.deepEqual(svc.NodeMeta, { 'synthetic-node': 'true' });
    assert.equal(svc.SkipNodeUpdate, true);
    assert.equal(svc.Service?.ID, 'web-abc123');
    assert.deepEqual(svc.Service?.Meta, { 'task-id': 'abc123', 'task-arn': task.taskArn, source: 'consul-ecs', team: 'x' });
    assert.deepEqual(svc.Service?.Locality, { Region: 'us-west-2', Zone: 'us-west-2b' });
    assert.deepEqual(svc.Service?.TaggedAddresses, { virtual: { Address: '10.0.0.7', Port: 8080 } });
    assert.deepEqual(
      svc.Checks?.map((c) => [c.CheckID, c.Name, c.Status, c.Output]),
      [
        ['web-abc123-app', 'Consul ECS health check synced', 'critical', 'Service web is not ready'],
        ['web-abc123-worker', 'Consul ECS health check synced', 'critical', 'Service web is not ready'],
        ['web-abc123-consul-dataplane', 'Consul dataplane readiness', 'critical', 'Service web is not ready'],
      ],
    );
    const proxy = regs.proxy.Service!;
    assert.equal(proxy.ID, 'web-abc123-sidecar-proxy');
    assert.equal(proxy.Service, 'web-sidecar-proxy');
    assert.equal(proxy.Kind, 'connect-proxy');
    assert.equal(proxy.Port, 20000);
    assert.deepEqual(proxy.Weights, { Passing: 3, Warning: 1 });
    assert.deepEqual(proxy.Proxy, {
      DestinationServiceName: 'web',
      DestinationServiceID: 'web-abc123',
      LocalServicePort: 8080,
      Mode: 'transparent',
      Config: { protocol: 'http' },
      Upstreams: [{ DestinationName: 'db', LocalBindPort: 5432 }],
    });
    assert.deepEqual(
      regs.proxy.Checks?.map((c) => c.CheckID),
      ['web-abc123-sidecar-proxy-consul-dataplane'],
    );
  });

  it('registers a mesh gateway alone, with lan/wan tagged addresses and port 8443 by default', () => {
    const regs = gatewayRegistration(
      { kind: 'mesh-gateway', name: 'gw', lanAddress: { address: '10.1.1.1' }, wanAddress: { address: '203.0.113.5', port: 443 } },
      { task, healthSyncContainers: ['app'] },
    );
    assert.equal(regs.service, undefined);
    const gw = regs.proxy.Service!;
    assert.equal(gw.Kind, 'mesh-gateway');
    assert.equal(gw.Port, 8443);
    assert.equal(gw.Address, '10.1.1.1');
    assert.deepEqual(gw.TaggedAddresses, { lan: { Address: '10.1.1.1', Port: 8443 }, wan: { Address: '203.0.113.5', Port: 443 } });
    assert.deepEqual(
      regs.proxy.Checks?.map((c) => c.CheckID),
      ['gw-abc123-consul-dataplane'],
      'no synced container checks on gateways',
    );
  });
});

describe('container health', () => {
  const c = (Name: string, status?: 'HEALTHY' | 'UNHEALTHY' | 'UNKNOWN') => ({
    Name,
    DesiredStatus: 'RUNNING',
    KnownStatus: 'RUNNING',
    ...(status ? { Health: { status } } : {}),
  });
  it('counts missing containers as unhealthy and aggregates the dataplane', () => {
    const h = resolveContainerHealth({ Containers: [c('app', 'HEALTHY'), c('consul-dataplane', 'HEALTHY')] }, ['app', 'worker']);
    assert.deepEqual(Object.fromEntries(h), { app: 'HEALTHY', worker: 'UNHEALTHY', 'consul-dataplane': 'UNHEALTHY' });
    const ok = resolveContainerHealth({ Containers: [c('app', 'HEALTHY'), c('consul-dataplane', 'HEALTHY')] }, ['app']);
    assert.equal(ok.get('consul-dataplane'), 'HEALTHY');
    const noCheck = resolveContainerHealth({ Containers: [c('app'), c('consul-dataplane', 'HEALTHY')] }, ['app']);
    assert.deepEqual(Object.fromEntries(noCheck), { app: 'UNKNOWN', 'consul-dataplane': 'UNHEALTHY' });
  });
});
