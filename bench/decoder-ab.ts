/**
 * bench/decoder-ab: decode steps of decoder graphs side by side in one onnxruntime-node process,
 * each with or without ORT's weight prepacking, alternating run by run (the order rotates every
 * round, and each run starts after the pools have settled), median and min of N steps. For
 * kernel-path A/Bs: the same decoder prepacked or not, two builds of it, or a peer's decoder.
 *
 *   npx tsx bench/decoder-ab.ts [--steps 24] [--past 322] <decoder.onnx>:<0|1> ...
 *
 * `:1` prepacks, `:0` passes session.disable_prepacking. Feeds: one token after a cache of --past
 * positions (seeded values), every input named as vlmc's or mobius's decoders name them.
 */
import ort from 'onnxruntime-node';

const args = process.argv.slice(2);
const value = (flag: string, fallback: number) => (args.includes(flag) ? Number(args[args.indexOf(flag) + 1]) : fallback);
const steps = value('--steps', 24);
const past = value('--past', 322);
const variants = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
if (variants.length === 0 || variants.some((v) => !/:[01]$/.test(v))) {
  console.error('bench/decoder-ab: give one or more <decoder.onnx>:<0|1> (1 = prepack weights)');
  process.exit(2);
}

function feedsOf(s: ort.InferenceSession): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const n of s.inputNames) {
    const meta = s.inputMetadata.find((m) => m.name === n);
    const shape = meta && meta.isTensor ? meta.shape : [];
    if (n === 'inputs_embeds') {
      const hidden = Number(shape.at(-1));
      feeds[n] = new ort.Tensor('float32', Float32Array.from({ length: hidden }, (_, i) => Math.sin(i) * 0.1), [1, 1, hidden]);
    } else if (n === 'attention_mask') feeds[n] = new ort.Tensor('int64', new BigInt64Array(past + 1).fill(1n), [1, past + 1]);
    else if (n === 'position_ids') feeds[n] = new ort.Tensor('int64', BigInt64Array.of(BigInt(past)), [1, 1]);
    else if (n === 'full_logits') feeds[n] = new ort.Tensor('int64', BigInt64Array.of(0n), []);
    else {
      const [kv, d] = [Number(shape[1]), Number(shape[3])];
      feeds[n] = new ort.Tensor('float32', Float32Array.from({ length: kv * past * d }, (_, i) => Math.cos(i) * 0.1), [1, kv, past, d]);
    }
  }
  return feeds;
}

const sessions: ort.InferenceSession[] = [];
for (const v of variants) {
  const [file, prepack] = [v.slice(0, -2), v.endsWith(':1')];
  const t0 = performance.now();
  sessions.push(await ort.InferenceSession.create(file, { logSeverityLevel: 3, ...(prepack ? {} : { extra: { session: { disable_prepacking: '1' } } }) }));
  console.log(`${v}: session ${((performance.now() - t0) / 1000).toFixed(2)} s`);
}
const feeds = sessions.map(feedsOf);
for (let i = 0; i < sessions.length; i++) await sessions[i]!.run(feeds[i]!);
const times: number[][] = sessions.map(() => []);
for (let r = 0; r < steps; r++) {
  for (let k = 0; k < sessions.length; k++) {
    const i = (k + r) % sessions.length;
    await new Promise((resolve) => setTimeout(resolve, 150));
    const t0 = performance.now();
    await sessions[i]!.run(feeds[i]!);
    times[i]!.push(performance.now() - t0);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const last = median(times.at(-1)!);
variants.forEach((v, i) => console.log(`${v}: median ${median(times[i]!).toFixed(1)} ms, min ${Math.min(...times[i]!).toFixed(1)} ms, median / last's ${(median(times[i]!) / last).toFixed(2)}`));
