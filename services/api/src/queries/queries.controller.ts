import { KINDS } from '@meshplane/domain';
import { Controller, Get, Param, Query } from '@nestjs/common';
import { z } from 'zod';
import { RequireRole } from '../common/auth';
import { parseInput, revisionString } from '../common/validation';
import { QueryService } from './query.service';

const kind = z.enum(KINDS);
const ResourcesQuery = z.strictObject({
  kind: kind.optional(),
  namespace: z.string().min(1).optional(),
  revision: revisionString.optional(),
});
const ResourceParams = z.object({ kind, namespace: z.string().min(1), name: z.string().min(1) });
const RevisionQuery = z.strictObject({ revision: revisionString.optional() });
const RevisionsQuery = z.strictObject({
  from: revisionString.optional(),
  limit: revisionString.pipe(z.number().min(1, 'must be >= 1').max(1000, 'must be <= 1000')).optional(),
});
const RevParams = z.object({ rev: revisionString });
const DiffQuery = z.strictObject({ from: revisionString, to: revisionString });

/** Reads: every route takes the state at the head, or at `?revision=`. */
@Controller('v1')
export class QueriesController {
  constructor(private readonly query: QueryService) {}

  @Get('resources')
  @RequireRole('viewer')
  resources(@Query() q: unknown) {
    return this.query.resources(parseInput(ResourcesQuery, q, '', 'query'));
  }

  @Get('resources/:kind/:namespace/:name')
  @RequireRole('viewer')
  resource(@Param() p: unknown, @Query() q: unknown) {
    const ref = parseInput(ResourceParams, p, '', 'resource path');
    return this.query.resource(ref, parseInput(RevisionQuery, q, '', 'query').revision);
  }

  @Get('resources/:kind/:namespace/:name/history')
  @RequireRole('viewer')
  history(@Param() p: unknown) {
    return this.query.history(parseInput(ResourceParams, p, '', 'resource path'));
  }

  @Get('revisions')
  @RequireRole('viewer')
  revisions(@Query() q: unknown) {
    const { from, limit } = parseInput(RevisionsQuery, q, '', 'query');
    return this.query.revisions(from ?? 1, limit ?? 100);
  }

  @Get('revisions/:rev')
  @RequireRole('viewer')
  revision(@Param() p: unknown) {
    return this.query.revision(parseInput(RevParams, p, '', 'revision path').rev);
  }

  @Get('diff')
  @RequireRole('viewer')
  diff(@Query() q: unknown) {
    const { from, to } = parseInput(DiffQuery, q, '', 'query');
    return this.query.diff(from, to);
  }

  @Get('snapshot')
  @RequireRole('viewer')
  snapshot() {
    return this.query.snapshot();
  }
}
