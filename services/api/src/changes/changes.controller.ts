import { Body, Controller, Post, Req, Res } from '@nestjs/common';
import { RequireRole } from '../common/auth';
import type { ApiRequest, ApiResponse } from '../common/http';
import { ChangesService } from './changes.service';
import { RollbackService } from './rollback.service';
import { sendOutcome, writeContext } from './write-context';

@Controller('v1')
export class ChangesController {
  constructor(
    private readonly changes: ChangesService,
    private readonly rollbacks: RollbackService,
  ) {}

  @Post('changes')
  @RequireRole('operator')
  async submit(@Body() body: unknown, @Req() req: ApiRequest, @Res({ passthrough: true }) res: ApiResponse) {
    return sendOutcome(res, await this.changes.submit(body, writeContext(req)));
  }

  @Post('rollback')
  @RequireRole('operator')
  async rollback(
    @Body() body: unknown,
    @Req() req: ApiRequest,
    @Res({ passthrough: true }) res: ApiResponse,
  ) {
    const outcome = await this.rollbacks.rollback(body, writeContext(req));
    if (outcome.kind === 'dryRun') {
      res.status(200);
      return outcome.body;
    }
    return sendOutcome(res, outcome);
  }
}
