/**
 * InternVL's conversation templates as data: the ones registered in OpenGVLab/InternVL
 * `internvl_chat/internvl/conversation.py` (commit 2410d1d), which is what a checkpoint's
 * config.json names under `template`. The checkpoints' own copies of that file register the same
 * templates with the same fields.
 */
import { UserError } from '../errors.ts';

/** The separator styles of conversation.py (FastChat's), by their Python names. */
export type SeparatorStyle =
  | 'ADD_COLON_SINGLE'
  | 'ADD_COLON_TWO'
  | 'ADD_COLON_SPACE_SINGLE'
  | 'NO_COLON_SINGLE'
  | 'NO_COLON_TWO'
  | 'ADD_NEW_LINE_SINGLE'
  | 'LLAMA2'
  | 'CHATGLM'
  | 'CHATML'
  | 'CHATINTERN'
  | 'DOLLY'
  | 'RWKV'
  | 'PHOENIX'
  | 'ROBIN'
  | 'FALCON_CHAT'
  | 'CHATGLM3'
  | 'INTERNVL_ZH'
  | 'MPT';

export interface ConversationTemplate {
  name: string;
  /** Python `str.format` pattern with one field, `{system_message}`. */
  systemTemplate: string;
  /** The default system message (a checkpoint's `config.system_message` replaces it). */
  systemMessage: string;
  /** [user role, assistant role], written verbatim before each message. */
  roles: readonly [string, string];
  sepStyle: SeparatorStyle;
  sep: string;
  sep2: string | null;
  stopStr: string | null;
}

/** InternVL2's system message, kept by Hermes-2, internlm2-chat and phi3-chat. */
const INTERNVL2_SYSTEM = '你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。';
/** InternVL2.5 / InternVL3's. */
const INTERNVL2_5_SYSTEM = '你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。';

const CHATML_ROLES = ['<|im_start|>user\n', '<|im_start|>assistant\n'] as const;

export const TEMPLATES: Readonly<Record<string, ConversationTemplate>> = {
  // InternVL-Chat-V1-1
  internvl_zh: {
    name: 'internvl_zh',
    systemTemplate: '',
    systemMessage: '',
    roles: ['<human>', '<bot>'],
    sepStyle: 'INTERNVL_ZH',
    sep: '</s>',
    sep2: ' ',
    stopStr: null,
  },
  // InternVL-Chat-V1-2, InternVL2-1B / 40B / Llama3-76B (ChatML without newlines between turns)
  'Hermes-2': {
    name: 'Hermes-2',
    systemTemplate: '<|im_start|>system\n{system_message}',
    systemMessage: INTERNVL2_SYSTEM,
    roles: CHATML_ROLES,
    sepStyle: 'MPT',
    sep: '<|im_end|>',
    sep2: null,
    stopStr: '<|endoftext|>',
  },
  // InternVL-Chat-V1-5, InternVL2-2B / 8B / 26B
  'internlm2-chat': {
    name: 'internlm2-chat',
    systemTemplate: '<|im_start|>system\n{system_message}',
    systemMessage: INTERNVL2_SYSTEM,
    roles: CHATML_ROLES,
    sepStyle: 'MPT',
    sep: '<|im_end|>',
    sep2: null,
    stopStr: null,
  },
  // Mini-InternVL-Chat-4B-V1-5, InternVL2-4B
  'phi3-chat': {
    name: 'phi3-chat',
    systemTemplate: '<|system|>\n{system_message}',
    systemMessage: INTERNVL2_SYSTEM,
    roles: ['<|user|>\n', '<|assistant|>\n'],
    sepStyle: 'MPT',
    sep: '<|end|>',
    sep2: null,
    stopStr: null,
  },
  // InternVL2.5, InternVL3
  internvl2_5: {
    name: 'internvl2_5',
    systemTemplate: '<|im_start|>system\n{system_message}',
    systemMessage: INTERNVL2_5_SYSTEM,
    roles: CHATML_ROLES,
    sepStyle: 'MPT',
    sep: '<|im_end|>\n',
    sep2: null,
    stopStr: null,
  },
};

export const TEMPLATE_NAMES: readonly string[] = Object.keys(TEMPLATES);

/** The template a config.json names; an unknown name is a UserError listing the supported ones. */
export function getTemplate(name: string, where = 'template'): ConversationTemplate {
  if (!Object.hasOwn(TEMPLATES, name)) {
    throw new UserError(`${where}: unknown conversation template ${JSON.stringify(name)} (supported: ${TEMPLATE_NAMES.join(', ')})`);
  }
  return TEMPLATES[name]!;
}

/** One turn of a conversation: the role string and its message (null or '' for "to be generated"). */
export type Message = readonly [role: string, message: string | null];

/**
 * `Conversation.get_prompt()` of conversation.py: the system prompt, then each message in the
 * template's separator style. A falsy message (null or '') writes the role alone, which is how the
 * final assistant turn is left open for generation, and also what an empty answer in a history
 * becomes.
 */
