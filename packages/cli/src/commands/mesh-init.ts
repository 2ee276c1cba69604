import { runGuarded, type Command } from '../command.js';
import { runMeshInit, setUpMeshCommand } from './mesh-common.js';

export const meshInitCommand: Command = {
  name: 'mesh-init',
  synopsis: 'Logs in, registers the service and its sidecar (or the gateway) and writes the bootstrap files.',
  usage: 'mesh-init',
  flags: {},
  run: (ctx) =>
    runGuarded(meshInitCommand, ctx, async (log) => {
      const result = await runMeshInit(ctx, await setUpMeshCommand(meshInitCommand, ctx, log));
      await result.client.close();
      return 0;
    }),
};
