/* Fuzz target: the transfer protocol's frame decoders (src/transfer/wire.h).
 *
 * The input is read twice. First as one frame: its first byte picks the
 * decoder (a known frame type its own decoder, any other byte one of them
 * by value) and the bytes after the 5-byte frame header are its payload;
 * the chunk-header decoder gets the whole input, type byte included. Then
 * as a control stream: it is fed to a FerryWireReader in three pieces,
 * every frame the reader yields must be exactly the next bytes of the
 * input, and each is decoded by its type.
 *
 * The oracles: every decoder returns 0 or one of its documented errors;
 * whatever decodes is encoded again with the matching put function into a
 * frame with the right header whose payload decodes to the same values.
 * Where the encoding is canonical (all frames but messages and WANT) the
 * payload must also be the very bytes that were decoded. Messages must
 * come out as valid UTF-8 without control characters; a WANT must list
 * exactly the chunks ferry_wire_want_has() reports, with their hashes, and
 * survive being rebuilt from a checkpoint as a receiver builds it. */
#include <stdint.h>
#include <string.h>

#include "transfer/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef enum {
  DEC_OFFER,
  DEC_ENTRY,
  DEC_FILE_END,
  DEC_MESSAGE_ID,
  DEC_MESSAGE,
  DEC_U32,
  DEC_U8,
  DEC_FILE_OK,
  DEC_WANT,
  DEC_CHUNK,
  DEC_COUNT,
  DEC_EMPTY, /* DONE: no decoder, an empty payload */
} Decoder;

static void
check(gboolean ok, const char *what)
{
  if (!ok)
    g_error("fuzz-wire: %s", what);
}

static guint32
be32(const guint8 *p)
{
  return (guint32)p[0] << 24 | (guint32)p[1] << 16 | (guint32)p[2] << 8 | p[3];
}

static Decoder
decoder_for(guint8 type)
{
  switch (type) {
  case FERRY_FRAME_OFFER:
    return DEC_OFFER;
  case FERRY_FRAME_ENTRY:
    return DEC_ENTRY;
  case FERRY_FRAME_FILE_END:
    return DEC_FILE_END;
  case FERRY_FRAME_FILE_FAILED:
    return DEC_MESSAGE_ID;
  case FERRY_FRAME_MANIFEST_END:
    return DEC_U32;
  case FERRY_FRAME_ACCEPT:
    return DEC_U8;
  case FERRY_FRAME_DECLINE:
  case FERRY_FRAME_ABORT:
    return DEC_MESSAGE;
  case FERRY_FRAME_WANT:
    return DEC_WANT;
  case FERRY_FRAME_FILE_OK:
    return DEC_FILE_OK;
  case FERRY_FRAME_DONE:
    return DEC_EMPTY;
  case FERRY_FRAME_CHUNK:
    return DEC_CHUNK;
  default:
    return (Decoder)(type % DEC_COUNT);
  }
}

/* The frame an encoder appended: checks its header and returns its
 * payload and length. */
static const guint8 *
frame_payload(const GByteArray *out, guint8 type, guint32 *len)
{
  check(out->len >= FERRY_WIRE_FRAME_HEADER, "an encoder wrote less than a frame header");
  check(out->data[0] == type, "an encoder wrote the wrong frame type");
  *len = be32(out->data + 1);
  check(*len == out->len - FERRY_WIRE_FRAME_HEADER, "an encoder's length field is wrong");
  check(*len <= FERRY_WIRE_MAX_PAYLOAD, "an encoder wrote a payload over the limit");
  return out->data + FERRY_WIRE_FRAME_HEADER;
}

static void
check_same_bytes(const guint8 *a, gsize a_len, const guint8 *b, gsize b_len, const char *what)
{
  check(a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0), what);
}

static void
check_rc(int rc, gboolean version_possible, gboolean too_long_possible)
{
  check(rc == 0 || rc == FERRY_ERR_INVALID || (version_possible && rc == FERRY_ERR_VERSION) ||
            (too_long_possible && rc == FERRY_ERR_TOO_LONG),
        "a decoder returned an undocumented code");
}

