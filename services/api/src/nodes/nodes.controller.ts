import { Controller, Get, Param } from '@nestjs/common';
import { z } from 'zod';
import { RequireRole } from '../common/auth';
import { parseInput, revisionString } from '../common/validation';
import { NodesService } from './nodes.service';

const RevParams = z.object({ rev: revisionString });

/** What operators read to know whether a change reached the data plane. */
@Controller('v1')
export class NodesController {
  constructor(private readonly nodes: NodesService) {}

  /** Every node that reported status, with its sync state against the head (istioctl proxy-status). */
  @Get('nodes')
  @RequireRole('viewer')
  list() {
    return this.nodes.list();
  }

  /** Committed → published → applied on each node, for one revision. */
  @Get('revisions/:rev/propagation')
  @RequireRole('viewer')
  propagation(@Param() p: unknown) {
    return this.nodes.propagation(parseInput(RevParams, p, '', 'revision path').rev);
  }
}
