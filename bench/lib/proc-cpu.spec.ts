import { parseSchedstat } from './proc-cpu';

describe('parseSchedstat', () => {
  it('reads run and wait time (ns) as ms', () => {
    expect(parseSchedstat('2013700406 653245065 2329\n')).toEqual({ runMs: 2013.700406, waitMs: 653.245065 });
  });

  it('gives undefined for what is not a schedstat line', () => {
    expect(parseSchedstat('')).toBeUndefined();
    expect(parseSchedstat('x y z')).toBeUndefined();
    expect(parseSchedstat('12')).toBeUndefined();
  });
});
