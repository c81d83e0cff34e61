/* linkem — a user-space link emulator for the WAN lab (this kernel has no netem).
 *
 *   linkem [--delay T[/T]] [--jitter T[/T]] [--loss P[/P]] [--rate R[/R]]
 *          [--queue B[/B]] [--reorder] [--seed N] IFACE_A IFACE_B
 *
 * linkem joins two network interfaces of one namespace at layer 2 and carries
 * every Ethernet frame that arrives on one out of the other, after the link it
 * emulates would have: a bottleneck of the given rate (serialisation delay,
 * exact to the nanosecond, no burst allowance) in front of a bounded FIFO
 * (tail drop), then a one-way propagation delay with optional jitter. Random
 * loss drops a frame as it arrives. Each direction has its own figures ("X/Y"
 * gives a->b, then b->a; a single value is for both) and runs in its own
 * thread, so nothing is shared between them but the stop signal.
 *
 * Why AF_PACKET and not TUN or NFQUEUE. lab/link.sh makes two veth pairs,
 * A:eth0 = M:ea and M:eb = B:eth0, and runs linkem in the middle namespace M
 * on ea and eb. The two end namespaces then see one ordinary Ethernet segment
 * (ARP, multicast and LAN discovery included) and keep their routing, whereas
 * TUN needs routes and addresses in the middle, and NFQUEUE can drop but not
 * hold packets back (a verdict delayed by 250 ms pins the kernel's queue). With
 * recvmmsg()/sendmmsg() in batches of 64 and a pool of frame-sized slots the
 * frames are copied once in and once out; a packet ring (PACKET_MMAP) would save
 * the copy in but not the one into the delay line, which must hold frames for
 * up to a whole bandwidth-delay product.
 *
 * Offloads. A veth hands its peer the sender's skb as it is: TCP and UDP
 * segmentation offload (TSO, UDP_SEGMENT) make frames of up to 64 KiB, and the
 * checksum is left for "hardware" to fill in. linkem turns PACKET_VNET_HDR on:
 * every frame comes with its virtio_net_hdr, which is handed back on send, so
 * a frame whose checksum is still partial (VIRTIO_NET_HDR_F_NEEDS_CSUM) stays
 * partial and B's stack accepts it as a local one. Super-frames are made
 * rarer at their source: lab/link.sh sets gso_max_segs 1 on the end
 * namespaces' interfaces (ethtool is not installed here; `ip link set DEV
 * gso_max_segs 1` makes TCP build one-segment skbs and makes the kernel
 * segment any UDP GSO skb before the veth). A super-frame that still comes
 * through is carried whole (counted as "gso" in the statistics, with a warning),
 * so loss and the rate then act on it as one unit.
 *
 * Timing. Each thread sleeps in ppoll() until its next frame is due or one
 * arrives, with the thread's timer slack at 1 ns; frames are stamped when
 * recvmmsg() returns. Without --reorder a frame never leaves before the one
 * in front of it (jitter is clamped to keep the order, as on one wire).
 *
 * Frames that are not IPv4 or IPv6 (ARP) are delayed and rate-limited but
 * never dropped at random, so loss figures are about IP traffic only. The rate
 * counts Ethernet frame bytes (header included, as tbf does): TCP goodput over
 * a 100 Mbit/s link is at most 1448/1514 of it, about 95.6 %.
 *
 * SIGUSR1 prints the statistics; SIGINT or SIGTERM prints them and exits 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#define VNET_LEN    ((guint32)sizeof(struct virtio_net_hdr))
#define SLOT_BYTES  2048u           /* vnet header + a 1500-MTU frame (VLAN tag too) */
#define SPILL_BYTES (65536u + 256u) /* the rest of a super-frame */
#define BATCH       64
#define CHUNK_SLOTS 512
#define NS          G_GINT64_CONSTANT(1000000000)

/* What one direction of the link does to a frame. */
typedef struct {
  gint64 delay_ns;
  gint64 jitter_ns;
  double loss;      /* probability, 0 to 1 */
  guint64 rate_bps; /* 0: no limit */
  guint64 queue_bytes;
} LinkParams;

