/*
 * make_seeds.c: writes the seed corpora of the fuzz targets,
 *
 *   make_seeds DIR
 *
 * into DIR/wire, DIR/engine, DIR/local, DIR/config, DIR/jwt and DIR/jwks
 * (fuzz/corpus in the repository). Each seed is small and means something:
 * a valid frame of each message type, a conversation with the engine, a
 * request of each kind, a valid configuration, a token of each algorithm,
 * a key set with each key type. Frames and requests are built with the
 * project's own encoders, tokens are signed with the keys of fuzz_keys.h.
 * ECDSA signatures are randomized, so the jwt seeds differ from run to run;
 * everything else comes out the same.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_engine_ops.h"
#include "fuzz_keys.h"
#include "local.pb-c.h"
#include "wire/wire.h"

static const char *out_dir;

static void
die(const char *what)
{
	fprintf(stderr, "make_seeds: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
seed(const char *target, const char *name, const void *data, size_t len)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", out_dir, target);
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		die(path);
	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
	if ((f = fopen(path, "wb")) == NULL || fwrite(data, 1, len, f) != len ||
	    fclose(f) != 0)
		die(path);
}

/* A growing byte string. */
struct bytes {
	uint8_t b[65536];
	size_t n;
};

static void
put(struct bytes *s, const void *p, size_t n)
{
	if (s->n + n > sizeof(s->b)) {
		fprintf(stderr, "make_seeds: seed too long\n");
		exit(1);
	}
	memcpy(s->b + s->n, p, n);
	s->n += n;
}

static void
put8(struct bytes *s, unsigned v)
{
	uint8_t b = (uint8_t)v;

	put(s, &b, 1);
}

static void
put_le(struct bytes *s, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		put8(s, (unsigned)(v >> (8 * i)));
}

static void
put_str(struct bytes *s, const char *str)
{
	put(s, str, strlen(str));
}

/* A 4-byte big-endian length and payload. */
static void
put_frame(struct bytes *s, const void *p, size_t n)
{
	put8(s, (unsigned)(n >> 24));
	put8(s, (unsigned)(n >> 16));
	put8(s, (unsigned)(n >> 8));
	put8(s, (unsigned)n);
	put(s, p, n);
}

/* ------------------------------------------------------------------------ */
/* wire                                                                     */
/* ------------------------------------------------------------------------ */

#define NOW_S INT64_C(1700000000)

static size_t
sample_entries(uint8_t *buf, unsigned n)
{
	size_t len = 0;

	for (unsigned i = 0; i < n; i++) {
		crdt_entry e;

		memset(&e, 0, sizeof(e));
		fze_pool_key(i * 5, &e.key);
		if (i % 3 == 2) {
			e.kind = CRDT_KIND_SUB;
			e.u.subject.not_before_ms = (uint64_t)NOW_S * 1000;
			(void)crdt_subject_bump(&e.u.subject, 2, 3);
			(void)crdt_subject_bump(&e.u.subject, 5, 1);
		} else {
			e.kind = i % 3 ? CRDT_KIND_SID : CRDT_KIND_JTI;
			e.u.token.exp = NOW_S + 3600;
			e.u.token.revoked_at = CRDT_HLC_AT(NOW_S * 1000 + i);
			e.u.token.origin = 2;
			e.u.token.reason = (uint8_t)i;
		}
		len += wire_entry_encode(&e, buf + len);
	}
	return len;
}

static void
wire_seed(const char *name, uint8_t mode, const wire_peer_msg *m)
{
	struct bytes s = { .n = 0 };
	uint8_t *frame;
	size_t len;

	if (wire_peer_encode(m, &frame, &len) != REVOKD_OK) {
		fprintf(stderr, "make_seeds: %s does not encode\n", name);
		exit(1);
	}
	put8(&s, mode);
	put(&s, frame, len);
	seed("wire", name, s.b, s.n);
	free(frame);
}

