// SPDX-License-Identifier: Apache-2.0
/*
 * rr.c - the request/response workload of `npm run bench -- dataplane`: one small binary
 * that is either an echo SERVER or a measuring CLIENT, compiled by the bench with cc.
 *
 * Both print "ready" and then make NO socket call until a command arrives on stdin, so
 * the bench can write their pid into a workload cgroup's cgroup.procs first (the BPF
 * programs judge a socket by the cgroup of the process that creates it). Both die with
 * the bench (PR_SET_PDEATHSIG, and EOF on stdin).
 *
 *   rr server      "listen HOST"  -> binds HOST:0, prints "port N", then echoes every
 *                                    byte it reads on every connection (epoll, one thread)
 *                  "stats"        -> "accepts N" (connections accepted so far)
 *   rr client      "rr HOST PORT new|reused N WARMUP SIZE"
 *                     reused: one connection; per sample: send SIZE bytes, read SIZE back
 *                     new:    per sample: socket + connect + send SIZE + read SIZE back;
 *                             then close with SO_LINGER 0 (RST: no TIME_WAIT, outside the
 *                             timed part)
 *                  -> one JSON line {ok, peer, local, bytes_acked, bytes_received, samples_ns}
 *                  "quit"
 *
 * Clock: CLOCK_MONOTONIC (vDSO). Loopback addresses only: the bench passes them in.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_acked (glibc's copy is older) */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 65536

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void reply_error(const char *what) {
  printf("{\"ok\":false,\"error\":\"%s: %s\"}\n", what, strerror(errno));
  fflush(stdout);
}

static int parse_addr(const char *host, int port, struct sockaddr_in *sa) {
  memset(sa, 0, sizeof(*sa));
  sa->sin_family = AF_INET;
  sa->sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) return -1;
  // 127.0.0.0/8 only (DESIGN.md safety rules).
  if ((ntohl(sa->sin_addr.s_addr) >> 24) != 127) return -1;
  return 0;
}

static void fmt_addr(const struct sockaddr_in *sa, char *out, size_t n) {
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip));
  snprintf(out, n, "%s:%d", ip, ntohs(sa->sin_port));
}

static int write_all(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    buf += w;
    n -= (size_t)w;
  }
  return 0;
}

static int read_full(int fd, char *buf, size_t n) {
  while (n > 0) {
    ssize_t r = recv(fd, buf, n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) {
      errno = ECONNRESET;
      return -1;
    }
    buf += r;
    n -= (size_t)r;
  }
  return 0;
}

static int dial(const struct sockaddr_in *sa) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static void close_rst(int fd) {
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close(fd);
}

/* ------------------------------------------------------------------ client */

static void client_rr(const char *host, int port, const char *mode, long n, long warmup, long size) {
  struct sockaddr_in sa;
  if (parse_addr(host, port, &sa) < 0 || n <= 0 || warmup < 0 || size <= 0 || size > MAX_SIZE) {
    errno = EINVAL;
    reply_error("bad rr arguments");
    return;
  }
  int reused = strcmp(mode, "reused") == 0;
  static char out[MAX_SIZE], in[MAX_SIZE];
  memset(out, 'x', (size_t)size);
  uint64_t *samples = calloc((size_t)n, sizeof(uint64_t));
  if (!samples) {
    reply_error("calloc");
    return;
  }
  char peer[64] = "", local[64] = "";
  unsigned long long acked = 0, received = 0;
  int fd = -1;
  if (reused) {
    fd = dial(&sa);
    if (fd < 0) {
      reply_error("connect");
      free(samples);
      return;
    }
  }
  for (long i = -warmup; i < n; i++) {
    uint64_t t0 = now_ns();
    if (!reused) {
      fd = dial(&sa);
      if (fd < 0) {
        reply_error("connect");
        free(samples);
        return;
      }
    }
    if (write_all(fd, out, (size_t)size) < 0 || read_full(fd, in, (size_t)size) < 0) {
      reply_error("request");
      close(fd);
      free(samples);
      return;
    }
    uint64_t t1 = now_ns();
    if (i >= 0) samples[i] = t1 - t0;
    if (i == -1 || (warmup == 0 && i == 0) || (reused && i == n - 1)) {
      struct sockaddr_in a;
      socklen_t len = sizeof(a);
      if (getpeername(fd, (struct sockaddr *)&a, &len) == 0) fmt_addr(&a, peer, sizeof(peer));
      len = sizeof(a);
      if (getsockname(fd, (struct sockaddr *)&a, &len) == 0) fmt_addr(&a, local, sizeof(local));
      struct tcp_info ti;
      len = sizeof(ti);
      if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0) {
        acked = ti.tcpi_bytes_acked;
        received = ti.tcpi_bytes_received;
      }
    }
    if (!reused) close_rst(fd);
  }
  if (reused) close_rst(fd);
  printf("{\"ok\":true,\"mode\":\"%s\",\"peer\":\"%s\",\"local\":\"%s\",\"bytes_acked\":%llu,"
         "\"bytes_received\":%llu,\"samples_ns\":[",
         reused ? "reused" : "new", peer, local, acked, received);
  for (long i = 0; i < n; i++) printf(i ? ",%llu" : "%llu", (unsigned long long)samples[i]);
  printf("]}\n");
  fflush(stdout);
  free(samples);
}