/* A frame in the delay line: its bytes (vnet header first) and when it leaves. */
typedef struct {
  gint64 due;
  guint64 seq;
  guint32 len;
  guint8 *data; /* buf, or a heap copy of a super-frame */
  guint8 buf[SLOT_BYTES];
} Slot;

/* Counters of one direction: written by its thread only, read by the printer. */
typedef struct {
  guint64 in_frames, in_bytes, out_frames, out_bytes;
  guint64 lost, queue_drops, memory_drops, send_errors, gso, truncated;
  guint64 socket_drops; /* frames the kernel dropped before linkem read them */
} Stats;

typedef struct {
  const char *name;
  int in_fd, out_fd, wake_fd;
  gboolean wake_is_signal;
  LinkParams p;
  gboolean reorder;
  GRand *rand;
  gint64 link_free; /* when the bottleneck has sent all it holds */
  gint64 last_due;
  guint64 seq;
  Slot **heap; /* min-heap on (due, seq) */
  guint heap_len, heap_cap;
  Slot **free_slots;
  guint free_len, slots, max_slots;
  GPtrArray *chunks;
  Stats st;
  gboolean warned_gso;
  struct mmsghdr rx[BATCH];
  struct iovec rx_iov[BATCH][2];
  struct sockaddr_ll rx_addr[BATCH];
  Slot *rx_slot[BATCH];
  guint8 *spill;
  struct mmsghdr tx[BATCH];
  struct iovec tx_iov[BATCH];
  Slot *tx_slot[BATCH];
} Direction;

static volatile gboolean stopping;
static volatile int exit_status;

#define STAT_ADD(d, field, n)                                                                      \
  __atomic_store_n(&(d)->st.field, (d)->st.field + (n), __ATOMIC_RELAXED)
#define STAT_GET(d, field) __atomic_load_n(&(d)->st.field, __ATOMIC_RELAXED)

static gint64
now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * NS + ts.tv_nsec;
}

/* ---------------------------------------------------------------- options */

/* parse_number: the leading decimal number of TEXT; *rest points after it.
 * Returns FALSE when TEXT does not start with one or it is negative. */
static gboolean
parse_number(const char *text, double *out, const char **rest)
{
  char *end;
  errno = 0;
  *out = g_ascii_strtod(text, &end);
  if (end == text || errno != 0 || *out < 0 || *out != *out)
    return FALSE;
  *rest = end;
  return TRUE;
}

/* parse_time: "50ms", "0.2s", "200us", "50" (ms) into nanoseconds. */
static gboolean
parse_time(const char *text, double *out)
{
  const char *u;
  if (!parse_number(text, out, &u))
    return FALSE;
  if (*u == '\0' || g_ascii_strcasecmp(u, "ms") == 0)
    *out *= 1e6;
  else if (g_ascii_strcasecmp(u, "s") == 0)
    *out *= 1e9;
  else if (g_ascii_strcasecmp(u, "us") == 0)
    *out *= 1e3;
  else
    return FALSE;
  return *out <= 3600e9;
}

/* parse_rate: "100M", "1G", "2.5Mbit", "500k", "1000000" into bits per second (SI). */
static gboolean
parse_rate(const char *text, double *out)
{
  const char *u;
  double scale = 1;
  if (!parse_number(text, out, &u))
    return FALSE;
  switch (g_ascii_tolower(*u)) {
  case 'k':
    scale = 1e3, u++;
    break;
  case 'm':
    scale = 1e6, u++;
    break;
  case 'g':
    scale = 1e9, u++;
    break;
  default:
    break;
  }
  if (*u != '\0' && g_ascii_strcasecmp(u, "bit") != 0 && g_ascii_strcasecmp(u, "bps") != 0)
    return FALSE;
  *out *= scale;
  return *out <= 1e12;
}

