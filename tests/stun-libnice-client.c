/* stun-libnice-client HOST PORT: asks a STUN server for this host's mapped
 * address with libnice's own STUN client (stun_usage_bind_run), the code
 * libnice's ICE agent gathers server-reflexive candidates with. Prints
 * "mapped ADDRESS PORT" and exits 0, or says what failed and exits 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <stun/usages/bind.h>

int
main(int argc, char **argv)
{
  struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICHOST};
  struct addrinfo *ai;
  struct sockaddr_storage mapped;
  socklen_t mapped_len = sizeof mapped;
  char host[INET6_ADDRSTRLEN];

  if (argc != 3) {
    fprintf(stderr, "usage: stun-libnice-client HOST PORT\n");
    return 2;
  }
  if (getaddrinfo(argv[1], argv[2], &hints, &ai) != 0) {
    fprintf(stderr, "stun-libnice-client: bad address %s %s\n", argv[1], argv[2]);
    return 2;
  }
  StunUsageBindReturn ret = stun_usage_bind_run(ai->ai_addr, ai->ai_addrlen, &mapped, &mapped_len);
  freeaddrinfo(ai);
  if (ret != STUN_USAGE_BIND_RETURN_SUCCESS) {
    fprintf(stderr, "stun-libnice-client: binding failed (StunUsageBindReturn %d)\n", (int)ret);
    return 1;
  }
  unsigned port;
  if (mapped.ss_family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&mapped;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
  } else {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&mapped;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
  }
  printf("mapped %s %u\n", host, port);
  return 0;
}