export function getPrompt(t: ConversationTemplate, systemMessage: string, messages: readonly Message[]): string {
  const system = formatSystem(t.systemTemplate, systemMessage);
  const seps = [t.sep, t.sep2 ?? ''] as const;
  /** Each message written (`msg` truthy) or left open, concatenated. */
  const turns = (written: (role: string, msg: string, i: number) => string, open: (role: string, i: number) => string): string =>
    messages.map(([role, msg], i) => (msg ? written(role, msg, i) : open(role, i))).join('');
  switch (t.sepStyle) {
    case 'ADD_COLON_SINGLE':
      return system + t.sep + turns((r, m) => `${r}: ${m}${t.sep}`, (r) => `${r}:`);
    case 'ADD_COLON_TWO':
      return system + seps[0] + turns((r, m, i) => `${r}: ${m}${seps[i % 2]}`, (r) => `${r}:`);
    case 'ADD_COLON_SPACE_SINGLE':
      return system + t.sep + turns((r, m) => `${r}: ${m}${t.sep}`, (r) => `${r}: `);
    case 'ADD_NEW_LINE_SINGLE':
      return (system === '' ? '' : system + t.sep) + turns((r, m) => `${r}\n${m}${t.sep}`, (r) => `${r}\n`);
    case 'NO_COLON_SINGLE':
      return system + turns((r, m) => `${r}${m}${t.sep}`, (r) => r);
    case 'NO_COLON_TWO':
      return system + turns((r, m, i) => `${r}${m}${seps[i % 2]}`, (r) => r);
    case 'RWKV':
      return system + turns((r, m) => `${r}: ${m.replaceAll('\r\n', '\n').replaceAll('\n\n', '\n')}\n\n`, (r) => `${r}:`);
    case 'LLAMA2': {
      // The roles come from the template here, not from the messages.
      const tag = (i: number) => t.roles[i % 2]!;
      return (systemMessage ? system : '[INST] ') + turns((_r, m, i) => (i === 0 ? `${m} ` : `${tag(i)} ${m}${seps[i % 2]}`), (_r, i) => tag(i));
    }
    case 'CHATGLM': {
      const roundOffset = t.name === 'chatglm2' ? 1 : 0;
      const round = (i: number) => (i % 2 === 0 ? `[Round ${Math.floor(i / 2) + roundOffset}]${t.sep}` : '');
      return (system ? system + t.sep : '') + turns((r, m, i) => `${round(i)}${r}：${m}${t.sep}`, (r, i) => `${round(i)}${r}：`);
    }
    case 'CHATML':
      return (system === '' ? '' : `${system}${t.sep}\n`) + turns((r, m) => `${r}\n${m}${t.sep}\n`, (r) => `${r}\n`);
    case 'CHATGLM3':
      return (systemMessage ? system : '') + turns((r, m) => `${r}\n ${m}`, (r) => r);
    case 'CHATINTERN':
      return system + turns((r, m, i) => `${r}:${m}${seps[i % 2]}\n`, (r) => `${r}:`);
    case 'DOLLY':
      return system + turns((r, m, i) => `${r}:\n${m}${seps[i % 2]}${i % 2 === 1 ? '\n\n' : ''}`, (r) => `${r}:\n`);
    case 'PHOENIX':
      return system + turns((r, m) => `${r}: <s>${m}</s>`, (r) => `${r}: <s>`);
    case 'ROBIN':
      return system + t.sep + turns((r, m) => `${r}:\n${m}${t.sep}`, (r) => `${r}:\n`);
    case 'FALCON_CHAT':
      return (systemMessage ? system + t.sep : '') + turns((r, m) => `${r}: ${m}${t.sep}`, (r) => `${r}:`);
    case 'INTERNVL_ZH': {
      // conversation.py swaps the pair here (seps = [sep2, sep]) and writes the system message raw.
      const zh = [t.sep2 ?? '', t.sep] as const;
      return systemMessage + zh[0] + turns((r, m, i) => `${r}: ${m}${zh[i % 2]}`, (r) => `${r}:`);
    }
    case 'MPT':
      return system + t.sep + turns((r, m) => `${r}${m}${t.sep}`, (r) => r);
  }
}

/** Python's `str.format(system_message=...)` for a pattern with that one field ('{{' and '}}' escape braces). */
function formatSystem(pattern: string, systemMessage: string): string {
  return pattern.replace(/\{\{|\}\}|\{system_message\}/g, (m) => (m === '{{' ? '{' : m === '}}' ? '}' : systemMessage));
}

/** The end-of-turn token chat() stops at: `template.sep.strip()`. */
export function eosToken(t: ConversationTemplate): string {
  return pyStrip(t.sep);
}

/** Python's `str.strip()` (its whitespace set differs from String.prototype.trim's). */
export function pyStrip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isPyWhitespace(s.charCodeAt(a))) a++;
  while (b > a && isPyWhitespace(s.charCodeAt(b - 1))) b--;
  return s.slice(a, b);
}

function isPyWhitespace(c: number): boolean {
  return (
    (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c === 0x85 || c === 0xa0 || c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000
  );
}