static gboolean
offer_equal(const FerryWireOffer *a, const FerryWireOffer *b)
{
  if (memcmp(a->transfer_id, b->transfer_id, FERRY_TRANSFER_ID_LEN) != 0 ||
      a->chunk_size != b->chunk_size || a->files != b->files || a->dirs != b->dirs ||
      a->symlinks != b->symlinks || a->bytes != b->bytes || a->n_roots != b->n_roots ||
      a->n_names != b->n_names)
    return FALSE;
  for (guint i = 0; i < a->n_names; i++)
    if (strcmp(a->names[i], b->names[i]) != 0)
      return FALSE;
  return TRUE;
}

static void
fuzz_offer(const guint8 *p, gsize len)
{
  FerryWireOffer o, again;
  int rc = ferry_wire_get_offer(p, len, &o);
  check_rc(rc, TRUE, FALSE);
  if (rc != 0)
    return;
  check(o.n_names <= G_N_ELEMENTS(o.names), "an offer has too many names");
  check(ferry_chunk_size_is_valid(o.chunk_size), "an offer has an invalid chunk size");
  for (guint i = 0; i < o.n_names; i++)
    check(strlen(o.names[i]) <= FERRY_PATH_NAME_MAX_WIRE, "an offer name is too long");
  GByteArray *out = g_byte_array_new();
  guint32 n;
  ferry_wire_put_offer(out, &o);
  const guint8 *q = frame_payload(out, FERRY_FRAME_OFFER, &n);
  check_same_bytes(q, n, p, len, "an offer does not re-encode to its own bytes");
  check(ferry_wire_get_offer(q, n, &again) == 0, "a re-encoded offer does not decode");
  check(offer_equal(&o, &again), "a re-encoded offer decodes to other values");
  ferry_wire_offer_clear(&again);
  ferry_wire_offer_clear(&o);
  g_byte_array_unref(out);
}

static void
fuzz_entry(const guint8 *p, gsize len)
{
  FerryWireEntry e, again;
  int rc = ferry_wire_get_entry(p, len, &e);
  check_rc(rc, FALSE, FALSE);
  if (rc != 0)
    return;
  check(e.type <= FERRY_ENTRY_SYMLINK && e.mode <= 07777, "an entry has a bad type or mode");
  check(e.path != NULL, "an entry has no path");
  check((e.link_target != NULL) == (e.type == FERRY_ENTRY_SYMLINK),
        "an entry's link target does not match its type");
  check(e.type == FERRY_ENTRY_FILE || e.size == 0, "a non-file entry has a size");
  GByteArray *out = g_byte_array_new();
  guint32 n;
  ferry_wire_put_entry(out, &e);
  const guint8 *q = frame_payload(out, FERRY_FRAME_ENTRY, &n);
  check_same_bytes(q, n, p, len, "an entry does not re-encode to its own bytes");
  check(ferry_wire_get_entry(q, n, &again) == 0, "a re-encoded entry does not decode");
  check(again.id == e.id && again.type == e.type && again.mode == e.mode &&
            again.mtime_ns == e.mtime_ns && again.size == e.size &&
            strcmp(again.path, e.path) == 0 &&
            (e.link_target == NULL
                 ? again.link_target == NULL
                 : again.link_target != NULL && strcmp(again.link_target, e.link_target) == 0),
        "a re-encoded entry decodes to other values");
  ferry_wire_entry_clear(&again);
  ferry_wire_entry_clear(&e);
  g_byte_array_unref(out);
}

static void
fuzz_file_end(const guint8 *p, gsize len)
{
  guint32 id, id2;
  guint8 root[FERRY_HASH_LEN], root2[FERRY_HASH_LEN];
  int rc = ferry_wire_get_file_end(p, len, &id, root);
  check_rc(rc, FALSE, FALSE);
  if (rc != 0)
    return;
  GByteArray *out = g_byte_array_new();
  guint32 n;
  ferry_wire_put_file_end(out, id, root);
  const guint8 *q = frame_payload(out, FERRY_FRAME_FILE_END, &n);
  check_same_bytes(q, n, p, len, "a FILE_END does not re-encode to its own bytes");
  check(ferry_wire_get_file_end(q, n, &id2, root2) == 0 && id2 == id &&
            memcmp(root, root2, FERRY_HASH_LEN) == 0,
        "a re-encoded FILE_END decodes to other values");
  g_byte_array_unref(out);
}