static void
wire_seeds(void)
{
	static uint8_t entries[16 * WIRE_ENTRY_MAX], cert[200], sig[72];
	wire_peer_msg m;
	struct bytes s = { .n = 0 };

	for (size_t i = 0; i < sizeof(cert); i++)
		cert[i] = (uint8_t)(i * 13);
	memset(&m, 0, sizeof(m));
	m.type = WIRE_HELLO;
	m.u.hello.protocol = WIRE_PROTOCOL;
	strcpy(m.u.hello.cluster, "prod");
	strcpy(m.u.hello.region, "eu-west-1");
	m.u.hello.region_id = 3;
	m.u.hello.cert = cert;
	m.u.hello.cert_len = sizeof(cert);
	memset(m.u.hello.nonce, 0x42, WIRE_NONCE_LEN);
	wire_seed("hello", 2, &m);
	memset(&m, 0, sizeof(m));
	m.type = WIRE_AUTH;
	memset(sig, 0x30, sizeof(sig));
	m.u.auth.sig = sig;
	m.u.auth.sig_len = sizeof(sig);
	wire_seed("auth", 2, &m);
	memset(&m, 0, sizeof(m));
	m.type = WIRE_BATCH;
	m.u.batch.seq = 1;
	m.u.batch.hlc = CRDT_HLC_AT(NOW_S * 1000);
	m.u.batch.count = 6;
	m.u.batch.entries = entries;
	m.u.batch.entries_len = sample_entries(entries, 6);
	wire_seed("batch", 2, &m);
	wire_seed("batch-bytewise", 1 << 2 | 2, &m);
	memset(&m, 0, sizeof(m));
	m.type = WIRE_ACK;
	m.u.ack.seq = 7;
	wire_seed("ack", 2, &m);
	memset(&m, 0, sizeof(m));
	m.type = WIRE_HEARTBEAT;
	m.u.heartbeat.hlc = CRDT_HLC_AT(NOW_S * 1000) + 3;
	m.u.heartbeat.last_seq = 7;
	m.u.heartbeat.n_watermarks = 3;
	for (int i = 0; i < 3; i++)
		m.u.heartbeat.watermarks[i] =
		    (wire_watermark){ (uint16_t)(i + 1),
			    (uint64_t)NOW_S * 1000000 - (uint64_t)i * 1000 };
	wire_seed("heartbeat", 2, &m);
	memset(&m, 0, sizeof(m));
	m.type = WIRE_PING;
	m.u.ping.t1_us = (uint64_t)NOW_S * 1000000;
	wire_seed("ping", 2, &m);
	m.type = WIRE_PONG;
	m.u.pong = (wire_pong){ (uint64_t)NOW_S * 1000000,
		(uint64_t)NOW_S * 1000000 + 500,
		(uint64_t)NOW_S * 1000000 + 600 };
	wire_seed("pong", 2, &m);
	memset(&m, 0, sizeof(m));
	m.type = WIRE_RECON;
	m.u.recon.session = 0x1234567;
	m.u.recon.round = 0;
	m.u.recon.kind = 1;
	m.u.recon.nodes = cert;
	m.u.recon.nodes_len = 20;
	m.u.recon.item_count = 2;
	m.u.recon.items = entries;
	m.u.recon.items_len = sample_entries(entries, 2);
	m.u.recon.chunks = 1;
	wire_seed("recon", 2, &m);

	/* Several frames in one stream, cut in pieces of up to 12 bytes. */
	{
		uint8_t *f;
		size_t len;

		put8(&s, 3 << 2 | 2);
		m.type = WIRE_ACK;
		m.u.ack.seq = 1;
		wire_peer_encode(&m, &f, &len);
		put(&s, f, len);
		put(&s, f, len);
		free(f);
		m.type = WIRE_PING;
		m.u.ping.t1_us = 99;
		wire_peer_encode(&m, &f, &len);
		put(&s, f, len);
		free(f);
		seed("wire", "three-frames", s.b, s.n);
		/* Then a header over the smallest maximum (16 bytes). */
		s.b[0] = 0;
		put(&s, "\x00\x00\x00\x11", 4);
		put(&s, "0123456789abcdefg", 17);
		seed("wire", "oversize-after-frames", s.b, s.n);
		s.n -= 10;
		s.b[0] = 2;
		seed("wire", "truncated", s.b, s.n);
	}
}

/* ------------------------------------------------------------------------ */
/* engine                                                                   */
/* ------------------------------------------------------------------------ */

/* An entry of the engine's input language: kind, pool key, value. */
static void
eng_token(struct bytes *s, unsigned kind_sel, unsigned key)
{
	put8(s, kind_sel); /* 0, 1: jti; 2: sid */
	put8(s, key);
	put8(s, 5);     /* exp: now + 3600 */
	put8(s, 1 | 4); /* revoked_at: now - 1 s */
	put8(s, 0);     /* restored_at: never */
}