/* parse_bytes: "256K", "8M", "1G" (binary), "1500" into bytes. */
static gboolean
parse_bytes(const char *text, double *out)
{
  const char *u;
  double scale = 1;
  if (!parse_number(text, out, &u))
    return FALSE;
  switch (g_ascii_toupper(*u)) {
  case 'K':
    scale = 1024, u++;
    break;
  case 'M':
    scale = 1024 * 1024, u++;
    break;
  case 'G':
    scale = 1024.0 * 1024 * 1024, u++;
    break;
  default:
    break;
  }
  if (*u == 'B' || *u == 'b')
    u++;
  *out *= scale;
  return *u == '\0' && *out <= 64.0 * 1024 * 1024 * 1024;
}

/* parse_percent: "1", "0.5", "2%" into a probability. */
static gboolean
parse_percent(const char *text, double *out)
{
  const char *u;
  if (!parse_number(text, out, &u))
    return FALSE;
  if (*u == '%')
    u++;
  *out /= 100;
  return *u == '\0' && *out <= 1;
}

/* parse_pair: "X" or "X/Y" through PARSE into out[0] (a->b) and out[1] (b->a).
 * Sets ERROR naming OPTION, the bad text and an example on failure. */
static gboolean
parse_pair(const char *option, const char *text, gboolean (*parse)(const char *, double *),
           const char *example, double out[2], GError **error)
{
  g_auto(GStrv) parts = g_strsplit(text, "/", -1);
  guint n = g_strv_length(parts);
  if (n < 1 || n > 2 || !parse(parts[0], &out[0]) || !parse(parts[n - 1], &out[1])) {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                "--%s '%s' is not valid: give one value for both directions or A->B/B->A, "
                "e.g. --%s %s",
                option, text, option, example);
    return FALSE;
  }
  return TRUE;
}

/* ---------------------------------------------------------------- slots */

/* slot_get: a free slot, allocating a chunk when none is left; NULL once
 * max_slots are in use (the --memory bound). */
static Slot *
slot_get(Direction *d)
{
  if (d->free_len == 0) {
    if (d->slots >= d->max_slots)
      return NULL;
    Slot *chunk = g_new(Slot, CHUNK_SLOTS);
    g_ptr_array_add(d->chunks, chunk);
    d->free_slots = g_renew(Slot *, d->free_slots, d->slots + CHUNK_SLOTS);
    for (guint i = 0; i < CHUNK_SLOTS; i++)
      d->free_slots[d->free_len++] = &chunk[CHUNK_SLOTS - 1 - i];
    d->slots += CHUNK_SLOTS;
  }
  Slot *s = d->free_slots[--d->free_len];
  s->data = s->buf;
  return s;
}

static void
slot_put(Direction *d, Slot *s)
{
  if (s->data != s->buf)
    g_free(s->data);
  s->data = s->buf;
  d->free_slots[d->free_len++] = s;
}

