/* Encoding and decoding of the transfer protocol's frames: see wire.h and
 * docs/protocol.md §8. */
#include <string.h>

#include "transfer/wire.h"

/* ---- writing ------------------------------------------------------------ */

static void
put8(GByteArray *out, guint8 v)
{
  g_byte_array_append(out, &v, 1);
}

static void
put16(GByteArray *out, guint16 v)
{
  guint8 b[2] = {v >> 8, v & 0xff};
  g_byte_array_append(out, b, 2);
}

static void
put32(GByteArray *out, guint32 v)
{
  guint8 b[4] = {v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff};
  g_byte_array_append(out, b, 4);
}

static void
put64(GByteArray *out, guint64 v)
{
  put32(out, (guint32)(v >> 32));
  put32(out, (guint32)v);
}

static void
put_str16(GByteArray *out, const char *s, gsize max)
{
  gsize n = s != NULL ? strlen(s) : 0;
  if (n > max)
    n = max;
  put16(out, (guint16)n);
  if (n > 0)
    g_byte_array_append(out, (const guint8 *)s, (guint)n);
}

/* Starts a frame; frame_end() fills in the length. */
static gsize
frame_begin(GByteArray *out, FerryFrameType type)
{
  gsize at = out->len;
  put8(out, (guint8)type);
  put32(out, 0);
  return at;
}

static void
frame_end(GByteArray *out, gsize at)
{
  guint32 n = (guint32)(out->len - at - FERRY_WIRE_FRAME_HEADER);
  out->data[at + 1] = n >> 24;
  out->data[at + 2] = (n >> 16) & 0xff;
  out->data[at + 3] = (n >> 8) & 0xff;
  out->data[at + 4] = n & 0xff;
}

void
ferry_wire_put_offer(GByteArray *out, const FerryWireOffer *o)
{
  gsize at = frame_begin(out, FERRY_FRAME_OFFER);
  put8(out, FERRY_WIRE_VERSION);
  g_byte_array_append(out, o->transfer_id, FERRY_TRANSFER_ID_LEN);
  put32(out, o->chunk_size);
  put64(out, o->files);
  put64(out, o->dirs);
  put64(out, o->symlinks);
  put64(out, o->bytes);
  put32(out, o->n_roots);
  put8(out, (guint8)o->n_names);
  for (guint i = 0; i < o->n_names; i++)
    put_str16(out, o->names[i], FERRY_PATH_NAME_MAX_WIRE);
  frame_end(out, at);
}

void
ferry_wire_put_entry(GByteArray *out, const FerryWireEntry *e)
{
  gsize at = frame_begin(out, FERRY_FRAME_ENTRY);
  put32(out, e->id);
  put8(out, (guint8)e->type);
  put32(out, e->mode);
  put64(out, (guint64)e->mtime_ns);
  put64(out, e->size);
  put_str16(out, e->path, G_MAXUINT16);
  put_str16(out, e->link_target, G_MAXUINT16);
  frame_end(out, at);
}

void
ferry_wire_put_file_end(GByteArray *out, guint32 file_id, const guint8 root[FERRY_HASH_LEN])
{
  gsize at = frame_begin(out, FERRY_FRAME_FILE_END);
  put32(out, file_id);
  g_byte_array_append(out, root, FERRY_HASH_LEN);
  frame_end(out, at);
}

void
ferry_wire_put_message(GByteArray *out, FerryFrameType type, guint32 file_id, const char *message)
{
  gsize at = frame_begin(out, type);
  if (type == FERRY_FRAME_FILE_FAILED)
    put32(out, file_id);
  put_str16(out, message, FERRY_WIRE_MAX_MESSAGE);
  frame_end(out, at);
}

void
ferry_wire_put_u32(GByteArray *out, FerryFrameType type, guint32 value)
{
  gsize at = frame_begin(out, type);
  put32(out, value);
  frame_end(out, at);
}