static void
eng_subject(struct bytes *s, unsigned key)
{
	put8(s, 3); /* sub */
	put8(s, key);
	put8(s, 2);  /* two writers */
	put8(s, 10); /* not_before: 10 s ago */
	put8(s, 0x11);
	put8(s, 0x22);
}

/* A batch of n entries from the pool, next sequence number. */
static void
eng_batch(struct bytes *s, unsigned peer, unsigned n, unsigned first_key)
{
	put8(s, FZE_OP(FZE_OP_BATCH, peer, 0));
	put8(s, 0);     /* seq: next */
	put8(s, n);     /* entries */
	put8(s, 1 | 8); /* hlc: now - 2 s */
	for (unsigned i = 0; i < n; i++) {
		if (i % 3 == 2)
			eng_subject(s, first_key + i);
		else
			eng_token(s, i % 3 == 1 ? 2 : 0, first_key + i);
	}
}

static void
eng_tick(struct bytes *s, unsigned code)
{
	put8(s, FZE_OP(FZE_OP_TICK, 0, 0));
	put8(s, code);
}

/* A REPLY to the engine's oldest ROUND: statuses for up to n nodes. */
static void
eng_reply(struct bytes *s, unsigned peer, const uint8_t *st, unsigned n)
{
	put8(s, FZE_OP(FZE_OP_RECON, peer, 0));
	put8(s, FZE_RECON_REPLY);
	put8(s, 0); /* session: auto */
	for (unsigned i = 0; i < n; i++)
		put8(s, st[i]);
}

/* A ROUND of our session: node records (one byte each, see build_round). */
static void
eng_round(struct bytes *s, unsigned peer, unsigned n, const uint8_t *rec)
{
	put8(s, FZE_OP(FZE_OP_RECON, peer, 0));
	put8(s, FZE_RECON_ROUND);
	put8(s, 0); /* session: auto */
	put8(s, n); /* nodes: 0 = as many as expected */
	for (unsigned i = 0; i < (n ? n : 32); i++)
		put8(s, rec[i]);
}

static void
eng_simple(struct bytes *s, unsigned type, unsigned peer, unsigned variant,
    unsigned kind)
{
	put8(s, FZE_OP(type, peer, variant));
	if (type == FZE_OP_RECON) {
		put8(s, kind);
		put8(s, 0);
	}
}