static gboolean
slot_before(const Slot *a, const Slot *b)
{
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void
heap_push(Direction *d, Slot *s)
{
  if (d->heap_len == d->heap_cap) {
    d->heap_cap = d->heap_cap ? d->heap_cap * 2 : 1024;
    d->heap = g_renew(Slot *, d->heap, d->heap_cap);
  }
  guint i = d->heap_len++;
  while (i > 0 && slot_before(s, d->heap[(i - 1) / 2])) {
    d->heap[i] = d->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  d->heap[i] = s;
}

static Slot *
heap_pop(Direction *d)
{
  Slot *top = d->heap[0], *last = d->heap[--d->heap_len];
  guint i = 0, n = d->heap_len;
  for (;;) {
    guint c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && slot_before(d->heap[c + 1], d->heap[c]))
      c++;
    if (!slot_before(d->heap[c], last))
      break;
    d->heap[i] = d->heap[c];
    i = c;
  }
  if (n > 0)
    d->heap[i] = last;
  return top;
}

/* ---------------------------------------------------------------- the link */

static gboolean
is_ip(const Slot *s)
{
  if (s->len < VNET_LEN + ETH_HLEN)
    return FALSE;
  const guint8 *eth = s->data + VNET_LEN;
  guint16 type = (guint16)(eth[12] << 8 | eth[13]);
  if (type == ETH_P_8021Q && s->len >= VNET_LEN + ETH_HLEN + 4)
    type = (guint16)(eth[16] << 8 | eth[17]);
  return type == ETH_P_IP || type == ETH_P_IPV6;
}

/* admit: what the link does to a frame that arrived at NOW: TRUE when it is
 * queued for delivery (s->due set), FALSE when the link dropped it. */
static gboolean
admit(Direction *d, Slot *s, gint64 now)
{
  guint32 frame = s->len - VNET_LEN;
  gint64 depart = now;

  if (d->p.loss > 0 && is_ip(s) && g_rand_double(d->rand) < d->p.loss) {
    STAT_ADD(d, lost, 1);
    return FALSE;
  }
  if (d->p.rate_bps > 0) {
    double backlog = 0;
    if (d->link_free > now)
      backlog = (double)(d->link_free - now) * (double)d->p.rate_bps / 8e9;
    if (backlog + frame > (double)d->p.queue_bytes) {
      STAT_ADD(d, queue_drops, 1);
      return FALSE;
    }
    gint64 ser = (gint64)((double)frame * 8e9 / (double)d->p.rate_bps);
    d->link_free = MAX(now, d->link_free) + ser;
    depart = d->link_free;
  }
  gint64 due = depart + d->p.delay_ns;
  if (d->p.jitter_ns > 0) {
    due += (gint64)g_rand_double_range(d->rand, -(double)d->p.jitter_ns, (double)d->p.jitter_ns);
    due = MAX(due, depart);
  }
  if (!d->reorder) {
    due = MAX(due, d->last_due);
    d->last_due = due;
  }
  s->due = due;
  s->seq = d->seq++;
  return TRUE;
}

/* flush: sends every frame due by NOW, in batches. A frame the kernel refuses
 * (the peer's backlog full: ENOBUFS) is counted and dropped, as a wire would. */
static void
flush(Direction *d, gint64 now)
{
  while (d->heap_len > 0 && d->heap[0]->due <= now) {
    int n = 0;
    while (n < BATCH && d->heap_len > 0 && d->heap[0]->due <= now) {
      Slot *s = heap_pop(d);
      d->tx_slot[n] = s;
      d->tx_iov[n] = (struct iovec){.iov_base = s->data, .iov_len = s->len};
      d->tx[n].msg_hdr = (struct msghdr){.msg_iov = &d->tx_iov[n], .msg_iovlen = 1};
      n++;
    }
    int done = 0;
    while (done < n) {
      int r = sendmmsg(d->out_fd, d->tx + done, (unsigned)(n - done), 0);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0) {
        STAT_ADD(d, send_errors, 1);
        done++;
        continue;
      }
      for (int i = done; i < done + r; i++) {
        STAT_ADD(d, out_frames, 1);
        STAT_ADD(d, out_bytes, d->tx_slot[i]->len - VNET_LEN);
      }
      done += r;
    }
    for (int i = 0; i < n; i++)
      slot_put(d, d->tx_slot[i]);
  }
}

/* receive: reads what has arrived (a few batches at most, so that due frames
 * are not held up) and puts each frame into the delay line or drops it. */
