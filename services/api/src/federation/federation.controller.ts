import { Controller, Get } from '@nestjs/common';
import { RequireRole } from '../common/auth';
import { FederationService } from './federation.service';

@Controller('v1')
export class FederationController {
  constructor(private readonly federation: FederationService) {}

  /** Peers of this cluster: link state, last imported peer revision and export seq, lag (cilium clustermesh status). */
  @Get('federation')
  @RequireRole('viewer')
  status() {
    return this.federation.status();
  }
}
