import type { EcsContainerMetadata } from './task-metadata.js';

/** A container has stopped when both its desired and known status are STOPPED. */
export function containerStopped(c: Pick<EcsContainerMetadata, 'DesiredStatus' | 'KnownStatus'>): boolean {
  return c.DesiredStatus === 'STOPPED' && c.KnownStatus === 'STOPPED';
}