static void
receive(Direction *d)
{
  for (int round = 0; round < 4; round++) {
    int n = 0;
    for (; n < BATCH; n++) {
      Slot *s = slot_get(d);
      if (s == NULL)
        break;
      d->rx_slot[n] = s;
      d->rx_iov[n][0] = (struct iovec){.iov_base = s->buf, .iov_len = SLOT_BYTES};
      d->rx_iov[n][1] =
          (struct iovec){.iov_base = d->spill + (gsize)n * SPILL_BYTES, .iov_len = SPILL_BYTES};
      d->rx[n].msg_hdr = (struct msghdr){.msg_name = &d->rx_addr[n],
                                         .msg_namelen = sizeof d->rx_addr[n],
                                         .msg_iov = d->rx_iov[n],
                                         .msg_iovlen = 2};
    }
    if (n == 0) {
      /* the --memory bound: read and drop, else the socket would stall */
      guint8 sink[SLOT_BYTES];
      if (recv(d->in_fd, sink, sizeof sink, MSG_DONTWAIT | MSG_TRUNC) > 0)
        STAT_ADD(d, memory_drops, 1);
      return;
    }
    int r = recvmmsg(d->in_fd, d->rx, (unsigned)n, MSG_DONTWAIT, NULL);
    gint64 now = now_ns();
    for (int i = 0; i < n; i++) {
      Slot *s = d->rx_slot[i];
      if (i >= r) {
        slot_put(d, s);
        continue;
      }
      guint32 len = d->rx[i].msg_len;
      if (d->rx_addr[i].sll_pkttype == PACKET_OUTGOING || len < VNET_LEN + ETH_HLEN) {
        slot_put(d, s);
        continue;
      }
      STAT_ADD(d, in_frames, 1);
      STAT_ADD(d, in_bytes, len - VNET_LEN);
      if (d->rx[i].msg_hdr.msg_flags & MSG_TRUNC) {
        STAT_ADD(d, truncated, 1);
        slot_put(d, s);
        continue;
      }
      s->len = len;
      if (len > SLOT_BYTES) {
        s->data = g_malloc(len);
        memcpy(s->data, s->buf, SLOT_BYTES);
        memcpy(s->data + SLOT_BYTES, d->spill + (gsize)i * SPILL_BYTES, len - SLOT_BYTES);
        STAT_ADD(d, gso, 1);
        if (!d->warned_gso) {
          d->warned_gso = TRUE;
          g_printerr("linkem: %s: a frame of %u bytes arrived (segmentation offload at the "
                     "sender): it is carried whole; set `ip link set DEV gso_max_segs 1` on "
                     "the sending interface so that loss and rate act per packet\n",
                     d->name, len - VNET_LEN);
        }
      }
      if (admit(d, s, now))
        heap_push(d, s);
      else
        slot_put(d, s);
    }
    if (r < n)
      return;
  }
}

/* print_stats: one line of counters for D on standard error. Only the a->b
 * thread calls it (it also reads the kernel's drop counter of D's socket,
 * which resets on reading). */
static void
print_stats(Direction *d)
{
  struct tpacket_stats ks = {0};
  socklen_t kl = sizeof ks;
  if (getsockopt(d->in_fd, SOL_PACKET, PACKET_STATISTICS, &ks, &kl) == 0)
    d->st.socket_drops += ks.tp_drops;
  g_printerr("linkem: %s: in %" G_GUINT64_FORMAT " frames %" G_GUINT64_FORMAT
             " bytes; out %" G_GUINT64_FORMAT " frames %" G_GUINT64_FORMAT
             " bytes; lost %" G_GUINT64_FORMAT "; queue-drops %" G_GUINT64_FORMAT
             "; socket-drops %" G_GUINT64_FORMAT "; memory-drops %" G_GUINT64_FORMAT
             "; send-errors %" G_GUINT64_FORMAT "; gso %" G_GUINT64_FORMAT
             "; truncated %" G_GUINT64_FORMAT "\n",
             d->name, STAT_GET(d, in_frames), STAT_GET(d, in_bytes), STAT_GET(d, out_frames),
             STAT_GET(d, out_bytes), STAT_GET(d, lost), STAT_GET(d, queue_drops),
             d->st.socket_drops, STAT_GET(d, memory_drops), STAT_GET(d, send_errors),
             STAT_GET(d, gso), STAT_GET(d, truncated));
}

static Direction *directions[2];

/* on_wake: a signal (thread a->b) or the stop event (thread b->a). Returns
 * FALSE when the thread is to end. */