/* What a peer's message may look like once decoded: it is shown to a user. */
static void
check_shown_text(const char *m)
{
  check(g_utf8_validate(m, -1, NULL), "a decoded message is not valid UTF-8");
  for (const char *s = m; *s != '\0'; s++)
    check((guchar)*s >= 0x20 && *s != 0x7f, "a decoded message has a control character");
}

static void
fuzz_message(const guint8 *p, gsize len, gboolean with_id)
{
  guint32 id = 0, id2 = 0;
  char *m = NULL, *m2 = NULL;
  int rc = ferry_wire_get_message(p, len, with_id, with_id ? &id : NULL, &m);
  check_rc(rc, FALSE, FALSE);
  if (rc != 0)
    return;
  check_shown_text(m);
  FerryFrameType type = with_id ? FERRY_FRAME_FILE_FAILED : FERRY_FRAME_ABORT;
  GByteArray *out = g_byte_array_new();
  guint32 n;
  ferry_wire_put_message(out, type, id, m);
  const guint8 *q = frame_payload(out, type, &n);
  check(ferry_wire_get_message(q, n, with_id, with_id ? &id2 : NULL, &m2) == 0,
        "a re-encoded message does not decode");
  check(id2 == id, "a re-encoded message has another file id");
  check_shown_text(m2);
  /* Sanitising can make a message longer (U+FFFD for each bad byte); the
   * encoder then cuts it at the limit, so only shorter ones come back
   * whole. */
  if (strlen(m) <= FERRY_WIRE_MAX_MESSAGE)
    check(strcmp(m, m2) == 0, "a re-encoded message decodes to other text");
  g_free(m);
  g_free(m2);
  g_byte_array_unref(out);
}

static void
fuzz_u32(const guint8 *p, gsize len)
{
  guint32 v, v2;
  int rc = ferry_wire_get_u32(p, len, &v);
  check_rc(rc, FALSE, FALSE);
  if (rc != 0)
    return;
  GByteArray *out = g_byte_array_new();
  guint32 n;
  ferry_wire_put_u32(out, FERRY_FRAME_MANIFEST_END, v);
  const guint8 *q = frame_payload(out, FERRY_FRAME_MANIFEST_END, &n);
  check_same_bytes(q, n, p, len, "a u32 frame does not re-encode to its own bytes");
  check(ferry_wire_get_u32(q, n, &v2) == 0 && v2 == v, "a re-encoded u32 decodes to another value");
  g_byte_array_unref(out);
}

static void
fuzz_u8(const guint8 *p, gsize len)
{
  guint8 v, v2;
  int rc = ferry_wire_get_u8(p, len, &v);
  check_rc(rc, FALSE, FALSE);
  if (rc != 0)
    return;
  GByteArray *out = g_byte_array_new();
  guint32 n;
  ferry_wire_put_u8(out, FERRY_FRAME_ACCEPT, v);
  const guint8 *q = frame_payload(out, FERRY_FRAME_ACCEPT, &n);
  check_same_bytes(q, n, p, len, "a u8 frame does not re-encode to its own bytes");
  check(ferry_wire_get_u8(q, n, &v2) == 0 && v2 == v, "a re-encoded u8 decodes to another value");
  g_byte_array_unref(out);
}

static void
fuzz_file_ok(const guint8 *p, gsize len)
{
  guint32 id, id2;
  guint8 status, status2;
  int rc = ferry_wire_get_file_ok(p, len, &id, &status);
  check_rc(rc, FALSE, FALSE);
  if (rc != 0)
    return;
  GByteArray *out = g_byte_array_new();
  guint32 n;
  ferry_wire_put_file_ok(out, id, status);
  const guint8 *q = frame_payload(out, FERRY_FRAME_FILE_OK, &n);
  check_same_bytes(q, n, p, len, "a FILE_OK does not re-encode to its own bytes");
  check(ferry_wire_get_file_ok(q, n, &id2, &status2) == 0 && id2 == id && status2 == status,
        "a re-encoded FILE_OK decodes to other values");
  g_byte_array_unref(out);
}