static void
engine_seeds(void)
{
	struct bytes s;
	uint8_t st[32], rec[32];

	/* Batches from both peers, acks of what the engine relays. */
	s.n = 0;
	put8(&s, FZE_FLAG_AUTO_DRAIN);
	eng_batch(&s, 0, 4, 0);
	eng_batch(&s, 1, 3, 8);
	eng_simple(&s, FZE_OP_ACK, 0, 0, 0);
	eng_simple(&s, FZE_OP_ACK, 1, 0, 0);
	eng_tick(&s, 0x40 | 2);
	seed("engine", "batches-acks", s.b, s.n);

	/* A batch that repeats a sequence number, then a gap. */
	s.n = 0;
	put8(&s, 0);
	eng_batch(&s, 0, 2, 3);
	put8(&s, FZE_OP(FZE_OP_BATCH, 0, 0));
	put8(&s, 1); /* same seq */
	put8(&s, 1); /* one entry */
	put8(&s, 1); /* hlc now */
	eng_token(&s, 0, 3);
	put8(&s, FZE_OP(FZE_OP_BATCH, 0, 0));
	put8(&s, 2 | 4); /* a gap */
	put8(&s, 0);     /* no entries */
	put8(&s, 0);
	put8(&s, FZE_OP(FZE_OP_SEND_DONE, 0, 0));
	seed("engine", "batch-dup-gap", s.b, s.n);

	/* Local writes pushed to both peers, confirmed by their acks. */
	s.n = 0;
	put8(&s, FZE_FLAG_AUTO_DRAIN);
	put8(&s, FZE_OP(FZE_OP_LOCAL, 0, 1));
	put8(&s, 3); /* four ops: revoke jti, revoke sid, bump, merge */
	for (unsigned i = 0; i < 4; i++) {
		static const uint8_t type[4] = { 0, 0x10, 2 | 0x80, 3 };

		put8(&s, type[i]);
		put8(&s, 20 + i); /* key */
		put8(&s, 5);      /* exp: now + 3600 */
		put8(&s, 7);      /* reason */
		if (i == 3)
			eng_token(&s, 0, 30);
	}
	eng_simple(&s, FZE_OP_ACK, 0, 0, 0);
	eng_simple(&s, FZE_OP_ACK, 1, 0, 0);
	seed("engine", "local-confirm", s.b, s.n);

	/* Ping and pong both ways; a heartbeat with watermarks. */
	s.n = 0;
	put8(&s, FZE_FLAG_AUTO_DRAIN);
	eng_tick(&s, 0x40 | 12); /* 1.2 s: the engine pings */
	put8(&s, FZE_OP(FZE_OP_PONG, 0, 0));
	put8(&s, 3);  /* offset 300 ms */
	put8(&s, 20); /* 20 ms round trip */
	eng_simple(&s, FZE_OP_PING, 0, 0, 0);
	put8(&s, FZE_OP(FZE_OP_HEARTBEAT, 0, 0));
	put8(&s, 3); /* three watermarks */
	put8(&s, 1); /* hlc: now */
	put8(&s, 1); /* region 2, now - 1 s */
	put8(&s, 10);
	put8(&s, 2); /* region 3 */
	put8(&s, 5);
	put8(&s, 0); /* region 1: ours */
	put8(&s, 1);
	seed("engine", "ping-pong-heartbeat", s.b, s.n);

	/*
	 * The engine leads a reconciliation with beta: its first ROUND
	 * goes out at the first tick; split two nodes, then say SAME to
	 * all, then FIN its DONE.
	 */
	s.n = 0;
	put8(&s, FZE_FLAG_AUTO_DRAIN | FZE_FLAG_ONLY_ONE);
	eng_tick(&s, 1);
	memset(st, FZE_PAD, sizeof(st)); /* SAME */
	st[3] = FZE_REC(2, 0);           /* SPLIT16 */
	st[6] = FZE_REC(1, 0);           /* SPLIT2 */
	st[12] = FZE_REC(3, 0);          /* C_ITEMS with no entry */
	eng_reply(&s, 0, st, 16);
	eng_tick(&s, 1);
	memset(st, FZE_PAD, sizeof(st));
	st[0] = FZE_REC(1, 0);
	eng_reply(&s, 0, st, 18);
	eng_tick(&s, 1);
	eng_simple(&s, FZE_OP_RECON, 0, 0, FZE_RECON_FIN);
	eng_tick(&s, 0x80 | 2);
	seed("engine", "recon-engine-leads", s.b, s.n);

	/*
	 * We lead: a ROUND with the store's own sums (all SAME), then DONE;
	 * and one with perturbed sums, so the engine asks to split.
	 */
	s.n = 0;
	put8(&s, FZE_FLAG_AUTO_DRAIN);
	memset(rec, FZE_PAD, sizeof(rec));
	eng_round(&s, 0, 0, rec);
	eng_simple(&s, FZE_OP_RECON, 0, 0, FZE_RECON_DONE);
	seed("engine", "recon-we-lead-same", s.b, s.n);
	s.n = 0;
	put8(&s, FZE_FLAG_AUTO_DRAIN);
	memset(rec, FZE_PAD, sizeof(rec));
	for (unsigned i = 0; i < 16; i++) /* every fourth sum perturbed */
		rec[i] = (uint8_t)(i % 4 == 1 ? 0x80 | (i & 7) : FZE_PAD);
	rec[5] = FZE_REC(1, 0); /* ITEMS, no entries */
	eng_round(&s, 1, 0, rec);
	memset(rec, FZE_PAD, sizeof(rec));
	eng_round(&s, 1, 0, rec);
	put8(&s, FZE_OP(FZE_OP_RECON, 1, 1));
	put8(&s, FZE_RECON_ITEMS);
	put8(&s, 0);
	put8(&s, 1);
	eng_token(&s, 0, 18);
	eng_simple(&s, FZE_OP_RECON, 1, 0, FZE_RECON_DONE);
	seed("engine", "recon-we-lead-split", s.b, s.n);

	/* Held batches, several frames at once, a link that drops. */
	s.n = 0;
	put8(&s, FZE_FLAG_HOLD);
	put8(&s, FZE_OP(FZE_OP_MULTI, 0, 0));
	put8(&s, 1); /* three frames */
	eng_batch(&s, 0, 2, 1);
	eng_batch(&s, 0, 1, 4);
	eng_simple(&s, FZE_OP_PING, 0, 0, 0);
	put8(&s, FZE_OP(FZE_OP_HOLD, 0, 1)); /* release */
	put8(&s, FZE_OP(FZE_OP_LINK, 1, 0)); /* gamma down */
	eng_batch(&s, 0, 1, 6);
	put8(&s, FZE_OP(FZE_OP_LINK, 1, 0)); /* and up */
	put8(&s, FZE_OP(FZE_OP_CLOCK_BACK, 0, 0));
	put8(&s, 50);
	eng_tick(&s, 0xc0 | 2); /* two minutes */
	put8(&s, FZE_OP(FZE_OP_SEND_DONE, 0, 0));
	put8(&s, FZE_OP(FZE_OP_SEND_DONE, 1, 0));
	seed("engine", "hold-multi-link", s.b, s.n);

	/* Many entries at once (bulk), and a raw frame of garbage. */
	s.n = 0;
	put8(&s, FZE_FLAG_AUTO_DRAIN);
	put8(&s, FZE_OP(FZE_OP_BATCH, 0, 3));
	put8(&s, 0);   /* seq: next */
	put8(&s, 100); /* 404 entries */
	put8(&s, 1);   /* hlc: now */
	put_le(&s, 0xdecafbad, 4);
	put8(&s, FZE_OP(FZE_OP_RAW, 1, 0));
	put_le(&s, 6, 2);
	put(&s, "\x1a\x04\x08\x01\x10\x02", 6);
	seed("engine", "bulk-raw", s.b, s.n);

	/* Handshake messages after the handshake: refused. */
	s.n = 0;
	put8(&s, 0);
	put8(&s, FZE_OP(FZE_OP_HANDSHAKE, 0, 0));
	put8(&s, 8);
	put(&s, "certcert", 8);
	put8(&s, FZE_OP(FZE_OP_HANDSHAKE, 1, 1));
	put8(&s, 4);
	put(&s, "sign", 4);
	seed("engine", "handshake-late", s.b, s.n);
}

