/* The transfer protocol's frames (docs/protocol.md §8).
 *
 * Every stream starts with one kind byte: 'C' for the control stream
 * (opened by the sender first), 'D' for a data stream. Control frames
 * are a type byte, a 32-bit big-endian payload length and the payload;
 * data streams carry CHUNK frames whose fixed 49-byte header is followed
 * by the chunk's bytes, which are not buffered whole. Every decoder here
 * is a pure function over untrusted bytes returning 0 or a negative
 * FerryErr, and is fuzzed (fuzz/fuzz-wire.c). */
#ifndef FERRY_TRANSFER_WIRE_H
#define FERRY_TRANSFER_WIRE_H

#include <ferry/hash.h>
#include <ferry/manifest.h>

#include "core/checkpoint.h"

G_BEGIN_DECLS

#define FERRY_WIRE_VERSION      1
#define FERRY_WIRE_KIND_CONTROL 'C'
#define FERRY_WIRE_KIND_DATA    'D'
#define FERRY_WIRE_FRAME_HEADER 5
/* The largest control payload: a WANT for a file of 2^20 chunks (1 TiB at
 * 1 MiB chunks) fits; larger files resume from scratch. */
#define FERRY_WIRE_MAX_PAYLOAD     (40u << 20)
#define FERRY_WIRE_MAX_MESSAGE     1024
#define FERRY_WIRE_WANT_MAX_CHUNKS ((guint64)1 << 20)
#define FERRY_WIRE_CHUNK_HEADER    49
#define FERRY_PATH_NAME_MAX_WIRE   255 /* bytes in a top-level name of an OFFER */

typedef enum {
  /* sender → receiver */
  FERRY_FRAME_OFFER = 0x01,
  FERRY_FRAME_ENTRY = 0x02,
  FERRY_FRAME_FILE_END = 0x03,
  FERRY_FRAME_FILE_FAILED = 0x04,
  FERRY_FRAME_MANIFEST_END = 0x05,
  /* receiver → sender */
  FERRY_FRAME_ACCEPT = 0x10,
  FERRY_FRAME_DECLINE = 0x11,
  FERRY_FRAME_WANT = 0x12,
  FERRY_FRAME_FILE_OK = 0x13,
  FERRY_FRAME_DONE = 0x15,
  /* either way */
  FERRY_FRAME_ABORT = 0x1f,
  /* data streams */
  FERRY_FRAME_CHUNK = 0x20,
} FerryFrameType;

#define FERRY_ACCEPT_RESUME 0x01

typedef struct {
  guint8 transfer_id[FERRY_TRANSFER_ID_LEN];
  guint32 chunk_size;
  guint64 files, dirs, symlinks, bytes;
  guint32 n_roots;
  guint n_names;
  char *names[8]; /* owned; free with ferry_wire_offer_clear() */
} FerryWireOffer;

typedef struct {
  guint32 id;
  FerryEntryType type;
  guint32 mode;
  gint64 mtime_ns;
  guint64 size;
  char *path;        /* owned, NUL-terminated, no NUL inside */
  char *link_target; /* owned; NULL unless a symlink */
} FerryWireEntry;

typedef struct {
  guint32 file_id;
  guint64 n_chunks;
  const guint8
      *bitmap; /* into the payload: (n_chunks + 7) / 8 bytes, bit 7 - i % 8 of byte i / 8 */
  const guint8 *hashes; /* into the payload: 32 bytes per set bit, in index order */
  guint64 n_set;
} FerryWireWant;

typedef struct {
  guint32 file_id;
  guint64 index;
  guint32 len;
  guint8 hash[FERRY_HASH_LEN];
} FerryWireChunk;

/* Splits control frames out of a byte stream. */
typedef struct {
  GByteArray *buf;
  gsize off;
} FerryWireReader;

void ferry_wire_reader_init(FerryWireReader *r);
void ferry_wire_reader_clear(FerryWireReader *r);
void ferry_wire_reader_feed(FerryWireReader *r, const guint8 *data, gsize len);
/* Returns 1 and the next frame (payload valid until the next feed or
 * next call), 0 when more bytes are needed, FERRY_ERR_TOO_LONG for a
 * length over FERRY_WIRE_MAX_PAYLOAD. */
int ferry_wire_reader_next(FerryWireReader *r, guint8 *type, const guint8 **payload, guint32 *len);

/* Encoders append a whole frame to out. */
void ferry_wire_put_offer(GByteArray *out, const FerryWireOffer *offer);
void ferry_wire_put_entry(GByteArray *out, const FerryWireEntry *entry);
void ferry_wire_put_file_end(GByteArray *out, guint32 file_id, const guint8 root[FERRY_HASH_LEN]);
void ferry_wire_put_message(GByteArray *out, FerryFrameType type, guint32 file_id,
                            const char *message); /* FILE_FAILED (with id), DECLINE, ABORT */
void ferry_wire_put_u32(GByteArray *out, FerryFrameType type,
                        guint32 value);                          /* MANIFEST_END, FILE_OK */
void ferry_wire_put_empty(GByteArray *out, FerryFrameType type); /* DONE */
void ferry_wire_put_u8(GByteArray *out, FerryFrameType type, guint8 value); /* ACCEPT */
void ferry_wire_put_file_ok(GByteArray *out, guint32 file_id, guint8 status);
/* A WANT from a checkpoint file's verified chunks. */
void ferry_wire_put_want(GByteArray *out, guint32 file_id, const FerryCheckpointFile *file);
/* Writes a CHUNK header into out (FERRY_WIRE_CHUNK_HEADER bytes). */
void ferry_wire_chunk_header(guint8 out[FERRY_WIRE_CHUNK_HEADER], const FerryWireChunk *chunk);

/* Decoders: 0 on success, FERRY_ERR_INVALID (malformed), _VERSION, or
 * _TOO_LONG. The _clear functions free what a decoder allocated. */
int ferry_wire_get_offer(const guint8 *p, gsize len, FerryWireOffer *out);
void ferry_wire_offer_clear(FerryWireOffer *offer);
int ferry_wire_get_entry(const guint8 *p, gsize len, FerryWireEntry *out);
void ferry_wire_entry_clear(FerryWireEntry *entry);
int ferry_wire_get_file_end(const guint8 *p, gsize len, guint32 *file_id,
                            guint8 root[FERRY_HASH_LEN]);
/* message: a new UTF-8 string with control characters replaced by '?'
 * (g_free()); file_id only for FILE_FAILED (may be NULL otherwise). */
int ferry_wire_get_message(const guint8 *p, gsize len, gboolean with_id, guint32 *file_id,
                           char **message);
int ferry_wire_get_u32(const guint8 *p, gsize len, guint32 *value);
int ferry_wire_get_u8(const guint8 *p, gsize len, guint8 *value);
int ferry_wire_get_file_ok(const guint8 *p, gsize len, guint32 *file_id, guint8 *status);
int ferry_wire_get_want(const guint8 *p, gsize len, FerryWireWant *out);
/* Whether chunk index is set in a decoded WANT. */
gboolean ferry_wire_want_has(const FerryWireWant *want, guint64 index);
int ferry_wire_get_chunk_header(const guint8 *p, gsize len, FerryWireChunk *out);

G_END_DECLS

#endif
