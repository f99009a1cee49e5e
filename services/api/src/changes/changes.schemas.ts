import { z } from 'zod';

const reason = z
  .string()
  .max(1024, 'must be at most 1024 characters')
  .refine((s) => s.trim().length > 0, 'must not be empty');

/** POST /v1/changes. Items stay `unknown` here; the domain parses each with its own path. */
export const ChangeRequestSchema = z.strictObject({
  reason,
  expectedRevision: z.int().min(0, 'must be >= 0').optional(),
  apply: z.array(z.unknown()).default([]),
  delete: z.array(z.unknown()).default([]),
});

/** POST /v1/rollback. Revision 0 (the empty log) is not a change set, so it cannot be "restored from". */
export const RollbackRequestSchema = z.strictObject({
  toRevision: z.int().min(1, 'must be >= 1'),
  reason,
  dryRun: z.boolean().optional(),
  expectedRevision: z.int().min(0, 'must be >= 0').optional(),
});

export type ChangeRequest = z.output<typeof ChangeRequestSchema>;
export type RollbackRequest = z.output<typeof RollbackRequestSchema>;
