#!/usr/bin/env node
'use strict';
// The whole CLI is one bundled CommonJS file (dist/consul-ecs.cjs): it starts
// fast and is the same script the self-contained executable embeds.
require('../dist/consul-ecs.cjs');
