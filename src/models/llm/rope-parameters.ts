/**
 * transformers 5 saves RoPE as `rope_parameters` ({ rope_theta, rope_type, ...scaling }) instead of
 * `rope_theta` + `rope_scaling`; the config readers take the older fields, so this lifts the new
 * form into them. A config that already has `rope_theta` is left as it is.
 */
import type { HFConfig } from './hf-config.ts';

export function withLegacyRope(cfg: HFConfig): HFConfig {
  const rp = cfg.rope_parameters as HFConfig | null | undefined;
  if (!rp || typeof rp !== 'object' || Array.isArray(rp) || cfg.rope_theta !== undefined) return cfg;
  const { rope_theta, ...scaling } = rp;
  const type = (scaling.rope_type ?? scaling.type) as string | undefined;
  return {
    ...cfg,
    ...(rope_theta !== undefined ? { rope_theta } : {}),
    ...(type !== undefined && type !== 'default' && cfg.rope_scaling == null ? { rope_scaling: scaling } : {}),
  };
}
