import { ForbiddenError } from '@meshplane/domain';
import { type CanActivate, type ExecutionContext, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { TokensService } from '../tokens/tokens.service';
import { type ApiRequest, type Role, roleRank } from './http';

const ROLE_KEY = 'meshplane:role';
const PUBLIC_KEY = 'meshplane:public';

/** The least role a route needs; routes without it (and not @Public) are refused. */
export const RequireRole = (role: Role) => SetMetadata(ROLE_KEY, role);
/** Probes and documents that need no token (health, metrics, OpenAPI). */
export const Public = () => SetMetadata(PUBLIC_KEY, true);

/**
 * Authenticates the bearer token and checks the route's role. Registered
 * globally, failing closed: a route that forgot to declare a role is forbidden.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly tokens: TokensService,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_KEY, targets)) return true;
    const req = ctx.switchToHttp().getRequest<ApiRequest>();
    const principal = await this.tokens.authenticate(req.headers.authorization);
    req.principal = principal;
    const needed = this.reflector.getAllAndOverride<Role | undefined>(ROLE_KEY, targets);
    if (!needed) throw new ForbiddenError('this route declares no role; refusing by default');
    if (roleRank(principal.role) < roleRank(needed)) {
      throw new ForbiddenError(
        `this needs the ${needed} role; token ${principal.name} has ${principal.role}`,
        [{ path: 'headers.authorization', message: `role ${principal.role} is below ${needed}` }],
      );
    }
    return true;
  }
}