static gboolean
on_wake(Direction *d)
{
  if (!d->wake_is_signal) {
    guint64 v;
    if (read(d->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
      return FALSE;
    return !stopping;
  }
  struct signalfd_siginfo si;
  while (read(d->wake_fd, &si, sizeof si) == sizeof si) {
    if (si.ssi_signo == SIGUSR1) {
      print_stats(directions[0]);
      print_stats(directions[1]);
    } else {
      stopping = TRUE;
    }
  }
  return !stopping;
}

/* fail: ends linkem with status 1 after an error of one direction's thread
 * (the signal wakes the a->b thread, which stops the other). */
static void *
fail(void)
{
  exit_status = 1;
  stopping = TRUE;
  kill(getpid(), SIGTERM);
  return NULL;
}

/* run: one direction's loop, until it is told to stop. Returns NULL. */
static void *
run(void *arg)
{
  Direction *d = arg;
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  for (;;) {
    gint64 now = now_ns();
    flush(d, now);
    struct pollfd pfd[2] = {{.fd = d->in_fd, .events = POLLIN},
                            {.fd = d->wake_fd, .events = POLLIN}};
    struct timespec ts, *tsp = NULL;
    if (d->heap_len > 0) {
      gint64 wait = MAX(d->heap[0]->due - now, 0);
      ts = (struct timespec){.tv_sec = wait / NS, .tv_nsec = wait % NS};
      tsp = &ts;
    }
    if (ppoll(pfd, 2, tsp, NULL) < 0 && errno != EINTR) {
      g_printerr("linkem: %s: poll failed: %s\n", d->name, g_strerror(errno));
      return fail();
    }
    if (pfd[1].revents && !on_wake(d))
      return NULL;
    if (pfd[0].revents & POLLERR) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(d->in_fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == ENODEV || err == ENXIO) {
        g_printerr("linkem: %s: the interface went away: %s\n", d->name, g_strerror(err));
        return fail();
      }
    }
    if (pfd[0].revents & POLLIN)
      receive(d);
  }
}

/* open_port: an AF_PACKET socket bound to IFNAME, promiscuous, with virtio-net
 * headers and big buffers; sets ERROR (naming the interface) on failure. */
static int
open_port(const char *ifname, GError **error)
{
  unsigned idx = if_nametoindex(ifname);
  if (idx == 0) {
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
                "no interface '%s' in this network namespace: run linkem in the namespace "
                "that holds both ends (ip netns exec NS linkem …; lab/link.sh sets one up)",
                ifname);
    return -1;
  }
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (fd < 0) {
    int e = errno;
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
                "cannot open a packet socket: %s%s", g_strerror(e),
                e == EPERM ? " (linkem needs CAP_NET_RAW: run it as root)" : "");
    return -1;
  }
  int one = 1, rcv = 32 << 20, snd = 8 << 20;
  struct packet_mreq mr = {.mr_ifindex = (int)idx, .mr_type = PACKET_MR_PROMISC};
  struct sockaddr_ll sll = {
      .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = (int)idx};
  const char *what = NULL;
  if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0)
    what = "PACKET_VNET_HDR";
  else if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0)
    what = "PACKET_IGNORE_OUTGOING";
  else if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0)
    what = "PACKET_QDISC_BYPASS";
  else if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0)
    what = "bind";
  else if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0)
    what = "promiscuous mode";
  if (what != NULL) {
    int e = errno;
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "cannot set up %s (%s): %s",
                ifname, what, g_strerror(e));
    close(fd);
    return -1;
  }
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof snd) < 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd);
  return fd;
}

static int
interface_mtu(int fd, const char *ifname)
{
  struct ifreq ifr = {0};
  g_strlcpy(ifr.ifr_name, ifname, sizeof ifr.ifr_name);
  return ioctl(fd, SIOCGIFMTU, &ifr) == 0 ? ifr.ifr_mtu : 0;
}

static char *
describe(const LinkParams *p)
{
  GString *s = g_string_new(NULL);
  g_string_append_printf(s, "delay %.3f ms", (double)p->delay_ns / 1e6);
  if (p->jitter_ns)
    g_string_append_printf(s, " ± %.3f ms", (double)p->jitter_ns / 1e6);
  g_string_append_printf(s, ", loss %g %%", p->loss * 100);
  if (p->rate_bps)
    g_string_append_printf(s, ", rate %g Mbit/s, queue %" G_GUINT64_FORMAT " bytes",
                           (double)p->rate_bps / 1e6, p->queue_bytes);
  else
    g_string_append(s, ", no rate limit");
  return g_string_free(s, FALSE);
}

static char *opt_delay, *opt_jitter, *opt_loss, *opt_rate, *opt_queue, *opt_memory;
static gboolean opt_reorder;
static gint64 opt_seed = -1;

