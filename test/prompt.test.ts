/**
 * The text side of InternVL requests against ../shared/fixtures/prompts: the official chat()
 * query strings, the Rust tokenizers' ids and decodes, eos ids, and streaming == full decode.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES } from './helpers.ts';
import { buildQuery, chatResponse, eosToken, getPrompt, getTemplate, loadTokenizer, pyStrip, TEMPLATES, UserError, type ConversationTemplate, type SeparatorStyle } from '../src/index.ts';

const PROMPTS = path.join(FIXTURES, 'prompts');
const cases = JSON.parse(readFileSync(path.join(PROMPTS, 'cases.json'), 'utf8'));

interface PromptCase {
  id: string;
  template: string;
  tokenizer: string;
  inputs: {
    question: string;
    history: [string, string][] | null;
    pixel_values_tiles: number | null;
    num_patches_list: number[] | null;
    num_image_token: number;
    system_message: string;
  };
  expected: Record<string, any>;
}

const tokenizers = new Map<string, ReturnType<typeof loadTokenizer>>();
function tokenizerFor(name: string) {
  if (!tokenizers.has(name)) tokenizers.set(name, loadTokenizer(path.join(PROMPTS, cases.tokenizers[name].dir)));
  return tokenizers.get(name)!;
}

function patchesOf(c: PromptCase): number[] {
  const i = c.inputs;
  if (i.pixel_values_tiles === null) return [];
  return i.num_patches_list ?? [i.pixel_values_tiles];
}

describe('conversation templates', () => {
  it('match the official registry for every template the fixtures list', () => {
    for (const [name, t] of Object.entries<any>(cases.templates)) {
      const ours = getTemplate(name);
      expect({
        system_template: ours.systemTemplate,
        system_message: ours.systemMessage,
        roles: [...ours.roles],
        sep_style: ours.sepStyle,
        sep: ours.sep,
        sep2: ours.sep2,
        stop_str: ours.stopStr,
        eos_token: eosToken(ours),
      }).toEqual(t);
    }
  });

  it('an unknown template is a UserError listing the supported ones', () => {
    expect(() => getTemplate('chatml-nope', 'ckpt/config.json')).toThrow(UserError);
    expect(() => getTemplate('chatml-nope', 'ckpt/config.json')).toThrow(/ckpt\/config.json.*"chatml-nope".*Hermes-2, internlm2-chat, phi3-chat, internvl2_5/);
  });

  it('MPT: an empty answer in the history writes the role alone, no separator', () => {
    const t = TEMPLATES['internvl2_5']!;
    const p = getPrompt(t, 'S', [[t.roles[0], 'q1'], [t.roles[1], ''], [t.roles[0], 'q2'], [t.roles[1], null]]);
    expect(p).toBe('<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\n<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n');
  });

  it('internvl_zh (InternVL-Chat-V1-1): raw system message, seps swapped as conversation.py does', () => {
    const t = TEMPLATES['internvl_zh']!;
    const q = buildQuery({ template: t, question: 'hi', history: [['a', 'b']], numImageToken: 4 });
    expect(q.query).toBe(' <human>: a <bot>: b</s><human>: hi <bot>:');
    expect(eosToken(t)).toBe('</s>');
  });

  it('pyStrip strips what Python strips', () => {
    expect(pyStrip('\x1c\x85 a b\u3000\n')).toBe('a b');
    expect(pyStrip('\ufeffa')).toBe('\ufeffa');
  });
});

describe('chat() query building and tokenization', () => {
  for (const c of cases.prompt_cases as PromptCase[]) {
    it(c.id, () => {
      const q = buildQuery({
        template: getTemplate(c.template),
        systemMessage: c.inputs.system_message,
        question: c.inputs.question,
        history: c.inputs.history,
        numPatchesList: patchesOf(c),
        numImageToken: c.inputs.num_image_token,
      });
      const e = c.expected;
      expect(q.question).toBe(e.question_as_stored_in_history);
      expect(q.prompt).toBe(e.prompt_before_image_expansion);
      expect(q.query).toBe(e.query);
      expect(q.imageBlocks).toBe(e.num_image_blocks_inserted);
      const tok = tokenizerFor(c.tokenizer);
      const ids = tok.encode(q.query);
      expect(ids).toEqual(e.input_ids);
      expect(ids.filter((id) => id === e.img_context_token_id).length).toBe(e.num_img_context_ids);
      expect(tok.eosIdFor(getTemplate(c.template))).toBe(e.eos_token_id);
      expect(tok.imageTokenIds()).toEqual({ start: e.img_start_token_id, end: e.img_end_token_id, context: e.img_context_token_id });
      expect(tok.tokenId('<IMG_CONTEXT>')).toBe(e.img_context_token_id);
      expect(tok.tokenId('<img>')).toBe(e.img_start_token_id);
      expect(tok.tokenId('</img>')).toBe(e.img_end_token_id);
    });
  }

  it('the default system message is the template\'s own', () => {
    const c = (cases.prompt_cases as PromptCase[]).find((x) => x.inputs.history === null && x.template === 'Hermes-2')!;
    const q = buildQuery({ template: getTemplate(c.template), question: c.inputs.question, numPatchesList: patchesOf(c), numImageToken: c.inputs.num_image_token });
    expect(q.query).toBe(c.expected.query);
  });

  it('extra <image> placeholders stay as text; missing ones insert nothing', () => {
    const t = getTemplate('internvl2_5');
    const q = buildQuery({ template: t, systemMessage: '', question: 'A <image> B <image>', numPatchesList: [1], numImageToken: 2 });
    expect(q.query).toContain('A <img><IMG_CONTEXT><IMG_CONTEXT></img> B <image>');
    expect(q.imageBlocks).toBe(1);
    const r = buildQuery({ template: t, question: 'no placeholder', history: [['x', 'y']], numPatchesList: [1], numImageToken: 2 });
    expect(r.imageBlocks).toBe(0);
    expect(r.query).not.toContain('<img>');
  });

  it('the special token ids of the fixture tokenizer', () => {
    for (const [name, info] of Object.entries<any>(cases.tokenizers)) {
      const tok = tokenizerFor(name);
      for (const [token, id] of Object.entries({ ...info.internvl_token_ids, ...info.special_ids })) expect(tok.tokenId(token)).toBe(id);
      expect(tok.vocabSize).toBe(info.vocab_size_with_added);
    }
  });
});

describe('decoding', () => {
  for (const c of cases.decode_cases) {
    it(c.id, () => {
      const tok = tokenizerFor(c.tokenizer);
      expect(tok.decode(c.ids, { skipSpecialTokens: true })).toBe(c.decode_skip_special_tokens);
      expect(tok.decode(c.ids)).toBe(c.decode_keep_special_tokens);
      if (c.chat_response !== undefined) expect(chatResponse(tok.decode(c.ids, { skipSpecialTokens: true }), getTemplate(c.template))).toBe(c.chat_response);
      for (const skip of [true, false]) {
        const s = tok.stream({ skipSpecialTokens: skip });
        const pieces = c.ids.map((id: number) => s.push(id));
        pieces.push(s.flush());
        expect(pieces.join('')).toBe(skip ? c.decode_skip_special_tokens : c.decode_keep_special_tokens);
      }
    });
  }

  it('streaming holds a UTF-8 character back until its last byte', () => {
    const tok = tokenizerFor('internvl2_5-qwen2_5');
    const s = tok.stream();
    expect([172, 253, 247].map((id) => s.push(id))).toEqual(['', '', '']);
    expect(s.push(224)).toBe('🙂');
    expect(s.flush()).toBe('');
  });

  it('an empty decode is empty', () => {
    expect(tokenizerFor('internvl2_5-qwen2_5').decode([])).toBe('');
  });
});

describe('get_prompt for every separator style', () => {
  it('equals the official conversation.py output (system message empty and set, an empty answer, CRLF)', async () => {
    const { OFFICIAL_STYLE_PROMPTS } = await import('./conversation-styles.data.ts');
    for (const [key, expected] of Object.entries(OFFICIAL_STYLE_PROMPTS)) {
      const [style, systemMessage, name] = key.split('|') as [SeparatorStyle, string, string];
      const t: ConversationTemplate = { name, systemTemplate: '<sys>{system_message}</sys>', systemMessage, roles: ['U', 'A'], sepStyle: style, sep: '<s1>', sep2: '<s2>', stopStr: null };
      const messages = ['q1\r\n\n\nx', 'a1', 'q2', '', 'q3', null].map((m, i) => [t.roles[i % 2]!, m] as const);
      expect(getPrompt(t, systemMessage, messages), key).toBe(expected);
    }
  });
});
