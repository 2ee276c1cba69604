// ConsulEcsErrorCode is the list of every code a ConsulEcsError can carry. The
// type checker (npx tsc, and each package's d.ts build) refuses a code outside
// it wherever one is thrown or compared; this test checks the other direction
// as well, on the source text: every code in the union is still raised
// somewhere (none left stale in the documentation), and every literal code
// thrown is in it.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('../..', import.meta.url));
const errorsFile = join(root, 'packages/core/src/util/errors.ts');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function unionMembers(): string[] {
  const sf = ts.createSourceFile(errorsFile, readFileSync(errorsFile, 'utf8'), ts.ScriptTarget.Latest, true);
  const alias = sf.statements.find((s): s is ts.TypeAliasDeclaration => ts.isTypeAliasDeclaration(s) && s.name.text === 'ConsulEcsErrorCode');
  assert.ok(alias && ts.isUnionTypeNode(alias.type), 'ConsulEcsErrorCode is a union in util/errors.ts');
  return alias.type.types.map((t) => {
    assert.ok(ts.isLiteralTypeNode(t) && ts.isStringLiteral(t.literal), `a string literal: ${t.getText()}`);
    return t.literal.text;
  });
}

/** Literal codes given to a ConsulEcsError constructor (or a subclass's super call), and the kebab-case string constants beside them. */
function codesRaised(): { thrown: Map<string, string>; literals: Set<string> } {
  const thrown = new Map<string, string>();
  const literals = new Set<string>();
  const packages = join(root, 'packages');
  for (const pkg of readdirSync(packages)) {
    for (const file of sources(join(packages, pkg, 'src'))) {
      if (file === errorsFile) continue;
      const text = readFileSync(file, 'utf8');
      const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
      const visit = (node: ts.Node): void => {
        if (ts.isStringLiteral(node) && /^[a-z]+(-[a-z0-9]+)+$/.test(node.text)) literals.add(node.text);
        const call =
          ts.isNewExpression(node) && /Error$/.test(node.expression.getText())
            ? node
            : ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.SuperKeyword
              ? node
              : undefined;
        const first = call?.arguments?.[0];
        if (first && ts.isStringLiteral(first) && /^[a-z]+(-[a-z0-9]+)+$/.test(first.text)) {
          const line = sf.getLineAndCharacterOfPosition(first.getStart()).line + 1;
          thrown.set(first.text, `${file.slice(root.length)}:${line}`);
        }
        ts.forEachChild(node, visit);
      };
      visit(sf);
    }
  }
  return { thrown, literals };
}

describe('ConsulEcsErrorCode', () => {
  const members = unionMembers();
  const { thrown, literals } = codesRaised();

  it('lists each code once', () => {
    assert.deepEqual(
      members.filter((c, i) => members.indexOf(c) !== i),
      [],
    );
  });

  it('has every code the packages throw', () => {
    const missing = [...thrown].filter(([code]) => !members.includes(code)).map(([code, where]) => `${code} (${where})`);
    assert.deepEqual(missing, []);
  });

  it('has no code that nothing raises any more', () => {
    assert.deepEqual(
      members.filter((code) => !literals.has(code)),
      [],
    );
  });
});
