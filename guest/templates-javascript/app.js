// list_templates and read_template in JavaScript, against the infra `db`
// interface: the same rules as the workspace tools' Rust (SPEC 4.1, 4.2),
// answering the same JSON for the same rows.

import { getChat, getTemplate, getTemplateAllowlist, getTemplateParameters, listTemplates } from 'toolshed:infra/db@0.1.0';

const PAGE_SIZE = 10;
const SUMMARY_DESCRIPTION_CHARS = 200;
const PARAMETER_DESCRIPTION_CHARS = 300;
const RECOVERABLE = new Set(['file-not-found', 'validation-failed', 'timeout', 'network-error', 'resource-unavailable', 'user-cancelled']);

// A tool error: recoverable follows the category, as toolshed-guest's.
function error(category, code, message, suggestions) {
  return { error: message, category, code, recoverable: RECOVERABLE.has(category), suggestions };
}

// The query-error a failed import throws.
function queryError(thrown) {
  return thrown && thrown.payload !== undefined ? thrown.payload : thrown;
}

// `read()`, or the tool error for a failed database read.
function query(what, read) {
  try {
    return read();
  } catch (thrown) {
    const failure = queryError(thrown);
    if (failure && failure.tag === 'not-found') {
      throw error('resource-unavailable', 'NOT_FOUND', `${what}: not found`);
    }
    throw error('internal-error', 'DATABASE_ERROR', `${what}: ${failure && failure.val}`);
  }
}

const nonEmpty = (text) => (text ? text : undefined);
// Characters, not UTF-16 units, as Rust counts them.
const cut = (text, max) => Array.from(text).slice(0, max).join('');
const allowed = (allowlist, id) => allowlist.length === 0 || allowlist.some((a) => a.toLowerCase() === id.toLowerCase());
const isUuid = (text) => /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(text);
// Names and ids compare by code point, as Rust's strings do.
const byCodePoint = (a, b) => {
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
};

// `text` quoted as Rust's `{:?}` quotes it, for the messages that echo it.
function rustDebug(text) {
  let out = '"';
  for (const c of text) {
    const code = c.codePointAt(0);
    if (c === '"' || c === '\\') out += '\\' + c;
    else if (c === '\n') out += '\\n';
    else if (c === '\t') out += '\\t';
    else if (c === '\r') out += '\\r';
    else if (code < 0x20 || code === 0x7f) out += `\\u{${code.toString(16)}}`;
    else out += c;
  }
  return out + '"';
}

function templateNotFound() {
  return error('resource-unavailable', 'TEMPLATE_NOT_FOUND', 'template not found', ['Use list_templates to find the templates this chat can use.']);
}

function parameterInfo(p) {
  const options = p.options.map((o) => ({ name: o.name, value: o.value, description: nonEmpty(o.description) }));
  return {
    name: p.name, type: p.type, required: p.required, displayName: nonEmpty(p.displayName),
    description: nonEmpty(cut(p.description, PARAMETER_DESCRIPTION_CHARS)), default: p.defaultValue,
    mutable: p.mutable ? true : undefined, ephemeral: p.ephemeral ? true : undefined, formType: nonEmpty(p.formType),
    options: options.length ? options : undefined, validationRegex: p.validationRegex || undefined,
    validationMin: p.validationMin, validationMax: p.validationMax,
  };
}

export const templatesTools = {
  listTemplates(args) {
    const chat = query('read chat', getChat);
    const allowlist = query('read template allowlist', getTemplateAllowlist);
    const text = (args.query ?? '').toLowerCase();
    const templates = query('list templates', listTemplates)
      .filter((t) => !t.deleted && !t.deprecated && t.organizationId === chat.organizationId)
      .filter((t) => allowed(allowlist, t.id) && (!text || t.name.toLowerCase().includes(text)))
      .sort((a, b) => b.activeDevelopers - a.activeDevelopers || byCodePoint(a.name, b.name) || byCodePoint(a.id, b.id));
    const totalCount = templates.length;
    const totalPages = Math.max(Math.ceil(totalCount / PAGE_SIZE), 1);
    const page = Math.max(args.page ?? 1, 1);
    const items = templates.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE).map((t) => ({
      id: t.id, name: t.name, organizationId: t.organizationId, displayName: nonEmpty(t.displayName),
      description: nonEmpty(cut(t.description, SUMMARY_DESCRIPTION_CHARS)),
      activeDevelopers: t.activeDevelopers > 0 ? t.activeDevelopers : undefined,
    }));
    return { templates: items, count: items.length, page, totalPages, totalCount };
  },

  readTemplate(args) {
    const hint = ['Call list_templates and pass one of its ids as template_id.'];
    if (!args.templateId.trim()) {
      throw error('validation-failed', 'TEMPLATE_ID_REQUIRED', 'template_id is required', hint);
    }
    if (!isUuid(args.templateId)) {
      throw error('validation-failed', 'INVALID_TEMPLATE_ID', `invalid template_id ${rustDebug(args.templateId)}: it must be a UUID such as the ids list_templates returns`, hint);
    }
    const allowlist = query('read template allowlist', getTemplateAllowlist);
    if (!allowed(allowlist, args.templateId)) throw templateNotFound();
    const chat = query('read chat', getChat);
    let template;
    try {
      template = getTemplate(args.templateId);
    } catch (thrown) {
      const failure = queryError(thrown);
      if (failure && failure.tag === 'not-found') throw templateNotFound();
      throw error('internal-error', 'DATABASE_ERROR', `read template: ${failure && failure.val}`);
    }
    if (template.organizationId !== chat.organizationId || template.deleted) throw templateNotFound();
    const parameters = query('read template parameters', () => getTemplateParameters(template.activeVersionId));
    return {
      template: {
        id: template.id, name: template.name, activeVersionId: template.activeVersionId,
        displayName: nonEmpty(template.displayName), description: nonEmpty(template.description),
      },
      parameters: parameters.map(parameterInfo),
    };
  },
};