void
ferry_wire_put_u8(GByteArray *out, FerryFrameType type, guint8 value)
{
  gsize at = frame_begin(out, type);
  put8(out, value);
  frame_end(out, at);
}

void
ferry_wire_put_empty(GByteArray *out, FerryFrameType type)
{
  frame_end(out, frame_begin(out, type));
}

void
ferry_wire_put_file_ok(GByteArray *out, guint32 file_id, guint8 status)
{
  gsize at = frame_begin(out, FERRY_FRAME_FILE_OK);
  put32(out, file_id);
  put8(out, status);
  frame_end(out, at);
}

void
ferry_wire_put_want(GByteArray *out, guint32 file_id, const FerryCheckpointFile *file)
{
  gsize at = frame_begin(out, FERRY_FRAME_WANT);
  guint64 n = file->n_chunks;
  gboolean usable = n <= FERRY_WIRE_WANT_MAX_CHUNKS && file->hashes != NULL;

  put32(out, file_id);
  put64(out, usable ? n : 0);
  if (usable) {
    g_byte_array_append(out, file->verified, (guint)((n + 7) / 8));
    for (guint64 i = 0; i < n; i++)
      if (ferry_checkpoint_file_is_verified(file, i))
        g_byte_array_append(out, file->hashes + i * FERRY_HASH_LEN, FERRY_HASH_LEN);
  }
  frame_end(out, at);
}

void
ferry_wire_chunk_header(guint8 out[FERRY_WIRE_CHUNK_HEADER], const FerryWireChunk *c)
{
  out[0] = FERRY_FRAME_CHUNK;
  for (int i = 0; i < 4; i++)
    out[1 + i] = (guint8)(c->file_id >> (24 - 8 * i));
  for (int i = 0; i < 8; i++)
    out[5 + i] = (guint8)(c->index >> (56 - 8 * i));
  for (int i = 0; i < 4; i++)
    out[13 + i] = (guint8)(c->len >> (24 - 8 * i));
  memcpy(out + 17, c->hash, FERRY_HASH_LEN);
}

/* ---- reading ------------------------------------------------------------ */

void
ferry_wire_reader_init(FerryWireReader *r)
{
  r->buf = g_byte_array_new();
  r->off = 0;
}

void
ferry_wire_reader_clear(FerryWireReader *r)
{
  if (r->buf != NULL)
    g_byte_array_unref(r->buf);
  r->buf = NULL;
}

void
ferry_wire_reader_feed(FerryWireReader *r, const guint8 *data, gsize len)
{
  if (r->off > 0) {
    g_byte_array_remove_range(r->buf, 0, (guint)r->off);
    r->off = 0;
  }
  g_byte_array_append(r->buf, data, (guint)len);
}

int
ferry_wire_reader_next(FerryWireReader *r, guint8 *type, const guint8 **payload, guint32 *len)
{
  gsize avail = r->buf->len - r->off;
  if (avail < FERRY_WIRE_FRAME_HEADER)
    return 0;
  const guint8 *p = r->buf->data + r->off;
  guint32 n = (guint32)p[1] << 24 | (guint32)p[2] << 16 | (guint32)p[3] << 8 | p[4];
  if (n > FERRY_WIRE_MAX_PAYLOAD)
    return FERRY_ERR_TOO_LONG;
  if (avail - FERRY_WIRE_FRAME_HEADER < n)
    return 0;
  *type = p[0];
  *payload = p + FERRY_WIRE_FRAME_HEADER;
  *len = n;
  r->off += FERRY_WIRE_FRAME_HEADER + n;
  return 1;
}

/* A cursor over a payload; every get fails once it runs out. */
typedef struct {
  const guint8 *p;
  gsize len, off;
  gboolean bad;
} Cur;

static guint64
getn(Cur *c, int bytes)
{
  guint64 v = 0;
  if (c->bad || c->len - c->off < (gsize)bytes) {
    c->bad = TRUE;
    return 0;
  }
  for (int i = 0; i < bytes; i++)
    v = v << 8 | c->p[c->off + i];
  c->off += bytes;
  return v;
}

