export { TEMPLATES, TEMPLATE_NAMES, getTemplate, getPrompt, eosToken, pyStrip, type ConversationTemplate, type SeparatorStyle, type Message } from './templates.ts';
export { buildQuery, chatResponse, imageBlock, IMAGE_PLACEHOLDER, IMG_START_TOKEN, IMG_END_TOKEN, IMG_CONTEXT_TOKEN, type History, type Query, type QueryOptions } from './query.ts';
