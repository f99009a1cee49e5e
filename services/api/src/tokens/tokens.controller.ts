import { Body, Controller, Delete, Get, HttpCode, Param, Post, Req } from '@nestjs/common';
import { z } from 'zod';
import { RequireRole } from '../common/auth';
import { type ApiRequest, ROLES } from '../common/http';
import { parseInput } from '../common/validation';
import { TokensService } from './tokens.service';

export const CreateTokenSchema = z.strictObject({
  // The name becomes the actor in the log; no ':' so it cannot pose as `system:...` or `token:<id>`.
  name: z
    .string()
    .regex(
      /^[A-Za-z0-9]([A-Za-z0-9._@-]{0,62}[A-Za-z0-9])?$/,
      'must be 1-64 letters, digits, ".", "_", "@" or "-"',
    ),
  role: z.enum(ROLES),
});

@Controller('v1/tokens')
export class TokensController {
  constructor(private readonly tokens: TokensService) {}

  /** The plaintext token is in this response only; the server keeps its hash. */
  @Post()
  @HttpCode(201)
  @RequireRole('admin')
  async create(@Body() body: unknown, @Req() req: ApiRequest) {
    const input = parseInput(CreateTokenSchema, body, '', 'token request');
    return this.tokens.create(input.name, input.role, req.principal!, req.requestId);
  }

  @Get()
  @RequireRole('admin')
  async list() {
    return { items: await this.tokens.list() };
  }

  @Delete(':id')
  @RequireRole('admin')
  async revoke(@Param('id') id: string, @Req() req: ApiRequest) {
    return this.tokens.revoke(id, req.principal!, req.requestId);
  }
}
