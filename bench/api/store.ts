/** The store side of the api benchmark: opened and validated exactly as the API does it. */
import { validateChangeSet } from '@meshplane/domain';
import { EventStore } from '@meshplane/event-store';
import { type Args, CLUSTER } from './args';
import { seedChunks, toChange } from './changes';

/** Same options the API uses for its store (services/api/src/app.module.ts), another application name. */
export function openStoreLikeTheApi(url: string, applicationName: string): Promise<EventStore> {
  return EventStore.open({ databaseUrl: url, cluster: CLUSTER, applicationName });
}

export const validate = (
  view: Parameters<typeof validateChangeSet>[0],
  effective: Parameters<typeof validateChangeSet>[1],
) => validateChangeSet(view, effective, (i) => `apply[${i}]`);

/** Seeds `population` Workloads (generation 1) through a store with the API's validate hook. */
export async function seed(url: string, args: Args): Promise<number> {
  const store = await openStoreLikeTheApi(url, 'bench-api-seed');
  try {
    let head = 0;
    for (const chunk of seedChunks(args.population, args.seedChunk)) {
      const r = await store.append(chunk.map(toChange), {
        actor: 'bench-seed',
        reason: 'bench: seed',
        validate,
      });
      if (r.status !== 'appended') throw new Error(`seed append returned ${r.status}`);
      head = r.changeSet.revision;
    }
    return head;
  } finally {
    await store.close();
  }
}