/* Walks a decoded WANT the way the sender does: every index answered by
 * ferry_wire_want_has() takes the next hash. Returns the number set. */
static guint64
walk_want(const FerryWireWant *w)
{
  guint64 set = 0;
  for (guint64 i = 0; i < w->n_chunks + 9; i++)
    if (ferry_wire_want_has(w, i)) {
      check(i < w->n_chunks, "a WANT has a chunk past its end");
      set++;
    }
  check(set == w->n_set, "a WANT's set bits and its hash count differ");
  return set;
}

static void
fuzz_want(const guint8 *p, gsize len)
{
  FerryWireWant w, again;
  int rc = ferry_wire_get_want(p, len, &w);
  check_rc(rc, FALSE, TRUE);
  if (rc != 0)
    return;
  check(w.n_chunks <= FERRY_WIRE_WANT_MAX_CHUNKS, "a WANT over the chunk limit decoded");
  walk_want(&w);

  /* Rebuild it as a receiver does: a checkpoint with those chunks verified. */
  const guint32 chunk_size = FERRY_CHUNK_SIZE_MIN;
  guint8 id[FERRY_TRANSFER_ID_LEN] = {0};
  FerryCheckpoint *cp = ferry_checkpoint_new(id, chunk_size);
  FerryCheckpointFile *f = ferry_checkpoint_add_file(cp, "f", w.n_chunks * chunk_size, NULL);
  check(f != NULL && f->n_chunks == w.n_chunks, "cannot build a checkpoint file for a WANT");
  const guint8 *h = w.hashes;
  for (guint64 i = 0; i < w.n_chunks; i++)
    if (ferry_wire_want_has(&w, i)) {
      ferry_checkpoint_file_set_verified(f, i, h);
      h += FERRY_HASH_LEN;
    }
  GByteArray *out = g_byte_array_new();
  guint32 n;
  ferry_wire_put_want(out, w.file_id, f);
  const guint8 *q = frame_payload(out, FERRY_FRAME_WANT, &n);
  check(ferry_wire_get_want(q, n, &again) == 0, "a re-encoded WANT does not decode");
  walk_want(&again);
  check(again.file_id == w.file_id && again.n_set == w.n_set, "a re-encoded WANT differs");
  /* "Nothing held" has two spellings (no chunks, or no bit set); anything
   * held must come back chunk for chunk, hash for hash. */
  if (w.n_set > 0) {
    check(again.n_chunks == w.n_chunks, "a re-encoded WANT has another chunk count");
    check_same_bytes(again.bitmap, (again.n_chunks + 7) / 8, w.bitmap, (w.n_chunks + 7) / 8,
                     "a re-encoded WANT has another bitmap");
    check_same_bytes(again.hashes, again.n_set * FERRY_HASH_LEN, w.hashes, w.n_set * FERRY_HASH_LEN,
                     "a re-encoded WANT has other hashes");
    check_same_bytes(q, n, p, len, "a WANT with chunks does not re-encode to its own bytes");
  }
  g_byte_array_unref(out);
  ferry_checkpoint_free(cp);
}

static void
fuzz_chunk(const guint8 *p, gsize len)
{
  FerryWireChunk c, again;
  guint8 hdr[FERRY_WIRE_CHUNK_HEADER];
  int rc = ferry_wire_get_chunk_header(p, len, &c);
  check_rc(rc, FALSE, FALSE);
  if (rc != 0)
    return;
  check(c.len > 0 && c.len <= FERRY_CHUNK_SIZE_MAX, "a chunk header has a bad length");
  ferry_wire_chunk_header(hdr, &c);
  check_same_bytes(hdr, sizeof hdr, p, len, "a chunk header does not re-encode to its own bytes");
  check(ferry_wire_get_chunk_header(hdr, sizeof hdr, &again) == 0 && again.file_id == c.file_id &&
            again.index == c.index && again.len == c.len &&
            memcmp(again.hash, c.hash, FERRY_HASH_LEN) == 0,
        "a re-encoded chunk header decodes to other values");
}

