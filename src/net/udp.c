/* The UDP transport: recvmmsg/GRO in, sendmsg/GSO out (udp.h). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ferry/error.h>

#include "net/udp.h"

/* Receive: RX_MSGS buffers per recvmmsg. With GRO each buffer may hold up
 * to 64 coalesced datagrams, so it must hold a whole 64 KiB super-packet;
 * without, one datagram of at most RX_SMALL bytes. */
#define RX_MSGS      32
#define RX_GRO_BUF   65536
#define RX_SMALL     2048
#define TX_MAX_SEGS  64
#define SOCK_BUF     (16 * 1024 * 1024)
#define ERRQUEUE_MAX 64
#define RECV_ERR_MAX 4
#define STUN_COOKIE  0x2112A442u
#define STUN_HDR_LEN 20

typedef struct {
  FerryQuicTransport base;
  FerryUdpFlags flags;
  gboolean connected;
  FerryUdpFilterFunc filter;
  gpointer filter_data;

  /* what to put back when the socket is handed back */
  int orig_gro, orig_mtu4, orig_mtu6, orig_fl;
  gboolean have_mtu4, have_mtu6;

  gsize rx_buf_len;
  guint8 *rx_bufs;
  struct mmsghdr rx_msgs[RX_MSGS];
  struct iovec rx_iov[RX_MSGS];
  struct sockaddr_storage rx_from[RX_MSGS];
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } rx_ctrl[RX_MSGS];

  struct mmsghdr tx_msgs[TX_MAX_SEGS];
  struct iovec tx_iov[TX_MAX_SEGS];

  FerryUdpStats stats; /* updated with relaxed atomics: read from any thread */
} UdpTransport;

static void
stat_add(guint64 *counter, guint64 n)
{
  __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

gboolean
ferry_udp_is_stun(const guint8 *data, gsize len)
{
  guint32 cookie;
  gsize body;

  if (len < STUN_HDR_LEN || (data[0] & 0xc0) != 0)
    return FALSE;
  body = ((gsize)data[2] << 8) | data[3];
  if (body + STUN_HDR_LEN != len || (body & 3) != 0)
    return FALSE;
  memcpy(&cookie, data + 4, 4);
  return g_ntohl(cookie) == STUN_COOKIE;
}

gboolean
ferry_udp_same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
  if (a->ss_family != b->ss_family)
    return FALSE;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a,
                              *y = (const struct sockaddr_in6 *)b;
    /* libnice's remote candidates carry no scope (0) while received
     * link-local packets carry the interface's: 0 matches any. */
    return x->sin6_port == y->sin6_port &&
           (x->sin6_scope_id == y->sin6_scope_id || x->sin6_scope_id == 0 ||
            y->sin6_scope_id == 0) &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
  }
  return FALSE;
}

static gboolean
is_icmp_errno(int e)
{
  switch (e) {
  case ECONNREFUSED:
  case EHOSTUNREACH:
  case ENETUNREACH:
  case EHOSTDOWN:
  case ENETDOWN:
  case EMSGSIZE:
  case EPROTO:
  case ETIMEDOUT:
  case EPERM:
  case EACCES:
  case ENOBUFS:
  case ENOPROTOOPT:
    return TRUE;
  default:
    return FALSE;
  }
}

/* With IP_RECVERR (which a socket from GLib/libnice may have), ICMP errors
 * queue up and keep the socket in POLLERR until read: drain and forget. */