/* ------------------------------------------------------------------------ */
/* local                                                                    */
/* ------------------------------------------------------------------------ */

typedef Revokd__Local__Request Request;

static void
put_request(struct bytes *s, const Request *r)
{
	uint8_t buf[4096];
	size_t n = revokd__local__request__get_packed_size(r);

	if (n > sizeof(buf))
		exit(1);
	revokd__local__request__pack(r, buf);
	put_frame(s, buf, n);
}

static ProtobufCBinaryData
bin(const char *s)
{
	ProtobufCBinaryData b = { strlen(s), (uint8_t *)s };

	return b;
}

static void
local_seeds(void)
{
	struct bytes s;
	Request r = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Check c = REVOKD__LOCAL__CHECK__INIT;
	Revokd__Local__Version v = REVOKD__LOCAL__VERSION__INIT;
	Revokd__Local__Status stq = REVOKD__LOCAL__STATUS__INIT;
	Revokd__Local__RevokeToken rt = REVOKD__LOCAL__REVOKE_TOKEN__INIT;
	Revokd__Local__RestoreToken rs = REVOKD__LOCAL__RESTORE_TOKEN__INIT;
	Revokd__Local__RevokeSession rss = REVOKD__LOCAL__REVOKE_SESSION__INIT;
	Revokd__Local__RevokeUser ru = REVOKD__LOCAL__REVOKE_USER__INIT;
	Revokd__Local__Wait w = REVOKD__LOCAL__WAIT__INIT;
	Revokd__Local__Import im = REVOKD__LOCAL__IMPORT__INIT;
	Revokd__Local__ImportItem it[3], *itp[3];
	Revokd__Local__Dump d = REVOKD__LOCAL__DUMP__INIT;

	/* Queries, pipelined, on the query socket. */
	s.n = 0;
	put8(&s, 0);
	c.jti = bin("token-1");
	c.sub = bin("user-1");
	c.has_ver_case = REVOKD__LOCAL__CHECK__HAS_VER_VER;
	c.ver = 2;
	c.has_iat_case = REVOKD__LOCAL__CHECK__HAS_IAT_IAT;
	c.iat = NOW_S;
	r.body_case = REVOKD__LOCAL__REQUEST__BODY_CHECK;
	r.check = &c;
	put_request(&s, &r);
	v.sub = bin("user-1");
	r.body_case = REVOKD__LOCAL__REQUEST__BODY_VERSION;
	r.version = &v;
	put_request(&s, &r);
	r.body_case = REVOKD__LOCAL__REQUEST__BODY_STATUS;
	r.status = &stq;
	put_request(&s, &r);
	seed("local", "queries", s.b, s.n);
	s.b[0] = 3 << 1; /* the same, written 9 bytes at a time */
	seed("local", "queries-slow", s.b, s.n);

	/* Every admin write, on the admin socket, then a dump. */
	s.n = 0;
	put8(&s, 1);
	rt.jti = bin("token-1");
	rt.reason = 3;
	r.body_case = REVOKD__LOCAL__REQUEST__BODY_REVOKE_TOKEN;
	r.revoke_token = &rt;
	put_request(&s, &r);
	rs.jti = bin("token-2");
	r.body_case = REVOKD__LOCAL__REQUEST__BODY_RESTORE_TOKEN;
	r.restore_token = &rs;
	put_request(&s, &r);
	rss.sid = bin("session-1");
	r.body_case = REVOKD__LOCAL__REQUEST__BODY_REVOKE_SESSION;
	r.revoke_session = &rss;
	put_request(&s, &r);
	ru.sub = bin("user-1");
	ru.not_before_ms = (uint64_t)NOW_S * 1000;
	r.body_case = REVOKD__LOCAL__REQUEST__BODY_REVOKE_USER;
	r.revoke_user = &ru;
	put_request(&s, &r);
	for (int i = 0; i < 3; i++) {
		revokd__local__import_item__init(&it[i]);
		itp[i] = &it[i];
	}
	it[0].kind = "jti";
	it[0].id = bin("token-3");
	it[1].kind = "sid";
	it[1].id = bin("session-2");
	it[1].restore = 1;
	it[2].kind = "sub";
	it[2].id = bin("user-2");
	it[2].bump = 1;
	im.n_items = 3;
	im.items = itp;
	r.body_case = REVOKD__LOCAL__REQUEST__BODY_IMPORT;
	r.import = &im;
	put_request(&s, &r);
	d.limit = 2;
	r.body_case = REVOKD__LOCAL__REQUEST__BODY_DUMP;
	r.dump = &d;
	put_request(&s, &r);
	seed("local", "admin-writes-dump", s.b, s.n);

	/* A write waiting for a peer that never comes: answered at last. */
	s.n = 0;
	put8(&s, 1);
	w.peers = 1;
	w.timeout_ms = 60000;
	rt.wait = &w;
	r.body_case = REVOKD__LOCAL__REQUEST__BODY_REVOKE_TOKEN;
	r.revoke_token = &rt;
	put_request(&s, &r);
	r.body_case = REVOKD__LOCAL__REQUEST__BODY_STATUS;
	r.status = &stq;
	put_request(&s, &r);
	seed("local", "admin-wait", s.b, s.n);

	/* An admin request on the query socket; junk; an empty request. */
	s.n = 0;
	put8(&s, 0);
	rt.wait = NULL;
	r.body_case = REVOKD__LOCAL__REQUEST__BODY_REVOKE_TOKEN;
	r.revoke_token = &rt;
	put_request(&s, &r);
	put_frame(&s, "\xff\xff\xff", 3);
	put_frame(&s, "", 0);
	seed("local", "refused", s.b, s.n);

	/* A frame over max_message after a good one; a truncated one. */
	s.n = 0;
	put8(&s, 0);
	r.body_case = REVOKD__LOCAL__REQUEST__BODY_STATUS;
	r.status = &stq;
	put_request(&s, &r);
	put(&s, "\x00\x10\x00\x01", 4);
	seed("local", "oversize", s.b, s.n);
	s.n -= 4;
	put(&s, "\x00\x00\x00\x08\x0a\x02", 6);
	seed("local", "truncated", s.b, s.n);
}

