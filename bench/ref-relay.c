/* ref-relay: the least work any user-space HTTP relay can do, as a yardstick
 * for bench/relay.sh.
 *
 *   ref-relay PORT MODE        MODE is "copy" or "splice"
 *
 * It serves exactly one relay on 127.0.0.1:PORT: the first connection must
 * be the upload (curl -T: a PUT with Content-Length), the second the download
 * (any GET). It answers the upload's "Expect: 100-continue", sends the
 * download a 200 with the same Content-Length, then moves the body:
 *
 *   copy    recv() into a 4 MiB buffer and send() it on (what ferry serve's
 *           relay does per byte, without HTTP parsing, window or limits);
 *   splice  splice() socket -> pipe -> socket: no byte enters user memory.
 *
 * When the body is through it answers the upload with 201, prints its own
 * user+system CPU seconds on stdout and exits. No keep-alive, no chunked
 * bodies, no error recovery beyond a message: it is a measuring stick, not a
 * server. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE  (4u << 20)
#define PIPE_SIZE (1u << 20)
#define HEAD_MAX  16384

static void
die(const char *what)
{
  perror(what);
  exit(1);
}

static int
listen_on(int port)
{
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  int one = 1;
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4) < 0)
    die("listen");
  return fd;
}

static void
send_all(int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0)
      die("send");
    p += k;
    n -= (size_t)k;
  }
}

/* Reads one request head into HEAD (NUL-terminated); returns how many bytes
 * of body came with it, which start at *BODY. */
static size_t
read_head(int fd, char *head, char **body)
{
  size_t have = 0;

  for (;;) {
    ssize_t n;
    char *end;

    if (have == HEAD_MAX - 1) {
      fprintf(stderr, "ref-relay: request head too long\n");
      exit(1);
    }
    n = recv(fd, head + have, HEAD_MAX - 1 - have, 0);
    if (n <= 0)
      die("recv head");
    have += (size_t)n;
    head[have] = '\0';
    end = strstr(head, "\r\n\r\n");
    if (end != NULL) {
      *body = end + 4;
      return have - (size_t)(*body - head);
    }
  }
}

static long long
content_length(const char *head)
{
  const char *p = strcasestr(head, "\r\ncontent-length:");

  return p == NULL ? -1 : atoll(p + 17);
}

int
main(int argc, char **argv)
{
  static char up_head[HEAD_MAX], down_head[HEAD_MAX];
  int splicing, lfd, up, down;
  long long total, moved;
  size_t early;
  char *body, *ignored, reply[128];
  struct rusage ru;

  if (argc != 3 || (strcmp(argv[2], "copy") != 0 && strcmp(argv[2], "splice") != 0)) {
    fprintf(stderr, "usage: ref-relay PORT copy|splice\n");
    return 2;
  }
  splicing = strcmp(argv[2], "splice") == 0;
  lfd = listen_on(atoi(argv[1]));

  up = accept(lfd, NULL, NULL);
  if (up < 0)
    die("accept upload");
  early = read_head(up, up_head, &body);
  total = content_length(up_head);
  if (total < 0) {
    fprintf(stderr, "ref-relay: the upload has no Content-Length\n");
    return 1;
  }
  if (strcasestr(up_head, "\r\nexpect: 100-continue") != NULL)
    send_all(up, "HTTP/1.1 100 Continue\r\n\r\n", 25);

  down = accept(lfd, NULL, NULL);
  if (down < 0)
    die("accept download");
  read_head(down, down_head, &ignored);
  snprintf(reply, sizeof reply,
           "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
           "Content-Length: %lld\r\nConnection: close\r\n\r\n",
           total);
  send_all(down, reply, strlen(reply));
  send_all(down, body, early);
  moved = (long long)early;

  if (splicing) {
    int p[2];

    if (pipe(p) < 0)
      die("pipe");
    fcntl(p[1], F_SETPIPE_SZ, PIPE_SIZE);
    while (moved < total) {
      ssize_t in = splice(up, NULL, p[1], NULL, PIPE_SIZE, SPLICE_F_MOVE | SPLICE_F_MORE);
      if (in <= 0)
        die("splice from the upload");
      moved += in;
      while (in > 0) {
        ssize_t out = splice(p[0], NULL, down, NULL, (size_t)in, SPLICE_F_MOVE | SPLICE_F_MORE);
        if (out <= 0)
          die("splice to the download");
        in -= out;
      }
    }
  } else {
    char *buf = malloc(BUF_SIZE);

    if (buf == NULL)
      die("malloc");
    while (moved < total) {
      ssize_t in = recv(up, buf, BUF_SIZE, 0);
      if (in <= 0)
        die("recv from the upload");
      send_all(down, buf, (size_t)in);
      moved += in;
    }
    free(buf);
  }
  close(down);
  snprintf(reply, sizeof reply,
           "HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  send_all(up, reply, strlen(reply));
  close(up);

  getrusage(RUSAGE_SELF, &ru);
  printf("%.3f\n", (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
  return 0;
}