static void
drain_errqueue(UdpTransport *u)
{
  guint8 buf[512];
  char ctrl[512];

  for (int i = 0; i < ERRQUEUE_MAX; i++) {
    struct iovec iov = {buf, sizeof(buf)};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = sizeof(ctrl)};
    if (recvmsg(u->base.fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
      break;
  }
}

static void
deliver_message(UdpTransport *u, guint i, gsize len, FerryQuicDeliverFunc deliver, gpointer ctx,
                guint64 *delivered)
{
  struct msghdr *mh = &u->rx_msgs[i].msg_hdr;
  const guint8 *buf = u->rx_bufs + (gsize)i * u->rx_buf_len;
  gsize seg = len;
  gboolean from_peer = u->connected || ferry_udp_same_address(&u->rx_from[i], &u->base.remote);

  for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int gso;
      memcpy(&gso, CMSG_DATA(c), sizeof(gso));
      if (gso > 0)
        seg = (gsize)gso;
    }
  }
  for (gsize off = 0; off < len; off += seg) {
    const guint8 *d = buf + off;
    gsize n = MIN(seg, len - off);

    if (d[0] < 4 && ferry_udp_is_stun(d, n)) {
      stat_add(&u->stats.stun_filtered, 1);
      if (u->filter != NULL)
        u->filter(d, n, (const struct sockaddr *)&u->rx_from[i], mh->msg_namelen, u->filter_data);
      continue;
    }
    if (!from_peer) {
      stat_add(&u->stats.foreign, 1);
      continue;
    }
    deliver(ctx, d, n);
    (*delivered)++;
  }
}

static int
udp_recv(FerryQuicTransport *t, FerryQuicDeliverFunc deliver, gpointer ctx)
{
  UdpTransport *u = (UdpTransport *)t;
  guint64 delivered = 0;
  int errors = 0;
  int n;

  for (;;) {
    for (guint i = 0; i < RX_MSGS; i++) {
      u->rx_msgs[i].msg_hdr.msg_namelen = sizeof(u->rx_from[i]);
      u->rx_msgs[i].msg_hdr.msg_controllen = sizeof(u->rx_ctrl[i].buf);
      u->rx_msgs[i].msg_hdr.msg_flags = 0;
    }
    n = recvmmsg(t->fd, u->rx_msgs, RX_MSGS, MSG_DONTWAIT, NULL);
    if (n >= 0)
      break;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      drain_errqueue(u);
      return 0;
    }
    if (errno == EINTR)
      continue;
    if (!is_icmp_errno(errno) || ++errors > RECV_ERR_MAX)
      return is_icmp_errno(errno) ? 0 : -errno;
    drain_errqueue(u);
  }
  stat_add(&u->stats.syscalls_in, 1);
  for (int i = 0; i < n; i++) {
    if (u->rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC)
      continue;
    if (u->rx_msgs[i].msg_len == 0)
      continue;
    deliver_message(u, (guint)i, u->rx_msgs[i].msg_len, deliver, ctx, &delivered);
  }
  stat_add(&u->stats.datagrams_in, delivered);
  /* A batch of nothing but STUN or foreign datagrams still means "more may
   * be waiting": report at least one so the caller reads again. */
  return n > 0 && delivered == 0 ? 1 : (int)MIN(delivered, (guint64)G_MAXINT);
}

static void
fill_dest(UdpTransport *u, struct msghdr *msg)
{
  if (u->connected) {
    msg->msg_name = NULL;
    msg->msg_namelen = 0;
  } else {
    msg->msg_name = &u->base.remote;
    msg->msg_namelen = u->base.remote_len;
  }
}

/* One datagram per mmsghdr: the path without GSO. */
static int
send_each(UdpTransport *u, const guint8 *buf, gsize len, gsize segment)
{
  guint count = 0, done = 0;

  if (segment == 0 || segment > len)
    segment = len;
  for (gsize off = 0; off < len && count < TX_MAX_SEGS; off += segment, count++) {
    struct msghdr *msg = &u->tx_msgs[count].msg_hdr;
    memset(msg, 0, sizeof(*msg));
    u->tx_iov[count].iov_base = (void *)(buf + off);
    u->tx_iov[count].iov_len = MIN(segment, len - off);
    msg->msg_iov = &u->tx_iov[count];
    msg->msg_iovlen = 1;
    fill_dest(u, msg);
  }
  while (done < count) {
    int n = sendmmsg(u->base.fd, u->tx_msgs + done, count - done, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (done == 0)
          return -EAGAIN;
        /* part of the batch left; the rest is lost like any datagram */
        stat_add(&u->stats.send_dropped, count - done);
        return 0;
      }
      if (!is_icmp_errno(errno))
        return -errno;
      /* the first datagram was refused: skip it, try the rest */
      stat_add(&u->stats.send_dropped, 1);
      done++;
      continue;
    }
    stat_add(&u->stats.syscalls_out, 1);
    stat_add(&u->stats.datagrams_out, (guint64)n);
    done += (guint)n;
  }
  return 0;
}