/* ------------------------------------------------------------------------ */
/* config                                                                   */
/* ------------------------------------------------------------------------ */

static void
config_seeds(void)
{
	static const char full[] = "; revokd.conf\n"
	                           "[agent]\n"
	                           "region = eu-west-1\n"
	                           "region_id = 3\n"
	                           "cluster = prod\n"
	                           "data_dir = /var/lib/revokd\n"
	                           "secret_file = /etc/revokd/cluster.secret\n"
	                           "query_socket = /run/revokd/query.sock\n"
	                           "admin_socket = /run/revokd/admin.sock\n"
	                           "metrics = 127.0.0.1:9464\n"
	                           "max_token_lifetime = 3600\n"
	                           "prune_leeway = 300\n"
	                           "max_staleness = 5000\n"
	                           "log_format = logfmt\n"
	                           "log_level = info\n"
	                           "\n"
	                           "[tls]\n"
	                           "listen = tls+tcp://0.0.0.0:7400\n"
	                           "ca = /etc/revokd/pki/ca.pem\n"
	                           "cert = /etc/revokd/pki/eu-west-1.pem\n"
	                           "key = /etc/revokd/pki/eu-west-1.key\n"
	                           "\n"
	                           "[limits]\n"
	                           "max_message = 1048576\n"
	                           "backlog = 65536\n"
	                           "max_connections = 4096\n"
	                           "client_output = 4194304\n"
	                           "map_size = 8589934592\n"
	                           "\n"
	                           "[peer us-east-1]\n"
	                           "id = 1\n"
	                           "url = tls+tcp://us-east-1.internal:7400\n"
	                           "\n"
	                           "[peer ap-south-1]\n"
	                           "id = 2\n"
	                           "url = tls+tcp://ap-south-1.internal:7400\n";
	static const char minimal[] = "[agent]\n"
	                              "region=a\n"
	                              "region_id=1\n"
	                              "cluster=c\n"
	                              "data_dir=/d\n"
	                              "secret_file=/s\n"
	                              "query_socket=/q\n"
	                              "admin_socket=/a\n"
	                              "[tls]\n"
	                              "listen=tls+tcp://[::1]:0\n"
	                              "ca=/ca\n"
	                              "cert=/c\n"
	                              "key=/k\n";
	static const char odd[] =
	    "  [agent]   ; comment\n"
	    "# comment\n"
	    "region: eu\n"
	    "region_id = 65535 ; inline comment\n"
	    "cluster = prod\n"
	    "metrics = off\n"
	    "log_format = json\n"
	    "log_level = debug\n"
	    "data_dir = /var/lib/revokd/a/very/long/path/that/inih/would/"
	    "split/because/its/line/buffer/is/two/hundred/bytes/long/in/"
	    "debian/and/so/the/reader/must/hand/the/value/over/itself/"
	    "0123456789/0123456789/0123456789\n"
	    "secret_file = /s\n"
	    "query_socket = /q\n"
	    "admin_socket = /a\n"
	    "[tls]\n"
	    "listen = tls+tcp://host:1\n"
	    "ca = /ca\n"
	    "cert = /c\n"
	    "key = /k\n"
	    "[peer b]\n"
	    "id = 2\n"
	    "url = tls+tcp://b:7400\n";
	static const char bad[] = "[agent]\n"
	                          "region = eu\n"
	                          "region = us\n"
	                          "[peer eu]\n"
	                          "id = 0\n"
	                          "unknown = 1\n";

	seed("config", "full", full, strlen(full));
	seed("config", "minimal", minimal, strlen(minimal));
	seed("config", "odd-syntax", odd, strlen(odd));
	seed("config", "errors", bad, strlen(bad));
}

