import { EventStore } from '@meshplane/event-store';
import { type DynamicModule, Injectable, Module, type OnApplicationShutdown } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import { AuditController } from './audit/audit.controller';
import { AuditService } from './audit/audit.service';
import { ChangesController } from './changes/changes.controller';
import { ChangesService } from './changes/changes.service';
import { RollbackService } from './changes/rollback.service';
import { AuthGuard } from './common/auth';
import { ApiExceptionFilter } from './common/error.filter';
import { API_CONFIG, ApiLogger } from './common/logger';
import { MetricsService } from './common/metrics.service';
import type { ApiConfig } from './config';
import { FederationController } from './federation/federation.controller';
import { FederationService } from './federation/federation.service';
import { NodesController } from './nodes/nodes.controller';
import { NodesService } from './nodes/nodes.service';
import { NodeStatusSource } from './nodes/status-source';
import { OpsController } from './ops/ops.controller';
import { QueriesController } from './queries/queries.controller';
import { QueryService } from './queries/query.service';
import { TokensController } from './tokens/tokens.controller';
import { TokensRepository } from './tokens/tokens.repository';
import { TokensService } from './tokens/tokens.service';

/** Closes the store's pool after the HTTP server stopped taking requests. */
@Injectable()
class StoreLifecycle implements OnApplicationShutdown {
  constructor(private readonly store: EventStore) {}
  async onApplicationShutdown(): Promise<void> {
    await this.store.close();
  }
}

@Module({})
export class AppModule {
  static forRoot(config: ApiConfig): DynamicModule {
    return {
      module: AppModule,
      controllers: [
        ChangesController,
        QueriesController,
        AuditController,
        TokensController,
        NodesController,
        OpsController,
        FederationController,
      ],
      providers: [
        { provide: API_CONFIG, useValue: config },
        {
          provide: EventStore,
          inject: [ApiLogger],
          useFactory: (logger: ApiLogger) =>
            EventStore.open({
              databaseUrl: config.databaseUrl,
              cluster: config.cluster,
              applicationName: 'meshplane-api',
              ...(config.snapshotInterval !== undefined ? { snapshotInterval: config.snapshotInterval } : {}),
              onError: (err) => logger.log('warn', 'idle database connection failed', { error: err.message }),
            }),
        },
        StoreLifecycle,
        ApiLogger,
        MetricsService,
        TokensRepository,
        TokensService,
        ChangesService,
        RollbackService,
        QueryService,
        AuditService,
        NodeStatusSource,
        NodesService,
        FederationService,
        { provide: APP_GUARD, useClass: AuthGuard },
        { provide: APP_FILTER, useClass: ApiExceptionFilter },
      ],
    };
  }
}