static int
udp_send(FerryQuicTransport *t, const guint8 *buf, gsize len, gsize segment)
{
  UdpTransport *u = (UdpTransport *)t;
  union {
    char buf[CMSG_SPACE(sizeof(guint16))];
    struct cmsghdr align;
  } ctrl;
  struct iovec iov = {(void *)buf, len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  ssize_t n;

  if (!t->can_gso || segment == 0 || segment >= len)
    return send_each(u, buf, len, segment);

  fill_dest(u, &msg);
  memset(&ctrl, 0, sizeof(ctrl));
  msg.msg_control = ctrl.buf;
  msg.msg_controllen = sizeof(ctrl.buf);
  {
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    guint16 seg = (guint16)segment;
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(seg));
    memcpy(CMSG_DATA(c), &seg, sizeof(seg));
  }
  do
    n = sendmsg(t->fd, &msg, 0);
  while (n < 0 && errno == EINTR);
  if (n >= 0) {
    stat_add(&u->stats.syscalls_out, 1);
    stat_add(&u->stats.datagrams_out, (len + segment - 1) / segment);
    return 0;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK)
    return -EAGAIN;
  if (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP) {
    /* The route cannot segment (no checksum offload, some tunnels): stop
     * asking and send this batch the slow way. */
    g_debug("UDP GSO refused (%s); sending datagrams one by one", g_strerror(errno));
    t->can_gso = FALSE;
    __atomic_store_n(&u->stats.gso, FALSE, __ATOMIC_RELAXED);
    return send_each(u, buf, len, segment);
  }
  if (is_icmp_errno(errno)) {
    stat_add(&u->stats.send_dropped, (len + segment - 1) / segment);
    return 0;
  }
  return -errno;
}

static void
udp_free(FerryQuicTransport *t)
{
  UdpTransport *u = (UdpTransport *)t;

  /* Put the options back even when closing: the descriptor may be a dup()
   * of a socket someone else (libnice) goes on using, and socket options
   * and file status flags are shared between duplicates. */
  if (u->stats.gro)
    setsockopt(t->fd, SOL_UDP, UDP_GRO, &u->orig_gro, sizeof(int));
  if (u->have_mtu4)
    setsockopt(t->fd, IPPROTO_IP, IP_MTU_DISCOVER, &u->orig_mtu4, sizeof(int));
  if (u->have_mtu6)
    setsockopt(t->fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &u->orig_mtu6, sizeof(int));
  fcntl(t->fd, F_SETFL, u->orig_fl);
  if (u->flags & FERRY_UDP_CLOSE_FD)
    close(t->fd);
  g_free(u->rx_bufs);
  g_free(u);
}

static const FerryQuicTransportVTable udp_vtable = {
    .send = udp_send,
    .recv = udp_recv,
    .free = udp_free,
};

/* Asks for big buffers: the FORCE variants (root or CAP_NET_ADMIN) go past
 * net.core.[rw]mem_max, the plain ones are capped by it. */
static void
raise_buffer(int fd, int force_opt, int opt)
{
  int size = SOCK_BUF;

  if (setsockopt(fd, SOL_SOCKET, force_opt, &size, sizeof(size)) == 0)
    return;
  setsockopt(fd, SOL_SOCKET, opt, &size, sizeof(size));
}

void
ferry_udp_raise_buffers(int fd)
{
  raise_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF);
  raise_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF);
}

static gboolean
get_int_opt(int fd, int level, int opt, int *value)
{
  socklen_t len = sizeof(*value);
  return getsockopt(fd, level, opt, value, &len) == 0;
}