static const guint8 *
getb(Cur *c, gsize n)
{
  if (c->bad || c->len - c->off < n) {
    c->bad = TRUE;
    return NULL;
  }
  const guint8 *at = c->p + c->off;
  c->off += n;
  return at;
}

/* A length-prefixed string without NUL bytes, or NULL (c->bad set). */
static char *
get_str16(Cur *c, gsize max)
{
  gsize n = getn(c, 2);
  const guint8 *s = getb(c, n);
  if (s == NULL || n > max || memchr(s, 0, n) != NULL) {
    c->bad = TRUE;
    return NULL;
  }
  return g_strndup((const char *)s, n);
}

static int
done(const Cur *c)
{
  return c->bad || c->off != c->len ? FERRY_ERR_INVALID : 0;
}

int
ferry_wire_get_offer(const guint8 *p, gsize len, FerryWireOffer *o)
{
  Cur c = {p, len, 0, FALSE};
  memset(o, 0, sizeof *o);
  guint version = getn(&c, 1);
  if (!c.bad && version != FERRY_WIRE_VERSION)
    return FERRY_ERR_VERSION;
  const guint8 *id = getb(&c, FERRY_TRANSFER_ID_LEN);
  if (id != NULL)
    memcpy(o->transfer_id, id, FERRY_TRANSFER_ID_LEN);
  o->chunk_size = getn(&c, 4);
  o->files = getn(&c, 8);
  o->dirs = getn(&c, 8);
  o->symlinks = getn(&c, 8);
  o->bytes = getn(&c, 8);
  o->n_roots = getn(&c, 4);
  guint n = getn(&c, 1);
  if (n > G_N_ELEMENTS(o->names) || !ferry_chunk_size_is_valid(o->chunk_size))
    c.bad = TRUE;
  for (guint i = 0; i < n && !c.bad; i++) {
    o->names[i] = get_str16(&c, FERRY_PATH_NAME_MAX_WIRE);
    if (o->names[i] != NULL)
      o->n_names = i + 1;
  }
  int rc = done(&c);
  if (rc != 0)
    ferry_wire_offer_clear(o);
  return rc;
}

void
ferry_wire_offer_clear(FerryWireOffer *o)
{
  for (guint i = 0; i < o->n_names; i++)
    g_free(o->names[i]);
  o->n_names = 0;
}

int
ferry_wire_get_entry(const guint8 *p, gsize len, FerryWireEntry *e)
{
  Cur c = {p, len, 0, FALSE};
  memset(e, 0, sizeof *e);
  e->id = getn(&c, 4);
  guint type = getn(&c, 1);
  e->mode = getn(&c, 4);
  e->mtime_ns = (gint64)getn(&c, 8);
  e->size = getn(&c, 8);
  if (type > FERRY_ENTRY_SYMLINK || e->mode > 07777)
    c.bad = TRUE;
  e->type = (FerryEntryType)type;
  e->path = get_str16(&c, G_MAXUINT16);
  char *target = get_str16(&c, G_MAXUINT16);
  if (e->type == FERRY_ENTRY_SYMLINK)
    e->link_target = target;
  else if (target != NULL && target[0] != '\0')
    c.bad = TRUE;
  if (e->type != FERRY_ENTRY_SYMLINK)
    g_free(target);
  if (e->type != FERRY_ENTRY_FILE && e->size != 0)
    c.bad = TRUE;
  int rc = done(&c);
  if (rc != 0)
    ferry_wire_entry_clear(e);
  return rc;
}

void
ferry_wire_entry_clear(FerryWireEntry *e)
{
  g_clear_pointer(&e->path, g_free);
  g_clear_pointer(&e->link_target, g_free);
}

int
ferry_wire_get_file_end(const guint8 *p, gsize len, guint32 *file_id, guint8 root[FERRY_HASH_LEN])
{
  Cur c = {p, len, 0, FALSE};
  *file_id = getn(&c, 4);
  const guint8 *r = getb(&c, FERRY_HASH_LEN);
  if (r != NULL)
    memcpy(root, r, FERRY_HASH_LEN);
  return done(&c);
}