static const GOptionEntry entries[] = {
    {"delay", 'd', 0, G_OPTION_ARG_STRING, &opt_delay,
     "One-way delay: 50ms, 0.2s, 200us (\"X/Y\": A->B/B->A; default 0)", "T[/T]"},
    {"jitter", 'j', 0, G_OPTION_ARG_STRING, &opt_jitter,
     "Uniform jitter ± T on the delay; frames keep their order unless --reorder", "T[/T]"},
    {"loss", 'l', 0, G_OPTION_ARG_STRING, &opt_loss,
     "Random loss of IP frames in percent: 1, 0.5 (default 0)", "P[/P]"},
    {"rate", 'r', 0, G_OPTION_ARG_STRING, &opt_rate,
     "Rate limit in bits/s of Ethernet frames: 100M, 1G, 2.5Mbit (default: none)", "R[/R]"},
    {"queue", 'q', 0, G_OPTION_ARG_STRING, &opt_queue,
     "Bottleneck queue in bytes, tail drop: 256K, 8M (default: one bandwidth-delay product, "
     "rate × both delays, at least 64 frames)",
     "B[/B]"},
    {"reorder", 0, 0, G_OPTION_ARG_NONE, &opt_reorder,
     "Let jitter reorder frames (each frame gets its own delay)", NULL},
    {"seed", 0, 0, G_OPTION_ARG_INT64, &opt_seed, "Seed of loss and jitter (default: random)", "N"},
    {"memory", 0, 0, G_OPTION_ARG_STRING, &opt_memory,
     "Most frame memory per direction; frames beyond it are dropped (default 1G)", "B"},
    {NULL}};

/* setup: parses the command line into the two directions' parameters. */
static gboolean
setup(int argc, char **argv, LinkParams p[2], guint *max_slots, char ***ifaces, GError **error)
{
  g_autoptr(GOptionContext) ctx = g_option_context_new("IFACE_A IFACE_B - emulate a WAN link");
  g_option_context_set_summary(
      ctx, "Carries every Ethernet frame between two interfaces of this namespace, adding the "
           "delay, jitter, loss and rate limit of a WAN link (each direction its own when given "
           "as A->B/B->A). lab/link.sh builds namespaces A and B joined through linkem.");
  g_option_context_set_description(
      ctx, "Example: linkem --delay 50ms --loss 1 --rate 100M ea eb   (100 ms RTT, 1 % loss each "
           "way)\nSIGUSR1 prints the counters; SIGINT/SIGTERM prints them and exits.\n");
  g_option_context_add_main_entries(ctx, entries, NULL);
  if (!g_option_context_parse(ctx, &argc, &argv, error))
    return FALSE;
  if (argc != 3) {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                "give the two interfaces to join, e.g. linkem --delay 50ms ea eb (see --help)");
    return FALSE;
  }
  double delay[2] = {0, 0}, jitter[2] = {0, 0}, loss[2] = {0, 0}, rate[2] = {0, 0},
         queue[2] = {0, 0}, memory = 1024.0 * 1024 * 1024;
  if ((opt_delay && !parse_pair("delay", opt_delay, parse_time, "50ms/10ms", delay, error)) ||
      (opt_jitter && !parse_pair("jitter", opt_jitter, parse_time, "5ms", jitter, error)) ||
      (opt_loss && !parse_pair("loss", opt_loss, parse_percent, "0.5 or 1/0", loss, error)) ||
      (opt_rate && !parse_pair("rate", opt_rate, parse_rate, "100M or 1G/100M", rate, error)) ||
      (opt_queue && !parse_pair("queue", opt_queue, parse_bytes, "256K or 8M", queue, error)))
    return FALSE;
  if (opt_memory && !parse_bytes(opt_memory, &memory)) {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                "--memory '%s' is not valid: give bytes, e.g. --memory 512M", opt_memory);
    return FALSE;
  }
  for (int i = 0; i < 2; i++) {
    if (opt_rate && rate[i] > 0 && rate[i] < 1000) {
      g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                  "--rate '%s' is below 1 kbit/s: give e.g. 100M (bits per second)", opt_rate);
      return FALSE;
    }
    p[i] = (LinkParams){.delay_ns = (gint64)delay[i],
                        .jitter_ns = (gint64)jitter[i],
                        .loss = loss[i],
                        .rate_bps = (guint64)rate[i],
                        .queue_bytes = (guint64)queue[i]};
  }
  for (int i = 0; i < 2; i++) {
    if (p[i].rate_bps && !p[i].queue_bytes) {
      double bdp = (double)p[i].rate_bps / 8 * (double)(p[0].delay_ns + p[1].delay_ns) / 1e9;
      p[i].queue_bytes = (guint64)MAX(bdp, 64.0 * 1514);
    }
  }
  *max_slots = (guint)MAX(memory / sizeof(Slot), CHUNK_SLOTS);
  *ifaces = g_strdupv(argv + 1);
  return TRUE;
}