static void
setup_rx(UdpTransport *u)
{
  u->rx_buf_len = u->stats.gro ? RX_GRO_BUF : RX_SMALL;
  u->rx_bufs = g_malloc((gsize)RX_MSGS * u->rx_buf_len);
  for (guint i = 0; i < RX_MSGS; i++) {
    struct msghdr *mh = &u->rx_msgs[i].msg_hdr;
    u->rx_iov[i].iov_base = u->rx_bufs + (gsize)i * u->rx_buf_len;
    u->rx_iov[i].iov_len = u->rx_buf_len;
    mh->msg_iov = &u->rx_iov[i];
    mh->msg_iovlen = 1;
    mh->msg_name = &u->rx_from[i];
    mh->msg_control = u->rx_ctrl[i].buf;
  }
}

FerryQuicTransport *
ferry_udp_transport_new(int fd, const struct sockaddr *peer, socklen_t peer_len,
                        FerryUdpFlags flags, GError **error)
{
  UdpTransport *u;
  int type = 0, one = 1, probe, val;
  socklen_t len;

  if (fd < 0 || !get_int_opt(fd, SOL_SOCKET, SO_TYPE, &type) || type != SOCK_DGRAM) {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "QUIC needs a UDP socket, and descriptor %d is not one; pass the socket "
                    "of a UDP candidate pair",
                    fd);
    return NULL;
  }
  u = g_new0(UdpTransport, 1);
  u->base.vtable = &udp_vtable;
  u->base.fd = fd;
  u->flags = flags;

  u->base.local_len = sizeof(u->base.local);
  if (getsockname(fd, (struct sockaddr *)&u->base.local, &u->base.local_len) != 0 ||
      (u->base.local.ss_family != AF_INET && u->base.local.ss_family != AF_INET6)) {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "UDP socket %d is not an IPv4 or IPv6 socket (%s); QUIC cannot use it", fd,
                    g_strerror(errno));
    g_free(u);
    return NULL;
  }
  if (peer != NULL) {
    if (peer_len > sizeof(u->base.remote) || peer->sa_family != u->base.local.ss_family) {
      ferry_set_error(error, FERRY_ERR_INVALID,
                      "the peer address does not fit UDP socket %d (address family %d vs %d); "
                      "give an address of the socket's own family",
                      fd, peer->sa_family, u->base.local.ss_family);
      g_free(u);
      return NULL;
    }
    memcpy(&u->base.remote, peer, peer_len);
    u->base.remote_len = peer_len;
    {
      struct sockaddr_storage cur;
      socklen_t cur_len = sizeof(cur);
      u->connected = getpeername(fd, (struct sockaddr *)&cur, &cur_len) == 0 &&
                     ferry_udp_same_address(&cur, &u->base.remote);
    }
  } else {
    u->base.remote_len = sizeof(u->base.remote);
    if (getpeername(fd, (struct sockaddr *)&u->base.remote, &u->base.remote_len) != 0) {
      ferry_set_error(error, FERRY_ERR_INVALID,
                      "UDP socket %d is not connected and no peer address was given; give the "
                      "peer's address",
                      fd);
      g_free(u);
      return NULL;
    }
    u->connected = TRUE;
  }

  u->orig_fl = fcntl(fd, F_GETFL);
  if (u->orig_fl < 0 || fcntl(fd, F_SETFL, u->orig_fl | O_NONBLOCK) != 0) {
    ferry_set_error(error, FERRY_ERR_IO, "cannot make UDP socket %d non-blocking: %s", fd,
                    g_strerror(errno));
    g_free(u);
    return NULL;
  }
  ferry_udp_raise_buffers(fd);

  /* QUIC does its own path MTU discovery: set DF but let oversized probes
   * simply be lost instead of failing sendmsg (which would take a whole
   * GSO batch with them). */
  probe = IP_PMTUDISC_PROBE;
  if (get_int_opt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &val)) {
    u->orig_mtu4 = val;
    u->have_mtu4 = setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof(probe)) == 0;
  }
  if (u->base.local.ss_family == AF_INET6 &&
      get_int_opt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &val)) {
    probe = IPV6_PMTUDISC_PROBE;
    u->orig_mtu6 = val;
    u->have_mtu6 = setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &probe, sizeof(probe)) == 0;
  }

  len = sizeof(val);
  u->base.can_gso =
      !(flags & FERRY_UDP_NO_GSO) && getsockopt(fd, SOL_UDP, UDP_SEGMENT, &val, &len) == 0;
  u->stats.gso = u->base.can_gso;
  if (!(flags & FERRY_UDP_NO_GRO)) {
    if (!get_int_opt(fd, SOL_UDP, UDP_GRO, &u->orig_gro))
      u->orig_gro = 0;
    u->stats.gro = setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
  }
  u->base.max_recv_datagram = u->stats.gro ? 65527 : RX_SMALL;
  setup_rx(u);
  return &u->base;
}

