/**
 * A split artifact's files checked before onnxruntime opens them, as `vlmc run` checks a single
 * graph's: every graph file present and a regular file, the shared weights file holding every
 * parameter the manifest places in it, and each graph's external-data references inside it. A
 * damaged copy is one exit-2 message naming the file, never a runtime stack trace.
 */
import { existsSync, statSync } from 'node:fs';
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import { peekManifest, type Manifest } from '../artifact/format.ts';
import { checkDataAgainstManifest } from '../runtime/check-inputs.ts';
import { checkExternalReferences } from '../onnx/read.ts';
import { SPLIT_ENTRIES, type Pipeline } from './pipeline.ts';

export function checkSplitFiles(dir: string, pipeline: Pipeline, manifest: Partial<Manifest> | undefined = peekManifest(dir)): void {
  const dataFile = nodePath.join(dir, pipeline.data_file);
  if (!existsSync(dataFile)) throw new UserError(`${dataFile}: missing; the split artifact is damaged, rebuild it`);
  if (manifest?.parameters) checkDataAgainstManifest(dataFile, statSync(dataFile).size, manifest as Manifest);
  for (const entry of SPLIT_ENTRIES) {
    const file = nodePath.join(dir, pipeline.graphs[entry].file);
    if (!existsSync(file)) throw new UserError(`${file}: missing; the split artifact is damaged (pipeline.json names it as the ${entry} graph), rebuild it`);
    checkExternalReferences(file);
  }
}
