/**
 * JSON.parse keeps the last of two equal keys without a word; for a safetensors header or a
 * config that hides a conflicting entry. This scans text JSON.parse already accepted and names the
 * first key that appears twice in one object.
 */

/** The first duplicate key, as a dotted path (`a.b`), or undefined when every object's keys are distinct. */
export function firstDuplicateKey(text: string): string | undefined {
  const objects: { keys: Set<string>; path: string }[] = [];
  /** Path of the value being parsed, per open container. */
  const pending: string[] = [];
  let expectKey = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      const end = stringEnd(text, i);
      if (expectKey) {
        const key = JSON.parse(text.slice(i, end)) as string;
        const top = objects[objects.length - 1]!;
        if (top.keys.has(key)) return top.path === '' ? key : `${top.path}.${key}`;
        top.keys.add(key);
        pending[pending.length - 1] = top.path === '' ? key : `${top.path}.${key}`;
        expectKey = false;
      }
      i = end;
      continue;
    }
    if (c === '{') {
      objects.push({ keys: new Set(), path: pending[pending.length - 1] ?? '' });
      pending.push('');
      expectKey = true;
    } else if (c === '}') {
      objects.pop();
      pending.pop();
      expectKey = false;
    } else if (c === '[') {
      pending.push(pending[pending.length - 1] ?? '');
      objects.push({ keys: new Set(), path: '\u0000array' });
    } else if (c === ']') {
      objects.pop();
      pending.pop();
    } else if (c === ',') {
      expectKey = objects[objects.length - 1]?.path !== '\u0000array' && objects.length > 0;
    }
    i++;
  }
  return undefined;
}

/** Index just past the closing quote of the string starting at `start`. */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length) {
    const c = text[i];
    if (c === '\\') i += 2;
    else if (c === '"') return i + 1;
    else i++;
  }
  return i;
}