void
ferry_udp_transport_set_filter(FerryQuicTransport *t, FerryUdpFilterFunc func, gpointer user_data)
{
  UdpTransport *u = (UdpTransport *)t;

  g_return_if_fail(t != NULL && t->vtable == &udp_vtable);
  u->filter = func;
  u->filter_data = user_data;
}

void
ferry_udp_transport_get_stats(FerryQuicTransport *t, FerryUdpStats *stats)
{
  UdpTransport *u = (UdpTransport *)t;

  g_return_if_fail(t != NULL && t->vtable == &udp_vtable);
  stats->datagrams_in = __atomic_load_n(&u->stats.datagrams_in, __ATOMIC_RELAXED);
  stats->datagrams_out = __atomic_load_n(&u->stats.datagrams_out, __ATOMIC_RELAXED);
  stats->stun_filtered = __atomic_load_n(&u->stats.stun_filtered, __ATOMIC_RELAXED);
  stats->foreign = __atomic_load_n(&u->stats.foreign, __ATOMIC_RELAXED);
  stats->send_dropped = __atomic_load_n(&u->stats.send_dropped, __ATOMIC_RELAXED);
  stats->syscalls_out = __atomic_load_n(&u->stats.syscalls_out, __ATOMIC_RELAXED);
  stats->syscalls_in = __atomic_load_n(&u->stats.syscalls_in, __ATOMIC_RELAXED);
  stats->gso = __atomic_load_n(&u->stats.gso, __ATOMIC_RELAXED);
  stats->gro = u->stats.gro;
}

gsize
ferry_udp_same_host_payload(int fd, const struct sockaddr *peer, socklen_t peer_len, gsize cap)
{
  struct sockaddr_storage ss;
  gboolean v6 = peer->sa_family == AF_INET6;
  int probe, mtu = 0;
  socklen_t mtu_len = sizeof mtu;
  gboolean local;

  if ((peer->sa_family != AF_INET && !v6) || peer_len > sizeof ss)
    return 0;
  memcpy(&ss, peer, peer_len);
  if (v6) {
    /* A link-local peer may come without its interface: it is the one
     * our own socket is bound on. */
    struct sockaddr_in6 *p6 = (struct sockaddr_in6 *)&ss, mine;
    socklen_t mine_len = sizeof mine;
    if (IN6_IS_ADDR_LINKLOCAL(&p6->sin6_addr) && p6->sin6_scope_id == 0 &&
        getsockname(fd, (struct sockaddr *)&mine, &mine_len) == 0 && mine.sin6_family == AF_INET6)
      p6->sin6_scope_id = mine.sin6_scope_id;
  }
  probe = socket(peer->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (probe < 0)
    return 0;
  /* Only an address of this host can be bound (port 0: any free one);
   * connected, the socket then tells the route's MTU. */
  struct sockaddr_storage any = ss;
  if (v6)
    ((struct sockaddr_in6 *)&any)->sin6_port = 0;
  else
    ((struct sockaddr_in *)&any)->sin_port = 0;
  local = bind(probe, (struct sockaddr *)&any, peer_len) == 0 &&
          connect(probe, (struct sockaddr *)&ss, peer_len) == 0 &&
          getsockopt(probe, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_MTU : IP_MTU, &mtu,
                     &mtu_len) == 0;
  close(probe);
  /* IPv6 and UDP headers: 48 bytes; IPv4 and UDP: 28. */
  gsize header = v6 ? 48 : 28;
  if (!local || mtu <= 0 || (gsize)mtu <= header)
    return 0;
  return MIN((gsize)mtu - header, cap);
}