int
ferry_wire_get_message(const guint8 *p, gsize len, gboolean with_id, guint32 *file_id,
                       char **message)
{
  Cur c = {p, len, 0, FALSE};
  guint32 id = with_id ? getn(&c, 4) : 0;
  char *m = get_str16(&c, FERRY_WIRE_MAX_MESSAGE);
  int rc = done(&c);
  if (rc != 0) {
    g_free(m);
    return rc;
  }
  /* What a peer says is shown to a user: no escape sequences, valid text. */
  char *clean = g_utf8_make_valid(m, -1);
  g_free(m);
  for (char *s = clean; *s != '\0'; s++)
    if ((guchar)*s < 0x20 || *s == 0x7f)
      *s = '?';
  if (file_id != NULL)
    *file_id = id;
  *message = clean;
  return 0;
}

int
ferry_wire_get_u32(const guint8 *p, gsize len, guint32 *value)
{
  Cur c = {p, len, 0, FALSE};
  *value = getn(&c, 4);
  return done(&c);
}

int
ferry_wire_get_u8(const guint8 *p, gsize len, guint8 *value)
{
  Cur c = {p, len, 0, FALSE};
  *value = getn(&c, 1);
  return done(&c);
}

int
ferry_wire_get_file_ok(const guint8 *p, gsize len, guint32 *file_id, guint8 *status)
{
  Cur c = {p, len, 0, FALSE};
  *file_id = getn(&c, 4);
  *status = getn(&c, 1);
  return done(&c);
}

static guint64
popcount_bytes(const guint8 *b, gsize n)
{
  guint64 k = 0;
  for (gsize i = 0; i < n; i++)
    k += (guint64)__builtin_popcount(b[i]);
  return k;
}

int
ferry_wire_get_want(const guint8 *p, gsize len, FerryWireWant *w)
{
  Cur c = {p, len, 0, FALSE};
  memset(w, 0, sizeof *w);
  w->file_id = getn(&c, 4);
  w->n_chunks = getn(&c, 8);
  if (w->n_chunks > FERRY_WIRE_WANT_MAX_CHUNKS)
    return c.bad ? FERRY_ERR_INVALID : FERRY_ERR_TOO_LONG;
  gsize nb = (gsize)((w->n_chunks + 7) / 8);
  w->bitmap = getb(&c, nb);
  if (w->bitmap != NULL) {
    /* Bits past the last chunk must be clear: one encoding per state. */
    if (w->n_chunks % 8 != 0 && (w->bitmap[nb - 1] & (0xff >> (w->n_chunks % 8))) != 0)
      c.bad = TRUE;
    w->n_set = popcount_bytes(w->bitmap, nb);
    if (!c.bad && (len - c.off) / FERRY_HASH_LEN < w->n_set)
      c.bad = TRUE;
    w->hashes = getb(&c, (gsize)w->n_set * FERRY_HASH_LEN);
  }
  return done(&c);
}

gboolean
ferry_wire_want_has(const FerryWireWant *w, guint64 index)
{
  return index < w->n_chunks && (w->bitmap[index / 8] >> (7 - index % 8)) & 1;
}

int
ferry_wire_get_chunk_header(const guint8 *p, gsize len, FerryWireChunk *out)
{
  Cur c = {p, len, 0, FALSE};
  if (getn(&c, 1) != FERRY_FRAME_CHUNK)
    return FERRY_ERR_INVALID;
  out->file_id = getn(&c, 4);
  out->index = getn(&c, 8);
  out->len = getn(&c, 4);
  const guint8 *h = getb(&c, FERRY_HASH_LEN);
  if (h != NULL)
    memcpy(out->hash, h, FERRY_HASH_LEN);
  if (!c.bad && (out->len == 0 || out->len > FERRY_CHUNK_SIZE_MAX))
    return FERRY_ERR_INVALID;
  return done(&c);
}
