import { DEFAULT_NAMESPACE } from '@meshplane/domain';
import type { Command } from 'commander';
import { type Context, intParser, type OutputFormat, outputOption } from '../context';
import { inKindOrder, manifestOf, resourcesTable, toJson, toYaml, toYamlStream } from '../format';
import { kindsHelp, resolveKind } from '../kinds';

interface GetOptions {
  namespace?: string;
  revision?: number;
  output: OutputFormat;
}

export function registerGet(program: Command, ctx: Context): void {
  program
    .command('get')
    .description('list resources, or show one, at the head or at any past revision')
    .argument('[kind]', `resource kind (all kinds when omitted): ${kindsHelp()}`)
    .argument('[name]', 'resource name (namespace from -n, default "default")')
    .option('-n, --namespace <namespace>', 'only this namespace (listings show every namespace otherwise)')
    .option('--revision <n>', 'the state at this revision instead of the head', intParser(0))
    .addOption(outputOption())
    .addHelpText(
      'after',
      '\n-o yaml and -o json print manifests that `meshctl apply -f` accepts as they are:\n' +
        '  meshctl get -o yaml > mesh.yaml && meshctl apply -f mesh.yaml --reason restore   # unchanged\n',
    )
    .action(async (kindArg: string | undefined, name: string | undefined, opts: GetOptions, cmd: Command) => {
      const kind = kindArg === undefined ? undefined : resolveKind(kindArg);
      const client = ctx.client(cmd);
      const out = ctx.io.out;

      if (kind && name !== undefined) {
        const ns = opts.namespace ?? DEFAULT_NAMESPACE;
        const { revision, resource } = await client.resource({ kind, namespace: ns, name }, opts.revision);
        if (opts.output === 'yaml') out(toYaml(manifestOf(resource), `revision ${revision}`));
        else if (opts.output === 'json') out(toJson(manifestOf(resource)));
        else out(resourcesTable([resource], false));
        return;
      }

      const { revision, items } = await client.resources({
        kind,
        namespace: opts.namespace,
        revision: opts.revision,
      });
      if (opts.output === 'yaml') {
        out(toYamlStream(inKindOrder(items).map(manifestOf), `revision ${revision}`));
        return;
      }
      if (opts.output === 'json') {
        out(toJson(inKindOrder(items).map(manifestOf)));
        return;
      }
      if (items.length === 0) {
        const where = opts.namespace ? ` in namespace ${opts.namespace}` : '';
        ctx.io.err(`No ${kind ? `${kind} ` : ''}resources found${where} at revision ${revision}.\n`);
        return;
      }
      out(resourcesTable(items, kind === undefined));
    });
}