static void
direction_init(Direction *d, const char *name, int in_fd, int out_fd, const LinkParams *p,
               guint max_slots, guint32 seed)
{
  memset(d, 0, sizeof *d);
  d->name = name;
  d->in_fd = in_fd;
  d->out_fd = out_fd;
  d->p = *p;
  d->reorder = opt_reorder;
  d->rand = g_rand_new_with_seed(seed);
  d->max_slots = max_slots;
  d->chunks = g_ptr_array_new_with_free_func(g_free);
  d->spill = g_malloc((gsize)BATCH * SPILL_BYTES);
}

static void
direction_clear(Direction *d)
{
  while (d->heap_len > 0)
    slot_put(d, heap_pop(d));
  g_rand_free(d->rand);
  g_ptr_array_unref(d->chunks);
  g_free(d->heap);
  g_free(d->free_slots);
  g_free(d->spill);
}

int
main(int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  LinkParams p[2];
  guint max_slots;
  g_auto(GStrv) ifaces = NULL;

  if (!setup(argc, argv, p, &max_slots, &ifaces, &error)) {
    g_printerr("linkem: %s\n", error->message);
    return 2;
  }
  int fa = open_port(ifaces[0], &error);
  int fb = fa < 0 ? -1 : open_port(ifaces[1], &error);
  if (fa < 0 || fb < 0) {
    g_printerr("linkem: %s\n", error->message);
    return 1;
  }

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (sfd < 0 || efd < 0) {
    g_printerr("linkem: cannot make a signalfd or eventfd: %s\n", g_strerror(errno));
    return 1;
  }

  guint32 seed = opt_seed >= 0 ? (guint32)opt_seed : g_random_int();
  Direction *ab = g_new(Direction, 1), *ba = g_new(Direction, 1);
  direction_init(ab, "a->b", fa, fb, &p[0], max_slots, seed);
  direction_init(ba, "b->a", fb, fa, &p[1], max_slots, seed ^ 0x9e3779b9u);
  ab->wake_fd = sfd;
  ab->wake_is_signal = TRUE;
  ba->wake_fd = efd;
  directions[0] = ab;
  directions[1] = ba;

  g_autofree char *da = describe(&p[0]);
  g_autofree char *db = describe(&p[1]);
  g_printerr("linkem: ready: %s (mtu %d) <-> %s (mtu %d); a->b: %s; b->a: %s%s; seed %u\n",
             ifaces[0], interface_mtu(fa, ifaces[0]), ifaces[1], interface_mtu(fb, ifaces[1]), da,
             db, opt_reorder ? "; reordering allowed" : "", seed);

  pthread_t thread;
  int e = pthread_create(&thread, NULL, run, ba);
  if (e != 0) {
    g_printerr("linkem: cannot start a thread: %s\n", g_strerror(e));
    return 1;
  }
  run(ab);
  stopping = TRUE;
  guint64 one = 1;
  if (write(efd, &one, sizeof one) < 0)
    g_printerr("linkem: cannot wake the b->a thread: %s\n", g_strerror(errno));
  pthread_join(thread, NULL);
  print_stats(ab);
  print_stats(ba);
  direction_clear(ab);
  direction_clear(ba);
  g_free(ab);
  g_free(ba);
  close(fa);
  close(fb);
  close(sfd);
  close(efd);
  return exit_status;
}
