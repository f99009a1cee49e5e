// End-to-end suites talk to real Postgres, NATS and the kernel: hooks that
// start private servers or build large states need more than Jest's 5 s.
jest.setTimeout(120_000);
