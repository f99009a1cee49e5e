// SPDX-License-Identifier: Apache-2.0
/*
 * map-floor.c - the floor for batch map updates in `npm run bench -- dataplane`: the same
 * batch updates BpfMapBackend issues from Node, from C linked to Debian's libbpf.
 *
 *   map-floor PIN N REPS BASE
 *
 * Opens the pinned mesh_slots map PIN (bpf_obj_get), builds N entries exactly as the
 * bench's Node side does (struct mesh_slot_key {service_id = BASE + i / 4096, generation 1,
 * slot = i % 4096} -> struct mesh_slot_value {backend_id}), then times REPS calls of
 * bpf_map_update_batch(N entries, BPF_ANY); rep r writes backend_id = i + 1 + r, so every
 * rep replaces every value (rep 0 inserts them when the map does not hold them yet). Keys
 * and values are rebuilt into the buffers inside the timed loop, as the Node side encodes
 * them on every call.
 *
 * Prints one JSON line: {"ok":true,"n":N,"reps":REPS,"rep_ns":[...]}.
 */
#include <bpf/bpf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../bpf/mesh_maps.h"

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: map-floor PIN N REPS BASE\n");
    return 2;
  }
  const char *pin = argv[1];
  long n = strtol(argv[2], NULL, 10), reps = strtol(argv[3], NULL, 10);
  unsigned long base = strtoul(argv[4], NULL, 10);
  if (n <= 0 || n > MESH_MAX_SLOTS || reps <= 0) {
    fprintf(stderr, "bad N or REPS\n");
    return 2;
  }
  int fd = bpf_obj_get(pin);
  if (fd < 0) {
    printf("{\"ok\":false,\"error\":\"bpf_obj_get %s: %s\"}\n", pin, strerror(errno));
    return 1;
  }
  struct mesh_slot_key *keys = calloc((size_t)n, sizeof(*keys));
  struct mesh_slot_value *values = calloc((size_t)n, sizeof(*values));
  uint64_t *rep_ns = calloc((size_t)reps, sizeof(uint64_t));
  if (!keys || !values || !rep_ns) return 1;

  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
  for (long r = 0; r < reps; r++) {
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
      keys[i].service_id = (__u32)(base + (unsigned long)i / 4096);
      keys[i].generation = 1;
      keys[i].slot = (__u16)(i % 4096);
      values[i].backend_id = (__u32)(i + 1 + r);
    }
    __u32 count = (__u32)n;
    int err = bpf_map_update_batch(fd, keys, values, &count, &opts);
    uint64_t t1 = now_ns();
    if (err) {
      printf("{\"ok\":false,\"error\":\"bpf_map_update_batch: %s (after %u)\"}\n", strerror(-err), count);
      return 1;
    }
    rep_ns[r] = t1 - t0;
  }
  printf("{\"ok\":true,\"n\":%ld,\"reps\":%ld,\"rep_ns\":[", n, reps);
  for (long r = 0; r < reps; r++) printf(r ? ",%llu" : "%llu", (unsigned long long)rep_ns[r]);
  printf("]}\n");
  return 0;
}
