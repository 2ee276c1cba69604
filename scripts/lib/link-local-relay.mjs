// The ECS agent's endpoint as an awsvpc task sees it: 169.254.170.2:80 inside the
// task's network namespace. Run there (`ip netns exec <ns> node link-local-relay.mjs
// <host> <port> <unix socket>`), it passes each connection on to a Unix socket,
// where the ECS agent simulator in the host namespace answers (mesh-task-runner.ts).
// A Unix socket rather than an address on the bridge: the agent is no peer on the
// task's network, and no rule of the task's nat table applies between the two.
import { createServer, connect } from 'node:net';

const [host, port, socketPath] = process.argv.slice(2);
if (!host || !port || !socketPath) {
  process.stderr.write('usage: link-local-relay.mjs <listen host> <listen port> <unix socket>\n');
  process.exit(2);
}

const server = createServer((client) => {
  const agent = connect(socketPath);
  client.pipe(agent).pipe(client);
  const close = () => {
    client.destroy();
    agent.destroy();
  };
  client.on('error', close);
  agent.on('error', close);
});
server.listen(Number(port), host, () => process.stdout.write(`listening on ${host}:${port}\n`));
process.on('SIGTERM', () => process.exit(0));
