// Types of validators.generated.js (made by scripts/gen-config-validators.mjs).
import type { ValidateFunction } from 'ajv';

/** Validates a whole consul-ecs configuration against schema.json. */
export declare const config: ValidateFunction;
/** Validates `proxy.expose`, whose schema sits beside `properties` in schema.json. */
export declare const expose: ValidateFunction;