static void
fuzz_empty(const guint8 *p, gsize len)
{
  (void)p;
  if (len != 0)
    return;
  GByteArray *out = g_byte_array_new();
  guint32 n;
  ferry_wire_put_empty(out, FERRY_FRAME_DONE);
  frame_payload(out, FERRY_FRAME_DONE, &n);
  check(n == 0, "an empty frame has a payload");
  g_byte_array_unref(out);
}

static void
decode(Decoder d, const guint8 *p, gsize len)
{
  switch (d) {
  case DEC_OFFER:
    fuzz_offer(p, len);
    break;
  case DEC_ENTRY:
    fuzz_entry(p, len);
    break;
  case DEC_FILE_END:
    fuzz_file_end(p, len);
    break;
  case DEC_MESSAGE_ID:
    fuzz_message(p, len, TRUE);
    break;
  case DEC_MESSAGE:
    fuzz_message(p, len, FALSE);
    break;
  case DEC_U32:
    fuzz_u32(p, len);
    break;
  case DEC_U8:
    fuzz_u8(p, len);
    break;
  case DEC_FILE_OK:
    fuzz_file_ok(p, len);
    break;
  case DEC_WANT:
    fuzz_want(p, len);
    break;
  case DEC_CHUNK:
    fuzz_chunk(p, len);
    break;
  case DEC_EMPTY:
    fuzz_empty(p, len);
    break;
  case DEC_COUNT:
    break;
  }
}

/* Feeds the input to a reader in three pieces (cut where its first and
 * last bytes say), taking frames out after each piece. */
static void
fuzz_reader(const guint8 *data, gsize size)
{
  FerryWireReader r;
  gsize cut1 = data[0] % (size + 1);
  gsize cut2 = cut1 + data[size - 1] % (size - cut1 + 1);
  gsize cuts[4] = {0, cut1, cut2, size};
  gsize pos = 0, fed = 0;
  int rc = 0;

  ferry_wire_reader_init(&r);
  for (int k = 0; k < 3 && rc >= 0; k++) {
    ferry_wire_reader_feed(&r, data + cuts[k], cuts[k + 1] - cuts[k]);
    fed = cuts[k + 1];
    guint8 type;
    const guint8 *payload;
    guint32 n;
    while ((rc = ferry_wire_reader_next(&r, &type, &payload, &n)) == 1) {
      check(n <= FERRY_WIRE_MAX_PAYLOAD, "the reader passed a payload over the limit");
      check(pos + FERRY_WIRE_FRAME_HEADER + n <= fed, "the reader yielded bytes not fed yet");
      check(type == data[pos] && n == be32(data + pos + 1),
            "the reader's frame header differs from the input");
      check_same_bytes(payload, n, data + pos + FERRY_WIRE_FRAME_HEADER, n,
                       "the reader's payload differs from the input");
      if (type == FERRY_FRAME_CHUNK)
        fuzz_chunk(payload - FERRY_WIRE_FRAME_HEADER,
                   MIN((gsize)n + FERRY_WIRE_FRAME_HEADER, (gsize)FERRY_WIRE_CHUNK_HEADER));
      else
        decode(decoder_for(type), payload, n);
      pos += FERRY_WIRE_FRAME_HEADER + n;
    }
  }
  gsize left = fed - pos;
  if (rc == 0) {
    check(left < FERRY_WIRE_FRAME_HEADER || left - FERRY_WIRE_FRAME_HEADER < be32(data + pos + 1),
          "the reader held back a whole frame");
  } else {
    check(rc == FERRY_ERR_TOO_LONG && left >= FERRY_WIRE_FRAME_HEADER &&
              be32(data + pos + 1) > FERRY_WIRE_MAX_PAYLOAD,
          "the reader failed on a frame within the limit");
  }
  ferry_wire_reader_clear(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  Decoder d = decoder_for(data[0]);
  if (d == DEC_CHUNK) {
    fuzz_chunk(data, size);
  } else {
    gsize skip = MIN(size, (gsize)FERRY_WIRE_FRAME_HEADER);
    decode(d, data + skip, size - skip);
  }
  fuzz_reader(data, size);
  return 0;
}
