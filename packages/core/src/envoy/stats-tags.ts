// The stats tag specifiers Consul gives Envoy so that the metrics of the
// clusters and listeners it generates over xDS carry tags (service, namespace,
// partition, datacenter, peer, …) instead of long dotted names. Dashboards
// built for Consul's Envoy metrics rely on these exact tag names and patterns.
//
// Cluster names Consul generates have the form
//   [<custom_hash>~][<subset>.]<service>.<namespace>.[<partition>.]<datacenter>.<routing_type>.<trust_domain>.consul
// (peered: <service>.<namespace>.<peer>.external.<trust_domain>.consul), and
// upstream listener stat prefixes the form
//   <tcp|http>.upstream[_peered].<service>[.<namespace>][.<partition>].<datacenter|peer>.
// Each specifier's outer group is cut from the metric name and its inner group
// becomes the tag's value.
import type { EnvoyTagSpecifier } from './types.js';

/** One dot-free segment of a metric name. */
const SEG = '[^.]+';

type ClusterField =
  'custom_hash' | 'service_subset' | 'service' | 'namespace' | 'partition' | 'datacenter' | 'routing_type' | 'trust_domain' | 'target' | 'full_target';

/**
 * The regex for one field of a Consul cluster name. `current` is for the
 * `consul.destination.*` tags, which also match `passthrough~` clusters; the
 * deprecated pre-1.9 `consul.*` tags do not.
 */
function clusterRegex(field: ClusterField, current: boolean): string {
  const cap = (name: ClusterField, re: string) => (field === name ? `(${re})` : re);
  const hash = field === 'custom_hash' ? `(?:(${SEG})~)?` : `(?:${SEG}~)?`;
  const subset = field === 'service_subset' ? `(?:(${SEG})\\.)?` : `(?:${SEG}\\.)?`;
  const service = `${cap('service', SEG)}\\.`;
  const namespace = `${cap('namespace', SEG)}\\.`;
  const partition = field === 'partition' ? `(?:(${SEG})\\.)?` : `(?:${SEG}\\.)?`;
  const datacenter = cap('datacenter', SEG);
  // Partition and datacenter tags apply to internal (not peered) targets only.
  const routing = field === 'partition' || field === 'datacenter' ? 'internal[^.]*' : cap('routing_type', SEG);
  const trust = cap('trust_domain', SEG);

  let target = `${hash}${subset}${service}${namespace}${partition}${datacenter}`;
  let fullTarget: string;
  if (field === 'target') {
    target = `(${target})`;
    fullTarget = `${target}\\.${routing}\\.${trust}`;
  } else {
    fullTarget = `${target}\\.${routing}\\.${trust}`;
    if (field === 'full_target') fullTarget = `(${fullTarget})`;
  }
  const prefix = current ? '^cluster\\.(?:passthrough~)?' : '^cluster\\.';
  return `${prefix}(${fullTarget}\\.consul\\.)`;
}

/** The `consul.destination.*`, `consul.upstream.*` (and, unless omitted, deprecated `consul.*`) regex tags. */
export function consulResourceTagSpecifiers(omitDeprecated: boolean): EnvoyTagSpecifier[] {
  const tags: EnvoyTagSpecifier[] = [];
  const add = (tag_name: string, regex: string) => tags.push({ tag_name, regex });

  const destination: ClusterField[] = ['custom_hash', 'service_subset', 'service', 'namespace', 'partition', 'datacenter'];
  for (const f of destination) add(`consul.destination.${f}`, clusterRegex(f, true));
  // Peered targets: <service>.<namespace>.<peer>.external.<trust_domain>.consul
  add('consul.destination.peer', `^cluster\\.(${SEG}\\.(?:${SEG}\\.)?(${SEG})\\.external\\.${SEG}\\.consul\\.)`);
  for (const f of ['routing_type', 'trust_domain', 'target', 'full_target'] as const) {
    add(`consul.destination.${f}`, clusterRegex(f, true));
  }

  const up = '^(?:tcp|http)\\.upstream';
  add('consul.upstream.service', `${up}(?:_peered)?\\.((${SEG})(?:\\.${SEG})?(?:\\.${SEG})?\\.${SEG}\\.)`);
  add('consul.upstream.datacenter', `${up}\\.(${SEG}(?:\\.${SEG})?(?:\\.${SEG})?\\.(${SEG})\\.)`);
  add('consul.upstream.peer', `${up}_peered\\.(${SEG}(?:\\.${SEG})?\\.(${SEG})\\.)`);
  add('consul.upstream.namespace', `${up}(?:_peered)?\\.(${SEG}(?:\\.(${SEG}))?(?:\\.${SEG})?\\.${SEG}\\.)`);
  add('consul.upstream.partition', `${up}\\.(${SEG}(?:\\.${SEG})?(?:\\.(${SEG}))?\\.${SEG}\\.)`);

  if (!omitDeprecated) {
    const deprecated: ClusterField[] = [
      'custom_hash',
      'service_subset',
      'service',
      'namespace',
      'datacenter',
      'routing_type',
      'trust_domain',
      'target',
      'full_target',
    ];
    for (const f of deprecated) add(`consul.${f}`, clusterRegex(f, false));
  }
  return tags;
}