static int run_client(void) {
  char line[512];
  while (fgets(line, sizeof(line), stdin)) {
    char host[64], mode[16];
    int port;
    long n, warmup, size;
    if (strncmp(line, "quit", 4) == 0) return 0;
    if (sscanf(line, "rr %63s %d %15s %ld %ld %ld", host, &port, mode, &n, &warmup, &size) == 6)
      client_rr(host, port, mode, n, warmup, size);
    else {
      errno = EINVAL;
      reply_error("unknown command");
    }
  }
  return 0;
}

/* ------------------------------------------------------------------ server */

static int run_server(void) {
  char line[256], host[64];
  if (!fgets(line, sizeof(line), stdin)) return 0;
  struct sockaddr_in sa;
  if (sscanf(line, "listen %63s", host) != 1 || parse_addr(host, 0, &sa) < 0) {
    errno = EINVAL;
    reply_error("expected: listen HOST (127.0.0.0/8)");
    return 1;
  }
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1024) < 0) {
    reply_error("listen");
    return 1;
  }
  socklen_t len = sizeof(sa);
  getsockname(lfd, (struct sockaddr *)&sa, &len);
  printf("port %d\n", ntohs(sa.sin_port));
  fflush(stdout);

  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  ev.data.fd = STDIN_FILENO;
  epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev);
  static char buf[MAX_SIZE];
  unsigned long long accepts = 0;
  struct epoll_event evs[64];
  for (;;) {
    int k = epoll_wait(ep, evs, 64, -1);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return 1;
    for (int i = 0; i < k; i++) {
      int fd = evs[i].data.fd;
      if (fd == STDIN_FILENO) {
        // "stats" -> "accepts N"; EOF: the bench is gone or done.
        ssize_t r = read(STDIN_FILENO, buf, sizeof(buf) - 1);
        if (r <= 0) return 0;
        buf[r] = 0;
        for (char *p = buf; (p = strstr(p, "stats")) != NULL; p += 5) printf("accepts %llu\n", accepts);
        fflush(stdout);
      } else if (fd == lfd) {
        for (;;) {
          int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
          if (c < 0) break;
          accepts++;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
      } else {
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r > 0) {
          // Small requests: the reply fits the send buffer; spin on EAGAIN otherwise.
          size_t off = 0;
          while (off < (size_t)r) {
            ssize_t w = send(fd, buf + off, (size_t)r - off, MSG_NOSIGNAL);
            if (w > 0) off += (size_t)w;
            else if (w < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            else break;
          }
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          close(fd); // also drops it from the epoll set
        }
      }
    }
  }
}

int main(int argc, char **argv) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGPIPE, SIG_IGN);
  if (argc != 2 || (strcmp(argv[1], "server") && strcmp(argv[1], "client"))) {
    fprintf(stderr, "usage: rr server|client (commands on stdin)\n");
    return 2;
  }
  printf("ready\n");
  fflush(stdout);
  return strcmp(argv[1], "server") == 0 ? run_server() : run_client();
}