/* ------------------------------------------------------------------------ */
/* jwt and jwks                                                             */
/* ------------------------------------------------------------------------ */

static EVP_PKEY *keys[FZK_N];

static void
jwt_token_seed(const char *name, int verifier, int k, const char *header,
    const char *payload)
{
	static char tok[8192];
	struct bytes s = { .n = 0 };
	char h[256];
	size_t n;

	if (header == NULL) {
		snprintf(h, sizeof(h),
		    "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}",
		    fzk_alg[k], fzk_kid[k]);
		header = h;
	}
	n = fzk_sign(keys[k], k, (const uint8_t *)header, strlen(header),
	    (const uint8_t *)payload, strlen(payload), tok, sizeof(tok));
	if (n == 0) {
		fprintf(stderr, "make_seeds: signing %s failed\n", name);
		exit(1);
	}
	put8(&s, (unsigned)verifier); /* mode 0: the token as it is */
	put8(&s, 0);                  /* now = 1700000000 */
	put(&s, tok, n);
	seed("jwt", name, s.b, s.n);
}

static void
jwt_seeds(void)
{
	static const char good[] =
	    "{\"iss\":\"https://issuer.example\",\"sub\":\"user-1\","
	    "\"aud\":[\"fuzz-aud\",\"other\"],\"exp\":1700003600,"
	    "\"nbf\":1699999990,\"iat\":1700000000,\"jti\":\"token-1\","
	    "\"sid\":\"session-1\",\"ver\":3}";
	static const char fresh[] =
	    "{\"iss\":\"https://issuer.example\",\"sub\":\"user-3\","
	    "\"exp\":1700003600,\"iat\":1700000000,\"jti\":\"token-9\","
	    "\"ver\":0}";
	static const char revoked[] =
	    "{\"sub\":\"user-2\",\"exp\":1700003600,\"iat\":1700000000,"
	    "\"jti\":\"revoked-jti\"}";
	static const char stale[] =
	    "{\"sub\":\"user-1\",\"exp\":1700003600,\"iat\":1699999000,"
	    "\"ver\":2,\"aud\":\"fuzz-aud\"}";
	struct bytes s;

	for (int i = 0; i < FZK_N; i++)
		if ((keys[i] = fzk_load(i)) == NULL)
			die("loading a key");
	/* Every algorithm, for each verifier that allows it. */
	jwt_token_seed("es256-v0", 0, FZK_ES256, NULL, good);
	jwt_token_seed("rs256-v0", 0, FZK_RS256, NULL, good);
	jwt_token_seed("eddsa-v0", 0, FZK_EDDSA, NULL, good);
	jwt_token_seed("es256-v1-reader", 1, FZK_ES256, NULL, fresh);
	jwt_token_seed("eddsa-v2-reader", 2, FZK_EDDSA, NULL, fresh);
	jwt_token_seed("es256-v1-not-before", 1, FZK_ES256, NULL, good);
	jwt_token_seed("rs256-v3", 3, FZK_RS256, NULL, good);
	/* No kid: the only key of the alg; a revoked jti; a stale ver. */
	jwt_token_seed("es256-nokid", 0, FZK_ES256, "{\"alg\":\"ES256\"}",
	    good);
	jwt_token_seed("eddsa-revoked", 1, FZK_EDDSA, NULL, revoked);
	jwt_token_seed("es256-stale", 1, FZK_ES256, NULL, stale);
	/* A kid the JWKS lacks, and an alg the key cannot do. */
	jwt_token_seed("unknown-kid", 0, FZK_ES256,
	    "{\"alg\":\"ES256\",\"kid\":\"es-2\"}", good);
	jwt_token_seed("alg-mismatch", 0, FZK_ES256,
	    "{\"alg\":\"EdDSA\",\"kid\":\"es-1\"}", good);

	/* Mode 3: the payload alone, signed by the harness. */
	s.n = 0;
	put8(&s, 3 << 2 | 1);
	put8(&s, 0);
	put8(&s, 0); /* ES256 */
	put_str(&s, good);
	seed("jwt", "sign-payload", s.b, s.n);
	/* Mode 2: header, NUL, payload. */
	s.n = 0;
	put8(&s, 2 << 2 | 0);
	put8(&s, 0);
	put8(&s, 1); /* EdDSA */
	put_str(&s, "{\"alg\":\"EdDSA\",\"kid\":\"ed-1\",\"typ\":\"JWT\"}");
	put8(&s, 0);
	put_str(&s, good);
	seed("jwt", "sign-header-payload", s.b, s.n);

	/* jwks: each key type alone, all three, and keys to leave out. */
	{
		char jwk[FZK_N][4096], doc[16384];
		static const char *const names[FZK_N] = { "ec", "rsa", "okp" };

		for (int i = 0; i < FZK_N; i++) {
			if (!fzk_jwk(keys[i], i, jwk[i], sizeof(jwk[i])))
				die("jwk");
			s.n = 0;
			put8(&s, 0);
			snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", jwk[i]);
			put_str(&s, doc);
			seed("jwks", names[i], s.b, s.n);
		}
		s.n = 0;
		put8(&s, 0);
		snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s,%s]}", jwk[0],
		    jwk[1], jwk[2]);
		put_str(&s, doc);
		seed("jwks", "all-three", s.b, s.n);
		s.n = 0;
		put8(&s, 1); /* ES256 only allowed */
		snprintf(doc, sizeof(doc),
		    "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"},"
		    "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":"
		    "\"AA\"},{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\","
		    "\"kid\":\"small\"},%s,{\"kty\":\"OKP\",\"crv\":"
		    "\"Ed25519\",\"x\":\"AA\",\"use\":\"enc\"},%s]}",
		    jwk[0], jwk[0]);
		put_str(&s, doc);
		seed("jwks", "left-out", s.b, s.n);
	}
	for (int i = 0; i < FZK_N; i++)
		EVP_PKEY_free(keys[i]);
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make_seeds DIR\n");
		return 2;
	}
	out_dir = argv[1];
	if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
		die(out_dir);
	wire_seeds();
	engine_seeds();
	local_seeds();
	config_seeds();
	jwt_seeds();
	return 0;
}
