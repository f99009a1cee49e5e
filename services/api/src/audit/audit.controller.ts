import { KINDS } from '@meshplane/domain';
import { Controller, Get, Query } from '@nestjs/common';
import { z } from 'zod';
import { RequireRole } from '../common/auth';
import { parseInput, revisionString, timestampString } from '../common/validation';
import { AuditService } from './audit.service';

const AuditQuery = z.strictObject({
  actor: z.string().min(1).optional(),
  kind: z.enum(KINDS).optional(),
  namespace: z.string().min(1).optional(),
  name: z.string().min(1).optional(),
  since: timestampString.optional(),
  until: timestampString.optional(),
  type: z.enum(['change', 'token']).optional(),
  limit: revisionString.pipe(z.number().min(1, 'must be >= 1').max(1000, 'must be <= 1000')).optional(),
});

const VerifyQuery = z.strictObject({ from: revisionString.optional(), to: revisionString.optional() });

@Controller('v1/audit')
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  @RequireRole('viewer')
  list(@Query() q: unknown) {
    const f = parseInput(AuditQuery, q, '', 'query');
    return this.audit.list({ ...f, limit: f.limit ?? 100 });
  }

  /** Recomputes the hash chain; `ok: false` names the first revision that does not match. */
  @Get('verify')
  @RequireRole('viewer')
  verify(@Query() q: unknown) {
    const { from, to } = parseInput(VerifyQuery, q, '', 'query');
    return this.audit.verify(from, to);
  }
}
