// Renders the subset table of docs/lab-guests.md from SUBSET_FORMS, so the documentation is
// generated from the decoder table (a test checks that the docs contain this exact text).
// Print it with `node dist/src/lab/x86/subset-doc.js`.

import { SUBSET_FORMS } from './opcodes';

export function subsetMarkdownTable(): string {
  const rows = SUBSET_FORMS.map((form) => `| \`${form.encoding}\` | \`${form.mnemonic}\` | ${form.effect} |`);
  return ['| encoding | mnemonic | effect |', '|---|---|---|', ...rows].join('\n') + '\n';
}

if (require.main === module) process.stdout.write(subsetMarkdownTable());
